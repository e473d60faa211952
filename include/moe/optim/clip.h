// Global-norm gradient clipping (Pascanu et al. 2013), PyTorch's clip_grad_norm_ with the L2 norm.
//
// Dims: N = the ParamStore's arena length.
// The norm is accumulated in double over fixed blocks of each parameter, parameters in store
// order, so it is bit-identical for any thread count.
#pragma once

#include "moe/core/params.h"

namespace moe {

// ‖g‖ = sqrt(Σ over every gradient of a parameter that is not frozen of g²).
double grad_norm(const ParamStore& store);

// Computes ‖g‖ and, when c = max_norm / (‖g‖ + 1e-6) is below 1, scales every gradient by c.
// Returns the norm before clipping. A non-finite norm is returned without scaling, so the
// caller can report the NaN/Inf instead of spreading it over every gradient.
double clip_grad_norm(ParamStore& store, double max_norm);

}  // namespace moe
