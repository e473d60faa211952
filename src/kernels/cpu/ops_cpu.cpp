// Fast elementwise ops, activations, softmax and reductions: float arithmetic in loops the
// compiler vectorises (AVX-512 with -march=native), the transcendental functions from vec_math.h
// so that those loops vectorise too, threads over rows or fixed blocks for large tensors. Each op
// is checked against its reference in moe::ref (tests/kernels/ops_test.cpp).
//
// Determinism: the work is cut into pieces that do not depend on the thread count (rows, or
// blocks of kBlock elements), and every sum has one fixed order, so a given binary returns the
// same bits for the same input with any number of threads. Sums accumulate in double, as the
// reference does: converting is cheap next to a cache miss, and it keeps softmax and the
// reductions within a few float ulps of the reference even over 10^4 or more columns.
//
// Dims: N elements · [R, C] a tensor seen as rows and columns (C its last dimension).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/vec_math.h"
#include "moe/kernels/ops.h"

namespace moe {

namespace {

// Elements below which threading costs more than it saves.
constexpr int64_t kParallelMin = 1 << 15;
// Elements per elementwise task: a multiple of the 16 float lanes of an AVX-512 register.
constexpr int64_t kBlock = 1 << 13;

void check_same(Tensor a, Tensor b, const char* op) {
  MOE_CHECK(a.numel() == b.numel(), "{}: {} vs {}", op, a.shape().str(), b.shape().str());
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluTanhCubic = 0.044715f;  // Hendrycks & Gimpel 2016, the tanh approximation

// y[i] = f(x[i]) over fixed blocks: whether element i is handled by the vector body or a loop
// remainder depends on i and n only, never on how many threads share the blocks.
template <typename F>
void map1(Tensor x, Tensor y, F f) {
  const float* xp = x.f32();  // [N]
  float* yp = y.f32();        // [N]
  const int64_t n = x.numel();
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int64_t end = std::min(n, (b + 1) * kBlock);
#pragma omp simd
    for (int64_t i = b * kBlock; i < end; ++i) yp[i] = f(xp[i]);
  }
}

template <typename F>
void map2(Tensor a, Tensor b, Tensor y, F f) {
  const float* ap = a.f32();  // [N]
  const float* bp = b.f32();  // [N]
  float* yp = y.f32();        // [N]
  const int64_t n = a.numel();
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t end = std::min(n, (blk + 1) * kBlock);
#pragma omp simd
    for (int64_t i = blk * kBlock; i < end; ++i) yp[i] = f(ap[i], bp[i]);
  }
}

// gelu_tanh(x) = x/2 · (1 + tanh u) with u = √(2/π)·(x + 0.044715 x³); since (1 + tanh u)/2 =
// σ(2u), it is x·σ(2u), which stays accurate in both tails. Returns 2u.
inline float gelu_tanh_arg(float v) {
  return 2.0f * kSqrt2OverPi * v * std::fma(kGeluTanhCubic * v, v, 1.0f);
}

}  // namespace

const char* activation_name(Activation a) {
  return enum_name(kActivationNames, a);
}

bool parse_activation(const std::string& name, Activation* out) {
  return parse_enum_name(kActivationNames, name, out);
}

void activation_forward(Activation a, Tensor x, Tensor y) {
  check_same(x, y, "activation_forward");
  switch (a) {
    case Activation::kIdentity:
      if (x.raw() != y.raw()) std::memcpy(y.raw(), x.raw(), x.nbytes());
      return;
    case Activation::kRelu:
      return map1(x, y, [](float v) { return v > 0.0f ? v : 0.0f; });
    case Activation::kGelu:
      return map1(x, y, [](float v) { return v * vec::normal_cdf_pdf(v).cdf; });
    case Activation::kGeluTanh:
      return map1(x, y, [](float v) { return v * vec::sigmoid(gelu_tanh_arg(v)); });
    case Activation::kSilu:
      return map1(x, y, [](float v) { return v * vec::sigmoid(v); });
    case Activation::kSigmoid:
      return map1(x, y, [](float v) { return vec::sigmoid(v); });
    case Activation::kTanh:
      return map1(x, y, [](float v) { return vec::tanh(v); });
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
      // d/dx x·Φ(x) = Φ(x) + x·φ(x)
      return map2(x, dy, dx, [](float v, float g) {
        const vec::NormalCdfPdf p = vec::normal_cdf_pdf(v);
        return g * std::fma(v, p.pdf, p.cdf);
      });
    case Activation::kGeluTanh:
      // d/dx x·σ(2u) = σ(2u) + x·σ(2u)·σ(−2u)·2u'(x), 2u'(x) = 2√(2/π)·(1 + 3·0.044715 x²)
      return map2(x, dy, dx, [](float v, float g) {
        const vec::SigmoidPair s = vec::sigmoid_pair(gelu_tanh_arg(v));
        const float du = 2.0f * kSqrt2OverPi * std::fma(3.0f * kGeluTanhCubic * v, v, 1.0f);
        return g * std::fma(v * s.pos * s.neg, du, s.pos);
      });
    case Activation::kSilu:
      // d/dx x·σ(x) = σ(x)·(1 + x·σ(−x))
      return map2(x, dy, dx, [](float v, float g) {
        const vec::SigmoidPair s = vec::sigmoid_pair(v);
        return g * s.pos * std::fma(v, s.neg, 1.0f);
      });
    case Activation::kSigmoid:
      // σ'(x) = σ(x)·σ(−x)
      return map2(x, dy, dx, [](float v, float g) {
        const vec::SigmoidPair s = vec::sigmoid_pair(v);
        return g * s.pos * s.neg;
      });
    case Activation::kTanh:
      return map2(x, dy, dx, [](float v, float g) { return g * vec::tanh_grad(v); });
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
  const float* b = bias.f32();  // [C]
  float* yp = y.f32();          // [R, C]
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
  // Threads split the columns into blocks; each block walks the rows in order with one double
  // accumulator per column (kept in L1), so every column has one fixed summation order and each
  // row contributes a contiguous run of kCols floats (whole cache lines, not one per row).
  constexpr int64_t kCols = 256;
  const int64_t rows = dy.rows(), cols = dy.cols();
  const float* d = dy.f32();  // [R, C]
  float* out = dbias.f32();   // [C]
  const int64_t n_blocks = (cols + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t c0 = blk * kCols, width = std::min(kCols, cols - c0);
    double acc[kCols] = {};  // [kCols]
    for (int64_t r = 0; r < rows; ++r) {
      const float* dr = d + r * cols + c0;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) acc[c] += dr[c];
    }
    for (int64_t c = 0; c < width; ++c) out[c0 + c] += static_cast<float>(acc[c]);
  }
}

namespace {

inline float max_of(const float* xr, int64_t n) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t c = 0; c < n; ++c) m = xr[c] > m ? xr[c] : m;
  return m;
}

// Σ_c exp(x_c − m) in double; exp_diff keeps the difference exact (see vec_math.h).
inline double sum_exp_diff(const float* xr, int64_t n, float m) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < n; ++c) s += vec::exp_diff(xr[c], m);
  return s;
}

}  // namespace

void row_max(Tensor x, Tensor out) {
  MOE_CHECK(out.numel() == x.rows(), "row_max: x {} out {}", x.shape().str(), out.shape().str());
  const int64_t rows = x.rows(), cols = x.cols();
  const float* xp = x.f32();  // [R, C]
  float* op = out.f32();      // [R]
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) op[r] = max_of(xp + r * cols, cols);
}

void row_sum(Tensor x, Tensor out) {
  MOE_CHECK(out.numel() == x.rows(), "row_sum: x {} out {}", x.shape().str(), out.shape().str());
  const int64_t rows = x.rows(), cols = x.cols();
  const float* xp = x.f32();  // [R, C]
  float* op = out.f32();      // [R]
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xp + r * cols;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; ++c) s += xr[c];
    op[r] = static_cast<float>(s);
  }
}

void row_logsumexp(Tensor x, Tensor out) {
  MOE_CHECK(out.numel() == x.rows(), "row_logsumexp: x {} out {}", x.shape().str(),
            out.shape().str());
  const int64_t rows = x.rows(), cols = x.cols();
  const float* xp = x.f32();  // [R, C]
  float* op = out.f32();      // [R]
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xp + r * cols;
    const float m = max_of(xr, cols);
    op[r] = static_cast<float>(m + std::log(sum_exp_diff(xr, cols, m)));
  }
}

void softmax_rows(Tensor x, Tensor y) {
  check_same(x, y, "softmax_rows");
  const int64_t rows = x.rows(), cols = x.cols();
  const float* xp = x.f32();  // [R, C]
  float* yp = y.f32();        // [R, C], may be xp
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xp + r * cols;
    float* yr = yp + r * cols;
    const float m = max_of(xr, cols);
    // One exp per element: y holds exp(x − m) until it is scaled by 1/Σ. Element c is read
    // before it is written, so y may alias x.
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; ++c) {
      const float e = vec::exp_diff(xr[c], m);
      yr[c] = e;
      s += e;
    }
    const float inv = static_cast<float>(1.0 / s);
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) yr[c] *= inv;
  }
}

void log_softmax_rows(Tensor x, Tensor y) {
  check_same(x, y, "log_softmax_rows");
  const int64_t rows = x.rows(), cols = x.cols();
  const float* xp = x.f32();  // [R, C]
  float* yp = y.f32();        // [R, C], may be xp
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xp + r * cols;
    float* yr = yp + r * cols;
    const float m = max_of(xr, cols);
    // x − logsumexp in double: the dominant class has y ≈ 0, where a float logsumexp near |m|
    // would leave an error of ulp(m)/2 in an output far smaller than m.
    const double lse = m + std::log(sum_exp_diff(xr, cols, m));
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) yr[c] = static_cast<float>(xr[c] - lse);
  }
}

void softmax_rows_backward(Tensor y, Tensor dy, Tensor dx) {
  check_same(y, dy, "softmax_rows_backward");
  check_same(y, dx, "softmax_rows_backward");
  const int64_t rows = y.rows(), cols = y.cols();
  const float* yp = y.f32();    // [R, C]
  const float* dyp = dy.f32();  // [R, C]
  float* dxp = dx.f32();        // [R, C]
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = yp + r * cols;
    const float* dyr = dyp + r * cols;
    float* dxr = dxp + r * cols;
    // Σ y·dy: float products (one rounding each) summed in double, so the error does not grow
    // with C; a double product would cost a third more time here for no useful digit.
    double dot = 0.0;
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < cols; ++c) dot += yr[c] * dyr[c];
    const float dot_f = static_cast<float>(dot);
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) dxr[c] = yr[c] * (dyr[c] - dot_f);
  }
}

void log_softmax_rows_backward(Tensor y, Tensor dy, Tensor dx) {
  check_same(y, dy, "log_softmax_rows_backward");
  check_same(y, dx, "log_softmax_rows_backward");
  const int64_t rows = y.rows(), cols = y.cols();
  const float* yp = y.f32();    // [R, C]
  const float* dyp = dy.f32();  // [R, C]
  float* dxp = dx.f32();        // [R, C]
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = yp + r * cols;
    const float* dyr = dyp + r * cols;
    float* dxr = dxp + r * cols;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < cols; ++c) s += dyr[c];
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c)
      dxr[c] = static_cast<float>(dyr[c] - static_cast<double>(vec::exp(yr[c])) * s);
  }
}

namespace {

// Σ p[i] (or Σ p[i]²) in double over fixed chunks whose partial sums are added in chunk order:
// the result does not depend on the thread count. Chunks are taken kGroup at a time so that the
// partial sums live on the stack.
template <bool kSquares>
double chunked_sum(const float* p, int64_t n) {
  constexpr int64_t kChunk = 1 << 15;
  constexpr int64_t kGroup = 64;
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  double total = 0.0;
  for (int64_t g0 = 0; g0 < n_chunks; g0 += kGroup) {
    const int64_t g1 = std::min(n_chunks, g0 + kGroup);
    double partial[kGroup];  // [kGroup]
#pragma omp parallel for schedule(static) if (g1 - g0 > 1)
    for (int64_t k = g0; k < g1; ++k) {
      const float* q = p + k * kChunk;
      const int64_t len = std::min(kChunk, n - k * kChunk);
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < len; ++i) s += kSquares ? static_cast<double>(q[i]) * q[i] : q[i];
      partial[k - g0] = s;
    }
    for (int64_t k = g0; k < g1; ++k) total += partial[k - g0];
  }
  return total;
}

}  // namespace

double sum(Tensor x) {
  return chunked_sum<false>(x.f32(), x.numel());
}

double sum_squares(Tensor x) {
  return chunked_sum<true>(x.f32(), x.numel());
}

}  // namespace moe
