// Internal: the oneDNN matmul primitives behind gemm() (fp32 A·Bᵀ, gemm_dnnl.cpp) and gemm_bf16()
// (every layout, bf16_dnnl.cpp), and the shape handling both GEMM front ends share.
//
// C (fp32) = alpha · op(A) · op(B) + beta · C with A and B both fp32 or both bf16, the products
// accumulated in fp32 by oneDNN's brgemm kernels. A primitive is compiled for one exact shape
// (~0.5-2 ms) and an expert's row count changes every step, so matmul_blocked() cuts the rows
// into blocks of kMatmulBlockRows and a last block of the exact remaining count. Each block reads
// all of B (and repacks it), so the remainder is not split further: with many experts of a few
// dozen rows each (E = 256, K = 2, T = 8192: ~64 rows), a cut into a multiple of 32 and a tail
// (71 = 64 + 7) made a second pass over the expert's weights for a handful of rows, which cost the
// forward 13% on one thread (docs/benchmarks.md, "Cost per token as E grows"). That allows up to
// kMatmulBlockRows primitives per shape, each compiled on first use (~1 ms, ~60 KiB measured for
// bf16): worth it for a large operand, not for a small one, where the second pass is cheap and a
// routing that drifts step to step would compile a new primitive nearly every step (a tiny bf16
// layer trained 100 steps took 6x longer). So the exact tail is kept for operands of at least
// kExactTailMinElements, which every fp32 matmul product is (k ≥ 512, n ≥ 64: gemm_dnnl.cpp);
// below it the remainder is a multiple of kRowQuantum and then the tail (at most 48 primitives).
// Row counts of a steady routing repeat, so after the first steps every call finds its
// primitive.
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n], rows stored with strides lda, ldb, ldc (in
// elements of the operand's type).
#pragma once

#include <cstdint>

#include "moe/core/tensor.h"
#include "moe/kernels/gemm.h"

namespace moe {

inline constexpr int64_t kMatmulBlockRows = 512;  // brgemm reaches its large-M speed at 512 rows
inline constexpr int64_t kRowQuantum = 32;
inline constexpr int64_t kExactTailMinElements = 32768;  // an operand re-read per block (B or C)

// op(A) is [m, k], op(B) [k, n], C [m, n], from the stored matrices; `what` names the caller in
// the message of a mismatch.
GemmShape gemm_shape_of(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, const char* what);

// C = beta · C: the whole product when k = 0 (op(A)·op(B) is zero). beta = 0 writes zeros, even
// over NaN.
void scale_output(const GemmShape& s, float beta, float* c);

// True on CPUs without AVX-512 (oneDNN's effective ISA below avx512_core). There oneDNN's fp32
// sgemm and matmul run its gemm:jit kernels, which split a product's k sum over the threads, so
// the bits of C would depend on the thread count and on whether the experts run concurrently.
// gemm() and the widened gemm_bf16 then compute C with sgemm_fixed_blocks. Decided once.
bool fp32_splits_k_over_threads();

// C = alpha · op(A) · op(B) + beta · C cut into fixed blocks of kFixedBlock columns of C (or
// rows, when m > n), each computed by one dnnl_sgemm on one thread (oneDNN runs single-threaded
// inside a parallel region). Every block sums its k terms in the same order however the blocks
// are shared out, so the result is the same on any number of threads. Threads share the blocks
// when called outside a parallel region; inside one, the caller's thread runs them all.
inline constexpr int64_t kFixedBlock = 64;
void sgemm_fixed_blocks(const GemmShape& s, GemmScale scale, const float* a, const float* b,
                        float* c);

// One primitive for exactly `s` (no blocking): A and B of type `src` (kF32 or kBF16), C fp32.
// Primitives are cached per thread (see dnnl_matmul.cpp); the first call of a shape compiles it.
void matmul_exact(const GemmShape& s, GemmScale scale, DType src, const void* a, const void* b,
                  float* c);

// The whole product on primitives of bounded count: the dimension that carries the rows an
// expert receives is cut into blocks of kMatmulBlockRows and the rest (see above). That is m when A
// is not transposed (forward products and dx) and k when it is (weight gradients dW += dYᵀ·X, whose
// m is a fixed width and run whole); the k blocks after the first accumulate (beta = 1).
// T is float (src kF32) or bf16 (uint16_t, src kBF16).
template <typename T>
void matmul_blocked(const GemmShape& s, GemmScale scale, const T* a, const T* b, float* c);

}  // namespace moe
