// gemv_bt: the batch-1 forward product c[n] = alpha · a[k] · B[n, k]ᵀ + beta · c (see gemm.h).
//
// Generating text one token at a time is a chain of these, one per weight matrix, and each reads
// its whole matrix to use every weight once: the product is bound by memory bandwidth, not by
// arithmetic, and one core cannot draw the machine's bandwidth alone. gemm() keeps a product this
// small on one thread (sharing it would cost more than it saves for compute-bound shapes), so
// this streams B once over every thread (gemm() decides when that pays: gemm_dnnl.cpp): four rows
// at a time against the row a, which stays in L1, 16 lanes per row that the compiler turns into
// AVX-512 or AVX2 registers. Each output is the sum of its 16 lanes in a fixed order, computed by
// one thread, so the bits do not depend on the thread count.
//
// Dims: n outputs (rows of B) · k inner (a's length, B's row length) · ldb B's row stride.
#include <omp.h>

#include <algorithm>

#include "moe/kernels/gemm.h"

namespace moe {

namespace {

constexpr int64_t kLanes = 16;
constexpr int64_t kRowsPerStep = 4;

float lane_sum(const float* acc) {
  // Pairwise, in a fixed order: lanes 0..7 + 8..15, then 0..3 + 4..7, ...
  float s[kLanes];
  std::copy(acc, acc + kLanes, s);
  for (int64_t width = kLanes / 2; width > 0; width /= 2)
    for (int64_t j = 0; j < width; ++j) s[j] += s[j + width];
  return s[0];
}

void store(float dot, GemmScale scale, float* c) {
  *c = scale.beta == 0.0f ? scale.alpha * dot : scale.alpha * dot + scale.beta * *c;
}

// Rows [begin, end) of B: four at a time, then one at a time.
void rows(int64_t begin, int64_t end, int64_t k, GemmScale scale, const float* a, const float* b,
          int64_t ldb, float* c) {
  const int64_t body = k - k % kLanes;
  int64_t r = begin;
  for (; r + kRowsPerStep <= end; r += kRowsPerStep) {
    const float* b0 = b + r * ldb;
    const float* b1 = b0 + ldb;
    const float* b2 = b1 + ldb;
    const float* b3 = b2 + ldb;
    float acc0[kLanes] = {}, acc1[kLanes] = {}, acc2[kLanes] = {}, acc3[kLanes] = {};
    for (int64_t i = 0; i < body; i += kLanes) {
#pragma omp simd
      for (int64_t j = 0; j < kLanes; ++j) {
        const float x = a[i + j];
        acc0[j] += x * b0[i + j];
        acc1[j] += x * b1[i + j];
        acc2[j] += x * b2[i + j];
        acc3[j] += x * b3[i + j];
      }
    }
    for (int64_t i = body; i < k; ++i) {  // the tail into lane i − body
      acc0[i - body] += a[i] * b0[i];
      acc1[i - body] += a[i] * b1[i];
      acc2[i - body] += a[i] * b2[i];
      acc3[i - body] += a[i] * b3[i];
    }
    store(lane_sum(acc0), scale, c + r);
    store(lane_sum(acc1), scale, c + r + 1);
    store(lane_sum(acc2), scale, c + r + 2);
    store(lane_sum(acc3), scale, c + r + 3);
  }
  for (; r < end; ++r) {
    const float* b0 = b + r * ldb;
    float acc[kLanes] = {};
    for (int64_t i = 0; i < body; i += kLanes) {
#pragma omp simd
      for (int64_t j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b0[i + j];
    }
    for (int64_t i = body; i < k; ++i) acc[i - body] += a[i] * b0[i];
    store(lane_sum(acc), scale, c + r);
  }
}

}  // namespace

void gemv_bt(int64_t n, int64_t k, GemmScale scale, const float* a, const float* b, int64_t ldb,
             float* c) {
  if (n <= 0) return;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads == 1 || n < 2 * kRowsPerStep) {
    rows(0, n, k, scale, a, b, ldb, c);
    return;
  }
  // Equal shares of rows in multiples of four, one per thread: each row is computed the same way
  // whichever thread has it.
  const int64_t steps = (n + kRowsPerStep - 1) / kRowsPerStep;
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = std::min(n, steps * t / nt * kRowsPerStep);
    const int64_t end = std::min(n, steps * (t + 1) / nt * kRowsPerStep);
    rows(begin, end, k, scale, a, b, ldb, c);
  }
}

}  // namespace moe
