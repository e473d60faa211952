// The vectorisable math of the fast kernels (src/kernels/cpu/vec_math.h, an internal header)
// against double precision, in ulps, on a sweep of float bit patterns across each input range;
// plus the special values (±0, ±inf, NaN, overflow and underflow edges).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "../../src/kernels/cpu/vec_math.h"

namespace moe {
namespace {

// |got − want| in units of the spacing of floats at want (the subnormal spacing near zero).
double ulp_error(float got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0.0 : INFINITY;
  if (std::isinf(want)) return static_cast<double>(got) == want ? 0.0 : INFINITY;
  const float w = std::fabs(static_cast<float>(want));
  const double spacing =
      w == 0.0f ? std::ldexp(1.0, -149) : static_cast<double>(std::nextafter(w, INFINITY)) - w;
  return std::fabs(static_cast<double>(got) - want) / spacing;
}

struct Sweep {
  double max_ulp = 0.0;
  float worst_x = 0.0f;
  int64_t points = 0;
};

// Every `stride`-th float bit pattern of both signs inside [lo, hi].
template <typename Fast, typename Exact>
Sweep sweep(Fast fast, Exact exact, float lo, float hi, uint32_t stride = 2003) {
  Sweep s;
  for (uint32_t sign : {0u, 0x80000000u}) {
    for (uint32_t bits = 0; bits < 0x7f800000u; bits += stride) {
      const float x = std::bit_cast<float>(bits | sign);
      if (x < lo || x > hi) continue;
      const double e = ulp_error(fast(x), exact(static_cast<double>(x)));
      ++s.points;
      if (!(e <= s.max_ulp)) {
        s.max_ulp = e;
        s.worst_x = x;
      }
    }
  }
  std::printf("  max %.3f ulp at x = %.9g over %lld points\n", s.max_ulp, s.worst_x,
              static_cast<long long>(s.points));
  return s;
}

// The bounds below are the measured maxima over every 7th float (see vec_math.h) with a little
// headroom; a change that loses accuracy fails here.
TEST(VecMath, ExpWithinOneUlp) {
  const Sweep s = sweep([](float x) { return vec::exp(x); }, [](double x) { return std::exp(x); },
                        -110.0f, 90.0f);
  EXPECT_LE(s.max_ulp, 1.1);
}

TEST(VecMath, ExpDiffCarriesTheSubtractionExactly) {
  // exp(a − b) for |a − b| up to ~100, where the float difference alone would be off by up to
  // |a − b|·2^-24 relative (tens of ulps).
  double worst = 0.0;
  for (int i = 0; i < 200000; ++i) {
    const float a = -40.0f + 80.0f * static_cast<float>((i * 7919) % 200000) / 200000.0f;
    const float b = 47.123457f - static_cast<float>(i % 977) * 0.0173f;
    const double want = std::exp(static_cast<double>(a) - static_cast<double>(b));
    worst = std::fmax(worst, ulp_error(vec::exp_diff(a, b), want));
  }
  std::printf("  exp_diff max %.3f ulp\n", worst);
  EXPECT_LE(worst, 1.5);
}

TEST(VecMath, SigmoidAndTanh) {
  auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  EXPECT_LE(sweep([](float x) { return vec::sigmoid(x); }, sigmoid, -110.0f, 110.0f).max_ulp, 3.0);
  EXPECT_LE(sweep([](float x) { return vec::sigmoid_pair(x).neg; },
                  [&](double x) { return sigmoid(-x); }, -110.0f, 110.0f)
                .max_ulp,
            3.0);
  EXPECT_LE(sweep([](float x) { return vec::tanh(x); }, [](double x) { return std::tanh(x); },
                  -20.0f, 20.0f)
                .max_ulp,
            2.0);
  EXPECT_LE(sweep([](float x) { return vec::tanh_grad(x); },
                  [](double x) {
                    const double c = std::cosh(x);
                    return 1.0 / (c * c);
                  },
                  -40.0f, 40.0f)
                .max_ulp,
            4.5);
}

TEST(VecMath, NormalCdfAndPdf) {
  // Down to x = −14 the cdf is ~1e-44 (subnormal): relative accuracy holds through the tail.
  EXPECT_LE(sweep([](float x) { return vec::normal_cdf_pdf(x).cdf; },
                  [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }, -14.0f, 9.0f)
                .max_ulp,
            6.0);
  EXPECT_LE(
      sweep([](float x) { return vec::normal_cdf_pdf(x).pdf; },
            [](double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }, -14.0f, 14.0f)
          .max_ulp,
      2.5);
}

TEST(VecMath, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(vec::exp(0.0f), 1.0f);
  EXPECT_EQ(vec::exp(-0.0f), 1.0f);
  EXPECT_EQ(vec::exp(inf), inf);
  EXPECT_EQ(vec::exp(-inf), 0.0f);
  EXPECT_TRUE(std::isnan(vec::exp(nan)));
  EXPECT_EQ(vec::exp(88.8f), inf);  // past FLT_MAX
  EXPECT_LE(ulp_error(vec::exp(88.72f), std::exp(static_cast<double>(88.72f))),
            1.1);                                        // just below FLT_MAX
  EXPECT_EQ(vec::exp(-103.0f), std::ldexp(1.0f, -149));  // the smallest subnormal
  EXPECT_EQ(vec::exp(-104.5f), 0.0f);
  EXPECT_TRUE(std::isnan(vec::exp_diff(-inf, -inf)));  // as exp(−inf − (−inf)) is
  EXPECT_EQ(vec::exp_diff(-inf, 3.0f), 0.0f);
  EXPECT_EQ(vec::sigmoid(inf), 1.0f);
  EXPECT_EQ(vec::sigmoid(-inf), 0.0f);
  EXPECT_EQ(vec::tanh(inf), 1.0f);
  EXPECT_EQ(vec::tanh(-inf), -1.0f);
  EXPECT_TRUE(std::signbit(vec::tanh(-0.0f)));
  EXPECT_EQ(vec::tanh_grad(inf), 0.0f);
  EXPECT_EQ(vec::normal_cdf_pdf(inf).cdf, 1.0f);
  EXPECT_EQ(vec::normal_cdf_pdf(-inf).cdf, 0.0f);
  EXPECT_EQ(vec::normal_cdf_pdf(-inf).pdf, 0.0f);
  EXPECT_EQ(vec::normal_cdf_pdf(0.0f).cdf, 0.5f);
  for (float v : {vec::sigmoid(nan), vec::tanh(nan), vec::tanh_grad(nan),
                  vec::normal_cdf_pdf(nan).cdf, vec::normal_cdf_pdf(nan).pdf})
    EXPECT_TRUE(std::isnan(v));
}

}  // namespace
}  // namespace moe
