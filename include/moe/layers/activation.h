// Activation layer: y = f(x) elementwise for f in ReLU, GELU (erf form, PyTorch's default),
// GELU-tanh, SiLU, sigmoid, tanh. The math lives in kernels/ops.h; this is the layer-shaped
// wrapper around it, so that activations compose with the other layers the same way.
//
// Dims: T rows · D features.
// Cache: the input x itself; backward needs f'(x). The caller keeps x alive between the calls,
// which is why y must not alias x here (the kernel alone would allow it).
#pragma once

#include "moe/core/tensor.h"
#include "moe/kernels/ops.h"

namespace moe {

struct ActivationCache {
  Tensor x;  // [T, D], the forward input
};

// x [T, D] -> y [T, D]; records x in the cache.
void activation_layer_forward(Activation act, Tensor x, Tensor y, ActivationCache* cache);
// dy [T, D] -> dx [T, D] = dy ⊙ f'(x); dx may alias dy.
void activation_layer_backward(Activation act, const ActivationCache& cache, Tensor dy, Tensor dx);

}  // namespace moe
