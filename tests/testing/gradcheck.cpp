#include "testing/gradcheck.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace moe::testing {

double project(Tensor y, Tensor r) {
  MOE_CHECK(y.numel() == r.numel(), "project: y {} r {}", y.shape().str(), r.shape().str());
  double s = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(y.f32()[i]) * r.f32()[i];
  return s;
}

void seed_projection(Tensor r, uint64_t seed) {
  Rng rng(seed, 0x9e37);
  rng.fill_normal(r, 0.0f, 1.0f);
}

void expect_gradients_match(const std::function<double()>& loss,
                            const std::vector<GradTarget>& targets, GradCheckOptions opts) {
  for (const GradTarget& t : targets) {
    ASSERT_EQ(t.value.numel(), t.grad.numel()) << t.name << ": value and grad sizes differ";
    const int64_t n = t.value.numel();
    const int64_t step = std::max<int64_t>(1, n / opts.max_elements);
    int failures = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i += step) {
      float* v = t.value.f32() + i;
      const float saved = *v;
      *v = static_cast<float>(saved + opts.eps);
      const double plus = loss();
      *v = static_cast<float>(saved - opts.eps);
      const double minus = loss();
      *v = saved;
      const double numeric = (plus - minus) / (2.0 * opts.eps);
      const double analytic = t.grad.f32()[i];
      const double err = std::fabs(numeric - analytic);
      const double tol = opts.atol + opts.rtol * std::max(std::fabs(numeric), std::fabs(analytic));
      worst = std::max(worst, err);
      if (err > tol && failures++ < 5) {
        ADD_FAILURE() << t.name << "[" << i << "]: analytic " << analytic << " numeric " << numeric
                      << " (|diff| " << err << " > tol " << tol << ")";
      }
    }
    loss();  // leave any cached forward state consistent with the restored values
    std::printf("  gradcheck %-16s max |analytic - numeric| = %.3g over %lld elements\n",
                t.name.c_str(), worst, static_cast<long long>((n + step - 1) / step));
  }
}

int64_t expect_unfrozen_gradients_equal(const ParamStore& reference, const ParamStore& frozen) {
  int64_t compared = 0;
  for (ParamId id = 0; id < frozen.size(); ++id) {
    if (frozen.frozen(id)) continue;
    const Tensor a = reference.grad(id), b = frozen.grad(id);
    EXPECT_EQ(std::memcmp(a.f32(), b.f32(), static_cast<size_t>(a.numel()) * sizeof(float)), 0)
        << frozen.info(id).name;
    ++compared;
  }
  return compared;
}

}  // namespace moe::testing
