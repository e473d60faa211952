// bf16 kernels: fp32 -> bf16 conversion and a bf16 GEMM with fp32 accumulation and output.
//
// bf16 keeps the top 16 bits of an IEEE fp32 value: sign, the 8 exponent bits (fp32's range) and
// 7 stored mantissa bits (8 with the implicit one), so one rounding costs at most 2^-9 relative.
// Conversion rounds to nearest, ties to even, on the bit pattern (denormals are kept, not
// flushed); a NaN stays a NaN (quieted, sign kept), ±Inf stays ±Inf, and a finite value too
// large for bf16 rounds to ±Inf as it does in IEEE arithmetic.
//
// gemm_bf16: C (fp32) = alpha · op(A) · op(B) + beta · C with A and B in bf16, the products
// accumulated in fp32 (oneDNN's matmul, AVX512-BF16 or AMX dot products; on a CPU without them,
// the fp32 GEMM on exact fp32 copies of A and B: the same arithmetic, slower than fp32 alone).
// Mixed-precision training
// (Micikevicius et al. 2018; Kalamkar et al. 2019) runs these GEMMs on bf16 copies of fp32
// master weights and keeps every sum and update in fp32. gemm_bf16_ref, the specification,
// widens both operands to fp32 and runs gemm_ref (double accumulation).
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n], rows stored with strides lda, ldb, ldc (in
// elements); n elements for the conversions.
#pragma once

#include <cstdint>
#include <cstring>

#include "moe/core/tensor.h"
#include "moe/kernels/gemm.h"

namespace moe {

using bf16 = uint16_t;  // raw bits; Tensor's DType::kBF16

inline bf16 f32_to_bf16(float x) {
  uint32_t u = 0;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16>((u >> 16) | 0x0040u);  // NaN
  // Round to nearest even: add 0x7fff plus the lowest kept bit, then truncate. A carry into the
  // exponent is the correct rounding up (to the next binade, or to Inf past the largest value).
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<bf16>(u >> 16);
}

inline float bf16_to_f32(bf16 h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float x = 0.0f;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

// dst[i] = f32_to_bf16(src[i]); AVX-512 where the build has it, bit-identical to the reference.
void convert_to_bf16(int64_t n, const float* src, bf16* dst);
void convert_to_bf16_ref(int64_t n, const float* src, bf16* dst);
void convert_to_f32(int64_t n, const bf16* src, float* dst);  // exact
// Tensor forms: src is F32, dst BF16 (or the reverse), same element count.
void convert_to_bf16(Tensor src, Tensor dst);
void convert_to_f32(Tensor src, Tensor dst);

void gemm_bf16(const GemmShape& s, GemmScale scale, const bf16* a, const bf16* b, float* c);

// True when this CPU has bf16 matrix instructions (AVX512-BF16 or AMX) and gemm_bf16 runs on
// them; false when gemm_bf16 widens its operands to fp32 instead. Decided once per process.
bool bf16_is_native();
// gemm_bf16 takes the widened path on every CPU while `on` (tests run both paths on one
// machine); off, it follows bf16_is_native(). Not for use while GEMMs run on other threads.
void force_bf16_widened_for_testing(bool on);
// Whether gemm_bf16 widens its operands now: forced, or no native bf16.
bool bf16_gemm_widens();
void gemm_bf16_ref(const GemmShape& s, GemmScale scale, const bf16* a, const bf16* b, float* c);

// Tensor form: a and b are BF16 matrices, c F32; shapes are checked as for gemm().
void gemm_bf16(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale = {});
void gemm_bf16_ref(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale = {});

}  // namespace moe
