#include <gtest/gtest.h>

#include "moe/core/rng.h"
#include "moe/kernels/gemm.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

struct GemmCase {
  int64_t m, n, k;
  bool ta, tb;
  float alpha, beta;
};

void check_against_reference(const GemmCase& c) {
  Rng rng(c.m * 131 + c.n * 17 + c.k);
  TensorBuffer a(c.ta ? Shape{c.k, c.m} : Shape{c.m, c.k});
  TensorBuffer b(c.tb ? Shape{c.n, c.k} : Shape{c.k, c.n});
  TensorBuffer fast(Shape{c.m, c.n}), want(Shape{c.m, c.n});
  rng.fill_uniform(a, -1, 1);
  rng.fill_uniform(b, -1, 1);
  rng.fill_uniform(fast, -1, 1);
  copy(want, fast);
  gemm(a, c.ta, b, c.tb, fast, {c.alpha, c.beta});
  gemm_ref(a, c.ta, b, c.tb, want, {c.alpha, c.beta});
  testing::expect_close(fmt::format("gemm m={} n={} k={} {}{} a={} b={}", c.m, c.n, c.k,
                                    c.ta ? 'T' : 'N', c.tb ? 'T' : 'N', c.alpha, c.beta),
                        fast, want, 1e-4, 1e-4 * std::sqrt(static_cast<double>(c.k) + 1));
}

TEST(Gemm, MatchesReferenceAroundSimdWidths) {
  for (int64_t m : {1, 15, 16, 17, 64, 65})
    for (int64_t n : {1, 16, 17, 63})
      for (int64_t k : {1, 15, 16, 65})
        for (bool ta : {false, true})
          for (bool tb : {false, true}) check_against_reference({m, n, k, ta, tb, 1.0f, 0.0f});
}

TEST(Gemm, AlphaBetaAccumulate) {
  check_against_reference({33, 47, 29, false, true, 0.5f, 1.0f});
  check_against_reference({33, 47, 29, true, false, -2.0f, 0.25f});
}

TEST(Gemm, Large) { check_against_reference({300, 257, 513, false, true, 1.0f, 0.0f}); }

TEST(Gemm, ZeroInnerDimensionScalesC) {
  TensorBuffer a(Shape{3, 0}), b(Shape{0, 2}), c(Shape{3, 2});
  fill(c, 4.0f);
  gemm(a, false, b, false, c, {1.0f, 0.5f});
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(c.f32()[i], 2.0f);
}

TEST(Gemm, BetaZeroIgnoresNaNInOutput) {
  TensorBuffer a(Shape{2, 2}), b(Shape{2, 2}), c(Shape{2, 2});
  fill(a, 1.0f);
  fill(b, 1.0f);
  fill(c, NAN);
  gemm(a, false, b, false, c);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(c.f32()[i], 2.0f);
}

}  // namespace
}  // namespace moe
