// bf16 kernels against their references: conversion bit for bit (special values, random bit
// patterns, tails of the 16-lane loop, the threaded split), the bf16 GEMM at MoE edge sizes on
// both of its paths: oneDNN's bf16 matmul where the CPU has bf16 instructions, and the widened
// fp32 GEMM, forced here so that it is tested on every machine.
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n].
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <ostream>
#include <vector>

#include "kernel_testing.h"
#include "moe/core/rng.h"
#include "moe/kernels/bf16.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

float from_bits(uint32_t u) {
  float x = 0.0f;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

TEST(Bf16, ScalarRoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  // Ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to the even one (1); the tie
  // above an odd last bit goes up.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);  // just above the tie
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f807fffu)), 0x3f80);  // just below
  // Infinities stay; the largest float rounds past bf16's largest finite value to Inf.
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  // Denormals keep their value (rounded), they are not flushed.
  EXPECT_EQ(f32_to_bf16(from_bits(0x00010000u)), 0x0001);
  EXPECT_EQ(f32_to_bf16(from_bits(0x00018000u)), 0x0002);
  // NaN stays NaN, quiet, sign kept, even when its payload lives only in the low bits.
  for (uint32_t nan : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu}) {
    const bf16 h = f32_to_bf16(from_bits(nan));
    EXPECT_TRUE(std::isnan(bf16_to_f32(h))) << std::hex << nan;
    EXPECT_EQ(h & 0x8000u, (nan >> 16) & 0x8000u);
  }
  // Round trip of a value bf16 holds exactly.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(-3.5f)), -3.5f);
}

TEST(Bf16, ConversionMatchesReferenceBitForBit) {
  // Random bit patterns cover every exponent, NaNs, denormals and ties; every length up to 40
  // checks the masked tail of the 16-lane loop, and 300000 the threaded split.
  Rng rng(3);
  std::vector<float> src(300000);
  for (float& x : src) {
    const auto lo = static_cast<uint32_t>(rng.uniform() * 65536.0f);
    const auto hi = static_cast<uint32_t>(rng.uniform() * 65536.0f);
    x = from_bits((hi << 16) | (lo & 0xffffu));
  }
  src[5] = from_bits(0x3f808000u);
  src[6] = from_bits(0x7f800001u);
  for (int64_t n : {0, 1, 15, 16, 17, 31, 33, 40, 300000}) {
    std::vector<bf16> fast(static_cast<size_t>(n) + 1, 0xabcd), want(static_cast<size_t>(n) + 1);
    convert_to_bf16(n, src.data(), fast.data());
    convert_to_bf16_ref(n, src.data(), want.data());
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(fast[static_cast<size_t>(i)], want[static_cast<size_t>(i)])
          << "n=" << n << " i=" << i;
    EXPECT_EQ(fast[static_cast<size_t>(n)], 0xabcd) << "wrote past the end, n=" << n;
  }
}

using Case = testing::GemmCase;

enum class Bf16Path { kNative, kWidened };

void PrintTo(Bf16Path p, std::ostream* os) {
  *os << (p == Bf16Path::kNative ? "native" : "widened");
}

// Every Bf16Gemm test runs on each path; the native one is skipped on a CPU without it.
class Bf16Gemm : public ::testing::TestWithParam<Bf16Path> {
 protected:
  void SetUp() override {
    if (GetParam() == Bf16Path::kNative && !bf16_is_native())
      GTEST_SKIP() << "this CPU has no bf16 matrix instructions (AVX512-BF16 or AMX)";
    force_bf16_widened_for_testing(GetParam() == Bf16Path::kWidened);
    ASSERT_EQ(bf16_gemm_widens(), GetParam() == Bf16Path::kWidened);
  }
  void TearDown() override { force_bf16_widened_for_testing(false); }
};

INSTANTIATE_TEST_SUITE_P(Paths, Bf16Gemm, ::testing::Values(Bf16Path::kNative, Bf16Path::kWidened),
                         [](const ::testing::TestParamInfo<Bf16Path>& info) {
                           return info.param == Bf16Path::kNative ? "Native" : "Widened";
                         });

// Both sides see the same bf16 operands. A product of two bf16 values is exact in fp32 (8 + 8
// significant bits ≤ 24), so the two differ only by fp32 against double accumulation: the same
// tolerance as the fp32 GEMM's test.
void check_against_reference(const Case& c) {
  testing::GemmOperands o = testing::random_operands(c, DType::kBF16);
  gemm_bf16(o.a, c.ta, o.b, c.tb, o.fast, {c.alpha, c.beta});
  gemm_bf16_ref(o.a, c.ta, o.b, c.tb, o.want, {c.alpha, c.beta});
  testing::expect_product_close(c.label("gemm_bf16"), o.fast, o.want, c.k);
}

TEST_P(Bf16Gemm, SmallShapesEveryLayout) {
  for (int64_t m : {1, 15, 17})
    for (int64_t n : {1, 16, 33})
      for (int64_t k : {1, 16, 31})
        for (bool ta : {false, true})
          for (bool tb : {false, true}) check_against_reference({m, n, k, ta, tb, 1.0f, 0.0f});
}

// The rows an expert receives: m for the forward products and dx (A not transposed), k for the
// weight gradients (A transposed), on each side of the 32-row quantum and the 512-row block with
// small operands, and with operands large enough (B or C of 32768 values) for one exact last
// block (dnnl_matmul.h).
TEST_P(Bf16Gemm, RowBlocksAtMoeEdgeSizes) {
  for (int64_t rows : {0, 1, 31, 32, 33, 511, 512, 513, 1061}) {
    for (float beta : {0.0f, 1.0f}) {
      check_against_reference({rows, 48, 64, false, true, 1.0f, beta});   // h = x·W1ᵀ
      check_against_reference({rows, 64, 48, false, false, 1.0f, beta});  // dx = dh·W1
      check_against_reference({48, 64, rows, true, false, 1.0f, beta});   // dW += dhᵀ·x
    }
  }
  check_against_reference({97, 40, 70, false, true, -0.5f, 1.0f});
  check_against_reference({40, 24, 545, true, false, 2.0f, 0.5f});
  for (int64_t rows : {71, 1061}) {
    check_against_reference({rows, 64, 512, false, true, 1.0f, 0.0f});   // B [64, 512]
    check_against_reference({rows, 512, 64, false, false, 1.0f, 1.0f});  // B [64, 512]
    check_against_reference({64, 512, rows, true, false, 1.0f, 1.0f});   // C [64, 512]
  }
}

TEST_P(Bf16Gemm, BetaZeroIgnoresNaNInOutput) {
  TensorBuffer a(Shape{2, 64}, DType::kBF16), b(Shape{8, 64}, DType::kBF16), c(Shape{2, 8});
  std::vector<bf16> one(64 * 8, f32_to_bf16(1.0f));
  std::memcpy(a.view().raw(), one.data(), 2 * 64 * sizeof(bf16));
  std::memcpy(b.view().raw(), one.data(), 8 * 64 * sizeof(bf16));
  fill(c, NAN);
  gemm_bf16(a, false, b, true, c);
  for (int64_t i = 0; i < c.numel(); ++i) ASSERT_EQ(c.f32()[i], 64.0f);
}

TEST_P(Bf16Gemm, StridedOperands) {
  // The packed expert segments are row slices with the full stride.
  testing::StridedProduct p = testing::strided_operands(70, 24, 40, 7, DType::kBF16);
  const bf16* a = p.a.view().data<bf16>();
  const bf16* b = p.b.view().data<bf16>();
  gemm_bf16(p.shape, {1.5f, 0.5f}, a, b, p.fast.f32());
  gemm_bf16_ref(p.shape, {1.5f, 0.5f}, a, b, p.want.f32());
  testing::expect_strided_close("strided bf16 A.Bt", p);
}

TEST_P(Bf16Gemm, CloseToTheFp32ProductWithinBf16Rounding) {
  // What the MoE layer relies on: rounding each operand to bf16 (2^-9 relative each) moves a
  // dot product of k terms by about 2^-8 · sqrt(k) · rms(a)·rms(b) for random signs.
  const int64_t m = 64, n = 32, k = 256;
  Rng rng(11);
  TensorBuffer a32(Shape{m, k}), b32(Shape{n, k}), c16(Shape{m, n}), c32(Shape{m, n});
  TensorBuffer a(a32.shape(), DType::kBF16), b(b32.shape(), DType::kBF16);
  rng.fill_uniform(a32, -1, 1);
  rng.fill_uniform(b32, -1, 1);
  convert_to_bf16(a32, a);
  convert_to_bf16(b32, b);
  gemm_bf16(a, false, b, true, c16);
  gemm_ref(a32, false, b32, true, c32);
  // rms of U(-1, 1) is 1/sqrt(3); 4x margin over the typical error.
  const double typical = std::ldexp(1.0, -8) * std::sqrt(static_cast<double>(k)) / 3.0;
  testing::expect_close("bf16 vs fp32 product", c16, c32, 0.0, 4.0 * typical);
}

TEST_P(Bf16Gemm, RepeatedCallsAreBitIdentical) {
  TensorBuffer a(Shape{300, 64}, DType::kBF16), b(Shape{96, 64}, DType::kBF16);
  TensorBuffer a32(a.shape()), b32(b.shape()), c1(Shape{300, 96}), c2(Shape{300, 96});
  Rng rng(9);
  rng.fill_uniform(a32, -1, 1);
  rng.fill_uniform(b32, -1, 1);
  convert_to_bf16(a32, a);
  convert_to_bf16(b32, b);
  gemm_bf16(a, false, b, true, c1);
  gemm_bf16(a, false, b, true, c2);
  EXPECT_EQ(std::memcmp(c1.f32(), c2.f32(), c1.view().nbytes()), 0);
}

}  // namespace
}  // namespace moe
