// Gradient checks of a stack of two MoE layers with norms between them (MoeStack): dL/dx and
// every parameter gradient against central differences. Kept out of the op harness because
// MoeStack is a test-only module on its way out (issue 14); the MoE layer itself is an op case
// (tests/ops/moe_layer_ops.cpp).
//
// Dims: T tokens · D model width · F expert hidden width · E experts.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "moe/moe/moe_stack.h"
#include "moe_layer_testing.h"
#include "moe_module_gradcheck.h"
#include "testing/gradcheck.h"

namespace moe {
namespace {

using testing::expert_config;
using testing::gate_config;
using testing::moe_config;

constexpr int64_t kD = 6, kF = 8, kE = 4;

void check_stack(NormKind norm, uint64_t seed) {
  MoeStackConfig c;
  c.norm = norm;
  c.layers = {moe_config(kD, kE, expert_config(ExpertKind::kSwiglu, kF),
                         gate_config(GateKind::kTopKSoftmax, kD, kE, 2)),
              moe_config(kD, 3, expert_config(ExpertKind::kMlp, kF),
                         gate_config(GateKind::kTopKSoftmax, kD, 3, 1))};
  c.layers[1].gate.renormalize = false;
  c.layers[1].gate.switch_loss = 0.3f;
  c.layers[1].shared = {expert_config(ExpertKind::kLinear, 0)};
  MoeStack stack(c);
  ParamStore store;
  stack.declare(store, "blocks");
  store.finalize();
  stack.bind(store);
  Rng rng(seed);
  stack.init(rng);
  testing::spread_routers(store, 4.0f);
  // Gains and biases away from their initial 1 and 0, so their gradients are tested in general.
  for (ParamId id = 0; id < store.size(); ++id) {
    const std::string& n = store.info(id).name;
    if (n.find(".norm.gain") != std::string::npos) rng.fill_uniform(store.value(id), 0.5f, 1.5f);
    if (n.find(".norm.bias") != std::string::npos) rng.fill_uniform(store.value(id), -0.3f, 0.3f);
  }
  const testing::Module m{
      [&](Tensor x, Tensor y, Arena& a) { stack.forward(x, y, true, Rng(3), a); },
      [&](Tensor dy, Tensor dx, Arena& a) { stack.backward(dy, dx, a); },
      [&] { return stack.aux_loss(); },
      [&] {
        return std::vector<const RoutingPlan*>{&stack.layer(0).plan(), &stack.layer(1).plan()};
      }};
  const uint64_t check_seed = seed + 100;
  const testing::GradCheckOptions opts;
  TensorBuffer x(Shape{8, kD}), y(Shape{8, kD}), r(Shape{8, kD}), dx(Shape{8, kD});
  testing::find_usable_input(m, store, x, check_seed, opts);
  ASSERT_FALSE(::testing::Test::HasFailure());
  testing::seed_projection(r, check_seed + 1);
  Arena arena;
  m.forward(x, y, arena);
  m.backward(r, dx, arena);
  auto loss = [&]() {
    arena.reset();
    m.forward(x, y, arena);
    return testing::project(y, r) + m.aux_loss();
  };
  std::vector<testing::GradTarget> targets = {{"dx", x, dx}};
  for (ParamId id = 0; id < store.size(); ++id)
    targets.push_back({"d" + store.info(id).name, store.value(id), store.grad(id)});
  testing::expect_gradients_match(loss, targets, opts);
}

TEST(MoeStackGradcheck, StackedWithRmsNorm) {
  check_stack(NormKind::kRms, 13);
}
TEST(MoeStackGradcheck, StackedWithLayerNorm) {
  check_stack(NormKind::kLayer, 14);
}

}  // namespace
}  // namespace moe
