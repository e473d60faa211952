// Top-k softmax gates (Shazeer et al. 2017 without noise; GShard, Switch with K = 1) and the
// dense softmax mixture (Jacobs et al. 1991), plus the row helpers every gate kind shares.
//
// Dims: T tokens · E experts · K experts per token · S slots.
//
// Top-k softmax comes in three spellings:
//   softmax then top-k:              w_k = p_k,                p = softmax(l)
//   softmax then top-k, renormalised: w_k = p_k / Σ_{j∈K} p_j
//   top-k then softmax:              w_k = softmax over the K chosen logits
// The last two are the same function (p_k / Σ_K p_j = exp(l_k) / Σ_K exp(l_j)) computed in a
// different order, so they share one adjoint; they differ only in rounding.
#include <cmath>

#include "gate_internal.h"

namespace moe::gate_detail {

void top_k_indices(const float* v, int64_t n, int64_t k, int32_t* idx) {
  MOE_CHECK(k >= 1 && k <= n, "top-k: k={} of n={}", k, n);
  // Insertion into a sorted list of the k best seen so far. Elements arrive in index order and
  // move up only past strictly smaller values, so among equal values the lower index stays
  // ahead. A NaN never compares greater, so it sinks to the end rather than breaking the order.
  int64_t filled = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float x = v[i];
    if (filled == k && !(x > v[idx[k - 1]])) continue;
    int64_t pos = filled < k ? filled++ : k - 1;
    while (pos > 0 && x > v[idx[pos - 1]]) {
      idx[pos] = idx[pos - 1];
      --pos;
    }
    idx[pos] = static_cast<int32_t>(i);
  }
}

void softmax_row_backward(const float* p, const float* dp, int64_t n, float* dl) {
  double dot = 0.0;
  for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(dp[i]) * p[i];
  for (int64_t i = 0; i < n; ++i) dl[i] += static_cast<float>(p[i] * (dp[i] - dot));
}

Tensor gate_noise(const GateInput& in, int64_t n_tokens, int64_t n_experts, bool gumbel,
                  Arena& arena) {
  if (!in.noise.empty()) return in.noise;
  Tensor noise = arena.alloc(Shape{n_tokens, n_experts});  // [T, E]
  if (noise.numel() == 0) return noise;
  Rng rng = in.rng;
  if (gumbel)
    rng.fill_gumbel(noise);
  else
    rng.fill_normal(noise, 0.0f, 1.0f);
  return noise;
}

void topk_weights_forward(const float* probs_row, const int32_t* chosen, int64_t k, bool renorm,
                          float* weights) {
  double s = 0.0;
  for (int64_t j = 0; j < k; ++j) s += probs_row[chosen[j]];
  for (int64_t j = 0; j < k; ++j)
    weights[j] = renorm ? static_cast<float>(probs_row[chosen[j]] / s) : probs_row[chosen[j]];
}

void topk_weights_backward(const float* probs_row, const int32_t* chosen, const float* weights,
                           const float* dweights, int64_t k, int64_t n_experts, bool renorm,
                           float* dlogits_row) {
  if (renorm) {
    // w = softmax over the chosen logits: dl_k = w_k (dw_k − Σ_j dw_j w_j); others get nothing.
    double dot = 0.0;
    for (int64_t j = 0; j < k; ++j) dot += static_cast<double>(dweights[j]) * weights[j];
    for (int64_t j = 0; j < k; ++j)
      dlogits_row[chosen[j]] += static_cast<float>(weights[j] * (dweights[j] - dot));
    return;
  }
  // w_k = p_k of the full softmax: dl_i = p_i (dp_i − Σ_j dp_j p_j), dp nonzero on the chosen.
  double dot = 0.0;
  for (int64_t j = 0; j < k; ++j) dot += static_cast<double>(dweights[j]) * probs_row[chosen[j]];
  for (int64_t e = 0; e < n_experts; ++e) dlogits_row[e] += static_cast<float>(-probs_row[e] * dot);
  for (int64_t j = 0; j < k; ++j)
    dlogits_row[chosen[j]] += static_cast<float>(probs_row[chosen[j]] * dweights[j]);
}

void dense_forward(GateState& g, RoutingPlan* plan) {
  const int64_t t_n = g.cache.n_tokens, e_n = g.cfg.n_experts;
  plan->reset_uniform(t_n, e_n, e_n);
  const float* p = g.cache.probs.f32();
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    for (int64_t e = 0; e < e_n; ++e) {
      plan->expert_ids[sz(t * e_n + e)] = static_cast<int32_t>(e);
      plan->weights[sz(t * e_n + e)] = p[t * e_n + e];
    }
  }
}

void dense_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                    const GateGrads& d) {
  const int64_t t_n = plan.n_tokens, e_n = plan.n_experts;
  const float* p = g.cache.probs.f32();
  float* dl = d.dlogits.f32();
  // Slots are in expert order, so token t's dweights are exactly dL/dp_t.
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t)
    softmax_row_backward(p + t * e_n, dweights + t * e_n, e_n, dl + t * e_n);
}

void topk_forward(GateState& g, RoutingPlan* plan) {
  const GateConfig& c = g.cfg;
  const int64_t t_n = g.cache.n_tokens, e_n = c.n_experts, k = c.k;
  plan->reset_uniform(t_n, e_n, k);
  const float* l = g.cache.logits.f32();
  const float* p = g.cache.probs.f32();
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    // Select on the logits: softmax is monotone, and the logits cannot round two different
    // experts to the same value the way probabilities near 0 can.
    int32_t* chosen = plan->expert_ids.data() + t * k;
    float* w = plan->weights.data() + t * k;
    top_k_indices(l + t * e_n, e_n, k, chosen);
    if (c.softmax_after_topk) {
      float m = l[t * e_n + chosen[0]];  // the best of the chosen
      double s = 0.0;
      for (int64_t j = 0; j < k; ++j)
        s += std::exp(static_cast<double>(l[t * e_n + chosen[j]]) - m);
      for (int64_t j = 0; j < k; ++j)
        w[j] = static_cast<float>(std::exp(static_cast<double>(l[t * e_n + chosen[j]]) - m) / s);
    } else {
      topk_weights_forward(p + t * e_n, chosen, k, c.renormalize, w);
    }
  }
}

void topk_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                   const GateGrads& d) {
  const GateConfig& c = g.cfg;
  const int64_t t_n = plan.n_tokens, e_n = plan.n_experts, k = c.k;
  const bool over_chosen = c.renormalize || c.softmax_after_topk;
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t)
    topk_weights_backward(g.cache.probs.f32() + t * e_n, plan.expert_ids.data() + t * k,
                          plan.weights.data() + t * k, dweights + t * k, k, e_n, over_chosen,
                          d.dlogits.f32() + t * e_n);
}

}  // namespace moe::gate_detail
