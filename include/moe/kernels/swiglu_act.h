// The SwiGLU gate as one fused elementwise pass, forward and backward (Shazeer 2020, "GLU
// Variants Improve Transformer"): a = silu(h1) ⊙ h3 with silu(h) = h · σ(h).
//
// Dims: N elements (an expert's hidden state [rows, F] seen flat).
//
//   forward   a[i]   = h1[i] · σ(h1[i]) · h3[i]
//   backward  dh1[i] = da[i] · h3[i] · σ(h1[i]) · (1 + h1[i] · (1 − σ(h1[i])))   (silu')
//             dh3[i] = da[i] · h1[i] · σ(h1[i])                                  (silu)
//
// moe:: is the fast version (vectorised σ from src/kernels/cpu/vec_math.h, threaded over fixed
// blocks unless called inside a parallel region, so the result never depends on the thread
// count); moe::ref:: is the naive specification in double precision, always built. Outputs may
// alias: `a` may be h3, and dh3 may be da (it is written after dh1 reads da), dh1 may not be da.
#pragma once

#include <cstdint>

namespace moe {

void swiglu_act_forward(int64_t n, const float* h1, const float* h3, float* a);
void swiglu_act_backward(int64_t n, const float* h1, const float* h3, const float* da, float* dh1,
                         float* dh3);

namespace ref {
void swiglu_act_forward(int64_t n, const float* h1, const float* h3, float* a);
void swiglu_act_backward(int64_t n, const float* h1, const float* h3, const float* da, float* dh1,
                         float* dh3);
}  // namespace ref

}  // namespace moe
