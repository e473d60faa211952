// Rotary position embedding (RoPE, Su et al. 2021, "RoFormer"), as in LLaMA and Mixtral: each
// pair of features (2i, 2i+1) of a head is rotated by the angle p · θ^(−2i/Dh) of the token's
// position p, so the dot product of a rotated query and key depends only on their distance.
//
// Pairs are interleaved (Meta's LLaMA and llama.cpp layout; torch_lm_baseline.py's apply_rope):
//   x'[2i]   = x[2i] cos − x[2i+1] sin
//   x'[2i+1] = x[2i] sin + x[2i+1] cos
// The rotation is orthogonal, so the backward is its transpose, the rotation by −angle.
//
// Dims: B sequences · S positions per sequence · H heads · Dh head width (even) · P table rows.
// Rows of x are tokens b·S + s at position pos0 + s; head h holds columns h·Dh .. h·Dh + Dh − 1.
#pragma once

#include <cstdint>

#include "moe/core/tensor.h"

namespace moe {

// cos and sin of position p and frequency i: angle = p · θ^(−2i/Dh), computed in double.
struct RopeTable {
  int64_t max_positions = 0;  // P rows
  int64_t head_dim = 0;       // Dh (even)
  TensorBuffer cos, sin;      // [P, Dh/2]
  static RopeTable build(int64_t max_positions, int64_t head_dim, double theta = 10000.0);
};

// x [B·S, H·Dh] rotated in place; positions pos0 .. pos0 + S − 1 must be rows of the table.
void rope_forward(const RopeTable& t, int64_t batch, int64_t seq, int64_t n_heads, int64_t pos0,
                  Tensor x);
// dx [B·S, H·Dh] in place: dL/dx from dL/dx' (the transpose, rotation by −angle).
void rope_backward(const RopeTable& t, int64_t batch, int64_t seq, int64_t n_heads, int64_t pos0,
                   Tensor dx);

}  // namespace moe
