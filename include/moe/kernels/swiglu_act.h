// The SwiGLU gate as one fused elementwise pass, forward and backward (Shazeer 2020, "GLU
// Variants Improve Transformer"): a = silu(h1) ⊙ h3 with silu(h) = h · σ(h).
//
// Dims: N elements (an expert's hidden state [rows, F] seen flat) · R rows · F hidden width.
//
//   forward   a[i]   = h1[i] · σ(h1[i]) · h3[i]
//   backward  dh1[i] = da[i] · h3[i] · σ(h1[i]) · (1 + h1[i] · (1 − σ(h1[i])))   (silu')
//             dh3[i] = da[i] · h1[i] · σ(h1[i])                                  (silu)
//
// moe:: is the fast version (vectorised σ from src/kernels/cpu/vec_math.h, threaded over fixed
// blocks unless called inside a parallel region, so the result never depends on the thread
// count); moe::ref:: is the naive specification in double precision, always built. Outputs may
// alias: `a` may be h3, and dh3 may be da (it is written after dh1 reads da), dh1 may not be da.
//
// The stacked forms take h [R, 2F], each row h1 then h3: the output of one product with the
// stacked weights [W1; W3] (moe/experts.h). a and da are [R, F]; dh [R, 2F] is laid out like h
// (dh1 then dh3 per row, the operand of the stacked weight-gradient product) and may be h itself.
// Each element is computed as by the flat forms.
#pragma once

#include <cstdint>

namespace moe {

void swiglu_act_forward(int64_t n, const float* h1, const float* h3, float* a);
void swiglu_act_backward(int64_t n, const float* h1, const float* h3, const float* da, float* dh1,
                         float* dh3);
void swiglu_act_forward_stacked(int64_t rows, int64_t f, const float* h, float* a);
void swiglu_act_backward_stacked(int64_t rows, int64_t f, const float* h, const float* da,
                                 float* dh);

namespace ref {
void swiglu_act_forward(int64_t n, const float* h1, const float* h3, float* a);
void swiglu_act_backward(int64_t n, const float* h1, const float* h3, const float* da, float* dh1,
                         float* dh3);
void swiglu_act_forward_stacked(int64_t rows, int64_t f, const float* h, float* a);
void swiglu_act_backward_stacked(int64_t rows, int64_t f, const float* h, const float* da,
                                 float* dh);
}  // namespace ref

}  // namespace moe
