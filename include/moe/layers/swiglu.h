// SwiGLU feed-forward (Shazeer 2020, "GLU Variants Improve Transformer"), the expert FFN of
// LLaMA and Mixtral:  y = W2 · (silu(W1 x) ⊙ (W3 x)),  silu(h) = h · σ(h).
// PyTorch layout and no biases, so checkpoints map one to one: W1, W3 [F, D], W2 [D, F].
//
// Dims: T rows · D model width · F hidden width.
// The parameters, their initialisation and the cache of the two pre-activations; the forward and
// backward passes are the SwiGLU expert's (moe/experts.h), whose gate is the fused
// kernels/swiglu_act.h pass.
#pragma once

#include "moe/core/arena.h"
#include "moe/core/rng.h"
#include "moe/core/tensor.h"

namespace moe {

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

// nn.Linear's default for each projection: W ~ U(-1/√fan_in, 1/√fan_in).
void swiglu_init(const SwigluParams& p, Rng& rng);

}  // namespace moe
