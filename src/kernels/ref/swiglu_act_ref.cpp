// Reference fused SwiGLU gate: the formulas of include/moe/kernels/swiglu_act.h in double
// precision, one element at a time.
//
// Dims: N elements · R rows · F hidden width.
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

// Row by row through the flat forms: h1 and h3 of row r are h[r, 0..F) and h[r, F..2F). dh may
// be h, since the flat form reads h1[i], h3[i] and da[i] before it writes dh1[i] and dh3[i].
void swiglu_act_forward_stacked(int64_t rows, int64_t f, const float* h, float* a) {
  for (int64_t r = 0; r < rows; ++r)
    swiglu_act_forward(f, h + r * 2 * f, h + r * 2 * f + f, a + r * f);
}

void swiglu_act_backward_stacked(int64_t rows, int64_t f, const float* h, const float* da,
                                 float* dh) {
  for (int64_t r = 0; r < rows; ++r)
    swiglu_act_backward(f, h + r * 2 * f, h + r * 2 * f + f, da + r * f, dh + r * 2 * f,
                        dh + r * 2 * f + f);
}

}  // namespace moe::ref
