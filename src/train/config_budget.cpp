// The weight-matrix element count of a model configuration; see moe/train/config_budget.h.
//
// Dims: D model width · D_in input features · C outputs · E experts · F expert hidden width ·
// G groups.
#include "moe/train/config_budget.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

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

}  // namespace

int64_t model_matrix_elements(const ModelConfig& c, int64_t n_features, int64_t n_outputs) {
  const int64_t d = c.width;
  int64_t n = add(mul(d, n_features), mul(n_outputs, d));  // input.w, head.w
  for (int64_t hidden : c.trunk.hidden) n = add(n, mul(2, mul(hidden, d)));
  for (const MoeBlockConfig& b : c.moe) {
    n = add(n, c.dense ? expert_matrices(dense_block(b), d) : moe_block_matrices(b, d));
  }
  return n;
}

}  // namespace moe
