#include "moe/layers/swiglu.h"

#include <cmath>

#include "moe/kernels/gemm.h"

namespace moe {

namespace {

constexpr int64_t kParallelMin = 1
                                 << 15;  // elements below which threading costs more than it saves

void check_hidden(Tensor h1, Tensor h3, Tensor other, const char* what) {
  MOE_CHECK(h1.shape() == h3.shape() && h1.numel() == other.numel(), "swiglu {}: h1 {} h3 {} {}",
            what, h1.shape().str(), h3.shape().str(), other.shape().str());
}

}  // namespace

SwigluCache SwigluCache::allocate(Arena& arena, int64_t rows, int64_t hidden) {
  return {arena.alloc(Shape{rows, hidden}), arena.alloc(Shape{rows, hidden})};
}

void swiglu_gate_forward(Tensor h1, Tensor h3, Tensor a) {
  check_hidden(h1, h3, a, "gate");
  const float* g = h1.f32();
  const float* u = h3.f32();
  float* out = a.f32();
  const int64_t n = h1.numel();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void swiglu_gate_backward(Tensor h1, Tensor h3, Tensor da, Tensor dh1, Tensor dh3) {
  check_hidden(h1, h3, da, "gate backward");
  check_hidden(h1, h3, dh1, "gate backward");
  check_hidden(h1, h3, dh3, "gate backward");
  MOE_CHECK(dh1.raw() != da.raw() || da.numel() == 0, "swiglu gate backward: dh1 aliases da");
  const float* g = h1.f32();
  const float* u = h3.f32();
  const float* d = da.f32();
  float* d1 = dh1.f32();
  float* d3 = dh3.f32();
  const int64_t n = h1.numel();
  // silu'(h) = σ(h) · (1 + h · (1 − σ(h))). dh3 is written last so it may overwrite da.
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + std::exp(-g[i]));
    const float di = d[i];
    d1[i] = di * u[i] * s * (1.0f + g[i] * (1.0f - s));
    d3[i] = di * g[i] * s;
  }
}

void swiglu_forward(const SwigluParams& p, Tensor x, Tensor y, const SwigluCache& cache,
                    Arena& arena) {
  const int64_t d = p.w1.dim(1), f = p.w1.dim(0);
  MOE_CHECK(p.w3.shape() == p.w1.shape() && p.w2.dim(0) == d && p.w2.dim(1) == f,
            "swiglu: W1 {} W2 {} W3 {}", p.w1.shape().str(), p.w2.shape().str(),
            p.w3.shape().str());
  const int64_t t = x.rows();
  MOE_CHECK(x.cols() == d && y.rows() == t && y.cols() == d && cache.h1.rows() == t &&
                cache.h1.cols() == f && cache.h3.rows() == t && cache.h3.cols() == f,
            "swiglu: x {} y {} h1 {} h3 {} for D={} F={}", x.shape().str(), y.shape().str(),
            cache.h1.shape().str(), cache.h3.shape().str(), d, f);
  gemm(x, false, p.w1, true, cache.h1);  // [T, D] · [F, D]ᵀ
  gemm(x, false, p.w3, true, cache.h3);
  const size_t mark = arena.mark();
  Tensor a = arena.alloc(Shape{t, f});  // [T, F]
  swiglu_gate_forward(cache.h1, cache.h3, a);
  gemm(a, false, p.w2, true, y);  // [T, F] · [D, F]ᵀ
  arena.release(mark);
}

void swiglu_backward(const SwigluParams& p, const SwigluGrads& g, const SwigluCache& cache,
                     Tensor x, Tensor dy, Tensor dx, Arena& arena) {
  const int64_t t = x.rows(), f = p.w1.dim(0);
  MOE_CHECK(
      dy.rows() == t && dy.cols() == p.w2.dim(0) && cache.h1.rows() == t && cache.h1.cols() == f,
      "swiglu backward: x {} dy {} h1 {}", x.shape().str(), dy.shape().str(),
      cache.h1.shape().str());
  MOE_CHECK(
      g.w1.shape() == p.w1.shape() && g.w2.shape() == p.w2.shape() && g.w3.shape() == p.w3.shape(),
      "swiglu backward: grads dW1 {} dW2 {} dW3 {}", g.w1.shape().str(), g.w2.shape().str(),
      g.w3.shape().str());
  const size_t mark = arena.mark();
  Tensor a = arena.alloc(Shape{t, f});   // [T, F], recomputed silu(h1) ⊙ h3, then dh1
  Tensor da = arena.alloc(Shape{t, f});  // [T, F], dL/da, then dh3 in place
  swiglu_gate_forward(cache.h1, cache.h3, a);
  gemm(dy, true, a, false, g.w2, GemmScale{1.0f, 1.0f});  // dW2 += dyᵀ · a: [D, T] · [T, F]
  gemm(dy, false, p.w2, false, da);                       // da = dy · W2: [T, D] · [D, F]
  Tensor dh1 = a, dh3 = da;
  swiglu_gate_backward(cache.h1, cache.h3, da, dh1, dh3);
  gemm(dh1, true, x, false, g.w1, GemmScale{1.0f, 1.0f});  // dW1 += dh1ᵀ · x: [F, T] · [T, D]
  gemm(dh3, true, x, false, g.w3, GemmScale{1.0f, 1.0f});  // dW3 += dh3ᵀ · x
  if (!dx.empty()) {
    MOE_CHECK(dx.shape() == x.shape(), "swiglu backward: dx {} x {}", dx.shape().str(),
              x.shape().str());
    gemm(dh1, false, p.w1, false, dx);                         // dx = dh1 · W1: [T, F] · [F, D]
    gemm(dh3, false, p.w3, false, dx, GemmScale{1.0f, 1.0f});  //    + dh3 · W3
  }
  arena.release(mark);
}

void swiglu_init(const SwigluParams& p, Rng& rng) {
  const float bound_in = 1.0f / std::sqrt(static_cast<float>(p.w1.dim(1)));
  const float bound_hidden = 1.0f / std::sqrt(static_cast<float>(p.w2.dim(1)));
  rng.fill_uniform(p.w1, -bound_in, bound_in);
  rng.fill_uniform(p.w2, -bound_hidden, bound_hidden);
  rng.fill_uniform(p.w3, -bound_in, bound_in);
}

}  // namespace moe
