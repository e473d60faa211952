// Sigmoid gate with auxiliary-loss-free balancing (DeepSeek-V3, 2024; Wang et al. 2024,
// "Auxiliary-Loss-Free Load Balancing Strategy for Mixture-of-Experts").
//
// Dims: T tokens · E experts · K experts per token · S slots.
//
// s = σ(l) [T, E]. Selection: the top-K of s + b, b [E] a bias that is not trained by gradient.
// Weights: from the scores alone, w_k = s_k / Σ_{j∈K} s_j when renormalize is set (DeepSeek-V3),
// else w_k = s_k. The bias only steers which experts are chosen, so it balances the load without
// a loss term pulling on the weights: after each optimizer step, b_e += rate · sign(L̄ − L_e),
// with L_e the slots routed to e in the last plan and L̄ their mean.
#include "gate_internal.h"
#include "moe/moe/balance.h"

namespace moe::gate_detail {

void sigmoid_forward(GateState& g, RoutingPlan* plan) {
  const GateConfig& c = g.cfg;
  const int64_t t_n = g.cache.n_tokens, e_n = c.n_experts, k = c.k;
  plan->reset_uniform(t_n, e_n, k);
  const float* s = g.cache.scores.f32();  // σ(l)
  const float* b = g.bias.f32();
  float* biased = g.biased_scores.data();  // [E] the selection key, never a weight
  for (int64_t t = 0; t < t_n; ++t) {
    const float* row = s + t * e_n;
    int32_t* chosen = plan->expert_ids.data() + t * k;
    float* w = plan->weights.data() + t * k;
    for (int64_t e = 0; e < e_n; ++e) biased[e] = row[e] + b[e];
    top_k_indices(biased, e_n, k, chosen);
    double sum = 0.0;
    for (int64_t j = 0; j < k; ++j) sum += row[chosen[j]];
    for (int64_t j = 0; j < k; ++j)
      w[j] = c.renormalize ? static_cast<float>(row[chosen[j]] / sum) : row[chosen[j]];
  }
}

void sigmoid_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                      const GateGrads& d) {
  const GateConfig& c = g.cfg;
  const int64_t t_n = plan.n_tokens, e_n = plan.n_experts, k = c.k;
  const float* s = g.cache.scores.f32();
  float* dl = d.dlogits.f32();
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    const float* row = s + t * e_n;
    const int32_t* chosen = plan.expert_ids.data() + t * k;
    const float* w = plan.weights.data() + t * k;
    const float* dw = dweights + t * k;
    // Renormalised: w_k = s_k / Σ s, so ∂/∂s_k = (dw_k − Σ_j dw_j w_j) / Σ s. Then σ' = s(1 − s).
    double sum = 1.0, dot = 0.0;
    if (c.renormalize) {
      sum = 0.0;
      for (int64_t j = 0; j < k; ++j) sum += row[chosen[j]];
      for (int64_t j = 0; j < k; ++j) dot += static_cast<double>(dw[j]) * w[j];
    }
    for (int64_t j = 0; j < k; ++j) {
      const double sk = row[chosen[j]];
      const double ds = (dw[j] - dot) / sum;
      dl[t * e_n + chosen[j]] += static_cast<float>(ds * sk * (1.0 - sk));
    }
  }
}

void sigmoid_after_step(GateState& g, const RoutingPlan& plan, const LoadSum& sum_loads) {
  const int64_t e_n = g.cfg.n_experts;
  if (plan.n_slots() == 0 && !sum_loads) return;
  MOE_CHECK(plan.n_experts == e_n, "bias update: plan of {} experts for a gate of {}",
            plan.n_experts, e_n);
  // The load counts every slot the router chose (dropped ones too): the bias corrects the
  // router's preference, whatever capacity later did with it.
  double* load = g.expert_load.data();
  slot_counts(plan, load);
  if (sum_loads) sum_loads(std::span<double>(load, static_cast<size_t>(e_n)));
  double slots = 0.0;  // = plan.n_slots() summed over the ranks (every slot is counted)
  for (int64_t e = 0; e < e_n; ++e) slots += load[e];
  if (slots == 0.0) return;
  const double mean = slots / static_cast<double>(e_n);
  float* b = g.bias.f32();
  for (int64_t e = 0; e < e_n; ++e) {
    const double gap = mean - load[e];
    const float sign = gap > 0.0 ? 1.0f : (gap < 0.0 ? -1.0f : 0.0f);
    b[e] += g.cfg.bias_update_rate * sign;
  }
}

}  // namespace moe::gate_detail
