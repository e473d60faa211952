// Gumbel-softmax gate (Jang et al. 2017; Maddison et al. 2017): a differentiable relaxation of
// sampling one expert from softmax(l).
//
// Dims: T tokens · E experts · S slots.
//
// Training, soft:  y = softmax((l + g) / τ), g_e = −log(−log u_e) i.i.d. Gumbel(0, 1); every
//                  expert gets a slot with weight y_e.
// Training, hard:  one slot per token, the argmax of l + g, weight 1 in the forward; backward
//                  uses the soft y's gradient (straight-through: w = onehot − sg(y) + y).
// Evaluation:      no noise; both variants route each token to argmax l with weight 1 and the
//                  straight-through gradient through y = softmax(l / τ).
// τ follows the schedule τ(step) = max(τ_min, τ_start · exp(−decay · step)), advanced by
// Gate::after_step.
#include <algorithm>
#include <cmath>

#include "gate_internal.h"
#include "moe/kernels/ops.h"

namespace moe::gate_detail {

float gumbel_temperature(const GateConfig& c, int64_t step) {
  const double tau = static_cast<double>(c.tau_start) *
                     std::exp(-static_cast<double>(c.tau_decay) * static_cast<double>(step));
  return std::max(c.tau_min, static_cast<float>(tau));
}

void gumbel_forward(GateState& g, const GateInput& in, Arena& arena, RoutingPlan* plan) {
  GateCache& cache = g.cache;
  const int64_t t_n = cache.n_tokens, e_n = g.cfg.n_experts;
  const float tau = gumbel_temperature(g.cfg, g.step);
  cache.tau = tau;
  cache.soft = arena.alloc(Shape{t_n, e_n});
  Tensor perturbed = arena.alloc(Shape{t_n, e_n});  // [T, E] (l + g)/τ, or l/τ in evaluation
  const float* l = cache.logits.f32();
  float* z = perturbed.f32();
  if (in.training) {
    cache.noise = gate_noise(in, t_n, e_n, /*gumbel=*/true, arena);
    const float* gn = cache.noise.f32();
    for (int64_t i = 0; i < t_n * e_n; ++i) z[i] = (l[i] + gn[i]) / tau;
  } else {
    for (int64_t i = 0; i < t_n * e_n; ++i) z[i] = l[i] / tau;
  }
  const float* y = cache.soft.f32();
  softmax_rows(perturbed, cache.soft);

  if (in.training && !g.cfg.hard) {
    plan->reset_uniform(t_n, e_n, e_n);
    for (int64_t i = 0; i < t_n * e_n; ++i) {
      plan->expert_ids[sz(i)] = static_cast<int32_t>(i % e_n);
      plan->weights[sz(i)] = y[i];
    }
    return;
  }
  plan->reset_uniform(t_n, e_n, 1);
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    int32_t best = 0;
    top_k_indices(z + t * e_n, e_n, 1, &best);
    plan->expert_ids[sz(t)] = best;
    plan->weights[sz(t)] = 1.0f;
  }
}

void gumbel_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                     const GateGrads& d) {
  const GateCache& cache = g.cache;
  const int64_t t_n = plan.n_tokens, e_n = plan.n_experts;
  const float* y = cache.soft.f32();
  float* dl = d.dlogits.f32();
  const double inv_tau = 1.0 / static_cast<double>(cache.tau);
  const bool dense = cache.training && !g.cfg.hard;
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    const float* yr = y + t * e_n;
    float* dr = dl + t * e_n;
    // ∂y/∂l = (1/τ) · softmax adjoint; the straight-through slot passes dweight to y_argmax.
    double dot = 0.0;
    if (dense) {
      for (int64_t e = 0; e < e_n; ++e) dot += static_cast<double>(dweights[t * e_n + e]) * yr[e];
      for (int64_t e = 0; e < e_n; ++e)
        dr[e] += static_cast<float>(inv_tau * yr[e] * (dweights[t * e_n + e] - dot));
    } else {
      const int32_t a = plan.expert_ids[sz(t)];
      const double dwa = dweights[t];
      dot = dwa * yr[a];
      for (int64_t e = 0; e < e_n; ++e) dr[e] += static_cast<float>(-inv_tau * yr[e] * dot);
      dr[a] += static_cast<float>(inv_tau * yr[a] * dwa);
    }
  }
}

}  // namespace moe::gate_detail
