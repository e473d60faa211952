// GEMM: C = alpha · op(A) · op(B) + beta · C, row-major, op = identity or transpose.
//
// gemm() runs on oneDNN (its JIT sgemm picks AVX-512 at run time); gemm_ref() is the naive
// specification, always built, that every fast path is tested against.
#pragma once

#include <cstdint>

#include "moe/core/tensor.h"

namespace moe {

struct GemmShape {
  int64_t m = 0, n = 0, k = 0;  // op(A) is [m, k], op(B) is [k, n], C is [m, n]
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0, ldc = 0;  // leading dimensions (row strides) as stored
};

struct GemmScale {
  float alpha = 1.0f;
  float beta = 0.0f;  // 0 overwrites C (even if it held NaN); 1 accumulates
};

void gemm(const GemmShape& s, GemmScale scale, const float* a, const float* b, float* c);
void gemm_ref(const GemmShape& s, GemmScale scale, const float* a, const float* b, float* c);

// The batch-1 forward product, c[n] = alpha · a[k] · B[n, k]ᵀ + beta · c (B's rows ldb apart):
// every weight read once, shared over every thread whenever there are 8 rows or more, as
// generating a token needs (gemv.cpp). gemm()
// takes this path for m = 1 with A as stored and B transposed when B holds at least 2^18 weights
// and more than one thread is available; the bits do not depend on the thread count.
void gemv_bt(int64_t n, int64_t k, GemmScale scale, const float* a, const float* b, int64_t ldb,
             float* c);

// Tensor form: a, b, c are matrices (rank 2, or seen as [rows, cols]); shapes are checked.
void gemm(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale = {});
void gemm_ref(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale = {});

}  // namespace moe
