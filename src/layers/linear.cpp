#include "moe/layers/linear.h"

#include <cmath>

#include "moe/kernels/gemm.h"
#include "moe/kernels/ops.h"

namespace moe {

void linear_forward(const LinearParams& p, Tensor x, Tensor y) {
  MOE_CHECK(x.cols() == p.w.dim(1) && y.cols() == p.w.dim(0) && x.rows() == y.rows(),
            "linear: x {} W {} y {}", x.shape().str(), p.w.shape().str(), y.shape().str());
  gemm(x, false, p.w, true, y);  // [T, I] · [O, I]ᵀ
  if (!p.b.empty()) add_bias_rows(y, p.b);
}

void linear_backward(const LinearParams& p, const LinearGrads& g, Tensor x, Tensor dy, Tensor dx) {
  MOE_CHECK(dy.rows() == x.rows() && dy.cols() == p.w.dim(0), "linear backward: x {} dy {}",
            x.shape().str(), dy.shape().str());
  if (!dx.empty()) gemm(dy, false, p.w, false, dx);                        // [T, O] · [O, I]
  if (!g.w.empty()) gemm(dy, true, x, false, g.w, GemmScale{1.0f, 1.0f});  // [O, T] · [T, I], +=
  if (!g.b.empty()) sum_rows_accumulate(dy, g.b);
}

void linear_init(const LinearParams& p, Rng& rng) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(p.w.dim(1)));
  rng.fill_uniform(p.w, -bound, bound);
  if (!p.b.empty()) rng.fill_uniform(p.b, -bound, bound);
}

}  // namespace moe
