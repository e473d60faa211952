// Reference fused SwiGLU gate: the formulas of include/moe/kernels/swiglu_act.h in double
// precision, one element at a time.
//
// Dims: N elements.
#include <cmath>

#include "moe/kernels/swiglu_act.h"

namespace moe::ref {

namespace {
double sigma(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
}  // namespace

void swiglu_act_forward(int64_t n, const float* h1, const float* h3, float* a) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = h1[i];
    a[i] = static_cast<float>(g * sigma(g) * h3[i]);
  }
}

void swiglu_act_backward(int64_t n, const float* h1, const float* h3, const float* da, float* dh1,
                         float* dh3) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = h1[i], s = sigma(g), d = da[i];
    const double silu_grad = s * (1.0 + g * (1.0 - s));
    dh1[i] = static_cast<float>(d * h3[i] * silu_grad);
    dh3[i] = static_cast<float>(d * g * s);
  }
}

}  // namespace moe::ref
