// Balancing losses: Switch, importance CV², router z-loss (see balance.h).
//
// Dims: T tokens · E experts · S slots.
#include "moe/moe/balance.h"

#include "moe/core/index.h"

namespace moe {

namespace {
constexpr double kCvEpsilon = 1e-10;  // keeps CV² finite when every value is 0
// Per-token loops (each writes its own row) go parallel from this many [T, E] elements on.
constexpr int64_t kParallelWork = int64_t{1} << 15;

}  // namespace

double cv_squared(const double* v, int64_t n) {
  if (n <= 1) return 0.0;
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += v[i];
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (int64_t i = 0; i < n; ++i) var += (v[i] - mean) * (v[i] - mean);
  var /= static_cast<double>(n);
  return var / (mean * mean + kCvEpsilon);
}

void cv_squared_backward(const double* v, int64_t n, double scale, double* dv) {
  if (n <= 1) return;
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += v[i];
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (int64_t i = 0; i < n; ++i) var += (v[i] - mean) * (v[i] - mean);
  var /= static_cast<double>(n);
  // CV² = var / m2 with m2 = mean² + ε: ∂var/∂v_i = 2(v_i − mean)/n, ∂m2/∂v_i = 2·mean/n.
  const double m2 = mean * mean + kCvEpsilon;
  const double nd = static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const double dvar = 2.0 * (v[i] - mean) / nd;
    const double dm2 = 2.0 * mean / nd;
    dv[i] += scale * (dvar / m2 - var * dm2 / (m2 * m2));
  }
}

void slot_counts(const RoutingPlan& plan, double* load) {
  for (int64_t e = 0; e < plan.n_experts; ++e) load[e] = 0.0;
  for (int64_t s = 0; s < plan.n_slots(); ++s) load[plan.expert_ids[sz(s)]] += 1.0;
}

void slot_fractions(const RoutingPlan& plan, double* f) {
  slot_counts(plan, f);
  const int64_t s = plan.n_slots();
  for (int64_t e = 0; e < plan.n_experts; ++e) f[e] = s > 0 ? f[e] / static_cast<double>(s) : 0.0;
}

double switch_loss(const RoutingPlan& plan, Tensor probs, RouterProbs kind, Arena& arena) {
  const int64_t t_n = plan.n_tokens, e_n = plan.n_experts;
  if (t_n == 0) return 0.0;
  MOE_CHECK(probs.rows() == t_n && probs.cols() == e_n, "switch loss: probs {} for T={} E={}",
            probs.shape().str(), t_n, e_n);
  const size_t mark = arena.mark();
  double* f = arena.alloc_array<double>(e_n);       // [E]
  double* p_mean = arena.alloc_array<double>(e_n);  // [E]
  slot_fractions(plan, f);
  for (int64_t e = 0; e < e_n; ++e) p_mean[e] = 0.0;
  const float* p = probs.f32();
  for (int64_t t = 0; t < t_n; ++t) {
    const float* row = p + t * e_n;
    double norm = 1.0;
    if (kind == RouterProbs::kNormalizedSigmoid) {
      double s = 0.0;
      for (int64_t e = 0; e < e_n; ++e) s += row[e];
      norm = 1.0 / s;
    }
    for (int64_t e = 0; e < e_n; ++e) p_mean[e] += row[e] * norm;
  }
  double loss = 0.0;
  for (int64_t e = 0; e < e_n; ++e) loss += f[e] * p_mean[e] / static_cast<double>(t_n);
  arena.release(mark);
  return static_cast<double>(e_n) * loss;
}

void switch_loss_backward(const RoutingPlan& plan, Tensor probs, RouterProbs kind, float coef,
                          Tensor dlogits, Arena& arena) {
  const int64_t t_n = plan.n_tokens, e_n = plan.n_experts;
  if (t_n == 0 || coef == 0.0f) return;
  const size_t mark = arena.mark();
  double* c = arena.alloc_array<double>(e_n);  // [E] ∂loss/∂q_{t,e}, the same for every t
  slot_fractions(plan, c);
  for (int64_t e = 0; e < e_n; ++e)
    c[e] *= static_cast<double>(coef) * static_cast<double>(e_n) / static_cast<double>(t_n);
  const float* p = probs.f32();
  float* dl = dlogits.f32();
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    const float* row = p + t * e_n;
    float* drow = dl + t * e_n;
    if (kind == RouterProbs::kSoftmax) {
      // Softmax adjoint: ∂/∂l_i = p_i (c_i − Σ_j c_j p_j).
      double dot = 0.0;
      for (int64_t e = 0; e < e_n; ++e) dot += c[e] * row[e];
      for (int64_t e = 0; e < e_n; ++e) drow[e] += static_cast<float>(row[e] * (c[e] - dot));
    } else {
      // q = s / Σs: ∂/∂s_i = (c_i − Σ_j c_j q_j) / Σs; then σ' = s(1 − s).
      double s_sum = 0.0;
      for (int64_t e = 0; e < e_n; ++e) s_sum += row[e];
      double dot = 0.0;
      for (int64_t e = 0; e < e_n; ++e) dot += c[e] * row[e] / s_sum;
      for (int64_t e = 0; e < e_n; ++e) {
        const double ds = (c[e] - dot) / s_sum;
        drow[e] += static_cast<float>(ds * row[e] * (1.0 - row[e]));
      }
    }
  }
  arena.release(mark);
}

double importance_loss(const RoutingPlan& plan, Arena& arena) {
  const int64_t e_n = plan.n_experts;
  const size_t mark = arena.mark();
  double* imp = arena.alloc_array<double>(e_n);  // [E]
  for (int64_t e = 0; e < e_n; ++e) imp[e] = 0.0;
  for (int64_t s = 0; s < plan.n_slots(); ++s)
    if (!plan.dropped[sz(s)]) imp[plan.expert_ids[sz(s)]] += plan.weights[sz(s)];
  const double loss = cv_squared(imp, e_n);
  arena.release(mark);
  return loss;
}

void importance_loss_backward(const RoutingPlan& plan, float coef, float* dweights, Arena& arena) {
  const int64_t e_n = plan.n_experts;
  if (coef == 0.0f) return;
  const size_t mark = arena.mark();
  double* imp = arena.alloc_array<double>(e_n);   // [E]
  double* dimp = arena.alloc_array<double>(e_n);  // [E]
  for (int64_t e = 0; e < e_n; ++e) imp[e] = dimp[e] = 0.0;
  for (int64_t s = 0; s < plan.n_slots(); ++s)
    if (!plan.dropped[sz(s)]) imp[plan.expert_ids[sz(s)]] += plan.weights[sz(s)];
  cv_squared_backward(imp, e_n, coef, dimp);
  for (int64_t s = 0; s < plan.n_slots(); ++s)
    if (!plan.dropped[sz(s)]) dweights[s] += static_cast<float>(dimp[plan.expert_ids[sz(s)]]);
  arena.release(mark);
}

double z_loss(Tensor lse) {
  const int64_t t_n = lse.numel();
  if (t_n == 0) return 0.0;
  double s = 0.0;
  for (int64_t t = 0; t < t_n; ++t) s += static_cast<double>(lse.f32()[t]) * lse.f32()[t];
  return s / static_cast<double>(t_n);
}

void z_loss_backward(Tensor probs, Tensor lse, float coef, Tensor dlogits) {
  const int64_t t_n = probs.rows(), e_n = probs.cols();
  if (t_n == 0 || coef == 0.0f) return;
  const float* p = probs.f32();
  float* dl = dlogits.f32();
  // ∂ lse_t / ∂ l_{t,e} = softmax(l_t)_e.
#pragma omp parallel for schedule(static) if (t_n * e_n >= kParallelWork)
  for (int64_t t = 0; t < t_n; ++t) {
    const double scale = 2.0 * static_cast<double>(coef) * lse.f32()[t] / static_cast<double>(t_n);
    for (int64_t e = 0; e < e_n; ++e) dl[t * e_n + e] += static_cast<float>(scale * p[t * e_n + e]);
  }
}

}  // namespace moe
