#include "moe/layers/norm.h"

#include <cmath>

namespace moe {

namespace {

constexpr int64_t kNormParallelMin =
    1 << 15;  // elements below which threading costs more than it saves
constexpr int64_t kNormColumnBlock = 16;

void check_rows(Tensor x, Tensor y, Tensor gain, Tensor stat, const char* op) {
  MOE_CHECK(x.rows() == y.rows() && x.cols() == y.cols() && gain.numel() == x.cols() &&
                stat.numel() == x.rows(),
            "{}: x {} y {} gain {} cached statistics {}", op, x.shape().str(), y.shape().str(),
            gain.shape().str(), stat.shape().str());
}

// dgain[c] += Σ_t dy[t, c] · x̂[t, c] and dbias[c] += Σ_t dy[t, c], with x̂ = (x − shift) · rstd
// (shift = μ for LayerNorm, null for RMSNorm). Threads own blocks of columns and each column sums
// its rows in order, in double, so the result is the same for any thread count.
void accumulate_param_grads(Tensor x, Tensor dy, const float* shift, const float* rstd,
                            float* dgain, float* dbias) {
  const int64_t rows = x.rows(), cols = x.cols();
  const float* xp = x.f32();
  const float* dyp = dy.f32();
  const int64_t n_blocks = (cols + kNormColumnBlock - 1) / kNormColumnBlock;
#pragma omp parallel for schedule(static) if (rows * cols >= kNormParallelMin)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t c0 = blk * kNormColumnBlock;
    const int64_t width = c0 + kNormColumnBlock < cols ? kNormColumnBlock : cols - c0;
    double acc_gain[kNormColumnBlock] = {}, acc_bias[kNormColumnBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = xp + r * cols + c0;
      const float* dyr = dyp + r * cols + c0;
      const double mu = shift != nullptr ? shift[r] : 0.0, rs = rstd[r];
      for (int64_t c = 0; c < width; ++c) {
        acc_gain[c] += static_cast<double>(dyr[c]) * ((xr[c] - mu) * rs);
        acc_bias[c] += dyr[c];
      }
    }
    for (int64_t c = 0; c < width; ++c) {
      dgain[c0 + c] += static_cast<float>(acc_gain[c]);
      if (dbias != nullptr) dbias[c0 + c] += static_cast<float>(acc_bias[c]);
    }
  }
}

}  // namespace

LayerNormCache LayerNormCache::allocate(Arena& arena, int64_t rows) {
  return {arena.alloc(Shape{rows}), arena.alloc(Shape{rows})};
}

RmsNormCache RmsNormCache::allocate(Arena& arena, int64_t rows) {
  return {arena.alloc(Shape{rows})};
}

void layer_norm_forward(const LayerNormParams& p, float eps, Tensor x, Tensor y,
                        const LayerNormCache& cache) {
  check_rows(x, y, p.gain, cache.mean, "layer_norm");
  MOE_CHECK(cache.rstd.numel() == x.rows() && (p.bias.empty() || p.bias.numel() == x.cols()),
            "layer_norm: rstd {} bias {} for x {}", cache.rstd.shape().str(), p.bias.shape().str(),
            x.shape().str());
  const int64_t rows = x.rows(), cols = x.cols();
  const float* gain = p.gain.f32();
  const float* bias = p.bias.empty() ? nullptr : p.bias.f32();
#pragma omp parallel for schedule(static) if (rows * cols >= kNormParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.f32() + r * cols;
    float* yr = y.f32() + r * cols;
    // Two passes in double: the shifted variance has no cancellation when |μ| ≫ σ.
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < cols; ++c) sum += xr[c];
    const double mu = cols > 0 ? sum / static_cast<double>(cols) : 0.0;
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (int64_t c = 0; c < cols; ++c) sq += (xr[c] - mu) * (xr[c] - mu);
    const double var = cols > 0 ? sq / static_cast<double>(cols) : 0.0;
    const float rs = static_cast<float>(1.0 / std::sqrt(var + eps));
    const float mu_f = static_cast<float>(mu);
    cache.mean.f32()[r] = mu_f;
    cache.rstd.f32()[r] = rs;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c)
      yr[c] = (xr[c] - mu_f) * rs * gain[c] + (bias != nullptr ? bias[c] : 0.0f);
  }
}

void layer_norm_backward(const LayerNormParams& p, const LayerNormGrads& g,
                         const LayerNormCache& cache, Tensor x, Tensor dy, Tensor dx) {
  check_rows(x, dy, p.gain, cache.mean, "layer_norm backward");
  MOE_CHECK(g.gain.shape() == p.gain.shape() && g.bias.numel() == p.bias.numel(),
            "layer_norm backward: dgain {} dbias {} for gain {} bias {}", g.gain.shape().str(),
            g.bias.shape().str(), p.gain.shape().str(), p.bias.shape().str());
  const float* mean = cache.mean.f32();
  const float* rstd = cache.rstd.f32();
  accumulate_param_grads(x, dy, mean, rstd, g.gain.f32(), g.bias.empty() ? nullptr : g.bias.f32());
  if (dx.empty()) return;
  MOE_CHECK(dx.shape() == x.shape(), "layer_norm backward: dx {} x {}", dx.shape().str(),
            x.shape().str());
  const int64_t rows = x.rows(), cols = x.cols();
  const float* gain = p.gain.f32();
  // With ĝ = dy ⊙ gain and x̂ = (x − μ) · rstd:  dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)).
#pragma omp parallel for schedule(static) if (rows * cols >= kNormParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.f32() + r * cols;
    const float* dyr = dy.f32() + r * cols;
    float* dxr = dx.f32() + r * cols;
    const float mu = mean[r], rs = rstd[r];
    double sum_g = 0.0, sum_gx = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int64_t c = 0; c < cols; ++c) {
      const float gc = dyr[c] * gain[c];
      sum_g += gc;
      sum_gx += gc * ((xr[c] - mu) * rs);
    }
    const float mean_g = static_cast<float>(sum_g / static_cast<double>(cols));
    const float mean_gx = static_cast<float>(sum_gx / static_cast<double>(cols));
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c)
      dxr[c] = rs * (dyr[c] * gain[c] - mean_g - (xr[c] - mu) * rs * mean_gx);
  }
}

void layer_norm_init(const LayerNormParams& p) {
  fill(p.gain, 1.0f);
  if (!p.bias.empty()) fill(p.bias, 0.0f);
}

void rms_norm_forward(const RmsNormParams& p, float eps, Tensor x, Tensor y,
                      const RmsNormCache& cache) {
  check_rows(x, y, p.gain, cache.rstd, "rms_norm");
  const int64_t rows = x.rows(), cols = x.cols();
  const float* gain = p.gain.f32();
#pragma omp parallel for schedule(static) if (rows * cols >= kNormParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.f32() + r * cols;
    float* yr = y.f32() + r * cols;
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (int64_t c = 0; c < cols; ++c) sq += static_cast<double>(xr[c]) * xr[c];
    const double ms = cols > 0 ? sq / static_cast<double>(cols) : 0.0;
    const float rs = static_cast<float>(1.0 / std::sqrt(ms + eps));
    cache.rstd.f32()[r] = rs;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) yr[c] = xr[c] * rs * gain[c];
  }
}

void rms_norm_backward(const RmsNormParams& p, const RmsNormGrads& g, const RmsNormCache& cache,
                       Tensor x, Tensor dy, Tensor dx) {
  check_rows(x, dy, p.gain, cache.rstd, "rms_norm backward");
  MOE_CHECK(g.gain.shape() == p.gain.shape(), "rms_norm backward: dgain {} for gain {}",
            g.gain.shape().str(), p.gain.shape().str());
  const float* rstd = cache.rstd.f32();
  accumulate_param_grads(x, dy, nullptr, rstd, g.gain.f32(), nullptr);
  if (dx.empty()) return;
  MOE_CHECK(dx.shape() == x.shape(), "rms_norm backward: dx {} x {}", dx.shape().str(),
            x.shape().str());
  const int64_t rows = x.rows(), cols = x.cols();
  const float* gain = p.gain.f32();
  // With ĝ = dy ⊙ gain and x̂ = x · rstd:  dx = rstd · (ĝ − x̂ · mean(ĝ ⊙ x̂)).
#pragma omp parallel for schedule(static) if (rows * cols >= kNormParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.f32() + r * cols;
    const float* dyr = dy.f32() + r * cols;
    float* dxr = dx.f32() + r * cols;
    const float rs = rstd[r];
    double sum_gx = 0.0;
#pragma omp simd reduction(+ : sum_gx)
    for (int64_t c = 0; c < cols; ++c) sum_gx += dyr[c] * gain[c] * (xr[c] * rs);
    const float mean_gx = static_cast<float>(sum_gx / static_cast<double>(cols));
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) dxr[c] = rs * (dyr[c] * gain[c] - xr[c] * rs * mean_gx);
  }
}

void rms_norm_init(const RmsNormParams& p) {
  fill(p.gain, 1.0f);
}

}  // namespace moe
