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
// gemv_q8_bt (quantize.h) is the same product over a matrix stored as Q8 blocks: a quarter of the
// bytes to stream, each weight widened to fp32 as dequantize_q8 does in the same loop, so its
// bits are gemv_bt's on the dequantised matrix.
//
// Dims: n outputs (rows of B) · k inner (a's length, B's row length) · ldb B's row stride.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>

#include "moe/kernels/gemm.h"
#include "moe/kernels/quantize.h"

namespace moe {

namespace {

constexpr int64_t kLanes = 16;
constexpr int64_t kRowsPerStep = 4;
static_assert(kQ8Block % kLanes == 0, "a chunk of lanes lies inside one block of scales");

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

// The matrix B: fp32 rows ldb apart, or Q8 rows (int8, k apart) with their block scales.
struct F32Rows {
  const float* b;
  int64_t ldb;
  const float* row(int64_t r) const { return b + r * ldb; }
  // Values [i, i + kLanes) of a row as fp32: the row itself.
  static const float* chunk(const float* row, int64_t /*r*/, int64_t i, float* /*tmp*/) {
    return row + i;
  }
  static float at(const float* row, int64_t /*r*/, int64_t i) { return row[i]; }
};

struct Q8Rows {
  const int8_t* q;
  const float* scales;  // [n, q8_blocks(k)]
  int64_t k;
  int64_t blocks;
  const int8_t* row(int64_t r) const { return q + r * k; }
  // Values [i, i + kLanes) of row r widened into tmp as dequantize_q8 computes them, so the
  // product is gemv_bt's on the dequantised matrix. GCC 12 widens int8 to fp32 four lanes at a
  // time at best, which makes the product compute-bound; AVX2 does eight.
  const float* chunk(const int8_t* row, int64_t r, int64_t i, float* tmp) const {
    const float s = scales[r * blocks + i / kQ8Block];
#if defined(__AVX2__)
    static_assert(kLanes == 16, "two vectors of eight lanes");
    const __m128i q16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i));
    const __m256 sv = _mm256_set1_ps(s);
    const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q16));
    const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q16, 8)));
    _mm256_storeu_ps(tmp, _mm256_mul_ps(lo, sv));
    _mm256_storeu_ps(tmp + 8, _mm256_mul_ps(hi, sv));
#else
    for (int64_t j = 0; j < kLanes; ++j) tmp[j] = static_cast<float>(row[i + j]) * s;
#endif
    return tmp;
  }
  float at(const int8_t* row, int64_t r, int64_t i) const {
    return static_cast<float>(row[i]) * scales[r * blocks + i / kQ8Block];
  }
};

// Rows [begin, end) of B: four at a time, then one at a time, in chunks of 16 lanes (for Q8, a
// chunk lies in one block of 32 and shares its scale).
template <typename Rows>
void rows(const Rows& m, int64_t begin, int64_t end, int64_t k, GemmScale scale, const float* a,
          float* c) {
  const int64_t body = k - k % kLanes;
  int64_t r = begin;
  for (; r + kRowsPerStep <= end; r += kRowsPerStep) {
    const auto* b0 = m.row(r);
    const auto* b1 = m.row(r + 1);
    const auto* b2 = m.row(r + 2);
    const auto* b3 = m.row(r + 3);
    float acc0[kLanes] = {}, acc1[kLanes] = {}, acc2[kLanes] = {}, acc3[kLanes] = {};
    float t0[kLanes], t1[kLanes], t2[kLanes], t3[kLanes];  // Q8 chunks widened
    for (int64_t i = 0; i < body; i += kLanes) {
      const float* w0 = m.chunk(b0, r, i, t0);
      const float* w1 = m.chunk(b1, r + 1, i, t1);
      const float* w2 = m.chunk(b2, r + 2, i, t2);
      const float* w3 = m.chunk(b3, r + 3, i, t3);
#pragma omp simd
      for (int64_t j = 0; j < kLanes; ++j) {
        const float x = a[i + j];
        acc0[j] += x * w0[j];
        acc1[j] += x * w1[j];
        acc2[j] += x * w2[j];
        acc3[j] += x * w3[j];
      }
    }
    for (int64_t i = body; i < k; ++i) {  // the tail into lane i − body
      acc0[i - body] += a[i] * m.at(b0, r, i);
      acc1[i - body] += a[i] * m.at(b1, r + 1, i);
      acc2[i - body] += a[i] * m.at(b2, r + 2, i);
      acc3[i - body] += a[i] * m.at(b3, r + 3, i);
    }
    store(lane_sum(acc0), scale, c + r);
    store(lane_sum(acc1), scale, c + r + 1);
    store(lane_sum(acc2), scale, c + r + 2);
    store(lane_sum(acc3), scale, c + r + 3);
  }
  for (; r < end; ++r) {
    const auto* b0 = m.row(r);
    float acc[kLanes] = {}, t0[kLanes];
    for (int64_t i = 0; i < body; i += kLanes) {
      const float* w0 = m.chunk(b0, r, i, t0);
#pragma omp simd
      for (int64_t j = 0; j < kLanes; ++j) acc[j] += a[i + j] * w0[j];
    }
    for (int64_t i = body; i < k; ++i) acc[i - body] += a[i] * m.at(b0, r, i);
    store(lane_sum(acc), scale, c + r);
  }
}

template <typename Rows>
void product(const Rows& m, int64_t n, int64_t k, GemmScale scale, const float* a, float* c) {
  if (n <= 0) return;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads == 1 || n < 2 * kRowsPerStep) {
    rows(m, 0, n, k, scale, a, c);
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
    rows(m, begin, end, k, scale, a, c);
  }
}

}  // namespace

void gemv_bt(int64_t n, int64_t k, GemmScale scale, const float* a, const float* b, int64_t ldb,
             float* c) {
  product(F32Rows{b, ldb}, n, k, scale, a, c);
}

void gemv_q8_bt(int64_t n, int64_t k, GemmScale scale, const float* a, const int8_t* q,
                const float* scales, float* c) {
  product(Q8Rows{q, scales, k, q8_blocks(k)}, n, k, scale, a, c);
}

}  // namespace moe
