// Dispatch and combine as plain loops over tokens or sorted positions, threaded with OpenMP. Each
// output row is written by exactly one iteration, and every sum runs over a token's slots in slot
// order, so the thread count never changes a bit of the result.
#include "moe/moe/dispatch.h"

#include <cstring>

namespace moe {

namespace {

constexpr int64_t kParallelMin =
    1 << 14;  // floats moved below which threads cost more than they save

void check_rows(const RoutingPlan& plan, Tensor tokens, Tensor sorted, const char* what) {
  MOE_CHECK(tokens.rows() == plan.n_tokens && sorted.rows() == plan.n_kept() &&
                tokens.cols() == sorted.cols(),
            "{}: token rows {} and sorted rows {} for a plan of T={} S_kept={}", what,
            tokens.shape().str(), sorted.shape().str(), plan.n_tokens, plan.n_kept());
  MOE_CHECK(static_cast<int64_t>(plan.inv_perm.size()) == plan.n_slots(),
            "{}: the plan is not sorted by expert (call sort_slots_by_expert)", what);
}

}  // namespace

void dispatch_forward(const RoutingPlan& plan, Tensor x, Tensor xs) {
  check_rows(plan, x, xs, "dispatch");
  const int64_t d = x.cols(), n = plan.n_kept();
  const float* src = x.f32();
  float* dst = xs.f32();
  const int32_t* perm = plan.perm.data();
  const int32_t* slot_token = plan.slot_token.data();
#pragma omp parallel for schedule(static) if (n * d >= kParallelMin)
  for (int64_t p = 0; p < n; ++p) {
    const int64_t t = slot_token[perm[p]];
    std::memcpy(dst + p * d, src + t * d, static_cast<size_t>(d) * sizeof(float));
  }
}

void dispatch_backward(const RoutingPlan& plan, Tensor dxs, Tensor dx) {
  check_rows(plan, dx, dxs, "dispatch backward");
  const int64_t d = dx.cols(), n_tokens = plan.n_tokens;
  const float* src = dxs.f32();
  float* dst = dx.f32();
  const int64_t* offsets = plan.token_offsets.data();
  const int32_t* inv_perm = plan.inv_perm.data();
#pragma omp parallel for schedule(static) if (plan.n_kept() * d >= kParallelMin)
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* out = dst + t * d;
    for (int64_t j = 0; j < d; ++j) out[j] = 0.0f;
    for (int64_t s = offsets[t]; s < offsets[t + 1]; ++s) {
      const int64_t p = inv_perm[s];
      if (p < 0) continue;  // dropped
      const float* row = src + p * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) out[j] += row[j];
    }
  }
}

void combine_forward(const RoutingPlan& plan, Tensor ys, Tensor y) {
  check_rows(plan, y, ys, "combine");
  const int64_t d = y.cols(), n_tokens = plan.n_tokens;
  const float* src = ys.f32();
  float* dst = y.f32();
  const int64_t* offsets = plan.token_offsets.data();
  const int32_t* inv_perm = plan.inv_perm.data();
  const float* weights = plan.weights.data();
#pragma omp parallel for schedule(static) if (plan.n_kept() * d >= kParallelMin)
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* out = dst + t * d;
    for (int64_t j = 0; j < d; ++j) out[j] = 0.0f;
    for (int64_t s = offsets[t]; s < offsets[t + 1]; ++s) {
      const int64_t p = inv_perm[s];
      if (p < 0) continue;  // dropped: contributes nothing
      const float w = weights[s];
      const float* row = src + p * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) out[j] += w * row[j];
    }
  }
}

void combine_backward(const RoutingPlan& plan, Tensor ys, Tensor dy, Tensor dys, float* dweights) {
  check_rows(plan, dy, ys, "combine backward");
  MOE_CHECK(dys.shape() == ys.shape(), "combine backward: dys {} ys {}", dys.shape().str(),
            ys.shape().str());
  const int64_t d = dy.cols(), n_tokens = plan.n_tokens;
  const float* y_sorted = ys.f32();
  const float* grad_out = dy.f32();
  float* grad_sorted = dys.f32();
  const int64_t* offsets = plan.token_offsets.data();
  const int32_t* inv_perm = plan.inv_perm.data();
  const float* weights = plan.weights.data();
  // Per token: each of its slots owns one row of dys and one dweight, so no two iterations
  // write the same memory.
#pragma omp parallel for schedule(static) if (plan.n_kept() * d >= kParallelMin)
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* g = grad_out + t * d;
    for (int64_t s = offsets[t]; s < offsets[t + 1]; ++s) {
      const int64_t p = inv_perm[s];
      if (p < 0) {
        dweights[s] = 0.0f;
        continue;
      }
      const float w = weights[s];
      const float* row = y_sorted + p * d;
      float* drow = grad_sorted + p * d;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < d; ++j) {
        drow[j] = w * g[j];
        dot += g[j] * row[j];
      }
      dweights[s] = dot;
    }
  }
}

}  // namespace moe
