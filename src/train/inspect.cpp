// Routing inspection: recording every level of every MoE layer during evaluation, and the
// statistics of one level (see inspect.h; output formats in inspect_format.cpp).
//
// Dims: N rows · R rows a level saw · T rows of a batch · E experts of a level · G groups · S
// slots · C classes · Y regression targets · D_in dense input width · P pixels.
#include "moe/train/inspect.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "inspect_internal.h"
#include "moe/core/check.h"
#include "moe/core/index.h"
#include "moe/train/config_budget.h"

namespace moe {

namespace {

// H(p) = −Σ p_i ln p_i in nats for p summing to 1 (0 ln 0 = 0).
double entropy(const std::vector<double>& p) {
  double h = 0.0;
  for (double v : p)
    if (v > 0) h -= v * std::log(v);
  return h;
}

// Population mean and standard deviation over the values, as std / mean (0 when the mean is 0).
double coefficient_of_variation(const std::vector<double>& v) {
  if (v.empty()) return 0.0;
  const double n = static_cast<double>(v.size());
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / n;
  if (mean <= 0) return 0.0;
  double var = 0.0;
  for (double x : v) var += (x - mean) * (x - mean);
  return std::sqrt(var / n) / mean;
}

// v scaled to sum 1 (all zeros stay zeros).
std::vector<double> normalized(std::vector<double> v) {
  const double s = std::accumulate(v.begin(), v.end(), 0.0);
  if (s > 0)
    for (double& x : v) x /= s;
  return v;
}

// Appends the slots of token t of `plan` to `level` as data row `row`, with the router's row
// `probs` [E] (null: none).
void add_plan_row(const RoutingPlan& plan, int64_t t, int64_t row, const float* probs,
                  LevelRouting* level) {
  const int64_t b = plan.token_offsets[sz(t)], e = plan.token_offsets[sz(t + 1)];
  level->add_row(row, plan.expert_ids.data() + b, plan.weights.data() + b,
                 plan.dropped.empty() ? nullptr : plan.dropped.data() + b, e - b, probs);
}

double row_norm(const float* v, int64_t d) {
  double s = 0.0;
  for (int64_t i = 0; i < d; ++i) s += static_cast<double>(v[i]) * v[i];
  return std::sqrt(s);
}

// Appends ‖w·E(x)‖ / ‖x‖ of each slot of the layer's last forward (its combined plan, in token
// order, as add_plan_row appends them), -1 for a dropped slot or a zero input row; and ‖w·E(x)‖,
// -1 for a dropped slot.
void add_output_ratios(const MoeLayer& layer, LevelRouting* level) {
  const RoutingPlan& plan = layer.plan();
  const Tensor x = layer.last_input();       // [T, D]
  const Tensor ys = layer.expert_outputs();  // [S_kept, D]
  const int64_t d = x.cols();
  for (int64_t t = 0; t < plan.n_tokens; ++t) {
    const double x_norm = row_norm(x.f32() + t * d, d);
    for (int64_t s = plan.token_offsets[sz(t)]; s < plan.token_offsets[sz(t + 1)]; ++s) {
      const int32_t p = plan.inv_perm[sz(s)];
      const double norm =
          p >= 0 ? std::abs(plan.weights[sz(s)]) * row_norm(ys.f32() + p * d, d) : -1.0;
      const double ratio = p >= 0 && x_norm > 0.0 ? norm / x_norm : -1.0;
      level->output_ratio.push_back(static_cast<float>(ratio));
      level->output_norm.push_back(static_cast<float>(norm));
    }
  }
}

// Records every level of every MoE layer of a model, batch after batch, in the evaluation's
// data order. A language model's plans route the B·L tokens of a batch's windows, token t the
// window t / L's position t mod L: recorded as token row window·L + position (inspect.h).
class RoutingRecorder {
 public:
  RoutingRecorder(const Model& model, const Dataset* data) : data_(data) {
    for (int64_t l = 0; l < model.n_moe_layers(); ++l) {
      const MoeLayer& layer = model.moe_layer(l);
      const std::string& name = model.moe_layer_name(l);
      const GateConfig& inner = layer.config().gate;
      const int64_t g_n = layer.n_groups();
      if (g_n == 0) {
        add_level(name, "", inner, layer.n_experts(), gate_slots_per_token(inner));
        continue;
      }
      const GateConfig& top = layer.config().hierarchy.top;
      add_level(name, "", inner, layer.n_experts(),
                gate_slots_per_token(top) * gate_slots_per_token(inner));
      levels_.back().gate = "hierarchical";
      levels_.back().has_probs = false;  // group probabilities exist only for routed rows
      add_level(name, "top", top, g_n, gate_slots_per_token(top));
      for (int64_t g = 0; g < g_n; ++g)
        add_level(name, fmt::format("group.{}", g), inner, inner.n_experts,
                  gate_slots_per_token(inner));
    }
  }

  // After a batch's forward: its plans and router probabilities.
  void add(const Model& model, const Batch& batch) {
    const int64_t* layer_rows = batch.src_tokens.empty() ? routed_rows(model, batch) : nullptr;
    if (!batch.src_tokens.empty()) pair_rows(batch);
    size_t at = 0;
    for (int64_t l = 0; l < model.n_moe_layers(); ++l) {
      const MoeLayer& layer = model.moe_layer(l);
      const int64_t* rows = layer_rows;  // [T]
      if (rows == nullptr) {
        const bool decoder = inspect_detail::decoder_layer(model.moe_layer_name(l));
        rows = decoder ? target_rows_.data() : source_rows_.data();
        MOE_CHECK(layer.plan().n_tokens ==
                      static_cast<int64_t>(decoder ? target_rows_.size() : source_rows_.size()),
                  "{}: routed {} tokens of a batch of sentence pairs", model.moe_layer_name(l),
                  layer.plan().n_tokens);
      }
      const RoutingPlan& plan = layer.plan();
      const int64_t g_n = layer.n_groups();
      add_plan(plan, g_n == 0 ? layer.gate().router_probs() : Tensor(), rows, nullptr,
               &levels_[at]);
      add_output_ratios(layer, &levels_[at++]);
      if (g_n == 0) continue;
      const RoutingPlan& top = layer.top_plan();
      add_plan(top, layer.gate().router_probs(), rows, nullptr, &levels_[at++]);
      // Group g's token r is the top plan's r-th dispatched row of segment g (hierarchical.h).
      for (int64_t g = 0; g < g_n; ++g) {
        std::vector<int64_t>& seg = group_rows_;  // [rows sent to g] data rows
        seg.clear();
        for (int64_t p = top.expert_offsets[sz(g)]; p < top.expert_offsets[sz(g + 1)]; ++p)
          seg.push_back(rows[top.slot_token[sz(top.perm[sz(p)])]]);
        add_plan(layer.group_plan(g), layer.group_gate(g).router_probs(), nullptr, seg.data(),
                 &levels_[at++]);
      }
    }
  }

  std::vector<LevelRouting> take() { return std::move(levels_); }

 private:
  // The data row of each routed row of the batch: its rows, or its windows' token rows.
  const int64_t* routed_rows(const Model& model, const Batch& batch) {
    const int64_t* rows = batch.rows.data<int64_t>();  // [B]
    if (batch.tokens.empty()) return rows;
    const int64_t l = batch.tokens.cols() - 1;
    token_rows_.resize(sz(batch.n_rows * l));  // [B·L]
    for (int64_t b = 0; b < batch.n_rows; ++b)
      for (int64_t p = 0; p < l; ++p) token_rows_[sz(b * l + p)] = rows[b] * l + p;
    for (int64_t i = 0; i < model.n_moe_layers(); ++i)
      MOE_CHECK(model.moe_layer(i).plan().n_tokens == batch.n_rows * l,
                "{}: routed {} tokens of {} windows of {}", model.moe_layer_name(i),
                model.moe_layer(i).plan().n_tokens, batch.n_rows, l);
    return token_rows_.data();
  }

  void add_level(const std::string& layer, const std::string& level, const GateConfig& gate,
                 int64_t n_experts, int64_t k) {
    LevelRouting r;
    r.layer = layer;
    r.level = level;
    r.gate = gate_kind_name(gate.kind);
    r.n_experts = n_experts;
    r.k = k;
    r.offsets.push_back(0);
    r.has_probs = gate.kind != GateKind::kHash;
    r.prob_sum.assign(sz(n_experts), 0.0);
    levels_.push_back(std::move(r));
  }

  // Token t of `plan` is data row batch_rows[t] (or mapped_rows[t]).
  static void add_plan(const RoutingPlan& plan, Tensor probs, const int64_t* batch_rows,
                       const int64_t* mapped_rows, LevelRouting* level) {
    const bool with_probs = level->has_probs && !probs.empty();
    for (int64_t t = 0; t < plan.n_tokens; ++t) {
      const int64_t row = mapped_rows ? mapped_rows[t] : batch_rows[t];
      add_plan_row(plan, t, row, with_probs ? probs.f32() + t * plan.n_experts : nullptr, level);
    }
  }

  std::vector<LevelRouting> levels_;
  std::vector<int64_t> group_rows_;
  // Sentence pairs: each source token's row in data->ids and each decoder token's row in
  // InspectContext::decoder_tokens (pair r's bos at target_offsets[r] + r).
  void pair_rows(const Batch& batch) {
    const int64_t* rows = batch.rows.data<int64_t>();  // [B]
    source_rows_.clear();
    target_rows_.clear();
    for (int64_t b = 0; b < batch.n_rows; ++b) {
      const auto r = sz(rows[b]);
      for (int64_t p = data_->offsets[r]; p < data_->offsets[r + 1]; ++p) source_rows_.push_back(p);
      const int64_t t0 = data_->target_offsets[r] + rows[b];
      const int64_t n = data_->target_offsets[r + 1] - data_->target_offsets[r] + 1;
      for (int64_t p = 0; p < n; ++p) target_rows_.push_back(t0 + p);
    }
  }

  const Dataset* data_;
  std::vector<int64_t> token_rows_;                 // [B·L] language models
  std::vector<int64_t> source_rows_, target_rows_;  // [Ts], [Tt] translation models
};

// Distinct experts with a kept slot in row r of a level, in slot order.
void kept_experts(const LevelRouting& lr, int64_t r, std::vector<int32_t>* out) {
  out->clear();
  for (int64_t s = lr.offsets[sz(r)]; s < lr.offsets[sz(r + 1)]; ++s) {
    if (lr.dropped[sz(s)]) continue;
    const int32_t e = lr.experts[sz(s)];
    if (std::find(out->begin(), out->end(), e) == out->end()) out->push_back(e);
  }
}

// Class × expert counts, and I(label; expert) with its maximum (inspect.h).
void class_statistics(const LevelRouting& lr, const Dataset& data, int64_t n_classes,
                      LevelStats* st) {
  const int64_t e_n = lr.n_experts;
  st->class_counts.assign(sz(n_classes * e_n), 0);
  std::vector<double> joint(sz(n_classes * e_n), 0.0);  // [C, E]
  std::vector<int32_t> kept;
  double mass = 0.0;
  for (int64_t r = 0; r < lr.n_rows(); ++r) {
    const int64_t c = data.labels[sz(lr.rows[sz(r)])];
    int64_t n_kept = 0;
    for (int64_t s = lr.offsets[sz(r)]; s < lr.offsets[sz(r + 1)]; ++s)
      n_kept += !lr.dropped[sz(s)];
    if (n_kept == 0) continue;
    for (int64_t s = lr.offsets[sz(r)]; s < lr.offsets[sz(r + 1)]; ++s)
      if (!lr.dropped[sz(s)]) joint[sz(c * e_n + lr.experts[sz(s)])] += 1.0 / double(n_kept);
    mass += 1.0;
    kept_experts(lr, r, &kept);
    for (int32_t e : kept) ++st->class_counts[sz(c * e_n + e)];
  }
  st->class_shares.assign(sz(n_classes * e_n), 0.0);
  for (int64_t c = 0; c < n_classes; ++c) {
    int64_t total = 0;
    for (int64_t e = 0; e < e_n; ++e) total += st->class_counts[sz(c * e_n + e)];
    for (int64_t e = 0; e < e_n && total > 0; ++e)
      st->class_shares[sz(c * e_n + e)] =
          static_cast<double>(st->class_counts[sz(c * e_n + e)]) / static_cast<double>(total);
  }
  if (mass == 0) return;
  std::vector<double> pc(sz(n_classes), 0.0), pe(sz(e_n), 0.0);
  for (double& v : joint) v /= mass;
  for (int64_t c = 0; c < n_classes; ++c)
    for (int64_t e = 0; e < e_n; ++e) {
      pc[sz(c)] += joint[sz(c * e_n + e)];
      pe[sz(e)] += joint[sz(c * e_n + e)];
    }
  // I(C; E) = Σ p(c, e) ln(p(c, e) / (p(c) p(e))) ≤ min(H(C), H(E)).
  double mi = 0.0;
  for (int64_t c = 0; c < n_classes; ++c)
    for (int64_t e = 0; e < e_n; ++e) {
      const double p = joint[sz(c * e_n + e)];
      if (p > 0) mi += p * std::log(p / (pc[sz(c)] * pe[sz(e)]));
    }
  st->mutual_information = std::max(0.0, mi);
  st->mutual_information_max = std::min(entropy(pc), entropy(pe));
}

// Target mean and population standard deviation per expert, in the targets' units; NaN for an
// expert without rows.
void regression_statistics(const std::vector<std::vector<int64_t>>& expert_rows,
                           const Dataset& data, const LabelSpec& labels, LevelStats* st) {
  const int64_t y_n = data.n_targets;
  const size_t cells = expert_rows.size() * sz(y_n);
  st->target_mean.assign(cells, std::nan(""));
  st->target_std.assign(cells, std::nan(""));
  for (size_t e = 0; e < expert_rows.size(); ++e) {
    const std::vector<int64_t>& rows = expert_rows[e];
    if (rows.empty()) continue;
    for (int64_t y = 0; y < y_n; ++y) {
      const bool scaled = labels.standardized && sz(y) < labels.target_std.size();
      const double scale = scaled ? labels.target_std[sz(y)] : 1.0;
      const double shift = scaled ? labels.target_mean[sz(y)] : 0.0;
      double sum = 0.0, sq = 0.0;
      for (int64_t r : rows) {
        const double v = data.targets[sz(r * y_n + y)] * scale + shift;
        sum += v;
        sq += v * v;
      }
      const double n = static_cast<double>(rows.size());
      const double mean = sum / n;
      st->target_mean[e * sz(y_n) + sz(y)] = mean;
      st->target_std[e * sz(y_n) + sz(y)] = std::sqrt(std::max(0.0, sq / n - mean * mean));
    }
  }
}

// For each expert the features whose mean over its rows differs most from the mean over the
// level's rows, in units of the features' standard deviation over the level's rows.
void feature_statistics(const LevelRouting& lr,
                        const std::vector<std::vector<int64_t>>& expert_rows,
                        const InspectContext& ctx, int64_t top, LevelStats* st) {
  const Dataset& data = *ctx.data;
  const int64_t d = data.n_features;
  if (lr.rows.empty() || sz(d) != ctx.feature_names.size()) return;
  std::vector<double> mean(sz(d), 0.0), sq(sz(d), 0.0);  // [D_in]
  for (int64_t r : lr.rows) {
    const float* x = data.dense.data() + r * d;
    for (int64_t f = 0; f < d; ++f) {
      mean[sz(f)] += x[f];
      sq[sz(f)] += double(x[f]) * x[f];
    }
  }
  const double n = static_cast<double>(lr.rows.size());
  std::vector<double> sd(sz(d));
  for (int64_t f = 0; f < d; ++f) {
    mean[sz(f)] /= n;
    sd[sz(f)] = std::sqrt(std::max(0.0, sq[sz(f)] / n - mean[sz(f)] * mean[sz(f)]));
  }
  std::vector<double> own(sz(d));  // [D_in] the expert's mean
  for (const std::vector<int64_t>& rows : expert_rows) {
    std::vector<FeatureDelta> best;
    if (!rows.empty()) {
      std::fill(own.begin(), own.end(), 0.0);
      for (int64_t r : rows) {
        const float* x = data.dense.data() + r * d;
        for (int64_t f = 0; f < d; ++f) own[sz(f)] += x[f];
      }
      for (int64_t f = 0; f < d; ++f) {
        if (sd[sz(f)] < 1e-12) continue;  // constant over these rows: nothing to tell apart
        const double delta =
            (own[sz(f)] / static_cast<double>(rows.size()) - mean[sz(f)]) / sd[sz(f)];
        if (std::abs(delta) < 1e-9) continue;  // the expert saw the level's own mean
        best.push_back({ctx.feature_names[sz(f)], delta});
      }
      std::stable_sort(best.begin(), best.end(), [](const FeatureDelta& a, const FeatureDelta& b) {
        return std::abs(a.delta) > std::abs(b.delta);
      });
      if (static_cast<int64_t>(best.size()) > top) best.resize(sz(top));
    }
    st->features.push_back(std::move(best));
  }
}

// The mean input image of each expert's rows, [E, P] (zeros for an expert without rows).
void image_statistics(const std::vector<std::vector<int64_t>>& expert_rows, const Dataset& data,
                      LevelStats* st) {
  const int64_t p = data.n_features;
  st->mean_images.assign(expert_rows.size() * sz(p), 0.0f);
  std::vector<double> acc(sz(p));  // [P]
  for (size_t e = 0; e < expert_rows.size(); ++e) {
    if (expert_rows[e].empty()) continue;
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t r : expert_rows[e]) {
      const float* x = data.dense.data() + r * p;
      for (int64_t i = 0; i < p; ++i) acc[sz(i)] += x[i];
    }
    const double n = static_cast<double>(expert_rows[e].size());
    for (int64_t i = 0; i < p; ++i)
      st->mean_images[e * sz(p) + sz(i)] = static_cast<float>(acc[sz(i)] / n);
  }
}

}  // namespace

void add_gate_entropy(Tensor probs, double* entropy_sum, std::vector<double>* prob_sum) {
  if (probs.empty()) return;
  const int64_t t_n = probs.rows(), e_n = probs.cols();
  if (prob_sum->size() != sz(e_n)) prob_sum->assign(sz(e_n), 0.0);
  const float* p = probs.f32();
  for (int64_t t = 0; t < t_n; ++t) {
    const float* row = p + t * e_n;
    double total = 0.0;
    for (int64_t e = 0; e < e_n; ++e) total += std::max(0.0f, row[e]);
    if (total <= 0) continue;
    for (int64_t e = 0; e < e_n; ++e) {
      const double q = std::max(0.0f, row[e]) / total;
      (*prob_sum)[sz(e)] += q;
      if (q > 0) *entropy_sum -= q * std::log(q);
    }
  }
}

GateEntropyTally::GateEntropyTally(const Model& model)
    : rows_(sz(model.n_moe_layers()), 0),
      entropy_sum_(sz(model.n_moe_layers()), 0.0),
      prob_sum_(sz(model.n_moe_layers())) {}

void GateEntropyTally::add(const Model& model) {
  for (int64_t l = 0; l < model.n_moe_layers(); ++l) {
    const Tensor probs = model.moe_layer(l).gate().router_probs();  // [T, E]
    if (probs.empty()) continue;
    rows_[sz(l)] += probs.rows();
    add_gate_entropy(probs, &entropy_sum_[sz(l)], &prob_sum_[sz(l)]);
  }
}

std::vector<GateEntropy> GateEntropyTally::result(const Model& model) const {
  std::vector<GateEntropy> out;
  for (int64_t l = 0; l < model.n_moe_layers(); ++l) {
    if (rows_[sz(l)] == 0) continue;
    GateEntropy g;
    g.layer = model.moe_layer_name(l);
    g.mean = entropy_sum_[sz(l)] / static_cast<double>(rows_[sz(l)]);
    g.of_mean = entropy(normalized(prob_sum_[sz(l)]));
    g.max = std::log(static_cast<double>(prob_sum_[sz(l)].size()));
    out.push_back(std::move(g));
  }
  return out;
}

nlohmann::json GateEntropyTally::to_json() const {
  return {{"rows", rows_}, {"entropy_sum", entropy_sum_}, {"prob_sum", prob_sum_}};
}

bool GateEntropyTally::from_json(const nlohmann::json& j) {
  const size_t n = rows_.size();
  if (!j.is_object() || !j.contains("rows") || !j.contains("entropy_sum") ||
      !j.contains("prob_sum") || !j["rows"].is_array() || j["rows"].size() != n ||
      !j["entropy_sum"].is_array() || j["entropy_sum"].size() != n || !j["prob_sum"].is_array() ||
      j["prob_sum"].size() != n)
    return false;
  for (size_t l = 0; l < n; ++l) {
    const nlohmann::json& p = j["prob_sum"][l];
    if (!j["rows"][l].is_number_integer() || !j["entropy_sum"][l].is_number() || !p.is_array())
      return false;
    for (const nlohmann::json& v : p)
      if (!v.is_number()) return false;
    rows_[l] = j["rows"][l].get<int64_t>();
    entropy_sum_[l] = j["entropy_sum"][l].get<double>();
    prob_sum_[l] = p.get<std::vector<double>>();
  }
  return true;
}

void LevelRouting::add_row(int64_t row, const int32_t* row_experts, const float* row_weights,
                           const uint8_t* row_dropped, int64_t n_slots, const float* probs) {
  rows.push_back(row);
  experts.insert(experts.end(), row_experts, row_experts + n_slots);
  weights.insert(weights.end(), row_weights, row_weights + n_slots);
  for (int64_t s = 0; s < n_slots; ++s) dropped.push_back(row_dropped ? row_dropped[s] : 0);
  offsets.push_back(static_cast<int64_t>(experts.size()));
  if (!probs) return;
  has_probs = true;
  add_gate_entropy(Tensor(const_cast<float*>(probs), Shape{1, n_experts}), &entropy_sum, &prob_sum);
}

const char* input_kind_name(InputKind k) {
  switch (k) {
    case InputKind::kDense:
      return "dense";
    case InputKind::kText:
      return "text";
    case InputKind::kImage:
      return "image";
    case InputKind::kTokens:
      return "tokens";
    case InputKind::kPairs:
      return "pairs";
  }
  return "?";
}

InspectContext InspectContext::from_schema(const DataSchema& schema, const Dataset& data,
                                           const std::string& path) {
  InspectContext c;
  c.data = &data;
  c.path = path;
  c.labels = schema.labels;
  if (data.kind == FeatureKind::kPairs) {
    c.input = InputKind::kPairs;
    for (int64_t i = 0; i < data.n_rows; ++i) {
      c.decoder_tokens.push_back(data.bos_id);
      c.decoder_tokens.insert(c.decoder_tokens.end(),
                              data.target_ids.begin() + data.target_offsets[sz(i)],
                              data.target_ids.begin() + data.target_offsets[sz(i + 1)]);
    }
  }
  if (data.kind == FeatureKind::kTokens || data.kind == FeatureKind::kPairs) {
    if (data.kind == FeatureKind::kTokens) c.input = InputKind::kTokens;
    c.context = data.kind == FeatureKind::kTokens ? data.context : 0;
    if (schema.tokenizer) {
      const auto v_n = static_cast<int32_t>(schema.tokenizer->vocab_size());
      for (int32_t v = 0; v < v_n; ++v) c.words.push_back(schema.tokenizer->piece(v));
    }
  } else if (schema.text && data.kind == FeatureKind::kSparse) {
    c.input = InputKind::kText;
    c.words = schema.text->words();
  } else if (schema.format == DataFormat::kIdx) {
    c.input = InputKind::kImage;
    // IDX images keep only their pixel count in the schema: square when it is a square.
    const auto side = static_cast<int64_t>(std::llround(std::sqrt(double(data.n_features))));
    c.image_height = side * side == data.n_features ? side : 1;
    c.image_width = side * side == data.n_features ? side : data.n_features;
  } else if (schema.features) {
    c.feature_names = schema.features->feature_names();
  }
  return c;
}

namespace {

// One pass over a level's slots: per-expert sums and the rows each expert keeps.
struct LevelTally {
  std::vector<double> load, weight;               // [E] kept slots, Σ weights
  std::vector<double> ratio_sum, ratio_n;         // [E] Σ and count of output ratios
  std::vector<double> norm_sum;                   // [E] Σ of kept slots' ‖w·E(x)‖
  std::vector<int64_t> coact;                     // [E, E] rows keeping both experts
  std::vector<std::vector<int64_t>> expert_rows;  // [E][rows]
  std::vector<double> dist_sum;                   // [E] Σ over rows of the normalised kept weights
  double entropy_sum = 0.0;                       // Σ over rows of their entropy
  int64_t n_dropped = 0;
};

LevelTally tally_level(const LevelRouting& lr, const InspectContext& ctx) {
  const int64_t e_n = lr.n_experts, r_n = lr.n_rows();
  const int64_t data_rows = ctx.data ? inspect_detail::routed_row_count(*ctx.data) : 0;
  LevelTally t;
  t.load.assign(sz(e_n), 0.0);
  t.weight.assign(sz(e_n), 0.0);
  t.ratio_sum.assign(sz(e_n), 0.0);
  t.ratio_n.assign(sz(e_n), 0.0);
  t.norm_sum.assign(sz(e_n), 0.0);
  t.coact.assign(sz(e_n * e_n), 0);
  t.expert_rows.resize(sz(e_n));
  t.dist_sum.assign(sz(e_n), 0.0);
  std::vector<double> row_dist(sz(e_n));  // [E]
  std::vector<int32_t> kept;
  for (int64_t r = 0; r < r_n; ++r) {
    MOE_CHECK(ctx.data == nullptr || (lr.rows[sz(r)] >= 0 && lr.rows[sz(r)] < data_rows),
              "level {} {}: row {} of a data set with {} rows", lr.layer, lr.level, lr.rows[sz(r)],
              data_rows);
    std::fill(row_dist.begin(), row_dist.end(), 0.0);
    for (int64_t s = lr.offsets[sz(r)]; s < lr.offsets[sz(r + 1)]; ++s) {
      const int32_t e = lr.experts[sz(s)];
      MOE_CHECK(e >= 0 && e < e_n, "level {} {}: expert {} of {}", lr.layer, lr.level, e, e_n);
      if (lr.dropped[sz(s)]) {
        ++t.n_dropped;
        continue;
      }
      t.load[sz(e)] += 1.0;
      t.weight[sz(e)] += lr.weights[sz(s)];
      if (!lr.output_ratio.empty() && lr.output_ratio[sz(s)] >= 0.0f) {
        t.ratio_sum[sz(e)] += lr.output_ratio[sz(s)];
        t.ratio_n[sz(e)] += 1.0;
      }
      if (!lr.output_norm.empty()) t.norm_sum[sz(e)] += std::max(0.0f, lr.output_norm[sz(s)]);
      row_dist[sz(e)] += std::max(0.0f, lr.weights[sz(s)]);
    }
    kept_experts(lr, r, &kept);
    for (int32_t i : kept) {
      t.expert_rows[sz(i)].push_back(lr.rows[sz(r)]);
      for (int32_t j : kept) ++t.coact[sz(i * e_n + j)];
    }
    if (!lr.has_probs) {  // entropy of the kept weights, normalised per row
      const std::vector<double> q = normalized(row_dist);
      t.entropy_sum += entropy(q);
      for (int64_t e = 0; e < e_n; ++e) t.dist_sum[sz(e)] += q[sz(e)];
    }
  }
  return t;
}

// Load, importance, their balance, drops, the router's entropy, dead and silent experts.
void level_balance(const LevelRouting& lr, const LevelTally& t, LevelStats* st) {
  const int64_t e_n = lr.n_experts, r_n = lr.n_rows();
  const double kept_total = std::accumulate(t.load.begin(), t.load.end(), 0.0);
  const double slots_total = kept_total + static_cast<double>(t.n_dropped);
  const double rows = std::max<double>(1.0, static_cast<double>(r_n));
  st->load = normalized(t.load);
  st->importance.resize(sz(e_n));
  for (int64_t e = 0; e < e_n; ++e) st->importance[sz(e)] = t.weight[sz(e)] / rows;
  st->cv_load = coefficient_of_variation(st->load);
  st->cv_importance = coefficient_of_variation(st->importance);
  const double max_load =
      st->load.empty() ? 0.0 : *std::max_element(st->load.begin(), st->load.end());
  st->max_over_mean_load = kept_total > 0 ? max_load * static_cast<double>(e_n) : 0.0;
  st->dropped_rate = slots_total > 0 ? static_cast<double>(t.n_dropped) / slots_total : 0.0;
  st->entropy_from_router = lr.has_probs;
  const double entropy_sum = lr.has_probs ? lr.entropy_sum : t.entropy_sum;
  const std::vector<double>& dist_sum = lr.has_probs ? lr.prob_sum : t.dist_sum;
  st->entropy_mean = r_n > 0 ? entropy_sum / rows : 0.0;
  st->entropy_of_mean = entropy(normalized(dist_sum));
  for (int64_t e = 0; e < e_n; ++e)
    if (st->load[sz(e)] < 1.0 / (10.0 * static_cast<double>(e_n))) st->dead.push_back(e);
  if (!lr.output_ratio.empty()) {
    st->output_ratio.resize(sz(e_n));
    for (int64_t e = 0; e < e_n; ++e)
      st->output_ratio[sz(e)] = t.ratio_n[sz(e)] > 0 ? t.ratio_sum[sz(e)] / t.ratio_n[sz(e)] : 0.0;
    const double largest = *std::max_element(st->output_ratio.begin(), st->output_ratio.end());
    if (!lr.output_norm.empty()) {
      st->reap.resize(sz(e_n));
      for (int64_t e = 0; e < e_n; ++e)
        st->reap[sz(e)] = t.load[sz(e)] > 0 ? t.norm_sum[sz(e)] / t.load[sz(e)] : 0.0;
    }
    for (int64_t e = 0; e < e_n; ++e)
      if (!std::binary_search(st->dead.begin(), st->dead.end(), e) &&
          st->output_ratio[sz(e)] < kSilentRatio * largest)
        st->silent.push_back(e);
  }
}

// Collapse (inspect.h): the shares' largest entry, or their effective number of experts exp(H),
// against the slots a row keeps; and the co-activation matrix.
void level_collapse(const LevelRouting& lr, const LevelTally& t, LevelStats* st) {
  const int64_t e_n = lr.n_experts;
  const double kept_total = std::accumulate(t.load.begin(), t.load.end(), 0.0);
  const double rows = std::max<double>(1.0, static_cast<double>(lr.n_rows()));
  const double mean_kept = kept_total / rows;
  const bool every_expert = mean_kept >= static_cast<double>(e_n) - 0.5;
  const std::vector<double> shares = every_expert ? normalized(st->importance) : st->load;
  const double reference = every_expert ? 1.0 : mean_kept;
  const double max_share = shares.empty() ? 0.0 : *std::max_element(shares.begin(), shares.end());
  st->collapsed =
      e_n >= 2 && kept_total > 0 &&
      (max_share >= kCollapseShare || std::exp(entropy(shares)) < reference + kCollapseSlack);
  st->coactivation.resize(sz(e_n * e_n));
  for (size_t i = 0; i < t.coact.size(); ++i)
    st->coactivation[i] = static_cast<double>(t.coact[i]) / rows;
}

// What the experts' rows hold: classes or targets, characteristic words, pixels or features.
void level_data(const LevelRouting& lr, const LevelTally& t, const InspectContext& ctx,
                const InspectOptions& options, LevelStats* st) {
  const Dataset* data = ctx.data;
  if (data == nullptr) return;
  if (data->kind == FeatureKind::kTokens) {  // labels are the next tokens: no class table
    inspect_detail::token_statistics(lr, t.expert_rows, ctx, options, st);
    return;
  }
  if (data->kind == FeatureKind::kPairs) {
    inspect_detail::pair_token_statistics(lr, t.expert_rows, ctx, options, st);
    return;
  }
  if (data->has_labels && data->task == TaskKind::kClassification) {
    const int64_t c_n = std::max<int64_t>(ctx.labels.n_classes(), data->n_classes);
    class_statistics(lr, *data, c_n, st);
  } else if (data->has_labels && data->task == TaskKind::kRegression) {
    regression_statistics(t.expert_rows, *data, ctx.labels, st);
  }
  if (ctx.input == InputKind::kText && data->kind == FeatureKind::kSparse) {
    st->tokens = characteristic_words(*data, lr.rows, t.expert_rows, ctx.words, options.top_tokens,
                                      options.min_count);
  } else if (ctx.input == InputKind::kImage && data->kind == FeatureKind::kDense) {
    image_statistics(t.expert_rows, *data, st);
  } else if (data->kind == FeatureKind::kDense && !ctx.feature_names.empty()) {
    feature_statistics(lr, t.expert_rows, ctx, options.top_features, st);
  }
}

}  // namespace

LevelStats inspect_level(const LevelRouting& lr, const InspectContext& ctx,
                         const InspectOptions& options) {
  MOE_CHECK(lr.offsets.size() == lr.rows.size() + 1 && lr.experts.size() == lr.weights.size() &&
                lr.experts.size() == lr.dropped.size(),
            "level routing {} {}: inconsistent sizes", lr.layer, lr.level);
  MOE_CHECK(lr.output_ratio.empty() || lr.output_ratio.size() == lr.experts.size(),
            "level routing {} {}: {} output ratios for {} slots", lr.layer, lr.level,
            lr.output_ratio.size(), lr.experts.size());
  LevelStats st;
  st.layer = lr.layer;
  st.level = lr.level;
  st.gate = lr.gate;
  st.n_experts = lr.n_experts;
  st.k = lr.k;
  st.n_rows = lr.n_rows();
  st.entropy_max = lr.n_experts > 0 ? std::log(static_cast<double>(lr.n_experts)) : 0.0;
  const LevelTally t = tally_level(lr, ctx);
  level_balance(lr, t, &st);
  level_collapse(lr, t, &st);
  level_data(lr, t, ctx, options, &st);
  return st;
}

Result<InspectReport> inspect_model(Model& model, const InspectContext& ctx,
                                    const InspectOptions& options) {
  MOE_CHECK(ctx.data != nullptr, "inspect_model without data");
  if (model.n_moe_layers() == 0) return Status::error("a dense model has no experts to inspect");
  // The statistics grow as E² per layer: refused by a check naming the key, not by bad_alloc.
  // A language model's outputs are its vocabulary, and it has no class × expert table.
  const bool tokens =
      ctx.data->kind == FeatureKind::kTokens || ctx.data->kind == FeatureKind::kPairs;
  MOE_TRY(check_expert_budget(model.config(), tokens ? 0 : model.shape().n_outputs,
                              options.batch_size, 0, training_memory_limit()));
  RoutingRecorder recorder(model, ctx.data);
  EvalOptions eval;
  eval.batch_size = options.batch_size;
  eval.keep_routing = options.keep_trace;
  eval.after_batch = [&recorder](const Model& m, const Batch& b) { recorder.add(m, b); };
  if (tokens && options.keep_trace)
    return Status::error("{}: no routing trace for a language model's tokens yet", ctx.path);
  Predictions predictions;  // a language model gives none (evaluate.h)
  MOE_ASSIGN_OR_RETURN(EvalMetrics metrics, evaluate(model, *ctx.data, ctx.labels, eval,
                                                     tokens ? nullptr : &predictions));
  InspectReport report;
  report.path = ctx.path;
  report.n_rows = ctx.data->n_rows;
  report.input = ctx.input;
  report.labels = ctx.labels;
  report.has_labels = ctx.data->has_labels;
  report.image_height = ctx.image_height;
  report.image_width = ctx.image_width;
  report.context = ctx.data->kind == FeatureKind::kTokens ? ctx.data->context : 0;
  if (metrics.has_loss) {
    report.metrics = metrics.to_json(
        ctx.labels.task == TaskKind::kClassification ? ctx.labels.class_names : ctx.labels.columns);
  }
  for (const LevelRouting& lr : recorder.take())
    report.levels.push_back(inspect_level(lr, ctx, options));
  report.trace = std::move(predictions.routing);
  return report;
}

}  // namespace moe
