// Fast GEMM through oneDNN's sgemm, which dispatches to its AVX-512 JIT kernels at run time and
// threads with OpenMP (the runtime moe uses everywhere, so nothing oversubscribes the cores).
#include <dnnl.h>

#include "moe/kernels/gemm.h"

namespace moe {

namespace {

GemmShape shape_of(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c) {
  GemmShape s;
  s.trans_a = trans_a;
  s.trans_b = trans_b;
  s.m = trans_a ? a.cols() : a.rows();
  s.k = trans_a ? a.rows() : a.cols();
  s.n = trans_b ? b.rows() : b.cols();
  const int64_t kb = trans_b ? b.cols() : b.rows();
  MOE_CHECK(kb == s.k && c.rows() == s.m && c.cols() == s.n,
            "gemm shapes: A{} {} B{} {} C{}", a.shape().str(), trans_a ? "T" : "N",
            b.shape().str(), trans_b ? "T" : "N", c.shape().str());
  s.lda = a.cols();
  s.ldb = b.cols();
  s.ldc = c.cols();
  return s;
}

}  // namespace

void gemm(const GemmShape& s, GemmScale scale, const float* a, const float* b, float* c) {
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {  // op(A)·op(B) is zero: C = beta · C
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t j = 0; j < s.n; ++j)
        c[i * s.ldc + j] = scale.beta == 0.0f ? 0.0f : scale.beta * c[i * s.ldc + j];
    return;
  }
  const dnnl_status_t st = dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k,
                                      scale.alpha, a, s.lda, b, s.ldb, scale.beta, c, s.ldc);
  MOE_CHECK(st == dnnl_success, "dnnl_sgemm failed with status {} (m={} n={} k={})",
            static_cast<int>(st), s.m, s.n, s.k);
}

void gemm(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm(shape_of(a, trans_a, b, trans_b, c), scale, a.f32(), b.f32(), c.f32());
}

void gemm_ref(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm_ref(shape_of(a, trans_a, b, trans_b, c), scale, a.f32(), b.f32(), c.f32());
}

}  // namespace moe
