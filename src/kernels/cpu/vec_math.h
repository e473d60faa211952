// Vectorisable float math for the fast kernels: exp, sigmoid, tanh and the normal CDF.
//
// GCC does not vectorise loops that call std::exp/erf/tanh unless -ffast-math lets it use
// glibc's vector math library, and moe does not build with -ffast-math. These functions are
// branch-free straight-line code (selects, not branches; no table lookups) that the compiler
// inlines into `#pragma omp simd` loops and turns into AVX-512 or AVX2 instructions (16 or 8
// lanes). Every select is done on the bits (`select` below): GCC 12 if-converts a float `?:` for
// AVX-512's mask registers but leaves it a branch for AVX2 ("control flow in loop"), which kept
// every loop calling these functions scalar there.
// The multiply-adds that the accuracy depends on are explicit std::fma (one rounding), so they do
// not hinge on the compiler's choice to contract a·b + c.
//
// Accuracy, measured against double precision on every 7th float of the input range (and checked
// on a sparser sweep by tests/kernels/vec_math_test.cpp): exp within 1.06 ulp, tanh 1.6 ulp,
// sigmoid 2.9 ulp, tanh_grad 4.2 ulp, the normal pdf 2.2 ulp and cdf 5.7 ulp (the cdf is accurate
// relative to itself in the far negative tail too, where 1 + erf would cancel).
//
// Polynomial coefficients are Chebyshev fits (mpmath.chebyfit, 40 digits) rounded to float; each
// comment gives the function fitted and its interval.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace moe::vec {

// c ? a : b as bit operations, which GCC vectorises where it would keep a float ?: as a branch.
inline float select(bool c, float a, float b) {
  const int32_t m = -static_cast<int32_t>(c);
  return std::bit_cast<float>((m & std::bit_cast<int32_t>(a)) | (~m & std::bit_cast<int32_t>(b)));
}

// exp(hi + lo) where lo is a small correction to hi (|lo| ≤ ulp(hi)); exp(x) is exp_parts(x, 0).
//
// Cody & Waite range reduction: n = round(x / ln 2), r = x − n·ln2_hi − n·ln2_lo with ln2_hi
// holding 9 bits, so n·ln2_hi is exact for every n reached here; then e^x = 2^n · e^r with
// |r| ≤ ln(2)/2 and e^r = 1 + r + r²·g(r), g a degree-4 fit of (e^r − 1 − r)/r² on
// [−ln2/2, ln2/2] (its own error is 0.16 of half an ulp). 2^n is applied as two factors 2^(n/2)
// and 2^(n − n/2) so that results in the subnormal range round once and overflow gives +inf.
// Inputs are clamped to [−104, 89], beyond which the result is 0 or +inf anyway; NaN stays NaN.
inline float exp_parts(float hi, float lo) {
  constexpr float kLog2e = 1.44269504f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  const float x = select(hi < -104.0f, -104.0f, select(hi > 89.0f, 89.0f, hi));
  const float lo_kept = select(x == hi, lo, 0.0f);
  const float shifted = std::fma(x, kLog2e, kRoundMagic);
  const float n = shifted - kRoundMagic;
  // The low mantissa bits of `shifted` hold n + 2^22 (n is in [−150, 128]).
  const int32_t ni = std::bit_cast<int32_t>(shifted) - 0x4B400000;
  float r = std::fma(-n, kLn2Hi, x);
  r = std::fma(-n, kLn2Lo, r) + lo_kept;
  float g = 0.00139261759f;
  g = std::fma(g, r, 0.00836317334f);
  g = std::fma(g, r, 0.0416665561f);
  g = std::fma(g, r, 0.166665778f);
  g = std::fma(g, r, 0.5f);
  const float er = std::fma(g, r * r, r) + 1.0f;  // e^r
  const int32_t half = ni >> 1;
  const float scale_a = std::bit_cast<float>((half + 127) << 23);       // 2^(n/2)
  const float scale_b = std::bit_cast<float>((ni - half + 127) << 23);  // 2^(n − n/2)
  const float result = er * scale_a * scale_b;
  return select(hi != hi, hi, result);
}

inline float exp(float x) {
  return exp_parts(x, 0.0f);
}

// exp(a − b) with the subtraction carried exactly (Knuth's TwoSum), so that the result is as
// accurate as exp of the true difference: softmax computes exp(x − max) with |x − max| up to ~100,
// where the rounding of the float difference alone would cost |x − max|·2^-24 relative.
inline float exp_diff(float a, float b) {
  const float d = a - b;
  const float bv = d - a;                        // the part of d that came from −b
  const float err = (a - (d - bv)) + (-b - bv);  // a − b = d + err exactly
  return exp_parts(d, err);
}

// σ(x) = 1 / (1 + e^−x), and σ(−x) = 1 − σ(x) without cancellation: with a = e^−|x| ∈ (0, 1],
// σ(|x|) = 1 / (1 + a) and σ(−|x|) = a / (1 + a). Both tails are accurate to a few ulp.
struct SigmoidPair {
  float pos;  // σ(x)
  float neg;  // σ(−x) = 1 − σ(x)
};

inline SigmoidPair sigmoid_pair(float x) {
  const float a = exp(-std::fabs(x));
  const float big = 1.0f / (1.0f + a);
  const float small = a * big;
  const bool positive = x >= 0.0f;
  return {select(positive, big, small), select(positive, small, big)};
}

inline float sigmoid(float x) {
  return sigmoid_pair(x).pos;
}

// tanh(x). Near zero 1 − 2/(e^{2x} + 1) would cancel, so |x| < 0.55 uses the odd polynomial
// x + x³·h(x²), h a degree-4 fit of (tanh(√s) − √s)/s^{3/2} on s ∈ [0, 0.55²]; beyond it
// tanh|x| = (1 − a)/(1 + a) with a = e^{−2|x|}, where the quotient is at least 0.5 and loses
// nothing.
inline float tanh(float x) {
  const float ax = std::fabs(x);
  const float s = ax * ax;
  float h = -0.00661022775f;
  h = std::fma(h, s, 0.0213093888f);
  h = std::fma(h, s, -0.0539094284f);
  h = std::fma(h, s, 0.133331135f);
  h = std::fma(h, s, -0.333333313f);
  const float near_zero = std::fma(h * s, ax, ax);
  const float a = exp(-2.0f * ax);
  const float far = (1.0f - a) / (1.0f + a);
  return std::copysign(select(ax < 0.55f, near_zero, far), x);
}

// 1 − tanh²(x) = 4a / (1 + a)², a = e^{−2|x|}: the derivative of tanh without the cancellation
// of 1 − t·t when |t| is near 1.
inline float tanh_grad(float x) {
  const float a = exp(-2.0f * std::fabs(x));
  const float d = 1.0f + a;
  return 4.0f * a / (d * d);
}

// Φ(x), the standard normal CDF, and φ(x) = e^{−x²/2} / √(2π), for GELU (Hendrycks & Gimpel
// 2016: gelu(x) = x·Φ(x)). With z = x/√2, Φ(x) = (1 + erf z)/2:
//   |z| < 0.5: erf z = z·e(z²), e a degree-4 fit of erf(√s)/√s on s ∈ [0, 0.25];
//   |z| ≥ 0.5: erfc|z| = e^{−z²}·q(t), t = 2/(2 + |z|), q a degree-9 fit of erfc(z)·e^{z²} in t
//              on z ∈ [0.5, 10]; then Φ = erfc|z|/2 for x < 0 and 1 − erfc|z|/2 for x > 0.
// The negative tail is thus accurate relative to Φ itself, down to where it underflows. e^{−z²}
// is computed from x² split exactly into hi + lo with an fma, since z² up to ~100 would otherwise
// carry a relative error of z²·2^-24 into the exponential.
struct NormalCdfPdf {
  float cdf;  // Φ(x)
  float pdf;  // φ(x)
};

inline NormalCdfPdf normal_cdf_pdf(float x) {
  constexpr float kInvSqrt2 = 0.707106781f;
  constexpr float kInvSqrt2Pi = 0.398942280f;
  const float z = x * kInvSqrt2;
  const float az = std::fabs(z);
  // e^{−x²/2}: x² = sq + sq_lo exactly; halving is exact.
  const float sq = x * x;
  const float sq_lo = std::fma(x, x, -sq);
  const float gauss = exp_parts(-0.5f * sq, -0.5f * sq_lo);
  // Central region.
  const float s = z * z;
  float e = 0.00471908273f;
  e = std::fma(e, s, -0.026757732f);
  e = std::fma(e, s, 0.112828314f);
  e = std::fma(e, s, -0.376126081f);
  e = std::fma(e, s, 1.12837911f);
  const float central = std::fma(0.5f * z, e, 0.5f);
  // Tails.
  const float t = 2.0f / (2.0f + select(az < 10.5f, az, 10.5f));
  float q = -0.0773228258f;
  q = std::fma(q, t, 0.363600105f);
  q = std::fma(q, t, -0.63368082f);
  q = std::fma(q, t, 0.430058092f);
  q = std::fma(q, t, -0.123528197f);
  q = std::fma(q, t, 0.24189885f);
  q = std::fma(q, t, 0.233068854f);
  q = std::fma(q, t, 0.283936948f);
  q = std::fma(q, t, 0.28195256f);
  q = std::fma(q, t, 4.81283405e-06f);
  const float half_erfc = 0.5f * gauss * q;
  const float tail = select(x < 0.0f, half_erfc, 1.0f - half_erfc);
  return {select(az < 0.5f, central, tail), gauss * kInvSqrt2Pi};
}

}  // namespace moe::vec
