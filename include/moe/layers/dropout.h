// Inverted dropout (Srivastava et al. 2014): in training each element is kept with probability
// 1 − p and scaled by 1/(1 − p), so evaluation is the identity and needs no rescaling.
//
// Dims: T rows · D features (any shape works: the layer is elementwise).
// Cache: the keep mask, uint8 [T, D] (1 kept, 0 dropped), in a buffer the caller provides.
// The mask comes from the counter-based Philox generator (core/rng.h): element i uses lane i % 4
// of the block at counter rng.offset() + i / 4, so the mask is a pure function of (seed, stream,
// offset) and independent of the thread count. The draw advances rng's offset by ⌈n / 4⌉.
// Element i is kept when its uniform u ∈ (0, 1) satisfies u ≥ p.
#pragma once

#include "moe/core/rng.h"
#include "moe/core/tensor.h"

namespace moe {

struct DropoutCache {
  Tensor mask;  // [T, D] uint8
};

// Training: draws cache.mask from rng, then y = x ⊙ mask / (1 − p). y may alias x. p ∈ [0, 1];
// p = 1 drops everything (y = 0).
void dropout_forward(float p, Rng& rng, Tensor x, Tensor y, const DropoutCache& cache);
// Evaluation: y = x (a copy, or nothing when y aliases x).
void dropout_forward_eval(Tensor x, Tensor y);
// Forward with the mask already in cache.mask (a replayed step, or a mask given from outside).
void dropout_apply_mask(float p, const DropoutCache& cache, Tensor x, Tensor y);
// dy [T, D] -> dx = dy ⊙ mask / (1 − p); dx may alias dy.
void dropout_backward(float p, const DropoutCache& cache, Tensor dy, Tensor dx);

}  // namespace moe
