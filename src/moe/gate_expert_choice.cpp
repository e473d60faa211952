// Expert-choice routing (Zhou et al. 2022, "Mixture-of-Experts with Expert Choice Routing"):
// instead of each token picking K experts, each expert picks its C best tokens.
//
// Dims: T tokens · E experts · C capacity per expert · S slots (= E · C).
//
// p = softmax(l) [T, E] over experts, as in the paper. Expert e takes the C tokens with the
// largest p_{t,e} (equal scores: the lower token index first), C = gate_capacity (by default
// ceil(T / E), every expert full, so the load is perfectly balanced by construction). A token
// gets 0..E slots, listed in expert order, each with weight p_{t,e}; a token no expert took gets
// no slot (its residual path carries it). Backward is the softmax adjoint at the chosen pairs.
#include <algorithm>

#include "gate_internal.h"

namespace moe::gate_detail {

void expert_choice_forward(GateState& g, Arena& arena, RoutingPlan* plan) {
  const GateConfig& c = g.cfg;
  const int64_t t_n = g.cache.n_tokens, e_n = c.n_experts;
  const int64_t cap = gate_capacity(c, t_n);
  const float* p = g.cache.probs.f32();
  const size_t mark = arena.mark();
  Tensor chosen_t = arena.zeros(Shape{t_n, e_n}, DType::kU8);  // [T, E] 1: expert took token
  uint8_t* chosen = chosen_t.data<uint8_t>();
  int32_t* order = arena.alloc_array<int32_t>(std::max<int64_t>(t_n, 1));  // [T]
  for (int64_t e = 0; e < e_n && cap > 0; ++e) {
    for (int64_t t = 0; t < t_n; ++t) order[t] = static_cast<int32_t>(t);
    // (score desc, token asc) is a strict total order, so the top C are a unique set.
    auto better = [p, e, e_n](int32_t a, int32_t b) {
      const float pa = p[a * e_n + e], pb = p[b * e_n + e];
      return pa > pb || (pa == pb && a < b);
    };
    if (cap < t_n) std::nth_element(order, order + cap, order + t_n, better);
    for (int64_t j = 0; j < cap; ++j) chosen[order[j] * e_n + e] = 1;
  }

  plan->n_tokens = t_n;
  plan->n_experts = e_n;
  plan->token_offsets.resize(sz(t_n + 1));
  plan->token_offsets[0] = 0;
  for (int64_t t = 0; t < t_n; ++t) {
    int64_t n = 0;
    for (int64_t e = 0; e < e_n; ++e) n += chosen[t * e_n + e];
    plan->token_offsets[sz(t + 1)] = plan->token_offsets[sz(t)] + n;
  }
  const int64_t s_n = plan->token_offsets[sz(t_n)];
  plan->expert_ids.resize(sz(s_n));
  plan->weights.resize(sz(s_n));
  plan->dropped.assign(sz(s_n), 0);
  int64_t s = 0;
  for (int64_t t = 0; t < t_n; ++t)
    for (int64_t e = 0; e < e_n; ++e)
      if (chosen[t * e_n + e]) {
        plan->expert_ids[sz(s)] = static_cast<int32_t>(e);
        plan->weights[sz(s)] = p[t * e_n + e];
        ++s;
      }
  arena.release(mark);
}

void expert_choice_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                            const GateGrads& d) {
  const int64_t t_n = plan.n_tokens, e_n = plan.n_experts;
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    const int64_t b = plan.token_offsets[sz(t)], n = plan.token_offsets[sz(t + 1)] - b;
    if (n == 0) continue;
    topk_weights_backward(g.cache.probs.f32() + t * e_n, plan.expert_ids.data() + b,
                          plan.weights.data() + b, dweights + b, n, e_n, /*renorm=*/false,
                          d.dlogits.f32() + t * e_n);
  }
}

}  // namespace moe::gate_detail
