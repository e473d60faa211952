// Normalisation over the last dimension of [T, D] activations.
//
//   LayerNorm (Ba et al. 2016):  y = (x − μ) · rstd ⊙ gain + bias,  rstd = 1/√(σ² + eps),
//                                μ, σ² the mean and biased variance of the row (as PyTorch).
//   RMSNorm (Zhang & Sennrich 2019), as in LLaMA and Mixtral:
//                                y = x · rstd ⊙ gain,  rstd = 1/√(mean(x²) + eps).
//
// Dims: T rows · D normalised features.
// Cache: the per-row statistics, in buffers the caller provides (or allocate() takes from an
// Arena); backward also needs the input x, which the caller keeps alive.
// Backward writes dx (=) and accumulates dgain, dbias (+=). The parameter gradients sum over rows
// with threads splitting D, so the result does not depend on the thread count.
#pragma once

#include "moe/core/arena.h"
#include "moe/core/tensor.h"

namespace moe {

struct LayerNormParams {
  Tensor gain;  // [D]
  Tensor bias;  // [D], empty for a LayerNorm without bias
};
using LayerNormGrads = LayerNormParams;

struct LayerNormCache {
  Tensor mean;  // [T]
  Tensor rstd;  // [T]
  static LayerNormCache allocate(Arena& arena, int64_t rows);
};

// x [T, D] -> y [T, D]; fills the cache. y may alias x only if the caller does not run backward.
void layer_norm_forward(const LayerNormParams& p, float eps, Tensor x, Tensor y,
                        const LayerNormCache& cache);
// dy [T, D] -> dx [T, D] (skipped when empty; may alias dy); g.gain, g.bias (if not empty) +=
// their gradients.
void layer_norm_backward(const LayerNormParams& p, const LayerNormGrads& g,
                         const LayerNormCache& cache, Tensor x, Tensor dy, Tensor dx);
// gain = 1, bias = 0 (PyTorch's initial values).
void layer_norm_init(const LayerNormParams& p);

struct RmsNormParams {
  Tensor gain;  // [D]
};
using RmsNormGrads = RmsNormParams;

struct RmsNormCache {
  Tensor rstd;  // [T]
  static RmsNormCache allocate(Arena& arena, int64_t rows);
};

// x [T, D] -> y [T, D]; fills the cache.
void rms_norm_forward(const RmsNormParams& p, float eps, Tensor x, Tensor y,
                      const RmsNormCache& cache);
// dy [T, D] -> dx [T, D] (skipped when empty; may alias dy); g.gain += its gradient.
void rms_norm_backward(const RmsNormParams& p, const RmsNormGrads& g, const RmsNormCache& cache,
                       Tensor x, Tensor dy, Tensor dx);
// gain = 1.
void rms_norm_init(const RmsNormParams& p);

}  // namespace moe
