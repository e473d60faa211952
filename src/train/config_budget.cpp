// The weight-matrix element count of a model configuration; see moe/train/config_budget.h.
//
// Dims: D model width · D_in input features · C outputs · E experts · F expert hidden width ·
// G groups.
#include "moe/train/config_budget.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include <fmt/format.h>

#include "moe/core/file_io.h"

namespace moe {

namespace {

constexpr int64_t kSaturated = INT64_MAX;

int64_t mul(int64_t a, int64_t b) {
  int64_t out = 0;
  return __builtin_mul_overflow(a, b, &out) ? kSaturated : out;
}

int64_t add(int64_t a, int64_t b) {
  int64_t out = 0;
  return __builtin_add_overflow(a, b, &out) ? kSaturated : out;
}

// An expert's matrices (moe/experts.h): Linear W1 [D, D]; MLP W1 [F, D], W_2..W_L [F, F],
// W_{L+1} [D, F]; SwiGLU W1, W3 [F, D], W2 [D, F].
int64_t expert_matrices(const ExpertConfig& e, int64_t d) {
  switch (e.kind) {
    case ExpertKind::kLinear:
      return mul(d, d);
    case ExpertKind::kMlp:
      return add(mul(2, mul(e.hidden, d)), mul(e.depth - 1, mul(e.hidden, e.hidden)));
    case ExpertKind::kSwiglu:
      break;
  }
  return mul(3, mul(e.hidden, d));
}

// A gate's router W [E, D], and W_noise [E, D] for noisy top-k; hash routing has none.
int64_t router_matrices(const GateConfig& g, int64_t n_experts, int64_t d) {
  if (g.kind == GateKind::kHash) return 0;
  return mul(g.kind == GateKind::kNoisyTopK ? 2 : 1, mul(n_experts, d));
}

int64_t moe_block_matrices(const MoeBlockConfig& b, int64_t d) {
  int64_t n = 0;
  // expert_list when given (its size is E), else E copies of `expert`: no vector of E entries is
  // built, E may be anything the config reader let through.
  if (!b.expert_list.empty()) {
    for (const ExpertConfig& e : b.expert_list) n = add(n, expert_matrices(e, d));
  } else {
    n = add(n, mul(b.n_experts, expert_matrices(b.expert, d)));
  }
  n = add(n, mul(b.n_shared, expert_matrices(b.shared, d)));
  if (b.n_groups > 0) {
    n = add(n, router_matrices(b.top_gate, b.n_groups, d));
    n = add(n, mul(b.n_groups, router_matrices(b.gate, b.n_experts / b.n_groups, d)));
  } else {
    n = add(n, router_matrices(b.gate, b.n_experts, d));
  }
  return n;
}

// dense_equivalent() without building the list of E routed experts: the first routed expert's
// kind at hidden width round(max(1, slots) · mean F) + Σ shared F.
ExpertConfig dense_block(const MoeBlockConfig& b) {
  ExpertConfig e = b.expert_list.empty() ? b.expert : b.expert_list[0];
  double mean_hidden = static_cast<double>(b.expert.hidden);
  if (!b.expert_list.empty()) {
    double sum = 0.0;
    for (const ExpertConfig& x : b.expert_list) sum += static_cast<double>(x.hidden);
    mean_hidden = sum / static_cast<double>(b.expert_list.size());
  }
  const double hidden = std::max(1.0, moe_slots_per_token(b)) * mean_hidden +
                        static_cast<double>(b.n_shared) * static_cast<double>(b.shared.hidden);
  e.hidden = hidden < 9.0e18 ? std::llround(hidden) : kSaturated;
  return e;
}

// The bf16 copies a layer computing in bf16 keeps of its experts' weight matrices (moe/experts.h:
// rounded once per step, 2 bytes per value; biases stay fp32): routed and shared experts, or the
// dense FFN that replaces the layer under model.dense.
int64_t bf16_copy_elements(const ModelConfig& c) {
  const int64_t d = c.width;
  int64_t n = 0;
  for (const MoeBlockConfig& b : c.moe) {
    if (b.precision != Precision::kBF16) continue;
    if (c.dense) {
      n = add(n, expert_matrices(dense_block(b), d));
      continue;
    }
    if (!b.expert_list.empty()) {
      for (const ExpertConfig& e : b.expert_list) n = add(n, expert_matrices(e, d));
    } else {
      n = add(n, mul(b.n_experts, expert_matrices(b.expert, d)));
    }
    n = add(n, mul(b.n_shared, expert_matrices(b.shared, d)));
  }
  return n;
}

// A config key that sizes weight matrices, and how to shrink it to its least value (1; a count
// of experts to one expert, so the count is not blamed for its experts' width).
struct SizeKey {
  std::string name;
  int64_t value = 0;
  std::function<void(ModelConfig&)> shrink;
};

// Every key that multiplies a weight matrix's size, named as the config reader names them.
std::vector<SizeKey> size_keys(const ModelConfig& c) {
  std::vector<SizeKey> keys;
  keys.push_back({"model.width", c.width, [](ModelConfig& m) { m.width = 1; }});
  for (size_t i = 0; i < c.trunk.hidden.size(); ++i)
    keys.push_back({fmt::format("model.trunk.hidden.{}", i), c.trunk.hidden[i],
                    [i](ModelConfig& m) { m.trunk.hidden[i] = 1; }});
  for (size_t l = 0; l < c.moe.size(); ++l) {
    const MoeBlockConfig& b = c.moe[l];
    const std::string at = c.moe_list ? fmt::format("model.moe.{}", l) : "model.moe";
    if (b.expert_list.empty()) {
      keys.push_back({at + ".experts", b.n_experts, [l](ModelConfig& m) {
                        m.moe[l].n_experts = 1;
                        m.moe[l].n_groups = 0;
                      }});
      keys.push_back({at + ".expert.hidden", b.expert.hidden,
                      [l](ModelConfig& m) { m.moe[l].expert.hidden = 1; }});
    } else {  // the widest expert of the list only: a key for each of E would cost O(E²) here
      const auto widest =
          static_cast<size_t>(std::max_element(b.expert_list.begin(), b.expert_list.end(),
                                               [](const ExpertConfig& x, const ExpertConfig& y) {
                                                 return x.hidden < y.hidden;
                                               }) -
                              b.expert_list.begin());
      keys.push_back({fmt::format("{}.expert_list.{}.hidden", at, widest),
                      b.expert_list[widest].hidden,
                      [l, widest](ModelConfig& m) { m.moe[l].expert_list[widest].hidden = 1; }});
    }
    if (b.n_shared > 0) {
      keys.push_back({at + ".shared", b.n_shared, [l](ModelConfig& m) { m.moe[l].n_shared = 1; }});
      keys.push_back({at + ".shared_expert.hidden", b.shared.hidden,
                      [l](ModelConfig& m) { m.moe[l].shared.hidden = 1; }});
    }
  }
  return keys;
}

}  // namespace

// The language model's matrices: the embedding (and an untied head), per block the attention's
// four and the FFN's (an MoE layer or the dense SwiGLU).
static int64_t lm_matrix_elements(const ModelConfig& c, int64_t vocab) {
  const int64_t d = c.width, heads = std::max<int64_t>(c.lm.heads, 1);
  const int64_t kv_width = mul(d / heads, c.lm.n_kv_heads());
  int64_t n = mul(c.lm.tie_embeddings ? 1 : 2, mul(vocab, d));
  const bool listed = c.moe.size() > 1 && static_cast<int64_t>(c.moe.size()) == c.lm.n_moe_blocks();
  for (int64_t l = 0, i = 0; l < c.lm.layers && !c.moe.empty(); ++l) {
    n = add(n, add(mul(2, mul(d, d)), mul(2, mul(kv_width, d))));
    const MoeBlockConfig& b =
        listed && c.lm.block_is_moe(l) ? c.moe[static_cast<size_t>(i++)] : c.moe[0];
    ExpertConfig dense = dense_block(b);
    if (c.lm.ffn_hidden > 0 && !c.lm.block_is_moe(l)) dense.hidden = c.lm.ffn_hidden;
    n = add(
        n, c.lm.block_is_moe(l) && !c.dense ? moe_block_matrices(b, d) : expert_matrices(dense, d));
  }
  return n;
}

// The translation model's matrices: the embedding (and an untied head), per encoder block one
// attention's four and the FFN's, per decoder block two attentions' and the FFN's.
static int64_t translation_matrix_elements(const ModelConfig& c, int64_t vocab) {
  const TranslationConfig& tr = c.translation;
  const int64_t d = c.width, heads = std::max<int64_t>(tr.heads, 1);
  const int64_t attention = add(mul(2, mul(d, d)), mul(2, mul(mul(d / heads, tr.n_kv_heads()), d)));
  int64_t n = mul(tr.tie_embeddings ? 1 : 2, mul(vocab, d));
  const bool listed = c.moe.size() > 1 && static_cast<int64_t>(c.moe.size()) == tr.n_moe_blocks();
  int64_t i = 0;
  const auto ffn = [&](bool is_moe) {
    const MoeBlockConfig& b = listed && is_moe ? c.moe[static_cast<size_t>(i++)] : c.moe[0];
    ExpertConfig dense = dense_block(b);
    if (tr.ffn_hidden > 0 && !is_moe) dense.hidden = tr.ffn_hidden;
    return is_moe && !c.dense ? moe_block_matrices(b, d) : expert_matrices(dense, d);
  };
  for (int64_t l = 0; l < tr.encoder_layers && !c.moe.empty(); ++l)
    n = add(n, add(attention, ffn(tr.encoder_block_is_moe(l))));
  for (int64_t l = 0; l < tr.decoder_layers && !c.moe.empty(); ++l)
    n = add(n, add(mul(2, attention), ffn(tr.decoder_block_is_moe(l))));
  return n;
}

int64_t model_matrix_elements(const ModelConfig& c, int64_t n_features, int64_t n_outputs) {
  if (c.language_model) return lm_matrix_elements(c, n_features);
  if (c.translation_model) return translation_matrix_elements(c, n_features);
  const int64_t d = c.width;
  int64_t n = add(mul(d, n_features), mul(n_outputs, d));  // input.w, head.w
  for (int64_t hidden : c.trunk.hidden) n = add(n, mul(2, mul(hidden, d)));
  for (const MoeBlockConfig& b : c.moe) {
    n = add(n, c.dense ? expert_matrices(dense_block(b), d) : moe_block_matrices(b, d));
  }
  return n;
}

MemoryLimit training_memory_limit() {
  MemoryLimit limit;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) {
    limit.bytes = mul(pages, page_size);
    limit.what =
        fmt::format("this machine's {} of memory", human_bytes(static_cast<uint64_t>(limit.bytes)));
  }
  rlimit as{};
  if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY &&
      as.rlim_cur < static_cast<rlim_t>(limit.bytes)) {
    limit.bytes = static_cast<int64_t>(as.rlim_cur);
    limit.what = fmt::format("this process's address-space limit of {} (ulimit -v)",
                             human_bytes(static_cast<uint64_t>(limit.bytes)));
  }
  return limit;
}

int64_t training_weight_bytes(const ModelConfig& config, const OptimizerConfig& optimizer,
                              int64_t n_features, int64_t n_outputs) {
  int64_t floats = 2;                                      // the value and its gradient
  if (optimizer.kind != OptimizerKind::kSgd) floats += 2;  // Adam's m and v
  if (optimizer.kind == OptimizerKind::kSgd && optimizer.momentum > 0) floats += 1;
  return add(mul(mul(floats, 4), model_matrix_elements(config, n_features, n_outputs)),
             mul(2, bf16_copy_elements(config)));
}

Status check_training_memory(const ModelConfig& config, const OptimizerConfig& optimizer,
                             int64_t n_features, int64_t n_outputs, const MemoryLimit& limit,
                             int64_t batch_size) {
  const int64_t need = training_weight_bytes(config, optimizer, n_features, n_outputs);
  if (need <= limit.bytes)
    return check_expert_budget(config, n_outputs, std::max<int64_t>(batch_size, 256), need, limit);
  // The key to blame is the one whose shrinking to its least value saves the most (ties: the
  // first, model.width).
  const SizeKey* blame = nullptr;
  int64_t least = need;
  const std::vector<SizeKey> keys = size_keys(config);
  for (const SizeKey& k : keys) {
    ModelConfig smaller = config;
    k.shrink(smaller);
    const int64_t n = training_weight_bytes(smaller, optimizer, n_features, n_outputs);
    if (blame == nullptr || n < least) {
      blame = &k;
      least = n;
    }
  }
  const std::string size =
      need == INT64_MAX ? "more than 8 EiB" : human_bytes(static_cast<uint64_t>(need));
  const double weights = static_cast<double>(model_matrix_elements(config, n_features, n_outputs));
  const std::string count = weights >= 1e9   ? fmt::format("{:.1f} billion", weights / 1e9)
                            : weights >= 1e6 ? fmt::format("{:.1f} million", weights / 1e6)
                                             : fmt::format("{:.0f}", weights);
  return Status::error(
      "{} is {}: training this model needs at least {} of memory for its {} weights with their "
      "gradients and optimizer state, more than {}",
      blame->name, blame->value, size, count, limit.what);
}

namespace {

// The routing levels of each MoE layer: their expert counts (inspect.h's levels).
struct ExpertLevels {
  std::string key;  // the config key of the layer's expert count
  int64_t n_experts = 0;
  std::vector<int64_t> levels;  // E, then G and G times E/G for a hierarchical layer
};

std::vector<ExpertLevels> expert_levels(const ModelConfig& c) {
  std::vector<ExpertLevels> out;
  if (c.dense) return out;
  for (size_t l = 0; l < c.moe.size(); ++l) {
    const MoeBlockConfig& b = c.moe[l];
    const std::string at = c.moe_list ? fmt::format("model.moe.{}", l) : "model.moe";
    ExpertLevels x;
    x.n_experts = b.expert_list.empty() ? b.n_experts : static_cast<int64_t>(b.expert_list.size());
    x.key = b.expert_list.empty() ? at + ".experts" : at + ".expert_list";
    x.levels.push_back(x.n_experts);
    if (b.n_groups > 0) {
      x.levels.push_back(b.n_groups);
      for (int64_t g = 0; g < std::min<int64_t>(b.n_groups, x.n_experts); ++g)
        x.levels.push_back(x.n_experts / b.n_groups);
    }
    out.push_back(std::move(x));
  }
  return out;
}

// Bytes per entry of the tables (expert_statistics_bytes): router [T, E] logits, probabilities
// and both gradients; co-activation counts, shares, JSON value and text; class × expert counts,
// shares, joint, JSON value and text.
constexpr int64_t kRouterEntryBytes = 16;
constexpr int64_t kCoactivationEntryBytes = 48;
constexpr int64_t kClassExpertEntryBytes = 56;
constexpr int64_t kJsonTextBytesPerValue = 15;

int64_t layer_statistics_bytes(const ExpertLevels& x, int64_t n_outputs, int64_t batch_size) {
  int64_t n = mul(kExpertOverheadBytes, x.n_experts);
  for (int64_t e : x.levels) {
    n = add(n, mul(kRouterEntryBytes, mul(batch_size, e)));
    n = add(n, mul(kCoactivationEntryBytes, mul(e, e)));
    n = add(n, mul(kClassExpertEntryBytes, mul(n_outputs, e)));
  }
  return n;
}

int64_t layer_json_bytes(const ExpertLevels& x, int64_t n_outputs) {
  int64_t n = 0;
  for (int64_t e : x.levels)
    n = add(n, mul(kJsonTextBytesPerValue, add(mul(e, e), mul(n_outputs, e))));
  return n;
}

std::string show_bytes(int64_t n) {
  return n == INT64_MAX ? "more than 8 EiB" : human_bytes(static_cast<uint64_t>(n));
}

}  // namespace

int64_t expert_statistics_bytes(const ModelConfig& config, int64_t n_outputs, int64_t batch_size) {
  int64_t n = 0;
  for (const ExpertLevels& x : expert_levels(config))
    n = add(n, layer_statistics_bytes(x, n_outputs, batch_size));
  return n;
}

int64_t inspect_json_bytes(const ModelConfig& config, int64_t n_outputs) {
  int64_t n = 0;
  for (const ExpertLevels& x : expert_levels(config)) n = add(n, layer_json_bytes(x, n_outputs));
  return n;
}

Status check_expert_budget(const ModelConfig& config, int64_t n_outputs, int64_t batch_size,
                           int64_t weight_bytes, const MemoryLimit& limit) {
  const std::vector<ExpertLevels> layers = expert_levels(config);
  if (layers.empty()) return Status::ok();
  // The layer to blame is the one with the largest cost (the first of equals).
  const auto worst = [&](auto cost) {
    size_t w = 0;
    for (size_t i = 1; i < layers.size(); ++i)
      if (cost(layers[i]) > cost(layers[w])) w = i;
    return layers[w];
  };
  const int64_t json = inspect_json_bytes(config, n_outputs);
  if (json > kMaxInspectJsonBytes) {
    const ExpertLevels x =
        worst([&](const ExpertLevels& l) { return layer_json_bytes(l, n_outputs); });
    return Status::error(
        "{} is {}: the routing statistics of inspect.json (an E × E co-activation table per "
        "layer) would take about {} of JSON, more than the {} moe writes; use fewer experts",
        x.key, x.n_experts, show_bytes(json), show_bytes(kMaxInspectJsonBytes));
  }
  const int64_t stats = expert_statistics_bytes(config, n_outputs, batch_size);
  const int64_t need = add(weight_bytes, stats);
  if (need <= limit.bytes) return Status::ok();
  const ExpertLevels x = worst(
      [&](const ExpertLevels& l) { return layer_statistics_bytes(l, n_outputs, batch_size); });
  return Status::error(
      "{} is {}: this model needs at least {} of memory, {} of it for the per-expert "
      "routing statistics (router outputs per batch, E × E co-activation tables), more than {}",
      x.key, x.n_experts, show_bytes(need), show_bytes(stats), limit.what);
}

}  // namespace moe
