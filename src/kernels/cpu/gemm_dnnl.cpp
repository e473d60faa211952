// Fast GEMM on oneDNN, which dispatches to its AVX-512 JIT kernels at run time and threads with
// OpenMP (the runtime moe uses everywhere, so nothing oversubscribes the cores).
//
// Two oneDNN paths, chosen by layout and size from measurements on MoE shapes
// (docs/benchmarks.md, "GEMM"):
//   - C = A·Bᵀ with k ≥ 512 and n ≥ 64 (the forward product x·Wᵀ of an expert or a router),
//     when m < 1024 or n < k: oneDNN's matmul primitive (brgemm kernels), 1.1-3.6x faster than
//     dnnl_sgemm, whose transposed-B path is slow for long rows of B, most of all at the few
//     hundred rows an expert sees. With m ≥ 1024 and n ≥ k (an up projection of a large batch)
//     dnnl_sgemm is 5-15% faster again.
//   - everything else (the backward products dy·W and dyᵀ·x, small products): dnnl_sgemm, equal
//     or faster there, and with nothing to compile.
// The matmul primitives, their per-thread cache and the row blocking live in dnnl_matmul.cpp,
// shared with gemm_bf16.
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n], rows stored with strides lda, ldb, ldc.
#include <dnnl.hpp>

#include "dnnl_matmul.h"
#include "moe/kernels/gemm.h"

namespace moe {

namespace {

constexpr int64_t kMatmulMinK = 512;  // below it dnnl_sgemm's A·Bᵀ is as fast (measured)
constexpr int64_t kMatmulMinN = 64;
constexpr int64_t kMatmulMaxWideM = 1024;  // from here dnnl_sgemm wins when n ≥ k

bool use_matmul(const GemmShape& s) {
  return !s.trans_a && s.trans_b && s.k >= kMatmulMinK && s.n >= kMatmulMinN &&
         (s.m < kMatmulMaxWideM || s.n < s.k);
}

}  // namespace

void gemm(const GemmShape& s, GemmScale scale, const float* a, const float* b, float* c) {
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) return scale_output(s, scale.beta, c);
  if (use_matmul(s)) return matmul_blocked(s, scale, a, b, c);
  const dnnl_status_t st = dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k,
                                      scale.alpha, a, s.lda, b, s.ldb, scale.beta, c, s.ldc);
  MOE_CHECK(st == dnnl_success, "dnnl_sgemm failed with status {} (m={} n={} k={})",
            static_cast<int>(st), s.m, s.n, s.k);
}

void gemm(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm(gemm_shape_of(a, trans_a, b, trans_b, c, "gemm"), scale, a.f32(), b.f32(), c.f32());
}

void gemm_ref(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm_ref(gemm_shape_of(a, trans_a, b, trans_b, c, "gemm"), scale, a.f32(), b.f32(), c.f32());
}

}  // namespace moe
