// Optimizers and schedules against torch.optim (fixtures from tests/golden/gen_losses_optim.py).
//
// Dims: S steps · O = 3 outputs · I = 4 inputs (a linear regression W [O, I], b [O]).
// Each fixture holds the starting parameters, the gradient PyTorch saw at every step (float32,
// fed here unchanged), the learning rate of every step, and PyTorch's parameters after every
// step plus its final optimizer state. W decays, b does not (ParamInfo.decay = false here, a
// param group with weight_decay 0 there).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "moe/core/params.h"
#include "moe/optim/optimizer.h"
#include "moe/optim/schedule.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

using testing::expect_close;
using testing::Fixture;

struct Tolerance {
  double rtol;
  double atol;
};

// Replays the fixture's steps with `config` and `schedule` and checks
// the learning rate, the parameters after every step and the final state.
void replay(const std::string& fixture, const OptimizerConfig& config, const LrSchedule& schedule,
            Tolerance params_tol) {
  Fixture fx(fixture);
  ASSERT_TRUE(fx.ok());
  const auto n_steps = static_cast<int64_t>(fx.meta_double("steps"));
  TensorBuffer w0 = fx.get("w0"), b0 = fx.get("b0");                  // [O, I], [O]
  TensorBuffer grad_w = fx.get("grad_w"), grad_b = fx.get("grad_b");  // [S, O, I], [S, O]
  TensorBuffer want_w = fx.get("w"), want_b = fx.get("b");            // [S, O, I], [S, O]
  TensorBuffer want_lr = fx.get("lr");                                // [S]
  ASSERT_EQ(want_lr.numel(), n_steps);

  ParamStore store;
  const ParamId w = store.add("w", w0.shape());
  const ParamId b = store.add("b", b0.shape(), /*decay=*/false);
  store.finalize();
  copy(store.value(w), w0);
  copy(store.value(b), b0);
  std::unique_ptr<Optimizer> opt = make_optimizer(store, config);

  TensorBuffer lr_got(Shape{n_steps});  // [S]
  for (int64_t s = 0; s < n_steps; ++s) {
    copy(store.grad(w), Tensor(grad_w)[s]);
    copy(store.grad(b), Tensor(grad_b)[s]);
    const double lr = schedule.lr_at(s);
    lr_got.f32()[s] = static_cast<float>(lr);
    opt->step(lr);
    const std::string at = fmt::format("step {} ", s + 1);
    expect_close(at + "w", store.value(w), Tensor(want_w)[s], params_tol.rtol, params_tol.atol);
    expect_close(at + "b", store.value(b), Tensor(want_b)[s], params_tol.rtol, params_tol.atol);
  }
  expect_close("lr schedule", lr_got, want_lr);
  EXPECT_EQ(opt->step_count(), n_steps);

  // The state tensors hold the same moments as PyTorch's state dict, at the parameters' offsets.
  // Relative only: W's last column has gradients of the order of ε, so its moments are tiny.
  const std::vector<NamedTensor> state = opt->state();
  ASSERT_FALSE(state.empty());
  for (const NamedTensor& st : state) {
    expect_close(st.name + ".w", param_slice(st.tensor, store.info(w)), fx.get(st.name + ".w"),
                 1e-5, 0.0);
    expect_close(st.name + ".b", param_slice(st.tensor, store.info(b)), fx.get(st.name + ".b"),
                 1e-5, 0.0);
  }
}

OptimizerConfig adam_config(const Fixture& fx, OptimizerKind kind) {
  OptimizerConfig c;
  c.kind = kind;
  c.weight_decay = fx.meta_double("weight_decay");
  c.beta1 = fx.meta_double("beta1");
  c.beta2 = fx.meta_double("beta2");
  c.eps = fx.meta_double("eps");
  return c;
}

TEST(OptimGolden, AdamWFiveStepsWithWarmupCosine) {
  Fixture fx("optim_adamw_cosine");
  ASSERT_TRUE(fx.ok());
  const LrSchedule sched =
      LrSchedule::cosine(fx.meta_double("lr"), static_cast<int64_t>(fx.meta_double("total")),
                         static_cast<int64_t>(fx.meta_double("warmup")), fx.meta_double("min_lr"));
  replay("optim_adamw_cosine", adam_config(fx, OptimizerKind::kAdamW), sched, {1e-5, 1e-6});
}

// The 20-step trajectory must stay within 1e-6 ABSOLUTE of PyTorch's float64 run at every step
// (rtol 0). The parameters stay below 1.2 in magnitude, where 1e-6 is at least 8 float32 ulps:
// room for the one rounding per step that storing float32 parameters costs, and nothing more.
TEST(OptimGolden, AdamWTwentyStepTrajectoryWithin1e6Absolute) {
  Fixture fx("optim_adamw_trajectory");
  ASSERT_TRUE(fx.ok());
  const LrSchedule sched =
      LrSchedule::cosine(fx.meta_double("lr"), static_cast<int64_t>(fx.meta_double("total")),
                         static_cast<int64_t>(fx.meta_double("warmup")), fx.meta_double("min_lr"));
  replay("optim_adamw_trajectory", adam_config(fx, OptimizerKind::kAdamW), sched, {0.0, 1e-6});
}

TEST(OptimGolden, AdamL2FiveStepsWithStepDecay) {
  Fixture fx("optim_adam_step");
  ASSERT_TRUE(fx.ok());
  const LrSchedule sched = LrSchedule::step_decay(fx.meta_double("lr"),
                                                  static_cast<int64_t>(fx.meta_double("step_size")),
                                                  fx.meta_double("gamma"));
  replay("optim_adam_step", adam_config(fx, OptimizerKind::kAdam), sched, {1e-5, 1e-6});
}

TEST(OptimGolden, SgdNesterovFiveSteps) {
  Fixture fx("optim_sgd_nesterov");
  ASSERT_TRUE(fx.ok());
  OptimizerConfig c;
  c.kind = OptimizerKind::kSgd;
  c.weight_decay = fx.meta_double("weight_decay");
  c.momentum = fx.meta_double("momentum");
  c.nesterov = true;
  const LrSchedule sched =
      LrSchedule::constant(fx.meta_double("lr"), static_cast<int64_t>(fx.meta_double("warmup")));
  replay("optim_sgd_nesterov", c, sched, {1e-5, 1e-6});
}

}  // namespace
}  // namespace moe
