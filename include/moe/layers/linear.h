// Linear: y = x · Wᵀ + b, with PyTorch's layout W [out, in] so checkpoints map one to one.
//
// Dims: T rows · I = in features · O = out features.
// The layer is a forward/backward pair. Backward writes dx (=) and accumulates dW, db (+=). Its
// cache is the input x, which the caller keeps alive between the two calls.
#pragma once

#include "moe/core/rng.h"
#include "moe/core/tensor.h"

namespace moe {

struct LinearDims {
  int64_t in = 0;
  int64_t out = 0;
  bool bias = true;
};

struct LinearParams {
  Tensor w;  // [O, I]
  Tensor b;  // [O], empty without bias
};
using LinearGrads = LinearParams;

// x [T, I] -> y [T, O]
void linear_forward(const LinearParams& p, Tensor x, Tensor y);
// dy [T, O] -> dx [T, I] (skipped when dx is empty); g.w += dyᵀ·x; g.b += Σ_t dy (each skipped
// when empty: a frozen parameter's gradient)
void linear_backward(const LinearParams& p, const LinearGrads& g, Tensor x, Tensor dy, Tensor dx);
// PyTorch's default: W, b ~ U(-1/√I, 1/√I)
void linear_init(const LinearParams& p, Rng& rng);

}  // namespace moe
