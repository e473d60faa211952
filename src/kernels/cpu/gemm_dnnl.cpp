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
// One row times a large Bᵀ (generating a token) is neither: gemv_bt (gemv.cpp) streams B once
// over every thread. The matmul primitives, their per-thread cache and the row blocking live in
// dnnl_matmul.cpp, shared with gemm_bf16. On CPUs without AVX-512 both paths give way to fixed
// blocks of single-threaded sgemm calls (sgemm_fixed_blocks, dnnl_matmul.h), so that the bits of C
// do not depend on the thread count there either.
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n], rows stored with strides lda, ldb, ldc.
#include <omp.h>

#include <algorithm>
#include <dnnl.hpp>

#include "dnnl_matmul.h"
#include "moe/kernels/gemm.h"

namespace moe {

namespace {

constexpr int64_t kMatmulMinK = 512;  // below it dnnl_sgemm's A·Bᵀ is as fast (measured)
constexpr int64_t kMatmulMinN = 64;
constexpr int64_t kMatmulMaxWideM = 1024;  // from here dnnl_sgemm wins when n ≥ k
// Weights from which a single row times Bᵀ goes to gemv_bt when there are threads to share it:
// 1 MiB of fp32, beyond the per-core caches. Smaller products, which the caches hold, gain
// nothing from sharing (make demo's 128-wide model generated 30-50% fewer tokens/s with every
// single-row product on gemv_bt, on a machine busy with other work).
constexpr int64_t kGemvMinWeights = int64_t{1} << 18;
// Multiply-adds from which sgemm_fixed_blocks shares its blocks over threads: about 20 µs of
// one core's work, several times a parallel region's cost when the cores are free.
constexpr int64_t kShareBlocksMinWork = int64_t{1} << 20;

bool use_matmul(const GemmShape& s) {
  return !s.trans_a && s.trans_b && s.k >= kMatmulMinK && s.n >= kMatmulMinN &&
         (s.m < kMatmulMaxWideM || s.n < s.k);
}

void sgemm(const GemmShape& s, GemmScale scale, const float* a, const float* b, float* c) {
  const dnnl_status_t st = dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k,
                                      scale.alpha, a, s.lda, b, s.ldb, scale.beta, c, s.ldc);
  MOE_CHECK(st == dnnl_success, "dnnl_sgemm failed with status {} (m={} n={} k={})",
            static_cast<int>(st), s.m, s.n, s.k);
}

}  // namespace

bool fp32_splits_k_over_threads() {
  static const bool splits = [] {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    return (isa & avx512) != avx512;  // the ISA values are nested bit masks
  }();
  return splits;
}

void sgemm_fixed_blocks(const GemmShape& s, GemmScale scale, const float* a, const float* b,
                        float* c) {
  const bool by_rows = s.m > s.n;
  const int64_t length = by_rows ? s.m : s.n;
  const int64_t blocks = (length + kFixedBlock - 1) / kFixedBlock;
  auto run_block = [&](int64_t i) {
    const int64_t start = i * kFixedBlock;
    GemmShape part = s;
    if (by_rows) {  // rows start.. of op(A) (A [m, k], or Aᵀ stored [k, m]) and of C
      part.m = std::min(kFixedBlock, s.m - start);
      sgemm(part, scale, a + (s.trans_a ? start : start * s.lda), b, c + start * s.ldc);
    } else {  // columns start.. of op(B) (B [k, n], or Bᵀ stored [n, k]) and of C
      part.n = std::min(kFixedBlock, s.n - start);
      sgemm(part, scale, a, b + (s.trans_b ? start * s.ldb : start), c + start);
    }
  };
  // Threads share the blocks only when there are several and enough work to pay for a parallel
  // region: small products (the gradient checks', a router's on a small batch) would spend more
  // on the region's barrier than on the product, and far more when another process holds the
  // cores and the waiting threads spin. Run in the calling thread, each sgemm is told it has one
  // thread (oneDNN would otherwise give it every thread and split its k sum again); inside a
  // parallel region oneDNN runs single-threaded by itself.
  const bool share = blocks > 1 && s.m * s.n * s.k >= kShareBlocksMinWork && !omp_in_parallel() &&
                     omp_get_max_threads() > 1;
  if (!share) {
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (threads > 1) omp_set_num_threads(1);
    for (int64_t i = 0; i < blocks; ++i) run_block(i);
    if (threads > 1) omp_set_num_threads(threads);
    return;
  }
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < blocks; ++i) run_block(i);
}

void gemm(const GemmShape& s, GemmScale scale, const float* a, const float* b, float* c) {
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) return scale_output(s, scale.beta, c);
  if (s.m == 1 && !s.trans_a && s.trans_b && s.n * s.k >= kGemvMinWeights &&
      omp_get_max_threads() > 1 && !omp_in_parallel())
    return gemv_bt(s.n, s.k, scale, a, b, s.ldb, c);
  if (fp32_splits_k_over_threads()) return sgemm_fixed_blocks(s, scale, a, b, c);
  if (use_matmul(s)) return matmul_blocked(s, scale, a, b, c);
  sgemm(s, scale, a, b, c);
}

void gemm(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm(gemm_shape_of(a, trans_a, b, trans_b, c, "gemm"), scale, a.f32(), b.f32(), c.f32());
}

void gemm_ref(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm_ref(gemm_shape_of(a, trans_a, b, trans_b, c, "gemm"), scale, a.f32(), b.f32(), c.f32());
}

}  // namespace moe
