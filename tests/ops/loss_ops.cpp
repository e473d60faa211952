// The losses as scalar op cases: cross-entropy, MSE and Huber, each option
// checked against central differences of the loss itself (a loss is already a scalar, so no
// projection) and against torch.nn.functional (fixtures from tests/golden/gen_losses_optim.py).
//
// Dims: T rows · C classes.
#include <cmath>
#include <functional>
#include <string>

#include "moe/core/rng.h"
#include "moe/layers/loss.h"
#include "op_cases.h"
#include "testing/tensors.h"

namespace moe::testing {
namespace {

// The losses are computed in double from float inputs, so the central difference is accurate
// to ~1e-5 relative (the float rounding of x ± eps); the tolerances are far tighter than the
// harness defaults, which suit layers whose forward pass runs in float.
constexpr GradCheckOptions kTight{1e-2, 2e-5, 2e-3, 64};

// loss(pred, target, dpred or empty, grad_scale)
using LossFn = std::function<double(Tensor, Tensor, Tensor, double)>;

// A loss as a scalar op over t[pred] and t["target"]: forward writes t["loss"] [1], backward
// writes t["d" + pred] scaled by grad_scale, and L = grad_scale · loss.
OpRun loss_op(OpTensors t, const std::string& pred, const LossFn& fn, double grad_scale = 1.0) {
  OpRun run;
  const Tensor x = t[pred], target = t["target"], loss = t.zeros("loss", Shape{1}),
               dx = t.zeros_like("d" + pred, pred);
  run.y = "";
  run.forward = [fn, x, target, loss] {
    loss.f32()[0] = static_cast<float>(fn(x, target, Tensor(), 1.0));
  };
  run.backward = [fn, x, target, dx, grad_scale](Tensor) { (void)fn(x, target, dx, grad_scale); };
  run.loss = [fn, x, target, grad_scale] { return grad_scale * fn(x, target, Tensor(), 1.0); };
  run.targets = {pred};
  run.t = std::move(t);
  return run;
}

LossFn cross_entropy(CrossEntropyOptions opts) {
  return [opts](Tensor z, Tensor y, Tensor dz, double scale) {
    return cross_entropy_loss(z, y, dz, opts, scale);
  };
}

LossFn mse() {
  return [](Tensor x, Tensor y, Tensor dx, double scale) { return mse_loss(x, y, dx, scale); };
}

LossFn huber(double delta) {
  return [delta](Tensor x, Tensor y, Tensor dx, double scale) {
    return huber_loss(x, y, dx, delta, scale);
  };
}

// The fixture's variant `p` ("plain.", ...): loss and gradient against its tensors.
GoldenSpec loss_golden(const std::string& fixture, const std::string& p, const std::string& pred,
                       std::function<OpRun(const Fixture&)> make) {
  return GoldenSpec{.fixture = fixture,
                    .make = std::move(make),
                    .dy = "",
                    .compare = {{"loss", p + "loss"}, {"d" + pred, p + "d" + pred}}};
}

struct CeOption {
  bool weights = false;
  double smoothing = 0.0;
  bool ignore_some = false;
  double grad_scale = 1.0;
};

OpCase cross_entropy_case(const std::string& name, std::optional<CeOption> check,
                          const char* fixture_variant) {
  OpCase c{.name = "cross_entropy_" + name};
  if (check) {
    c.gradcheck = GradcheckSpec{
        .make =
            [o = *check] {
              const int64_t t_n = 5, c_n = 4;
              Rng rng(11);
              OpTensors t;
              t.add("logits", random_normal({t_n, c_n}, rng, 0.0f, 1.5f));
              const Tensor y = t.add("target", i32_tensor({2, 0, 3, 3, 1}));  // [T]
              if (o.ignore_some) y.data<int32_t>()[1] = kDefaultIgnoreIndex;
              const Tensor w = t.add("weights", random_uniform({c_n}, rng, 0.3f, 2.0f));  // [C]
              CrossEntropyOptions opts;
              if (o.weights) opts.class_weights = w;
              opts.label_smoothing = o.smoothing;
              return loss_op(std::move(t), "logits", cross_entropy(opts), o.grad_scale);
            },
        .tolerance = kTight};
  }
  if (fixture_variant != nullptr) {
    const std::string p = std::string(fixture_variant) + ".";
    c.golden = loss_golden("loss_cross_entropy", p, "logits", [p](const Fixture& f) {
      OpTensors t;
      t.add("logits", f.get(p + "logits"));   // [T, C]
      t.add("target", f.get(p + "targets"));  // [T] int32
      CrossEntropyOptions opts;
      if (f.contains(p + "weights")) opts.class_weights = t.add("weights", f.get(p + "weights"));
      opts.label_smoothing = f.meta_double(p + "label_smoothing");
      return loss_op(std::move(t), "logits", cross_entropy(opts));
    });
  }
  return c;
}

// The regression losses' gradient-check inputs: x, y [4, 5], with every residual moved at least
// 3·eps away from the kinks |d| = δ of the Huber thresholds before it in `kinks`, in order (the
// checks have always run one after another on the same, progressively nudged, inputs).
OpTensors regression_inputs(const std::vector<double>& kinks) {
  const int64_t t_n = 4, c_n = 5;
  Rng rng(13);
  OpTensors t;
  const Tensor x = t.add("pred", random_normal({t_n, c_n}, rng, 0.0f, 2.0f));
  const Tensor y = t.add("target", random_normal({t_n, c_n}, rng, 0.0f, 1.0f));
  // A central difference straddling the kink, where the loss has no second derivative, is off
  // by O(eps).
  for (double delta : kinks)
    for (int64_t i = 0; i < t_n * c_n; ++i) {
      const float d = x.f32()[i] - y.f32()[i];
      if (std::fabs(std::fabs(d) - delta) < 0.03) x.f32()[i] += 0.1f;
    }
  return t;
}

OpRun regression_from_fixture(const Fixture& f, const LossFn& fn) {
  OpTensors t;
  t.add("pred", f.get("pred"));      // [T, C]
  t.add("target", f.get("target"));  // [T, C]
  return loss_op(std::move(t), "pred", fn);
}

OpCase mse_case() {
  OpCase c{.name = "mse"};
  c.gradcheck =
      GradcheckSpec{.make = [] { return loss_op(regression_inputs({}), "pred", mse(), 1.5); },
                    .tolerance = kTight};
  c.golden = loss_golden("loss_regression", "mse.", "pred",
                         [](const Fixture& f) { return regression_from_fixture(f, mse()); });
  return c;
}

// `kinks`: the thresholds checked before this one, then this one (gradient check only).
OpCase huber_case(const std::string& name, const std::vector<double>& kinks,
                  const char* fixture_variant) {
  OpCase c{.name = "huber_" + name};
  if (!kinks.empty()) {
    c.gradcheck = GradcheckSpec{
        .make = [kinks] { return loss_op(regression_inputs(kinks), "pred", huber(kinks.back())); },
        .tolerance = kTight};
  }
  if (fixture_variant != nullptr) {
    const std::string p = std::string(fixture_variant) + ".";
    c.golden = loss_golden("loss_regression", p, "pred", [p](const Fixture& f) {
      return regression_from_fixture(f, huber(f.meta_double(p + "delta")));
    });
  }
  return c;
}

}  // namespace

std::vector<OpCase> loss_op_cases() {
  return {
      cross_entropy_case("plain", CeOption{}, "plain"),
      cross_entropy_case("weighted", CeOption{.weights = true}, "weighted"),
      cross_entropy_case("smoothing", CeOption{.smoothing = 0.15}, "smooth"),
      cross_entropy_case("weighted_smoothing", CeOption{.weights = true, .smoothing = 0.3},
                         "weighted_smooth"),
      cross_entropy_case("weighted_smoothing_ignore",
                         CeOption{.weights = true, .smoothing = 0.1, .ignore_some = true},
                         "weighted_smooth_ignore"),
      // The gradient check adds a grad_scale; the fixture has none.
      cross_entropy_case("ignore", CeOption{.ignore_some = true, .grad_scale = 2.5}, "ignore"),
      cross_entropy_case("large_logits", std::nullopt, "large_logits"),
      mse_case(),
      huber_case("0p5", {0.5}, "huber_0p5"),
      huber_case("1", {0.5, 1.0}, "huber_1"),
      huber_case("2", {0.5, 1.0, 2.0}, nullptr),
      huber_case("3", {}, "huber_3"),
  };
}

}  // namespace moe::testing
