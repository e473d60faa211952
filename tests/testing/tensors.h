// The one place a test makes a tensor: seeded random draws and small literal tensors.
//
// A draw from `Rng(seed)` and a draw from an `Rng&` the caller advances give the same values for
// the same generator state, so a test that draws several tensors from one stream keeps its values
// when it switches to these helpers.
#pragma once

#include <cstdint>
#include <vector>

#include "moe/core/rng.h"
#include "moe/core/tensor.h"

namespace moe::testing {

// Uniform(lo, hi) float32 values, drawn from `rng` (which advances) or from a fresh Rng(seed).
TensorBuffer random_uniform(Shape shape, Rng& rng, float lo = -1.0f, float hi = 1.0f);
TensorBuffer random_uniform(Shape shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f);

// N(mean, stddev²) float32 values, drawn from `rng` (which advances) or from a fresh Rng(seed).
TensorBuffer random_normal(Shape shape, Rng& rng, float mean = 0.0f, float stddev = 1.0f);
TensorBuffer random_normal(Shape shape, uint64_t seed, float mean = 0.0f, float stddev = 1.0f);

// Literal tensors: float32 of `shape`, and int32 / int64 vectors (ids, targets, bag offsets).
TensorBuffer f32_tensor(Shape shape, const std::vector<float>& values);
TensorBuffer i32_tensor(const std::vector<int32_t>& values);
TensorBuffer i64_tensor(const std::vector<int64_t>& values);

// A zero tensor shaped and typed like `t`, and a copy of `t`.
TensorBuffer zeros_like(Tensor t);
TensorBuffer clone(Tensor t);

}  // namespace moe::testing
