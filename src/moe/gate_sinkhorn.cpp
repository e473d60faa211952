// Balanced assignment by Sinkhorn iterations (Sinkhorn & Knopp 1967; as a router: Clark et al.
// 2022, "Unified Scaling Laws for Routed Language Models", S-BASE).
//
// Dims: T tokens · E experts · K experts per token · S slots.
//
// Training: starting from A = exp(l − max_e l) [T, E], alternate
//     A_{t,e} ← A_{t,e} · (T/E) / Σ_t A_{t,e}     (every expert receives T/E of the mass)
//     A_{t,e} ← A_{t,e} / Σ_e A_{t,e}             (every token hands out a mass of 1)
// for sinkhorn_iterations rounds. A approaches the doubly-balanced matrix closest to softmax(l)
// in the KL sense; each token takes the top-K of its row of A. The assignment itself has no
// gradient; the weights are the ordinary softmax probabilities of the chosen experts
// (renormalised over them if asked), so the router still learns from the task loss.
// Evaluation: greedy top-K of l, with the same weights.
#include <algorithm>
#include <cmath>

#include "gate_internal.h"

namespace moe::gate_detail {

void sinkhorn_forward(GateState& g, Arena& arena, RoutingPlan* plan) {
  const GateConfig& c = g.cfg;
  GateCache& cache = g.cache;
  const int64_t t_n = cache.n_tokens, e_n = c.n_experts, k = c.k;
  plan->reset_uniform(t_n, e_n, k);
  const float* l = cache.logits.f32();
  const float* p = cache.probs.f32();
  const float* key = l;  // what top-K selects on: the logits, or in training the balanced A
  if (cache.training && t_n > 0) {
    // Kept in float for the selection (and for inspection through the cache).
    cache.soft = arena.alloc(Shape{t_n, e_n});
    const size_t mark = arena.mark();
    Tensor a_t = arena.alloc(Shape{t_n, e_n}, DType::kF64);  // [T, E] the assignment A
    double* a = a_t.data<double>();
    double* col = arena.alloc_array<double>(e_n);  // [E]
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
    for (int64_t t = 0; t < t_n; ++t) {
      float m = l[t * e_n];
      for (int64_t e = 1; e < e_n; ++e) m = std::max(m, l[t * e_n + e]);
      for (int64_t e = 0; e < e_n; ++e)
        a[t * e_n + e] = std::exp(static_cast<double>(l[t * e_n + e]) - m);
    }
    const double target = static_cast<double>(t_n) / static_cast<double>(e_n);
    for (int it = 0; it < c.sinkhorn_iterations; ++it) {
      for (int64_t e = 0; e < e_n; ++e) col[e] = 0.0;
      for (int64_t t = 0; t < t_n; ++t)
        for (int64_t e = 0; e < e_n; ++e) col[e] += a[t * e_n + e];
      // A column that underflowed to 0 everywhere cannot be rescaled; it stays empty.
      for (int64_t e = 0; e < e_n; ++e) col[e] = col[e] > 0.0 ? target / col[e] : 0.0;
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
      for (int64_t t = 0; t < t_n; ++t) {
        double row = 0.0;
        for (int64_t e = 0; e < e_n; ++e) row += (a[t * e_n + e] *= col[e]);
        const double inv = row > 0.0 ? 1.0 / row : 0.0;
        for (int64_t e = 0; e < e_n; ++e) a[t * e_n + e] *= inv;
      }
    }
    float* af = cache.soft.f32();
    for (int64_t i = 0; i < t_n * e_n; ++i) af[i] = static_cast<float>(a[i]);
    key = af;
    arena.release(mark);
  }
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    int32_t* chosen = plan->expert_ids.data() + t * k;
    top_k_indices(key + t * e_n, e_n, k, chosen);
    topk_weights_forward(p + t * e_n, chosen, k, c.renormalize, plan->weights.data() + t * k);
  }
}

void sinkhorn_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                       const GateGrads& d) {
  const GateConfig& c = g.cfg;
  const int64_t t_n = plan.n_tokens, e_n = plan.n_experts, k = c.k;
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t)
    topk_weights_backward(g.cache.probs.f32() + t * e_n, plan.expert_ids.data() + t * k,
                          plan.weights.data() + t * k, dweights + t * k, k, e_n, c.renormalize,
                          d.dlogits.f32() + t * e_n);
}

}  // namespace moe::gate_detail
