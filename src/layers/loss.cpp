// Losses: cross-entropy, MSE, Huber (formulas in include/moe/layers/loss.h).
//
// Dims: T rows/tokens · C classes (or output columns) · N = T·C elements.
// Sums run in double over fixed blocks whose boundaries depend only on the shape, and the block
// partials are added in block order, so the loss is bit-identical for any thread count.
#include "moe/layers/loss.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/vec_math.h"

namespace moe {

namespace {

constexpr int64_t kLossParallelMin = 1 << 15;  // elements below which threading costs more
constexpr int64_t kBlockElements = 1 << 14;    // elements per reduction block

// Σ_b f(begin_b, end_b) over the blocks [k·block, (k+1)·block) of [0, n), computed in parallel
// batches of kBatch blocks and added in block order.
template <typename F>
double blocked_sum(int64_t n, int64_t block, bool parallel, F f) {
  constexpr int64_t kBatch = 64;
  double total = 0.0;
  for (int64_t base = 0; base < n; base += block * kBatch) {
    const int64_t n_blocks = std::min(kBatch, (n - base + block - 1) / block);
    double partial[kBatch];
#pragma omp parallel for schedule(static) if (parallel && n_blocks > 1)
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t begin = base + b * block;
      partial[b] = f(begin, std::min(n, begin + block));
    }
    for (int64_t b = 0; b < n_blocks; ++b) total += partial[b];
  }
  return total;
}

void check_like(Tensor a, Tensor b, const char* what, const char* op) {
  MOE_CHECK(b.empty() || (b.shape() == a.shape() && b.dtype() == DType::kF32),
            "{}: {} is {}, expected {} float32", op, what, b.shape().str(), a.shape().str());
}

}  // namespace

double cross_entropy_loss(Tensor logits, Tensor targets, Tensor dlogits,
                          const CrossEntropyOptions& opts, double grad_scale) {
  MOE_CHECK(logits.rank() == 2, "cross_entropy: logits must be [T, C], got {}",
            logits.shape().str());
  const int64_t n_rows = logits.dim(0), n_classes = logits.dim(1);
  MOE_CHECK(targets.dtype() == DType::kI32 && targets.numel() == n_rows,
            "cross_entropy: targets must be int32 [{}], got {} {}", n_rows,
            dtype_name(targets.dtype()), targets.shape().str());
  check_like(logits, dlogits, "dlogits", "cross_entropy");
  const bool weighted = !opts.class_weights.empty();
  MOE_CHECK(!weighted || opts.class_weights.numel() == n_classes,
            "cross_entropy: class_weights {} for {} classes", opts.class_weights.shape().str(),
            n_classes);
  const double eps = opts.label_smoothing;
  MOE_CHECK(eps >= 0.0 && eps <= 1.0, "cross_entropy: label_smoothing {} outside [0, 1]", eps);

  const float* z = logits.f32();                                   // [T, C]
  const int32_t* y = targets.data<int32_t>();                      // [T]
  const float* w = weighted ? opts.class_weights.f32() : nullptr;  // [C]
  float* dz = dlogits.empty() ? nullptr : dlogits.f32();           // [T, C]

  // The normaliser W = Σ_{valid i} w_{y_i} and Σ_c w_c, in one serial pass over the targets.
  double norm = 0.0;
  for (int64_t i = 0; i < n_rows; ++i) {
    const int32_t t = y[i];
    if (t == opts.ignore_index) continue;
    MOE_CHECK(t >= 0 && t < n_classes, "cross_entropy: target {} of row {} outside [0, {})", t, i,
              n_classes);
    norm += weighted ? w[t] : 1.0;
  }
  double sum_w = static_cast<double>(n_classes);
  if (weighted) {
    sum_w = 0.0;
    for (int64_t c = 0; c < n_classes; ++c) sum_w += w[c];
  }
  if (norm == 0.0) {  // every row ignored (or zero weight): no loss, no gradient
    if (dz) fill(dlogits, 0.0f);
    return 0.0;
  }
  const double smooth = eps / static_cast<double>(n_classes);  // ε/C
  const double inv_norm = 1.0 / norm;

  auto rows_loss = [&](int64_t begin, int64_t end) {
    double total = 0.0;
    for (int64_t i = begin; i < end; ++i) {
      const float* zr = z + i * n_classes;
      float* gr = dz ? dz + i * n_classes : nullptr;
      const int32_t t = y[i];
      if (t == opts.ignore_index) {
        if (gr) std::fill(gr, gr + n_classes, 0.0f);
        continue;
      }
      float m = -INFINITY;
#pragma omp simd reduction(max : m)
      for (int64_t c = 0; c < n_classes; ++c) m = zr[c] > m ? zr[c] : m;
      // Σ exp(z − max) in double; the exponentials are parked in the gradient row for the
      // second pass. vec::exp_diff vectorises and carries z − max exactly (vec_math.h).
      double s = 0.0;
      if (gr) {
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < n_classes; ++c) {
          const float e = vec::exp_diff(zr[c], m);
          gr[c] = e;
          s += e;
        }
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < n_classes; ++c) s += vec::exp_diff(zr[c], m);
      }
      const double lse = m + std::log(s);
      const double wy = weighted ? w[t] : 1.0;
      double row = (1.0 - eps) * wy * (lse - zr[t]);
      if (eps > 0.0) {
        double smooth_row = 0.0;  // Σ_c w_c·(−logp_c)
#pragma omp simd reduction(+ : smooth_row)
        for (int64_t c = 0; c < n_classes; ++c)
          smooth_row += (weighted ? w[c] : 1.0) * (lse - zr[c]);
        row += smooth * smooth_row;
      }
      total += row;
      if (gr) {
        // dz_j = scale·(p_j·S − a_j) with p_j = e_j / s.
        const double row_mass = ((1.0 - eps) * wy + smooth * sum_w) * inv_norm;  // S_i
        const auto p_coef = static_cast<float>(grad_scale * row_mass / s);
        const auto smooth_coef = static_cast<float>(grad_scale * smooth * inv_norm);
        if (weighted) {
#pragma omp simd
          for (int64_t c = 0; c < n_classes; ++c) gr[c] = gr[c] * p_coef - smooth_coef * w[c];
        } else {
#pragma omp simd
          for (int64_t c = 0; c < n_classes; ++c) gr[c] = gr[c] * p_coef - smooth_coef;
        }
        gr[t] -= static_cast<float>(grad_scale * (1.0 - eps) * wy * inv_norm);
      }
    }
    return total;
  };
  const int64_t block_rows = std::max<int64_t>(1, kBlockElements / std::max<int64_t>(1, n_classes));
  const double total =
      blocked_sum(n_rows, block_rows, n_rows * n_classes >= kLossParallelMin, rows_loss);
  return total * inv_norm;
}

double mse_loss(Tensor pred, Tensor target, Tensor dpred, double grad_scale) {
  check_like(pred, target, "target", "mse");
  MOE_CHECK(!target.empty(), "mse: target missing");
  check_like(pred, dpred, "dpred", "mse");
  const int64_t n = pred.numel();
  if (n == 0) return 0.0;
  const float* x = pred.f32();                        // [T, C]
  const float* yt = target.f32();                     // [T, C]
  float* dx = dpred.empty() ? nullptr : dpred.f32();  // [T, C]
  const auto g_coef = static_cast<float>(2.0 * grad_scale / static_cast<double>(n));

  auto elements_loss = [&](int64_t begin, int64_t end) {
    double total = 0.0;
#pragma omp simd reduction(+ : total)
    for (int64_t i = begin; i < end; ++i) {
      const double d = static_cast<double>(x[i]) - yt[i];
      total += d * d;
    }
    if (dx) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) dx[i] = g_coef * (x[i] - yt[i]);
    }
    return total;
  };
  return blocked_sum(n, kBlockElements, n >= kLossParallelMin, elements_loss) /
         static_cast<double>(n);
}

double huber_loss(Tensor pred, Tensor target, Tensor dpred, double delta, double grad_scale) {
  check_like(pred, target, "target", "huber");
  MOE_CHECK(!target.empty(), "huber: target missing");
  check_like(pred, dpred, "dpred", "huber");
  MOE_CHECK(delta > 0.0, "huber: delta must be positive, got {}", delta);
  const int64_t n = pred.numel();
  if (n == 0) return 0.0;
  const float* x = pred.f32();                        // [T, C]
  const float* yt = target.f32();                     // [T, C]
  float* dx = dpred.empty() ? nullptr : dpred.f32();  // [T, C]
  const double g_coef = grad_scale / static_cast<double>(n);

  auto elements_loss = [&](int64_t begin, int64_t end) {
    double total = 0.0;
#pragma omp simd reduction(+ : total)
    for (int64_t i = begin; i < end; ++i) {
      const double d = static_cast<double>(x[i]) - yt[i];
      const double a = std::fabs(d);
      total += a < delta ? 0.5 * d * d : delta * (a - 0.5 * delta);
    }
    if (dx) {
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) {
        const double d = static_cast<double>(x[i]) - yt[i];
        dx[i] = static_cast<float>(g_coef * std::clamp(d, -delta, delta));
      }
    }
    return total;
  };
  return blocked_sum(n, kBlockElements, n >= kLossParallelMin, elements_loss) /
         static_cast<double>(n);
}

}  // namespace moe
