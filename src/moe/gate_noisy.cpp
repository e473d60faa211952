// Noisy top-k gating (Shazeer et al. 2017, "Outrageously Large Neural Networks: The Sparsely-
// Gated Mixture-of-Experts Layer", eq. 3-5 and appendix A).
//
// Dims: T tokens · D model width · E experts · K experts per token · S slots.
//
//   l = x·Wᵀ (clean logits), ν = x·W_noiseᵀ, σ = softplus(ν) + ε, n ~ N(0, 1) [T, E]
//   h = l + n ⊙ σ   (training; h = l in evaluation)
//   the K largest h per token, weights softmax over those K values of h.
// The noise scale is learned: the task loss reaches σ through h, and the load loss through the
// smooth load estimate. ε = 0.01 (as in the paper's reference code) keeps σ away from 0, where
// the load estimate would divide by it.
//
// Load loss (appendix A): P(t, e) = Φ((l_{t,e} − θ_{t,e}) / σ_{t,e}), the probability that e
// stays in token t's top K under a fresh draw of its own noise, with θ the K-th largest h_t
// excluding e: the (K+1)-th largest if e is chosen, the K-th if not. Load_e = Σ_t P(t, e) and the
// loss is CV²(Load). Gradients flow into l, σ (hence ν) and, through θ, into the h of the expert
// that sets the threshold. With K = E every expert is always chosen: the loss is 0. Without noise
// (evaluation) the loss is the CV² of the slot counts, without gradient.
#include <algorithm>
#include <cmath>

#include "gate_internal.h"
#include "moe/kernels/gemm.h"
#include "moe/moe/balance.h"

namespace moe::gate_detail {

namespace {
constexpr float kNoiseEpsilon = 1e-2f;

double normal_cdf(double z) {
  return 0.5 * std::erfc(-z * M_SQRT1_2);
}
double normal_pdf(double z) {
  return 0.3989422804014327 * std::exp(-0.5 * z * z);
}

// For token t: top (K+1) of h into idx [K+1]; returns the thresholds of chosen / unchosen experts.
struct Thresholds {
  float if_in;   // the (K+1)-th largest h
  float if_out;  // the K-th largest h
};
Thresholds thresholds(const float* h_row, int64_t e_n, int64_t k, int32_t* idx) {
  top_k_indices(h_row, e_n, k + 1, idx);
  return {h_row[idx[k]], h_row[idx[k - 1]]};
}
// Whether expert e is among the K chosen, idx[0..K).
bool chosen_among(const int32_t* idx, int64_t k, int64_t e) {
  for (int64_t j = 0; j < k; ++j)
    if (idx[j] == e) return true;
  return false;
}
}  // namespace

void noisy_forward(GateState& g, const GateInput& in, Arena& arena, RoutingPlan* plan) {
  const GateConfig& c = g.cfg;
  GateCache& cache = g.cache;
  const int64_t t_n = cache.n_tokens, e_n = c.n_experts, k = c.k;
  const float* l = cache.logits.f32();
  cache.soft = cache.logits;
  if (in.training) {
    MOE_CHECK(!g.w_noise.empty(), "noisy top-k gate: forward before bind");
    cache.noise_logits = arena.alloc(Shape{t_n, e_n});
    cache.noise_std = arena.alloc(Shape{t_n, e_n});
    cache.soft = arena.alloc(Shape{t_n, e_n});
    if (t_n > 0) gemm(in.x, false, g.w_noise, true, cache.noise_logits);  // [T, D] · [E, D]ᵀ
    cache.noise = gate_noise(in, t_n, e_n, /*gumbel=*/false, arena);
    const float* nu = cache.noise_logits.f32();
    const float* n = cache.noise.f32();
    float* sd = cache.noise_std.f32();
    float* h = cache.soft.f32();
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
    for (int64_t i = 0; i < t_n * e_n; ++i) {
      // softplus(ν) = log(1 + e^ν), written to stay finite for large |ν|.
      const double v = nu[i];
      const double softplus = v > 0.0 ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
      sd[i] = static_cast<float>(softplus) + kNoiseEpsilon;
      h[i] = l[i] + n[i] * sd[i];
    }
  }
  plan->reset_uniform(t_n, e_n, k);
  const float* h = cache.soft.f32();
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    int32_t* chosen = plan->expert_ids.data() + t * k;
    float* w = plan->weights.data() + t * k;
    top_k_indices(h + t * e_n, e_n, k, chosen);
    const float m = h[t * e_n + chosen[0]];
    double s = 0.0;
    for (int64_t j = 0; j < k; ++j) s += std::exp(static_cast<double>(h[t * e_n + chosen[j]]) - m);
    for (int64_t j = 0; j < k; ++j)
      w[j] = static_cast<float>(std::exp(static_cast<double>(h[t * e_n + chosen[j]]) - m) / s);
  }
}

void noisy_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                    const GateGrads& d) {
  const GateCache& cache = g.cache;
  const int64_t t_n = plan.n_tokens, e_n = plan.n_experts, k = g.cfg.k;
  float* dl = d.dlogits.f32();
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    const int32_t* chosen = plan.expert_ids.data() + t * k;
    const float* w = plan.weights.data() + t * k;
    const float* dw = dweights + t * k;
    // Softmax over the chosen h: dh_k = w_k (dw_k − Σ_j dw_j w_j); ∂h/∂l = 1, ∂h/∂σ = n,
    // ∂σ/∂ν = sigmoid(ν).
    double dot = 0.0;
    for (int64_t j = 0; j < k; ++j) dot += static_cast<double>(dw[j]) * w[j];
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = t * e_n + chosen[j];
      const double dh = w[j] * (dw[j] - dot);
      dl[i] += static_cast<float>(dh);
      if (cache.training) {
        const double sig =
            1.0 / (1.0 + std::exp(-static_cast<double>(cache.noise_logits.f32()[i])));
        d.dnoise_logits.f32()[i] += static_cast<float>(dh * cache.noise.f32()[i] * sig);
      }
    }
  }
}

double noisy_load_loss(GateState& g, const RoutingPlan& plan, Arena& arena) {
  GateCache& cache = g.cache;
  const int64_t t_n = cache.n_tokens, e_n = g.cfg.n_experts, k = g.cfg.k;
  double* load = arena.alloc_array<double>(e_n);  // [E], kept for backward
  cache.load = load;
  if (!cache.training) {
    slot_counts(plan, load);
    return cv_squared(load, e_n);
  }
  if (k == e_n) {
    for (int64_t e = 0; e < e_n; ++e) load[e] = static_cast<double>(t_n);
    return 0.0;
  }
  const size_t mark = arena.mark();
  Tensor prob_t = arena.alloc(Shape{t_n, e_n}, DType::kF64);   // [T, E] P(t, e)
  Tensor idx_t = arena.alloc(Shape{t_n, k + 1}, DType::kI32);  // [T, K+1] per-token scratch
  double* prob = prob_t.data<double>();
  int32_t* idx_all = idx_t.data<int32_t>();
  const float* l = cache.logits.f32();
  const float* h = cache.soft.f32();
  const float* sd = cache.noise_std.f32();
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    int32_t* idx = idx_all + t * (k + 1);
    const Thresholds th = thresholds(h + t * e_n, e_n, k, idx);
    for (int64_t e = 0; e < e_n; ++e) {
      const double thr = chosen_among(idx, k, e) ? th.if_in : th.if_out;
      prob[t * e_n + e] = normal_cdf((l[t * e_n + e] - thr) / sd[t * e_n + e]);
    }
  }
  // Σ over tokens in a fixed order: the same bits for any thread count.
  for (int64_t e = 0; e < e_n; ++e) load[e] = 0.0;
  for (int64_t t = 0; t < t_n; ++t)
    for (int64_t e = 0; e < e_n; ++e) load[e] += prob[t * e_n + e];
  arena.release(mark);
  return cv_squared(load, e_n);
}

void noisy_load_loss_backward(const GateState& g, float coef, const GateGrads& d, Arena& arena) {
  const GateCache& cache = g.cache;
  const int64_t t_n = cache.n_tokens, e_n = g.cfg.n_experts, k = g.cfg.k;
  if (!cache.training || k == e_n || t_n == 0) return;  // no smooth estimate, no gradient
  const size_t mark = arena.mark();
  double* dload = arena.alloc_array<double>(e_n);  // [E]
  for (int64_t e = 0; e < e_n; ++e) dload[e] = 0.0;
  cv_squared_backward(cache.load, e_n, coef, dload);
  Tensor idx_t = arena.alloc(Shape{t_n, k + 1}, DType::kI32);  // [T, K+1]
  Tensor dsd_t = arena.zeros(Shape{t_n, e_n}, DType::kF64);    // [T, E] dL/dσ
  int32_t* idx_all = idx_t.data<int32_t>();
  double* dsd = dsd_t.data<double>();
  const float* l = cache.logits.f32();
  const float* h = cache.soft.f32();
  const float* sd = cache.noise_std.f32();
  const float* n = cache.noise.f32();
  const float* nu = cache.noise_logits.f32();
  float* dl = d.dlogits.f32();
  float* dnu = d.dnoise_logits.f32();
  // Each token's terms touch only its own row (the threshold expert is in the same row).
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    int32_t* idx = idx_all + t * (k + 1);
    const Thresholds th = thresholds(h + t * e_n, e_n, k, idx);
    double* dsd_row = dsd + t * e_n;
    for (int64_t e = 0; e < e_n; ++e) {
      const int64_t i = t * e_n + e;
      const bool in = chosen_among(idx, k, e);
      const double thr = in ? th.if_in : th.if_out;
      const double z = (l[i] - thr) / sd[i];
      const double dz = dload[e] * normal_pdf(z);
      // z = (l − θ)/σ: ∂z/∂l = 1/σ, ∂z/∂σ = −z/σ, ∂z/∂θ = −1/σ; θ is h_j = l_j + n_j σ_j.
      dl[i] += static_cast<float>(dz / sd[i]);
      dsd_row[e] += -dz * z / sd[i];
      const int64_t j = in ? idx[k] : idx[k - 1];
      const double dthr = -dz / sd[i];
      dl[t * e_n + j] += static_cast<float>(dthr);
      dsd_row[j] += dthr * n[t * e_n + j];
    }
    for (int64_t e = 0; e < e_n; ++e) {
      const double sig = 1.0 / (1.0 + std::exp(-static_cast<double>(nu[t * e_n + e])));
      dnu[t * e_n + e] += static_cast<float>(dsd_row[e] * sig);
    }
  }
  arena.release(mark);
}

}  // namespace moe::gate_detail
