// Naive reference GEMM: the specification. Accumulates in double so that it is the more exact of
// the two in every comparison.
#include "moe/kernels/gemm.h"

namespace moe {

void gemm_ref(const GemmShape& s, GemmScale scale, const float* a, const float* b, float* c) {
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < s.k; ++p) {
        const float av = s.trans_a ? a[p * s.lda + i] : a[i * s.lda + p];
        const float bv = s.trans_b ? b[j * s.ldb + p] : b[p * s.ldb + j];
        acc += static_cast<double>(av) * bv;
      }
      float& out = c[i * s.ldc + j];
      const double prior = scale.beta == 0.0f ? 0.0 : static_cast<double>(scale.beta) * out;
      out = static_cast<float>(scale.alpha * acc + prior);
    }
  }
}

}  // namespace moe
