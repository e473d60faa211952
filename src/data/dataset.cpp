#include "moe/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/json_fields.h"
#include "data/cells.h"
#include "data/file_bytes.h"
#include "moe/core/rng.h"

namespace moe {

namespace {

using json = nlohmann::json;

// Rng streams of the data layer, so its draws never coincide with a model's.
constexpr uint64_t kSplitStream = 0x5350'4c49'5400'0000ull;  // "SPLIT"
constexpr uint64_t kBatchStream = 0x4241'5443'4800'0000ull;  // "BATCH"

// Fisher–Yates shuffle (Knuth, TAOCP vol. 2, Algorithm P).
void shuffle(std::vector<int64_t>& v, Rng rng) {
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng.below(i));
    std::swap(v[i - 1], v[j]);
  }
}

// The most entries any `batch_size` rows of a CSR hold: the sum of the largest row lengths.
int64_t most_in_rows(const std::vector<int64_t>& offsets, int64_t batch_size) {
  if (offsets.size() < 2) return 0;
  std::vector<int64_t> lengths(offsets.size() - 1);
  for (size_t i = 0; i + 1 < offsets.size(); ++i) lengths[i] = offsets[i + 1] - offsets[i];
  const auto k = std::min(static_cast<size_t>(batch_size), lengths.size());
  std::nth_element(lengths.begin(), lengths.begin() + static_cast<ptrdiff_t>(k), lengths.end(),
                   std::greater<>());
  return std::accumulate(lengths.begin(), lengths.begin() + static_cast<ptrdiff_t>(k), int64_t{0});
}

}  // namespace

const char* task_kind_name(TaskKind t) {
  return enum_name(kTaskKindNames, t);
}

bool parse_task_kind(std::string_view name, TaskKind* out) {
  return parse_enum_name(kTaskKindNames, name, out);
}

int32_t LabelSpec::class_id(std::string_view name) const {
  name = data_detail::trim_blanks(name);
  const auto it = std::lower_bound(class_names.begin(), class_names.end(), name,
                                   [](const std::string& a, std::string_view b) { return a < b; });
  if (it == class_names.end() || *it != name) return -1;
  return static_cast<int32_t>(it - class_names.begin());
}

void LabelSpec::unstandardize(std::span<float> z) const {
  if (!standardized) return;
  const size_t c = columns.size();
  MOE_CHECK(c > 0 && z.size() % c == 0, "unstandardize: {} values for {} targets", z.size(), c);
  for (size_t i = 0; i < z.size(); ++i)
    z[i] = static_cast<float>(z[i] * target_std[i % c] + target_mean[i % c]);
}

json LabelSpec::to_json() const {
  json j;
  j["task"] = task_kind_name(task);
  j["columns"] = columns;
  if (task == TaskKind::kClassification) {
    j["class_names"] = class_names;
  } else {
    j["target_mean"] = target_mean;
    j["target_std"] = target_std;
    j["standardized"] = standardized;
  }
  return j;
}

Result<LabelSpec> LabelSpec::from_json(const json& j, const std::string& source) {
  const std::string where = source + ": labels";
  LabelSpec s;
  std::string task;
  MOE_TRY(json_field(j, "task", where, &task));
  if (!parse_task_kind(task, &s.task))
    return Status::error("{}: task '{}' is neither 'classification' nor 'regression'", where, task);
  MOE_TRY(json_field(j, "columns", where, &s.columns));
  if (s.columns.empty()) return Status::error("{}: 'columns' is empty", where);
  if (s.task == TaskKind::kClassification) {
    if (s.columns.size() != 1)
      return Status::error("{}: classification takes one label column, not {}", where,
                           s.columns.size());
    MOE_TRY(json_field(j, "class_names", where, &s.class_names));
    if (s.class_names.size() < 2)
      return Status::error("{}: 'class_names' needs at least two classes", where);
    for (size_t i = 1; i < s.class_names.size(); ++i)
      if (!(s.class_names[i - 1] < s.class_names[i]))
        return Status::error("{}: 'class_names' must be sorted and distinct ('{}' then '{}')",
                             where, s.class_names[i - 1], s.class_names[i]);
  } else {
    MOE_TRY(json_field(j, "target_mean", where, &s.target_mean));
    MOE_TRY(json_field(j, "target_std", where, &s.target_std));
    MOE_TRY(json_field(j, "standardized", where, &s.standardized));
    if (s.target_mean.size() != s.columns.size() || s.target_std.size() != s.columns.size())
      return Status::error("{}: 'target_mean' and 'target_std' need {} entries, one per column",
                           where, s.columns.size());
    for (double sd : s.target_std)
      if (!(sd > 0)) return Status::error("{}: 'target_std' entries must be positive", where);
  }
  return s;
}

namespace {

// Appends row r of a CSR (ids, offsets) to another.
void append_csr_row(const std::vector<int32_t>& ids, const std::vector<int64_t>& offsets, size_t r,
                    std::vector<int32_t>& out_ids, std::vector<int64_t>& out_offsets) {
  out_ids.insert(out_ids.end(), ids.begin() + static_cast<ptrdiff_t>(offsets[r]),
                 ids.begin() + static_cast<ptrdiff_t>(offsets[r + 1]));
  out_offsets.push_back(static_cast<int64_t>(out_ids.size()));
}

// The sentence pairs `rows` of a pairs data set, in that order.
Dataset subset_pairs(const Dataset& d, std::span<const int64_t> rows) {
  Dataset out;
  out.source = d.source;
  out.kind = d.kind;
  out.n_rows = static_cast<int64_t>(rows.size());
  out.n_features = d.n_features;
  out.task = d.task;
  out.has_labels = d.has_labels;
  out.n_classes = d.n_classes;
  out.bos_id = d.bos_id;
  out.eos_id = d.eos_id;
  out.offsets.push_back(0);
  out.target_offsets.push_back(0);
  for (const int64_t r : rows) {
    MOE_CHECK(r >= 0 && r < d.n_rows, "subset: row {} of a data set with {} rows", r, d.n_rows);
    const auto ur = static_cast<size_t>(r);
    append_csr_row(d.ids, d.offsets, ur, out.ids, out.offsets);
    append_csr_row(d.target_ids, d.target_offsets, ur, out.target_ids, out.target_offsets);
    if (!d.source_rows.empty()) out.source_rows.push_back(d.source_rows[ur]);
  }
  // Bytes follow the rows in proportion to their tokens (exact only for the whole set).
  const auto share = [](int64_t bytes, size_t part, size_t whole) {
    return whole == 0
               ? 0
               : static_cast<int64_t>(static_cast<double>(bytes) * static_cast<double>(part) /
                                      static_cast<double>(whole));
  };
  out.n_bytes = share(d.n_bytes, out.ids.size(), d.ids.size());
  out.target_bytes = share(d.target_bytes, out.target_ids.size(), d.target_ids.size());
  return out;
}

}  // namespace

Dataset Dataset::head(int64_t n) const {
  n = std::clamp<int64_t>(n, 0, n_rows);
  if (kind != FeatureKind::kTokens) {
    std::vector<int64_t> rows(static_cast<size_t>(n));
    std::iota(rows.begin(), rows.end(), int64_t{0});
    return subset(rows);
  }
  Dataset out = *this;
  const auto tokens = static_cast<size_t>(n == 0 ? 0 : n * context + 1);
  out.ids.resize(std::min(tokens, ids.size()));
  out.n_rows = n;
  const double share = n_rows == 0 ? 0.0 : static_cast<double>(n) / static_cast<double>(n_rows);
  out.n_bytes = static_cast<int64_t>(static_cast<double>(n_bytes) * share);
  out.window_bytes = static_cast<int64_t>(static_cast<double>(window_bytes) * share);
  if (!source_rows.empty()) out.source_rows.resize(static_cast<size_t>(n));
  return out;
}

Dataset Dataset::subset(std::span<const int64_t> rows) const {
  MOE_CHECK(kind != FeatureKind::kTokens, "subset of token windows");
  if (kind == FeatureKind::kPairs) return subset_pairs(*this, rows);
  Dataset out;
  out.source = source;
  out.kind = kind;
  out.n_rows = static_cast<int64_t>(rows.size());
  out.n_features = n_features;
  out.task = task;
  out.has_labels = has_labels;
  out.n_classes = n_classes;
  out.n_targets = n_targets;
  const auto d = static_cast<size_t>(n_features);
  const auto c = static_cast<size_t>(n_targets);
  if (kind == FeatureKind::kDense) {
    data_detail::reserve_huge(out.dense, rows.size() * d);
    out.dense.resize(rows.size() * d);
  } else {
    out.offsets.reserve(rows.size() + 1);
    out.offsets.push_back(0);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t r = rows[i];
    MOE_CHECK(r >= 0 && r < n_rows, "subset: row {} of a data set with {} rows", r, n_rows);
    const auto ur = static_cast<size_t>(r);
    if (kind == FeatureKind::kDense) {
      std::copy_n(dense.begin() + static_cast<ptrdiff_t>(ur * d), d,
                  out.dense.begin() + static_cast<ptrdiff_t>(i * d));
    } else {
      const auto b = static_cast<ptrdiff_t>(offsets[ur]),
                 e = static_cast<ptrdiff_t>(offsets[ur + 1]);
      out.ids.insert(out.ids.end(), ids.begin() + b, ids.begin() + e);
      out.weights.insert(out.weights.end(), weights.begin() + b, weights.begin() + e);
      out.offsets.push_back(static_cast<int64_t>(out.ids.size()));
    }
    if (has_labels && task == TaskKind::kClassification) out.labels.push_back(labels[ur]);
    if (has_labels && task == TaskKind::kRegression)
      out.targets.insert(out.targets.end(), targets.begin() + static_cast<ptrdiff_t>(ur * c),
                         targets.begin() + static_cast<ptrdiff_t>((ur + 1) * c));
    if (!source_rows.empty()) out.source_rows.push_back(source_rows[ur]);
  }
  return out;
}

Result<SplitIndices> split_rows(int64_t n, std::span<const int32_t> labels, int64_t n_classes,
                                const SplitOptions& options) {
  const double v = options.validation, t = options.test;
  if (!(v >= 0 && v < 1) || !(t >= 0 && t < 1) || !(v + t < 1))
    return Status::error(
        "split: validation {} and test {} must each be in [0, 1) and add up to less than 1", v, t);
  if (n <= 0) return Status::error("split: no rows to split");
  const bool stratify = options.stratify && !labels.empty();
  MOE_CHECK(labels.empty() || static_cast<int64_t>(labels.size()) == n,
            "split_rows: {} labels for {} rows", labels.size(), n);

  // Rows grouped by class (one group when not stratifying), each group in row order.
  std::vector<std::vector<int64_t>> groups(stratify ? static_cast<size_t>(n_classes) : 1);
  for (int64_t i = 0; i < n; ++i) {
    size_t g = 0;
    if (stratify) {
      const int32_t y = labels[static_cast<size_t>(i)];
      MOE_CHECK(y >= 0 && y < n_classes, "split_rows: label {} outside [0, {})", y, n_classes);
      g = static_cast<size_t>(y);
    }
    groups[g].push_back(i);
  }
  const Rng base(options.seed, kSplitStream);
  SplitIndices out;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<int64_t>& rows = groups[g];
    if (rows.empty()) continue;
    shuffle(rows, base.fork(g));
    const auto m = static_cast<int64_t>(rows.size());
    int64_t n_val = std::llround(v * static_cast<double>(m));
    int64_t n_test = std::llround(t * static_cast<double>(m));
    // Training keeps at least one row of each group.
    while (n_val + n_test > m - 1 && n_test > 0) --n_test;
    while (n_val + n_test > m - 1 && n_val > 0) --n_val;
    out.validation.insert(out.validation.end(), rows.begin(), rows.begin() + n_val);
    out.test.insert(out.test.end(), rows.begin() + n_val, rows.begin() + n_val + n_test);
    out.train.insert(out.train.end(), rows.begin() + n_val + n_test, rows.end());
  }
  std::sort(out.train.begin(), out.train.end());
  std::sort(out.validation.begin(), out.validation.end());
  std::sort(out.test.begin(), out.test.end());
  return out;
}

BatchBuffers BatchBuffers::for_dataset(const Dataset& d, int64_t batch_size) {
  MOE_CHECK(batch_size > 0, "batch size {}", batch_size);
  BatchBuffers b;
  if (d.kind == FeatureKind::kDense) {
    b.features = TensorBuffer(Shape{batch_size, d.n_features});
  } else if (d.kind == FeatureKind::kTokens) {
    b.tokens = TensorBuffer(Shape{batch_size, d.context + 1}, DType::kI32);
    b.rows = TensorBuffer(Shape{batch_size}, DType::kI64);
    return b;
  } else if (d.kind == FeatureKind::kPairs) {
    const int64_t n = std::min(batch_size, d.n_rows);
    const int64_t src = std::max<int64_t>(1, most_in_rows(d.offsets, batch_size));
    const int64_t tgt = most_in_rows(d.target_offsets, batch_size) + n;
    b.src_tokens = TensorBuffer(Shape{src}, DType::kI32);
    b.src_starts = TensorBuffer(Shape{batch_size + 1}, DType::kI64);
    b.tgt_in = TensorBuffer(Shape{std::max<int64_t>(1, tgt)}, DType::kI32);
    b.tgt_out = TensorBuffer(Shape{std::max<int64_t>(1, tgt)}, DType::kI32);
    b.tgt_starts = TensorBuffer(Shape{batch_size + 1}, DType::kI64);
    b.rows = TensorBuffer(Shape{batch_size}, DType::kI64);
    return b;
  } else {
    const int64_t cap = std::max<int64_t>(1, BatchIterator::max_ids_per_batch(d, batch_size));
    b.ids = TensorBuffer(Shape{cap}, DType::kI32);
    b.weights = TensorBuffer(Shape{cap});
    b.offsets = TensorBuffer(Shape{batch_size + 1}, DType::kI64);
  }
  if (d.has_labels && d.task == TaskKind::kClassification)
    b.labels = TensorBuffer(Shape{batch_size}, DType::kI32);
  if (d.has_labels && d.task == TaskKind::kRegression)
    b.targets = TensorBuffer(Shape{batch_size, d.n_targets});
  b.rows = TensorBuffer(Shape{batch_size}, DType::kI64);
  return b;
}

BatchIterator::BatchIterator(const Dataset& data, const BatchOptions& options)
    : data_(&data), options_(options), order_(static_cast<size_t>(data.n_rows)) {
  MOE_CHECK(options.batch_size > 0, "batch size {}", options.batch_size);
  MOE_CHECK(options.shards >= 1 && options.shard >= 0 && options.shard < options.shards &&
                options.batch_size >= options.shards,
            "shard {} of {} with batches of {}", options.shard, options.shards, options.batch_size);
  std::iota(order_.begin(), order_.end(), int64_t{0});
  cursor_ = data.n_rows;  // nothing to give until start_epoch
}

void BatchIterator::start_epoch(int64_t epoch) {
  std::iota(order_.begin(), order_.end(), int64_t{0});
  if (options_.shuffle)
    shuffle(order_, Rng(options_.seed, kBatchStream).fork(static_cast<uint64_t>(epoch)));
  cursor_ = 0;
}

int64_t BatchIterator::n_batches() const {
  const int64_t n = data_->n_rows, b = options_.batch_size;
  if (options_.drop_last) return n / b;
  // A final batch with fewer rows than shards is left out (some shard would be empty).
  return n / b + (n % b >= options_.shards ? 1 : 0);
}

int64_t BatchIterator::max_ids_per_batch(const Dataset& d, int64_t batch_size) {
  if (d.kind != FeatureKind::kSparse) return 0;
  return most_in_rows(d.offsets, batch_size);
}

// Row i of the batch is pair rows[i]: its source with eos, then bos + target and target + eos.
void BatchIterator::fill_pairs(const BatchBuffers& buffers, const int64_t* rows, int64_t n,
                               Batch* out) const {
  const Dataset& d = *data_;
  auto* src = buffers.src_tokens.view().data<int32_t>();
  auto* tin = buffers.tgt_in.view().data<int32_t>();
  auto* tout = buffers.tgt_out.view().data<int32_t>();
  int64_t* ss = buffers.src_starts.view().data<int64_t>();
  int64_t* ts = buffers.tgt_starts.view().data<int64_t>();
  ss[0] = 0;
  ts[0] = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto r = static_cast<size_t>(rows[i]);
    const int64_t s0 = d.offsets[r], s_len = d.offsets[r + 1] - s0;
    const int64_t t0 = d.target_offsets[r], t_len = d.target_offsets[r + 1] - t0;
    MOE_CHECK(
        ss[i] + s_len <= buffers.src_tokens.numel() && ts[i] + t_len + 1 <= buffers.tgt_in.numel(),
        "pair buffers too small for the batch");
    std::copy_n(d.ids.data() + s0, s_len, src + ss[i]);
    ss[i + 1] = ss[i] + s_len;
    int32_t* in = tin + ts[i];
    int32_t* lab = tout + ts[i];
    in[0] = d.bos_id;
    std::copy_n(d.target_ids.data() + t0, t_len, in + 1);
    std::copy_n(d.target_ids.data() + t0, t_len, lab);
    lab[t_len] = d.eos_id;
    ts[i + 1] = ts[i] + t_len + 1;
  }
  out->src_tokens = Tensor(src, Shape{ss[n]}, DType::kI32);
  out->src_starts = Tensor(ss, Shape{n + 1}, DType::kI64);
  out->tgt_in = Tensor(tin, Shape{ts[n]}, DType::kI32);
  out->tgt_out = Tensor(tout, Shape{ts[n]}, DType::kI32);
  out->tgt_starts = Tensor(ts, Shape{n + 1}, DType::kI64);
}

bool BatchIterator::next(const BatchBuffers& buffers, Batch* out) {
  const Dataset& d = *data_;
  const int64_t bs = options_.batch_size;
  const int64_t left = d.n_rows - cursor_;
  if (left <= 0 || (options_.drop_last && left < bs) || left < options_.shards) return false;
  const int64_t whole = std::min(bs, left);
  const int64_t lo = whole * options_.shard / options_.shards;
  const int64_t n = whole * (options_.shard + 1) / options_.shards - lo;
  const int64_t* rows = order_.data() + cursor_ + lo;
  cursor_ += whole;
  MOE_CHECK(buffers.rows.numel() >= n, "batch buffers hold {} rows, batch has {}",
            buffers.rows.numel(), n);

  *out = Batch{};
  out->n_rows = n;
  int64_t* row_out = buffers.rows.view().data<int64_t>();
  std::copy_n(rows, n, row_out);
  out->rows = Tensor(row_out, Shape{n}, DType::kI64);

  if (d.kind == FeatureKind::kDense) {
    const int64_t dim = d.n_features;
    MOE_CHECK(buffers.features.numel() >= n * dim, "feature buffer too small for the batch");
    float* f = buffers.features.f32();
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(f + i * dim, d.dense.data() + rows[i] * dim,
                  sizeof(float) * static_cast<size_t>(dim));
    out->features = Tensor(f, Shape{n, dim});
  } else if (d.kind == FeatureKind::kTokens) {
    const int64_t w = d.context + 1;
    MOE_CHECK(buffers.tokens.numel() >= n * w, "token buffer too small for the batch");
    auto* tok = buffers.tokens.view().data<int32_t>();
    for (int64_t i = 0; i < n; ++i) {
      MOE_CHECK((rows[i] + 1) * d.context < static_cast<int64_t>(d.ids.size()),
                "window {} past the end of a stream of {} tokens", rows[i], d.ids.size());
      std::memcpy(tok + i * w, d.ids.data() + rows[i] * d.context,
                  sizeof(int32_t) * static_cast<size_t>(w));
    }
    out->tokens = Tensor(tok, Shape{n, w}, DType::kI32);
    return true;
  } else if (d.kind == FeatureKind::kPairs) {
    fill_pairs(buffers, rows, n, out);
    return true;
  } else {
    int32_t* ids = buffers.ids.view().data<int32_t>();
    float* w = buffers.weights.f32();
    int64_t* off = buffers.offsets.view().data<int64_t>();
    const int64_t cap = buffers.ids.numel();
    int64_t k = 0;
    off[0] = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto b = static_cast<size_t>(d.offsets[static_cast<size_t>(rows[i])]);
      const int64_t len = d.row_ids(rows[i]);
      MOE_CHECK(k + len <= cap, "id buffer holds {} ids, batch needs more", cap);
      std::memcpy(ids + k, d.ids.data() + b, sizeof(int32_t) * static_cast<size_t>(len));
      std::memcpy(w + k, d.weights.data() + b, sizeof(float) * static_cast<size_t>(len));
      k += len;
      off[i + 1] = k;
    }
    out->ids = Tensor(ids, Shape{k}, DType::kI32);
    out->weights = Tensor(w, Shape{k});
    out->offsets = Tensor(off, Shape{n + 1}, DType::kI64);
  }
  if (d.has_labels && d.task == TaskKind::kClassification) {
    int32_t* y = buffers.labels.view().data<int32_t>();
    for (int64_t i = 0; i < n; ++i) y[i] = d.labels[static_cast<size_t>(rows[i])];
    out->labels = Tensor(y, Shape{n}, DType::kI32);
  }
  if (d.has_labels && d.task == TaskKind::kRegression) {
    const int64_t c = d.n_targets;
    float* y = buffers.targets.f32();
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(y + i * c, d.targets.data() + rows[i] * c,
                  sizeof(float) * static_cast<size_t>(c));
    out->targets = Tensor(y, Shape{n, c});
  }
  return true;
}

}  // namespace moe
