// Global-norm gradient clipping (formula in include/moe/optim/clip.h).
//
// Dims: N = the ParamStore's arena length.
#include "moe/optim/clip.h"

#include <algorithm>
#include <cmath>

#include "moe/kernels/ops.h"

namespace moe {

namespace {

constexpr int64_t kBlock = 1 << 14;  // elements per partial sum
constexpr int64_t kBatch = 64;       // partial sums computed in parallel at once

// Σ x² over [0, n) as block partials added in block order: the same answer for any thread count.
double sum_squares_fixed_order(const float* x, int64_t n) {
  double total = 0.0;
  for (int64_t base = 0; base < n; base += kBlock * kBatch) {
    const int64_t n_blocks = std::min(kBatch, (n - base + kBlock - 1) / kBlock);
    double partial[kBatch];
#pragma omp parallel for schedule(static) if (n_blocks > 1)
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t begin = base + b * kBlock, end = std::min(n, begin + kBlock);
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = begin; i < end; ++i) s += static_cast<double>(x[i]) * x[i];
      partial[b] = s;
    }
    for (int64_t b = 0; b < n_blocks; ++b) total += partial[b];
  }
  return total;
}

}  // namespace

double grad_norm(const ParamStore& store) {
  MOE_CHECK(store.finalized(), "grad_norm: ParamStore not finalized");
  const float* g = store.grads().empty() ? nullptr : store.grads().f32();  // [N]
  double total = 0.0;
  for (const ParamInfo& info : store.params())
    if (!info.frozen) total += sum_squares_fixed_order(g + info.offset, info.shape.numel());
  return std::sqrt(total);
}

double clip_grad_norm(ParamStore& store, double max_norm) {
  MOE_CHECK(max_norm > 0.0, "clip_grad_norm: max_norm must be positive, got {}", max_norm);
  const double norm = grad_norm(store);
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  // Padding between parameters holds zeros, so scaling the whole arena is scaling every gradient
  // (a frozen parameter's too, which nothing reads).
  if (coef < 1.0) scale(store.grads(), static_cast<float>(coef));
  return norm;
}

}  // namespace moe
