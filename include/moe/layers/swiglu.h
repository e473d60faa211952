// SwiGLU feed-forward (Shazeer 2020, "GLU Variants Improve Transformer"), the expert FFN of
// LLaMA and Mixtral:  y = W2 · (silu(W1 x) ⊙ (W3 x)),  silu(h) = h · σ(h).
// PyTorch layout and no biases, so checkpoints map one to one: W1, W3 [F, D], W2 [D, F].
//
// Dims: T rows · D model width · F hidden width.
// Cache: the two pre-activations h1 = x W1ᵀ and h3 = x W3ᵀ [T, F], in buffers the caller
// provides (or SwigluCache::allocate takes from an Arena). The gated product a = silu(h1) ⊙ h3 is
// not cached: backward recomputes it from h1, h3 (one exp per element, cheaper than T·F floats of
// memory traffic kept alive per expert). Scratch for a and the hidden gradients comes from the
// Arena passed to each call and is released before it returns.
#pragma once

#include "moe/core/arena.h"
#include "moe/core/rng.h"
#include "moe/core/tensor.h"

namespace moe {

struct SwigluDims {
  int64_t model = 0;   // D
  int64_t hidden = 0;  // F
};

struct SwigluParams {
  Tensor w1;  // [F, D], gate projection
  Tensor w2;  // [D, F], down projection
  Tensor w3;  // [F, D], up projection
};
using SwigluGrads = SwigluParams;

struct SwigluCache {
  Tensor h1;  // [T, F] = x · W1ᵀ
  Tensor h3;  // [T, F] = x · W3ᵀ
  static SwigluCache allocate(Arena& arena, int64_t rows, int64_t hidden);
};

// x [T, D] -> y [T, D]; fills cache.h1, cache.h3. Scratch: T·F floats from the arena.
void swiglu_forward(const SwigluParams& p, Tensor x, Tensor y, const SwigluCache& cache,
                    Arena& arena);
// dy [T, D] -> dx [T, D] (skipped when dx is empty); g.w1, g.w2, g.w3 += their gradients.
// Scratch: 2·T·F floats from the arena.
void swiglu_backward(const SwigluParams& p, const SwigluGrads& g, const SwigluCache& cache,
                     Tensor x, Tensor dy, Tensor dx, Arena& arena);
// nn.Linear's default for each projection: W ~ U(-1/√fan_in, 1/√fan_in).
void swiglu_init(const SwigluParams& p, Rng& rng);

// The fused gate on its own, for callers that run the projections themselves (grouped expert
// GEMMs): a = silu(h1) ⊙ h3, all [T, F]; a may alias h3's buffer only if h3 is not needed later.
void swiglu_gate_forward(Tensor h1, Tensor h3, Tensor a);
// da [T, F] -> dh1 = da ⊙ h3 ⊙ silu'(h1), dh3 = da ⊙ silu(h1); dh3 may alias da, dh1 may not.
void swiglu_gate_backward(Tensor h1, Tensor h3, Tensor da, Tensor dh1, Tensor dh3);

}  // namespace moe
