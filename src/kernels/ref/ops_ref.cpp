// Reference elementwise ops, activations, softmax and reductions: the specification. Plain loops,
// double accumulation where a sum is involved.
#include <cmath>

#include "moe/kernels/ops.h"

namespace moe::ref {

namespace {

void check_same(Tensor a, Tensor b, const char* op) {
  MOE_CHECK(a.numel() == b.numel(), "{}: {} vs {}", op, a.shape().str(), b.shape().str());
}

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

double act(Activation a, double x) {
  switch (a) {
    case Activation::kIdentity:
      return x;
    case Activation::kRelu:
      return x > 0 ? x : 0;
    case Activation::kGelu:
      return 0.5 * x * (1 + std::erf(x * kInvSqrt2));
    case Activation::kGeluTanh:
      return 0.5 * x * (1 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
    case Activation::kSilu:
      return x / (1 + std::exp(-x));
    case Activation::kSigmoid:
      return 1 / (1 + std::exp(-x));
    case Activation::kTanh:
      return std::tanh(x);
  }
  return 0;
}

double act_grad(Activation a, double x) {
  switch (a) {
    case Activation::kIdentity:
      return 1;
    case Activation::kRelu:
      return x > 0 ? 1 : 0;
    case Activation::kGelu:
      return 0.5 * (1 + std::erf(x * kInvSqrt2)) + x * kInvSqrt2Pi * std::exp(-0.5 * x * x);
    case Activation::kGeluTanh: {
      const double u = kSqrt2OverPi * (x + 0.044715 * x * x * x);
      const double t = std::tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * kSqrt2OverPi * (1 + 3 * 0.044715 * x * x);
    }
    case Activation::kSilu: {
      const double s = 1 / (1 + std::exp(-x));
      return s * (1 + x * (1 - s));
    }
    case Activation::kSigmoid: {
      const double s = 1 / (1 + std::exp(-x));
      return s * (1 - s);
    }
    case Activation::kTanh: {
      const double t = std::tanh(x);
      return 1 - t * t;
    }
  }
  return 0;
}

}  // namespace

void activation_forward(Activation a, Tensor x, Tensor y) {
  check_same(x, y, "activation_forward");
  for (int64_t i = 0; i < x.numel(); ++i) y.f32()[i] = static_cast<float>(act(a, x.f32()[i]));
}

void activation_backward(Activation a, Tensor x, Tensor dy, Tensor dx) {
  check_same(x, dy, "activation_backward");
  check_same(x, dx, "activation_backward");
  for (int64_t i = 0; i < x.numel(); ++i)
    dx.f32()[i] = static_cast<float>(dy.f32()[i] * act_grad(a, x.f32()[i]));
}

void add(Tensor a, Tensor b, Tensor y) {
  check_same(a, b, "add");
  check_same(a, y, "add");
  for (int64_t i = 0; i < a.numel(); ++i) y.f32()[i] = a.f32()[i] + b.f32()[i];
}

void mul(Tensor a, Tensor b, Tensor y) {
  check_same(a, b, "mul");
  check_same(a, y, "mul");
  for (int64_t i = 0; i < a.numel(); ++i) y.f32()[i] = a.f32()[i] * b.f32()[i];
}

void axpy(float alpha, Tensor x, Tensor y) {
  check_same(x, y, "axpy");
  for (int64_t i = 0; i < x.numel(); ++i) y.f32()[i] += alpha * x.f32()[i];
}

void scale(Tensor x, float alpha) {
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] *= alpha;
}

void add_bias_rows(Tensor y, Tensor bias) {
  MOE_CHECK(bias.numel() == y.cols(), "add_bias_rows: y {} bias {}", y.shape().str(),
            bias.shape().str());
  for (int64_t r = 0; r < y.rows(); ++r)
    for (int64_t c = 0; c < y.cols(); ++c) y.f32()[r * y.cols() + c] += bias.f32()[c];
}

void sum_rows_accumulate(Tensor dy, Tensor dbias) {
  MOE_CHECK(dbias.numel() == dy.cols(), "sum_rows_accumulate: dy {} dbias {}", dy.shape().str(),
            dbias.shape().str());
  for (int64_t c = 0; c < dy.cols(); ++c) {
    double s = 0;
    for (int64_t r = 0; r < dy.rows(); ++r) s += dy.f32()[r * dy.cols() + c];
    dbias.f32()[c] += static_cast<float>(s);
  }
}

void row_max(Tensor x, Tensor out) {
  MOE_CHECK(out.numel() == x.rows(), "row_max: x {} out {}", x.shape().str(), out.shape().str());
  for (int64_t r = 0; r < x.rows(); ++r) {
    float m = -INFINITY;
    for (int64_t c = 0; c < x.cols(); ++c) m = std::fmax(m, x.f32()[r * x.cols() + c]);
    out.f32()[r] = m;
  }
}

void row_sum(Tensor x, Tensor out) {
  MOE_CHECK(out.numel() == x.rows(), "row_sum: x {} out {}", x.shape().str(), out.shape().str());
  for (int64_t r = 0; r < x.rows(); ++r) {
    double s = 0;
    for (int64_t c = 0; c < x.cols(); ++c) s += x.f32()[r * x.cols() + c];
    out.f32()[r] = static_cast<float>(s);
  }
}

void row_logsumexp(Tensor x, Tensor out) {
  MOE_CHECK(out.numel() == x.rows(), "row_logsumexp: x {} out {}", x.shape().str(),
            out.shape().str());
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float* xr = x.f32() + r * x.cols();
    double m = -INFINITY;
    for (int64_t c = 0; c < x.cols(); ++c) m = std::fmax(m, xr[c]);
    double s = 0;
    for (int64_t c = 0; c < x.cols(); ++c) s += std::exp(xr[c] - m);
    out.f32()[r] = static_cast<float>(m + std::log(s));
  }
}

void softmax_rows(Tensor x, Tensor y) {
  check_same(x, y, "softmax_rows");
  const int64_t n = x.cols();
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float* xr = x.f32() + r * n;
    float* yr = y.f32() + r * n;
    double m = -INFINITY;
    for (int64_t c = 0; c < n; ++c) m = std::fmax(m, xr[c]);
    double s = 0;
    for (int64_t c = 0; c < n; ++c) s += std::exp(xr[c] - m);
    for (int64_t c = 0; c < n; ++c) yr[c] = static_cast<float>(std::exp(xr[c] - m) / s);
  }
}

void log_softmax_rows(Tensor x, Tensor y) {
  check_same(x, y, "log_softmax_rows");
  const int64_t n = x.cols();
  for (int64_t r = 0; r < x.rows(); ++r) {
    const float* xr = x.f32() + r * n;
    float* yr = y.f32() + r * n;
    double m = -INFINITY;
    for (int64_t c = 0; c < n; ++c) m = std::fmax(m, xr[c]);
    double s = 0;
    for (int64_t c = 0; c < n; ++c) s += std::exp(xr[c] - m);
    const double lse = m + std::log(s);
    for (int64_t c = 0; c < n; ++c) yr[c] = static_cast<float>(xr[c] - lse);
  }
}

void softmax_rows_backward(Tensor y, Tensor dy, Tensor dx) {
  check_same(y, dy, "softmax_rows_backward");
  check_same(y, dx, "softmax_rows_backward");
  const int64_t n = y.cols();
  for (int64_t r = 0; r < y.rows(); ++r) {
    const float* yr = y.f32() + r * n;
    const float* dyr = dy.f32() + r * n;
    float* dxr = dx.f32() + r * n;
    double dot = 0;
    for (int64_t c = 0; c < n; ++c) dot += static_cast<double>(yr[c]) * dyr[c];
    for (int64_t c = 0; c < n; ++c) dxr[c] = static_cast<float>(yr[c] * (dyr[c] - dot));
  }
}

void log_softmax_rows_backward(Tensor y, Tensor dy, Tensor dx) {
  check_same(y, dy, "log_softmax_rows_backward");
  check_same(y, dx, "log_softmax_rows_backward");
  const int64_t n = y.cols();
  for (int64_t r = 0; r < y.rows(); ++r) {
    const float* yr = y.f32() + r * n;
    const float* dyr = dy.f32() + r * n;
    float* dxr = dx.f32() + r * n;
    double s = 0;
    for (int64_t c = 0; c < n; ++c) s += dyr[c];
    for (int64_t c = 0; c < n; ++c) dxr[c] = static_cast<float>(dyr[c] - std::exp(yr[c]) * s);
  }
}

double sum(Tensor x) {
  double s = 0;
  for (int64_t i = 0; i < x.numel(); ++i) s += x.f32()[i];
  return s;
}

double sum_squares(Tensor x) {
  double s = 0;
  for (int64_t i = 0; i < x.numel(); ++i) s += static_cast<double>(x.f32()[i]) * x.f32()[i];
  return s;
}

}  // namespace moe::ref
