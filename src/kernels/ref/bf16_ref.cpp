// Reference bf16 kernels: the specification. The conversion is f32_to_bf16 element by element;
// the GEMM widens both operands to fp32 (exactly: a bf16 value is an fp32 value with a shorter
// mantissa) and runs gemm_ref, which accumulates in double.
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n].
#include <vector>

#include "moe/kernels/bf16.h"

namespace moe {

void convert_to_bf16_ref(int64_t n, const float* src, bf16* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

void gemm_bf16_ref(const GemmShape& s, GemmScale scale, const bf16* a, const bf16* b, float* c) {
  // The stored extent of each operand: its rows times its row stride (the last row only as
  // wide as the matrix).
  const int64_t a_rows = s.trans_a ? s.k : s.m, a_cols = s.trans_a ? s.m : s.k;
  const int64_t b_rows = s.trans_b ? s.n : s.k, b_cols = s.trans_b ? s.k : s.n;
  const int64_t a_len = a_rows == 0 ? 0 : (a_rows - 1) * s.lda + a_cols;
  const int64_t b_len = b_rows == 0 ? 0 : (b_rows - 1) * s.ldb + b_cols;
  std::vector<float> a32(static_cast<size_t>(a_len)), b32(static_cast<size_t>(b_len));
  convert_to_f32(a_len, a, a32.data());
  convert_to_f32(b_len, b, b32.data());
  gemm_ref(s, scale, a32.data(), b32.data(), c);
}

}  // namespace moe
