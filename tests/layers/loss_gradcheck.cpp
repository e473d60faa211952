// Finite-difference checks of every loss and option: the analytic d(loss)/d(input) against the
// central difference of the loss itself (a loss is already a scalar, so no projection).
//
// Dims: T rows · C classes.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "moe/core/rng.h"
#include "moe/layers/loss.h"
#include "testing/gradcheck.h"

namespace moe {
namespace {

using testing::expect_gradients_match;
using testing::GradCheckOptions;

// The losses are computed in double from float inputs, so the central difference is accurate
// to ~1e-5 relative (the float rounding of x ± eps); the tolerances are far tighter than the
// harness defaults, which suit layers whose forward pass runs in float.
constexpr GradCheckOptions kTight{1e-2, 2e-5, 2e-3, 64};

struct CeCase {
  const char* name;
  bool weights;
  double smoothing;
  bool ignore_some;
  double grad_scale;
};

TEST(LossGradcheck, CrossEntropyEveryOption) {
  const CeCase cases[] = {
      {"plain", false, 0.0, false, 1.0},
      {"weights", true, 0.0, false, 1.0},
      {"smoothing", false, 0.15, false, 1.0},
      {"weights+smoothing", true, 0.3, false, 1.0},
      {"weights+smoothing+ignore", true, 0.1, true, 1.0},
      {"ignore+grad_scale", false, 0.0, true, 2.5},
  };
  const int64_t T = 5, C = 4;
  for (const CeCase& c : cases) {
    SCOPED_TRACE(c.name);
    Rng rng(11);
    TensorBuffer z(Shape{T, C});  // [T, C]
    rng.fill_normal(z, 0.0f, 1.5f);
    TensorBuffer y(Shape{T}, DType::kI32);  // [T]
    const int32_t ids[] = {2, 0, 3, 3, 1};
    for (int64_t i = 0; i < T; ++i) y.view().data<int32_t>()[i] = ids[i];
    if (c.ignore_some) y.view().data<int32_t>()[1] = kDefaultIgnoreIndex;
    TensorBuffer w(Shape{C});  // [C]
    rng.fill_uniform(w, 0.3f, 2.0f);
    CrossEntropyOptions opts;
    if (c.weights) opts.class_weights = w;
    opts.label_smoothing = c.smoothing;
    TensorBuffer dz(Shape{T, C});
    (void)cross_entropy_loss(z, y, dz, opts, c.grad_scale);
    expect_gradients_match([&] { return c.grad_scale * cross_entropy_loss(z, y, Tensor(), opts); },
                           {{"dlogits", z, dz}}, kTight);
  }
}

TEST(LossGradcheck, BceWithLogitsEveryOption) {
  struct Case {
    const char* name;
    Shape shape;
    bool pos_weight;
    bool soft;
    double grad_scale;
  };
  const Case cases[] = {
      {"vector", Shape{7}, false, false, 1.0},
      {"vector+pos_weight", Shape{7}, true, false, 1.0},
      {"matrix soft", Shape{4, 3}, false, true, 1.0},
      {"matrix soft+pos_weight+grad_scale", Shape{4, 3}, true, true, 0.5},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Rng rng(12);
    TensorBuffer x(c.shape), y(c.shape), dx(c.shape);
    rng.fill_normal(x, 0.0f, 2.0f);
    rng.fill_uniform(y, 0.0f, 1.0f);
    if (!c.soft)
      for (int64_t i = 0; i < y.numel(); ++i) y.f32()[i] = y.f32()[i] < 0.5f ? 0.0f : 1.0f;
    const int64_t cols = c.shape.rank == 1 ? 1 : c.shape[1];
    TensorBuffer pw(Shape{cols});
    rng.fill_uniform(pw, 0.2f, 4.0f);
    BceOptions opts;
    if (c.pos_weight) opts.pos_weight = pw;
    (void)bce_with_logits_loss(x, y, dx, opts, c.grad_scale);
    expect_gradients_match(
        [&] { return c.grad_scale * bce_with_logits_loss(x, y, Tensor(), opts); },
        {{"dlogits", x, dx}}, kTight);
  }
}

TEST(LossGradcheck, MseAndHuber) {
  const int64_t T = 4, C = 5;
  Rng rng(13);
  TensorBuffer x(Shape{T, C}), y(Shape{T, C}), dx(Shape{T, C});
  rng.fill_normal(x, 0.0f, 2.0f);
  rng.fill_normal(y, 0.0f, 1.0f);
  (void)mse_loss(x, y, dx, 1.5);
  expect_gradients_match([&] { return 1.5 * mse_loss(x, y, Tensor()); }, {{"dpred", x, dx}},
                         kTight);
  for (double delta : {0.5, 1.0, 2.0}) {
    SCOPED_TRACE(delta);
    // Keep every residual at least 3·eps away from the kink |d| = δ, where the loss has no
    // second derivative and a central difference straddling it is off by O(eps).
    for (int64_t i = 0; i < T * C; ++i) {
      const float d = x.f32()[i] - y.f32()[i];
      if (std::fabs(std::fabs(d) - delta) < 0.03) x.f32()[i] += 0.1f;
    }
    (void)huber_loss(x, y, dx, delta);
    expect_gradients_match([&] { return huber_loss(x, y, Tensor(), delta); }, {{"dpred", x, dx}},
                           kTight);
  }
}

}  // namespace
}  // namespace moe
