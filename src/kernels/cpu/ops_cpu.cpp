// Fast elementwise ops, activations, softmax and reductions: float arithmetic, loops the compiler
// vectorises (AVX-512 with -march=native), threads over rows for large tensors. Each is checked
// against its reference in moe::ref (tests/kernels/ops_test.cpp).
#include <cmath>
#include <cstring>

#include "moe/kernels/ops.h"

namespace moe {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements below which threading costs more than it saves

void check_same(Tensor a, Tensor b, const char* op) {
  MOE_CHECK(a.numel() == b.numel(), "{}: {} vs {}", op, a.shape().str(), b.shape().str());
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

template <typename F>
void map1(Tensor x, Tensor y, F f) {
  const float* xp = x.f32();
  float* yp = y.f32();
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) yp[i] = f(xp[i]);
}

template <typename F>
void map2(Tensor a, Tensor b, Tensor y, F f) {
  const float* ap = a.f32();
  const float* bp = b.f32();
  float* yp = y.f32();
  const int64_t n = a.numel();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) yp[i] = f(ap[i], bp[i]);
}

}  // namespace

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kIdentity: return "identity";
    case Activation::kRelu: return "relu";
    case Activation::kGelu: return "gelu";
    case Activation::kGeluTanh: return "gelu_tanh";
    case Activation::kSilu: return "silu";
    case Activation::kSigmoid: return "sigmoid";
    case Activation::kTanh: return "tanh";
  }
  return "?";
}

bool parse_activation(const std::string& name, Activation* out) {
  for (Activation a : {Activation::kIdentity, Activation::kRelu, Activation::kGelu,
                       Activation::kGeluTanh, Activation::kSilu, Activation::kSigmoid,
                       Activation::kTanh}) {
    if (name == activation_name(a)) {
      *out = a;
      return true;
    }
  }
  return false;
}

void activation_forward(Activation a, Tensor x, Tensor y) {
  check_same(x, y, "activation_forward");
  switch (a) {
    case Activation::kIdentity:
      if (x.raw() != y.raw()) std::memcpy(y.raw(), x.raw(), x.nbytes());
      return;
    case Activation::kRelu: return map1(x, y, [](float v) { return v > 0.0f ? v : 0.0f; });
    case Activation::kGelu:
      return map1(x, y, [](float v) { return 0.5f * v * (1.0f + std::erf(v * kInvSqrt2)); });
    case Activation::kGeluTanh:
      return map1(x, y, [](float v) {
        return 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
      });
    case Activation::kSilu: return map1(x, y, [](float v) { return v / (1.0f + std::exp(-v)); });
    case Activation::kSigmoid:
      return map1(x, y, [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
    case Activation::kTanh: return map1(x, y, [](float v) { return std::tanh(v); });
  }
}

void activation_backward(Activation a, Tensor x, Tensor dy, Tensor dx) {
  check_same(x, dy, "activation_backward");
  check_same(x, dx, "activation_backward");
  switch (a) {
    case Activation::kIdentity:
      if (dy.raw() != dx.raw()) std::memcpy(dx.raw(), dy.raw(), dy.nbytes());
      return;
    case Activation::kRelu:
      return map2(x, dy, dx, [](float v, float g) { return v > 0.0f ? g : 0.0f; });
    case Activation::kGelu:
      return map2(x, dy, dx, [](float v, float g) {
        return g * (0.5f * (1.0f + std::erf(v * kInvSqrt2)) +
                    v * kInvSqrt2Pi * std::exp(-0.5f * v * v));
      });
    case Activation::kGeluTanh:
      return map2(x, dy, dx, [](float v, float g) {
        const float t = std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v));
        return g * (0.5f * (1.0f + t) +
                    0.5f * v * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 0.134145f * v * v));
      });
    case Activation::kSilu:
      return map2(x, dy, dx, [](float v, float g) {
        const float s = 1.0f / (1.0f + std::exp(-v));
        return g * s * (1.0f + v * (1.0f - s));
      });
    case Activation::kSigmoid:
      return map2(x, dy, dx, [](float v, float g) {
        const float s = 1.0f / (1.0f + std::exp(-v));
        return g * s * (1.0f - s);
      });
    case Activation::kTanh:
      return map2(x, dy, dx, [](float v, float g) {
        const float t = std::tanh(v);
        return g * (1.0f - t * t);
      });
  }
}

void add(Tensor a, Tensor b, Tensor y) {
  check_same(a, b, "add");
  check_same(a, y, "add");
  map2(a, b, y, [](float u, float v) { return u + v; });
}

void mul(Tensor a, Tensor b, Tensor y) {
  check_same(a, b, "mul");
  check_same(a, y, "mul");
  map2(a, b, y, [](float u, float v) { return u * v; });
}

void axpy(float alpha, Tensor x, Tensor y) {
  check_same(x, y, "axpy");
  map2(x, y, y, [alpha](float u, float v) { return v + alpha * u; });
}

void scale(Tensor x, float alpha) {
  map1(x, x, [alpha](float v) { return v * alpha; });
}

void add_bias_rows(Tensor y, Tensor bias) {
  MOE_CHECK(bias.numel() == y.cols(), "add_bias_rows: y {} bias {}", y.shape().str(),
            bias.shape().str());
  const int64_t rows = y.rows(), cols = y.cols();
  const float* b = bias.f32();
  float* yp = y.f32();
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = yp + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) yr[c] += b[c];
  }
}

void sum_rows_accumulate(Tensor dy, Tensor dbias) {
  MOE_CHECK(dbias.numel() == dy.cols(), "sum_rows_accumulate: dy {} dbias {}", dy.shape().str(),
            dbias.shape().str());
  const int64_t rows = dy.rows(), cols = dy.cols();
  const float* d = dy.f32();
  float* out = dbias.f32();
  // Threads split the columns, so each column's sum keeps one fixed order (deterministic).
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t c0 = 0; c0 < cols; c0 += 16) {
    const int64_t c1 = c0 + 16 < cols ? c0 + 16 : cols;
    double acc[16] = {};
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += d[r * cols + c];
    for (int64_t c = c0; c < c1; ++c) out[c] += static_cast<float>(acc[c - c0]);
  }
}

void row_max(Tensor x, Tensor out) {
  MOE_CHECK(out.numel() == x.rows(), "row_max: x {} out {}", x.shape().str(), out.shape().str());
  const int64_t rows = x.rows(), cols = x.cols();
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.f32() + r * cols;
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < cols; ++c) m = xr[c] > m ? xr[c] : m;
    out.f32()[r] = m;
  }
}

void row_sum(Tensor x, Tensor out) {
  MOE_CHECK(out.numel() == x.rows(), "row_sum: x {} out {}", x.shape().str(), out.shape().str());
  const int64_t rows = x.rows(), cols = x.cols();
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.f32() + r * cols;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; ++c) s += xr[c];
    out.f32()[r] = s;
  }
}

namespace {

// max and Σ exp(x − max) of one row
inline void row_max_sumexp(const float* xr, int64_t n, float* max_out, float* sum_out) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t c = 0; c < n; ++c) m = xr[c] > m ? xr[c] : m;
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < n; ++c) s += std::exp(xr[c] - m);
  *max_out = m;
  *sum_out = s;
}

}  // namespace

void row_logsumexp(Tensor x, Tensor out) {
  MOE_CHECK(out.numel() == x.rows(), "row_logsumexp: x {} out {}", x.shape().str(),
            out.shape().str());
  const int64_t rows = x.rows(), cols = x.cols();
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    float m, s;
    row_max_sumexp(x.f32() + r * cols, cols, &m, &s);
    out.f32()[r] = m + std::log(s);
  }
}

void softmax_rows(Tensor x, Tensor y) {
  check_same(x, y, "softmax_rows");
  const int64_t rows = x.rows(), cols = x.cols();
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.f32() + r * cols;
    float* yr = y.f32() + r * cols;
    float m, s;
    row_max_sumexp(xr, cols, &m, &s);
    const float inv = 1.0f / s;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) yr[c] = std::exp(xr[c] - m) * inv;
  }
}

void log_softmax_rows(Tensor x, Tensor y) {
  check_same(x, y, "log_softmax_rows");
  const int64_t rows = x.rows(), cols = x.cols();
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.f32() + r * cols;
    float* yr = y.f32() + r * cols;
    float m, s;
    row_max_sumexp(xr, cols, &m, &s);
    const float lse = m + std::log(s);
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) yr[c] = xr[c] - lse;
  }
}

void softmax_rows_backward(Tensor y, Tensor dy, Tensor dx) {
  check_same(y, dy, "softmax_rows_backward");
  check_same(y, dx, "softmax_rows_backward");
  const int64_t rows = y.rows(), cols = y.cols();
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y.f32() + r * cols;
    const float* dyr = dy.f32() + r * cols;
    float* dxr = dx.f32() + r * cols;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < cols; ++c) dot += yr[c] * dyr[c];
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) dxr[c] = yr[c] * (dyr[c] - dot);
  }
}

void log_softmax_rows_backward(Tensor y, Tensor dy, Tensor dx) {
  check_same(y, dy, "log_softmax_rows_backward");
  check_same(y, dx, "log_softmax_rows_backward");
  const int64_t rows = y.rows(), cols = y.cols();
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y.f32() + r * cols;
    const float* dyr = dy.f32() + r * cols;
    float* dxr = dx.f32() + r * cols;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; ++c) s += dyr[c];
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) dxr[c] = dyr[c] - std::exp(yr[c]) * s;
  }
}

double sum(Tensor x) {
  const float* p = x.f32();
  double s = 0.0;
  const int64_t n = x.numel();
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += p[i];
  return s;
}

double sum_squares(Tensor x) {
  const float* p = x.f32();
  double s = 0.0;
  const int64_t n = x.numel();
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]) * p[i];
  return s;
}

}  // namespace moe
