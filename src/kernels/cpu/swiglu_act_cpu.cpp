// Fast fused SwiGLU gate (see include/moe/kernels/swiglu_act.h). One σ per element through
// vec::sigmoid_pair, which also gives 1 − σ without cancellation for silu'. Work is cut into
// fixed blocks, so which elements take the vector body depends only on n, never on threads.
// Inside a parallel region (the MoE layer running experts concurrently) or on small inputs the
// blocks run in a plain loop: even a one-thread OpenMP region costs libgomp an allocation.
//
// Dims: N elements.
#include <omp.h>

#include <algorithm>

#include "kernels/cpu/vec_math.h"
#include "moe/kernels/swiglu_act.h"

namespace moe {

namespace {

constexpr int64_t kActParallelMin = 1
                                    << 15;  // elements below which threads cost more than they save
constexpr int64_t kActBlock = 1 << 13;      // elements per task, a multiple of 16 lanes

// block(b) for every block of n elements, threaded when it pays and nothing is running already.
template <typename F>
void for_blocks(int64_t n, F block) {
  const int64_t n_blocks = (n + kActBlock - 1) / kActBlock;
  if (n >= kActParallelMin && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n_blocks; ++b) block(b * kActBlock, std::min(n, (b + 1) * kActBlock));
  } else {
    for (int64_t b = 0; b < n_blocks; ++b) block(b * kActBlock, std::min(n, (b + 1) * kActBlock));
  }
}

}  // namespace

void swiglu_act_forward(int64_t n, const float* h1, const float* h3, float* a) {
  for_blocks(n, [=](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) a[i] = h1[i] * vec::sigmoid(h1[i]) * h3[i];
  });
}

void swiglu_act_backward(int64_t n, const float* h1, const float* h3, const float* da, float* dh1,
                         float* dh3) {
  for_blocks(n, [=](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      const float g = h1[i];
      const vec::SigmoidPair s = vec::sigmoid_pair(g);
      const float d = da[i];
      dh1[i] = d * h3[i] * s.pos * std::fma(g, s.neg, 1.0f);
      dh3[i] = d * g * s.pos;
    }
  });
}

}  // namespace moe
