// Evaluation, prediction with routing, and characteristic words per expert (see evaluate.h).
//
// Dims: N rows · T rows in a batch · C classes or regression targets · E experts · S kept slots.
#include "moe/train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "moe/core/arena.h"
#include "moe/core/rng.h"
#include "moe/kernels/ops.h"
#include "moe/layers/loss.h"

namespace moe {

namespace {

Status check_matches(const Model& model, const Dataset& data, const LabelSpec& labels) {
  const DataShape& shape = model.shape();
  if (data.kind != shape.input) {
    const auto kind = [](FeatureKind k) {
      return k == FeatureKind::kDense    ? "dense"
             : k == FeatureKind::kSparse ? "text"
             : k == FeatureKind::kPairs  ? "sentence-pair"
                                         : "token";
    };
    return Status::error("{}: the model takes {} input, the data is {}", data.source,
                         kind(shape.input), kind(data.kind));
  }
  if (data.n_features != shape.n_features) {
    return Status::error("{}: {} features per row, the model takes {}", data.source,
                         data.n_features, shape.n_features);
  }
  if (labels.task != shape.task) {
    return Status::error("{}: a {} label spec for a {} model", data.source,
                         task_kind_name(labels.task), task_kind_name(shape.task));
  }
  const int64_t outputs =
      shape.task == TaskKind::kClassification ? labels.n_classes() : labels.n_targets();
  if (shape.input != FeatureKind::kTokens && shape.input != FeatureKind::kPairs &&
      outputs != shape.n_outputs) {
    return Status::error("{}: {} outputs in the label spec, the model has {}", data.source, outputs,
                         shape.n_outputs);
  }
  if (data.has_labels && data.task != shape.task) {
    return Status::error("{}: {} labels for a {} model", data.source, task_kind_name(data.task),
                         task_kind_name(shape.task));
  }
  return Status::ok();
}

// Appends the kept slots of each row of the layer's last plan to `r`.
void append_routing(const RoutingPlan& plan, LayerRouting* r) {
  for (int64_t t = 0; t < plan.n_tokens; ++t) {
    for (int64_t s = plan.token_offsets[t]; s < plan.token_offsets[t + 1]; ++s) {
      const size_t slot = static_cast<size_t>(s);
      if (!plan.dropped.empty() && plan.dropped[slot]) continue;
      r->experts.push_back(plan.expert_ids[slot]);
      r->weights.push_back(plan.weights[slot]);
    }
    r->offsets.push_back(static_cast<int64_t>(r->experts.size()));
  }
}

// The model's outputs for every row [N, C] (probabilities, or predictions in raw units), and
// Σ over batches of (mean batch loss · rows) when the data has labels.
double predict_rows(Model& model, const Dataset& data, const LabelSpec& labels,
                    const EvalOptions& options, std::vector<float>* outputs,
                    Predictions* predictions) {
  const int64_t n = data.n_rows, c = model.shape().n_outputs;
  const bool classify = model.shape().task == TaskKind::kClassification;
  const int64_t batch_size = std::max<int64_t>(1, std::min(options.batch_size, n));
  BatchOptions bo;
  bo.batch_size = batch_size;
  bo.shuffle = false;
  BatchIterator it(data, bo);
  const BatchBuffers buffers = BatchBuffers::for_dataset(data, batch_size);
  Arena arena;
  const Rng no_noise(0);         // inference draws nothing, but forward takes a source
  TaskLossOptions loss_options;  // unweighted, unsmoothed: the loss as reported
  loss_options.huber = options.regression_loss == RegressionLoss::kHuber;
  loss_options.huber_delta = options.huber_delta;
  double loss_sum = 0.0;
  it.start_epoch(0);
  Batch batch;
  int64_t done = 0;
  while (it.next(buffers, &batch)) {
    arena.reset();
    const Tensor logits = model.forward(batch, /*training=*/false, no_noise, arena);  // [T, C]
    const int64_t t = batch.n_rows;
    Tensor out(outputs->data() + done * c, Shape{t, c});  // [T, C]
    if (data.has_labels)
      loss_sum += model.task_loss(batch, logits, Tensor(), loss_options) * static_cast<double>(t);
    if (classify) {
      softmax_rows(logits, out);
    } else {
      copy(out, logits);
      labels.unstandardize(std::span<float>(out.f32(), static_cast<size_t>(t * c)));
    }
    if (predictions && options.keep_routing) {
      for (int64_t l = 0; l < model.n_moe_layers(); ++l)
        append_routing(model.moe_layer(l).plan(), &predictions->routing[static_cast<size_t>(l)]);
    }
    if (options.after_batch) options.after_batch(model, batch);
    done += t;
  }
  return loss_sum;
}

// Predictions are printed or written for someone to use: a NaN or an infinity among them (inputs
// finite but far outside the training data, or finite but absurd weights in a damaged
// checkpoint, can overflow the network) is an error naming the row, never a silent "-nan" in the
// output.
Status check_finite(const Dataset& data, const std::vector<float>& outputs, int64_t c) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    const float v = outputs[i];
    if (std::isfinite(v)) continue;
    const int64_t row = static_cast<int64_t>(i) / c;
    const int64_t line =
        row < static_cast<int64_t>(data.source_rows.size()) ? data.source_rows[row] : row + 1;
    return Status::error(
        "row {} of the data (line or record {}): the model's output {} is {}: its inputs are far "
        "outside the training data or its weights are damaged; no predictions are given",
        row + 1, line, static_cast<int64_t>(i) % c, std::isnan(v) ? "NaN" : "infinite");
  }
  return Status::ok();
}

// A language model over token windows, or a translation model over sentence pairs: the mean
// next-token loss, perplexity, bits per byte (of the text predicted: the windows', or the target
// sentences') and accuracy. Batches hold at most kEvalTokens predicted tokens (the logits [T, V]
// dominate memory), a pair's target counting as its longest.
constexpr int64_t kEvalTokens = 8192;

// The token each output row of a batch should predict.
int32_t expected_token(const Batch& batch, const Dataset& data, int64_t row) {
  if (data.kind == FeatureKind::kPairs) return batch.tgt_out.data<int32_t>()[row];
  const int64_t s = data.context;
  return batch.tokens.data<int32_t>()[(row / s) * (s + 1) + row % s + 1];
}

Result<EvalMetrics> evaluate_tokens(Model& model, const Dataset& data, const EvalOptions& options) {
  const int64_t v = model.shape().n_outputs;
  int64_t s = data.context;  // predicted tokens per row, at most
  if (data.kind == FeatureKind::kPairs) {
    s = 1;
    for (int64_t i = 0; i < data.n_rows; ++i) {
      const auto r = static_cast<size_t>(i);
      s = std::max(s, data.target_offsets[r + 1] - data.target_offsets[r] + 1);
    }
  }
  BatchOptions bo;
  bo.batch_size = std::max<int64_t>(1, std::min(options.batch_size, kEvalTokens / s));
  bo.shuffle = false;
  BatchIterator it(data, bo);
  const BatchBuffers buffers = BatchBuffers::for_dataset(data, bo.batch_size);
  Arena arena;
  const Rng no_noise(0);
  double loss_sum = 0.0;
  int64_t tokens = 0, correct = 0;
  it.start_epoch(0);
  Batch batch;
  while (it.next(buffers, &batch)) {
    arena.reset();
    const Tensor logits = model.forward(batch, /*training=*/false, no_noise, arena);  // [B·S, V]
    const int64_t t = logits.rows();
    loss_sum +=
        model.task_loss(batch, logits, Tensor(), TaskLossOptions()) * static_cast<double>(t);
    const std::vector<int32_t> best =
        argmax_rows(std::span<const float>(logits.f32(), static_cast<size_t>(t * v)), v);
    for (int64_t i = 0; i < t; ++i)
      correct += best[static_cast<size_t>(i)] == expected_token(batch, data, i);
    tokens += t;
    if (options.after_batch) options.after_batch(model, batch);
  }
  EvalMetrics m;
  m.task = TaskKind::kClassification;
  m.language_model = true;
  m.n_rows = data.n_rows;
  m.language.n_tokens = tokens;
  const int64_t text_bytes =
      data.kind == FeatureKind::kPairs ? data.target_bytes : data.window_bytes;
  m.language.n_bytes = text_bytes;
  if (tokens > 0) {
    m.has_loss = true;
    m.loss = loss_sum / static_cast<double>(tokens);
    m.language.perplexity = std::exp(m.loss);
    m.language.accuracy = static_cast<double>(correct) / static_cast<double>(tokens);
    // The windows cover all but the stream's last (n − 1) mod S tokens: the bytes of the text
    // they cover, counted when they were made (corpus_source.cpp); pairs: the targets' bytes.
    const double bytes = static_cast<double>(text_bytes);
    m.language.bits_per_byte = bytes > 0 ? loss_sum / (bytes * std::log(2.0)) : 0.0;
  }
  return m;
}

}  // namespace

Result<EvalMetrics> evaluate(Model& model, const Dataset& data, const LabelSpec& labels,
                             const EvalOptions& options, Predictions* predictions) {
  MOE_TRY(check_matches(model, data, labels));
  if (options.batch_size <= 0)
    return Status::error("evaluation batch size {}: expected a positive integer",
                         options.batch_size);
  if (data.kind == FeatureKind::kTokens || data.kind == FeatureKind::kPairs) {
    if (predictions != nullptr)
      return Status::error("{}: a {} model gives no per-row predictions; use moe {}", data.source,
                           data.kind == FeatureKind::kPairs ? "translation" : "language",
                           data.kind == FeatureKind::kPairs ? "translate" : "generate");
    return evaluate_tokens(model, data, options);
  }
  const DataShape& shape = model.shape();
  const int64_t n = data.n_rows;
  const int64_t c = shape.n_outputs;
  const bool classify = shape.task == TaskKind::kClassification;

  if (predictions) {
    predictions->routing.clear();
    if (options.keep_routing) {
      for (int64_t l = 0; l < model.n_moe_layers(); ++l) {
        LayerRouting r;
        r.layer = model.moe_layer_name(l);
        r.n_experts = model.moe_layer(l).n_experts();
        r.offsets.push_back(0);
        predictions->routing.push_back(std::move(r));
      }
    }
  }
  std::vector<float> outputs(static_cast<size_t>(n * c));  // [N, C]
  const double loss_sum = predict_rows(model, data, labels, options, &outputs, predictions);

  EvalMetrics m;
  m.task = shape.task;
  m.n_rows = n;
  if (data.has_labels && n > 0) {
    m.has_loss = true;
    m.loss = loss_sum / static_cast<double>(n);
    if (classify) {
      m.classification = classification_metrics(data.labels, outputs, c);
    } else {
      std::vector<float> truth = data.targets;  // [N, C] in raw units
      labels.unstandardize(truth);
      m.regression = regression_metrics(truth, outputs, c);
    }
  }
  if (predictions) {
    MOE_TRY(check_finite(data, outputs, c));
    predictions->n_rows = n;
    predictions->n_outputs = c;
    predictions->predicted = classify ? argmax_rows(outputs, c) : std::vector<int32_t>();
    predictions->outputs = std::move(outputs);
  }
  return m;
}

std::vector<ExpertProfile> characteristic_words(const Dataset& data, const LayerRouting& routing,
                                                const std::vector<std::string>& words, int64_t top,
                                                int64_t min_count) {
  MOE_CHECK(words.empty() || data.kind == FeatureKind::kSparse,
            "characteristic words need text data");
  MOE_CHECK(static_cast<int64_t>(routing.offsets.size()) == data.n_rows + 1,
            "routing of {} rows for {} rows", routing.offsets.size() - 1, data.n_rows);
  const size_t n_words = words.size();
  const size_t n_experts = static_cast<size_t>(routing.n_experts);
  std::vector<int64_t> doc_count(n_words, 0);                 // [V] rows containing the word
  std::vector<std::vector<int64_t>> expert_count(n_experts);  // [E][V]
  std::vector<int64_t> expert_rows(n_experts, 0);             // [E]
  std::vector<uint8_t> seen(n_experts);                       // [E] this row counted already
  for (auto& v : expert_count) v.assign(n_words, 0);
  // Adds 1 to counts[id] for each vocabulary word of row i (none without a vocabulary, so dense
  // data gets only the load figures).
  const auto count_words = [&](int64_t i, std::vector<int64_t>& counts) {
    if (n_words == 0) return;
    for (int64_t j = data.offsets[i]; j < data.offsets[i + 1]; ++j) {
      const size_t id = static_cast<size_t>(data.ids[static_cast<size_t>(j)]);
      if (id < n_words) ++counts[id];
    }
  };
  for (int64_t i = 0; i < data.n_rows; ++i) {
    std::fill(seen.begin(), seen.end(), uint8_t{0});
    for (int64_t s = routing.offsets[i]; s < routing.offsets[i + 1]; ++s) {
      const size_t e = static_cast<size_t>(routing.experts[static_cast<size_t>(s)]);
      if (seen[e]) continue;  // a row counts once per expert whatever its slots
      seen[e] = 1;
      ++expert_rows[e];
      count_words(i, expert_count[e]);
    }
    count_words(i, doc_count);
  }
  const int64_t total_slots = static_cast<int64_t>(routing.experts.size());
  std::vector<ExpertProfile> out;
  for (size_t e = 0; e < n_experts; ++e) {
    ExpertProfile p;
    p.expert = static_cast<int64_t>(e);
    p.rows = expert_rows[e];
    int64_t slots = 0;
    for (int32_t x : routing.experts) slots += static_cast<size_t>(x) == e;
    p.share = total_slots > 0 ? static_cast<double>(slots) / static_cast<double>(total_slots) : 0;
    for (size_t w = 0; w < n_words && p.rows > 0; ++w) {
      const int64_t k = expert_count[e][w];
      if (k < min_count || k == 0) continue;
      const double lift = (static_cast<double>(k) / static_cast<double>(p.rows)) /
                          (static_cast<double>(doc_count[w]) / static_cast<double>(data.n_rows));
      p.words.push_back({words[w], k, lift});
    }
    std::sort(p.words.begin(), p.words.end(), [](const ExpertWord& a, const ExpertWord& b) {
      if (a.lift != b.lift) return a.lift > b.lift;
      if (a.count != b.count) return a.count > b.count;
      return a.word < b.word;
    });
    if (static_cast<int64_t>(p.words.size()) > top) p.words.resize(static_cast<size_t>(top));
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<std::vector<ExpertWord>> characteristic_words(
    const Dataset& data, std::span<const int64_t> rows,
    const std::vector<std::vector<int64_t>>& expert_rows, const std::vector<std::string>& words,
    int64_t top, int64_t min_count) {
  MOE_CHECK(data.kind == FeatureKind::kSparse, "characteristic words need text data");
  const size_t n_words = words.size();
  // Adds 1 to counts[id] for each vocabulary word of row i (bigram buckets lie past the words).
  const auto count_words = [&](int64_t i, std::vector<int64_t>& counts) {
    for (int64_t j = data.offsets[i]; j < data.offsets[i + 1]; ++j) {
      const size_t id = static_cast<size_t>(data.ids[static_cast<size_t>(j)]);
      if (id < n_words) ++counts[id];
    }
  };
  std::vector<int64_t> doc_count(n_words, 0);  // [V] rows seen containing the word
  for (int64_t i : rows) count_words(i, doc_count);
  const double n_seen = static_cast<double>(rows.size());
  std::vector<std::vector<ExpertWord>> out;
  std::vector<int64_t> expert_count(n_words);  // [V] the expert's rows containing the word
  for (const std::vector<int64_t>& mine : expert_rows) {
    std::vector<ExpertWord> best;
    std::fill(expert_count.begin(), expert_count.end(), 0);
    for (int64_t i : mine) count_words(i, expert_count);
    const double n_mine = static_cast<double>(mine.size());
    for (size_t w = 0; w < n_words && !mine.empty(); ++w) {
      const int64_t k = expert_count[w];
      if (k < min_count || k == 0) continue;
      // lift = P(word | expert) / P(word), both over the rows this routing saw.
      const double lift =
          (static_cast<double>(k) / n_mine) / (static_cast<double>(doc_count[w]) / n_seen);
      best.push_back({words[w], k, lift});
    }
    std::sort(best.begin(), best.end(), [](const ExpertWord& a, const ExpertWord& b) {
      if (a.lift != b.lift) return a.lift > b.lift;
      if (a.count != b.count) return a.count > b.count;
      return a.word < b.word;
    });
    if (static_cast<int64_t>(best.size()) > top) best.resize(static_cast<size_t>(top));
    out.push_back(std::move(best));
  }
  return out;
}

}  // namespace moe
