// Fast fused SwiGLU gate (see include/moe/kernels/swiglu_act.h). One σ per element through
// vec::sigmoid_pair, which also gives 1 − σ without cancellation for silu'. Work is cut into
// fixed blocks, so which elements take the vector body depends only on n, never on threads.
// Inside a parallel region (the MoE layer running experts concurrently) or on small inputs the
// blocks run in a plain loop: even a one-thread OpenMP region costs libgomp an allocation.
//
// Dims: N elements · R rows · F hidden width.
#include <omp.h>

#include <algorithm>

#include "kernels/cpu/vec_math.h"
#include "moe/kernels/swiglu_act.h"

namespace moe {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements below which threads cost more than they save
constexpr int64_t kBlock = 1 << 13;        // elements per task, a multiple of 16 lanes

// block(begin, end) for every block of `block` items out of n, threaded when `elements` (the
// work) pays for it and nothing is running already.
template <typename F>
void for_blocks(int64_t n, int64_t block, int64_t elements, F run) {
  const int64_t n_blocks = (n + block - 1) / block;
  if (elements >= kParallelMin && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n_blocks; ++b) run(b * block, std::min(n, (b + 1) * block));
  } else {
    for (int64_t b = 0; b < n_blocks; ++b) run(b * block, std::min(n, (b + 1) * block));
  }
}

// The element loops, shared by the flat and stacked forms.
inline void forward_span(int64_t n, const float* h1, const float* h3, float* a) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) a[i] = h1[i] * vec::sigmoid(h1[i]) * h3[i];
}

inline void backward_span(int64_t n, const float* h1, const float* h3, const float* da, float* dh1,
                          float* dh3) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float g = h1[i];
    const vec::SigmoidPair s = vec::sigmoid_pair(g);
    const float d = da[i];
    dh1[i] = d * h3[i] * s.pos * std::fma(g, s.neg, 1.0f);
    dh3[i] = d * g * s.pos;
  }
}

}  // namespace

void swiglu_act_forward(int64_t n, const float* h1, const float* h3, float* a) {
  for_blocks(n, kBlock, n, [=](int64_t begin, int64_t end) {
    forward_span(end - begin, h1 + begin, h3 + begin, a + begin);
  });
}

void swiglu_act_backward(int64_t n, const float* h1, const float* h3, const float* da, float* dh1,
                         float* dh3) {
  for_blocks(n, kBlock, n, [=](int64_t begin, int64_t end) {
    backward_span(end - begin, h1 + begin, h3 + begin, da + begin, dh1 + begin, dh3 + begin);
  });
}

// Stacked forms: blocks of whole rows (about kBlock elements of a each), one span per row half.
void swiglu_act_forward_stacked(int64_t rows, int64_t f, const float* h, float* a) {
  if (f == 0) return;
  for_blocks(rows, std::max<int64_t>(1, kBlock / f), rows * f, [=](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      forward_span(f, h + r * 2 * f, h + r * 2 * f + f, a + r * f);
  });
}

void swiglu_act_backward_stacked(int64_t rows, int64_t f, const float* h, const float* da,
                                 float* dh) {
  if (f == 0) return;
  for_blocks(rows, std::max<int64_t>(1, kBlock / f), rows * f, [=](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      backward_span(f, h + r * 2 * f, h + r * 2 * f + f, da + r * f, dh + r * 2 * f,
                    dh + r * 2 * f + f);
  });
}

}  // namespace moe
