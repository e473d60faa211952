// Golden tests of the gates against PyTorch (tests/golden/gen_gates.py): top-k softmax in its
// three spellings, noisy top-k with the fixture's noise and its importance and load losses, the
// Switch loss and z-loss, expert choice, sigmoid + bias selection, Gumbel-softmax soft and hard
// with the fixture's Gumbel noise.
//
// Dims: T tokens · D model width · E experts · K experts per token · S slots.
//
// Each gate is driven through L = Σ_s r_s · weight_s (+ weighted losses): backward gets
// dweights = r, and the expert ids, weights, loss values, dL/dx and dL/dW are compared.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/moe/gate.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

using testing::expect_close;
using testing::Fixture;

// A gate whose router (and noise projection) come from the fixture.
struct GoldenGate {
  ParamStore store;
  std::unique_ptr<Gate> gate;
  TensorBuffer dx;

  GoldenGate(const GateConfig& c, const Fixture& f) : gate(std::make_unique<Gate>(c)) {
    gate->declare(store, "router");
    store.finalize();
    gate->bind(store);
    copy(store.value(store.find("router.w")), f.get("w"));
    if (c.kind == GateKind::kNoisyTopK)
      copy(store.value(store.find("router.w_noise")), f.get("w_noise"));
  }
  Tensor dw() const { return store.grad(store.find("router.w")); }
  Tensor dw_noise() const { return store.grad(store.find("router.w_noise")); }

  // Forward, then backward with dweights from `dweight_of(slot)`.
  template <typename DWeight>
  RoutingPlan run(GateInput in, AuxLosses* aux, DWeight dweight_of) {
    Arena arena;
    RoutingPlan plan;
    gate->forward(in, arena, &plan, aux);
    std::string why;
    EXPECT_TRUE(validate_plan(plan, &why)) << why;
    std::vector<float> dweights(static_cast<size_t>(plan.n_slots()));
    for (int64_t s = 0; s < plan.n_slots(); ++s)
      dweights[static_cast<size_t>(s)] = dweight_of(plan, s);
    store.zero_grads();
    dx = TensorBuffer(in.x.shape());
    gate->backward(in, plan, dweights.data(), dx, arena);
    return plan;
  }
};

GateConfig config(GateKind kind, Tensor x, Tensor w, int64_t k) {
  GateConfig c;
  c.kind = kind;
  c.d_model = x.dim(1);
  c.n_experts = w.dim(0);
  c.k = k;
  return c;
}

// The plan's per-slot ids and weights as [S] float tensors, for comparison with [T, K] fixtures.
TensorBuffer ids_of(const RoutingPlan& p) {
  TensorBuffer t(Shape{p.n_slots()});
  for (int64_t s = 0; s < p.n_slots(); ++s)
    t.f32()[s] = static_cast<float>(p.expert_ids[static_cast<size_t>(s)]);
  return t;
}
Tensor weights_of(const RoutingPlan& p) {
  return Tensor(const_cast<float*>(p.weights.data()), Shape{p.n_slots()});
}

// dweights = r [T, K] read in slot order.
auto per_slot(Tensor r) {
  return [r](const RoutingPlan&, int64_t s) { return r.f32()[s]; };
}

TEST(GateGolden, TopKSoftmaxThreeWays) {
  Fixture f("gate_topk");
  ASSERT_TRUE(f.ok());
  TensorBuffer x = f.get("x"), w = f.get("w"), r = f.get("r");
  const int64_t k = r.shape()[1];
  for (std::string name : {"plain", "renorm", "after"}) {
    SCOPED_TRACE(name);
    GateConfig c = config(GateKind::kTopKSoftmax, x, w, k);
    c.renormalize = name == "renorm";
    c.softmax_after_topk = name == "after";
    GoldenGate g(c, f);
    GateInput in;
    in.x = x;
    AuxLosses aux;
    RoutingPlan plan = g.run(in, &aux, per_slot(r));
    expect_close(name + " ids", ids_of(plan), f.get(name + "_ids"), 0.0, 0.0);
    expect_close(name + " weights", weights_of(plan), f.get(name + "_weights"));
    expect_close(name + " dx", g.dx, f.get(name + "_dx"));
    expect_close(name + " dW", g.dw(), f.get(name + "_dw"));
  }
}

TEST(GateGolden, NoisyTopKWithFixtureNoiseAndLosses) {
  Fixture f("gate_noisy");
  ASSERT_TRUE(f.ok());
  TensorBuffer x = f.get("x"), w = f.get("w"), noise = f.get("noise"), r = f.get("r");
  GateConfig c = config(GateKind::kNoisyTopK, x, w, r.shape()[1]);
  c.importance_loss = std::strtof(f.meta("importance_coef").c_str(), nullptr);
  c.load_loss = std::strtof(f.meta("load_coef").c_str(), nullptr);
  ASSERT_GT(c.importance_loss, 0.0f);
  ASSERT_GT(c.load_loss, 0.0f);
  GoldenGate g(c, f);
  GateInput in;
  in.x = x;
  in.training = true;
  in.noise = noise;
  AuxLosses aux;
  RoutingPlan plan = g.run(in, &aux, per_slot(r));
  expect_close("ids", ids_of(plan), f.get("ids"), 0.0, 0.0);
  expect_close("weights", weights_of(plan), f.get("weights"));
  float load = static_cast<float>(aux.load_loss),
        importance = static_cast<float>(aux.importance_loss);
  expect_close("load loss", Tensor(&load, Shape{1}), f.get("load_loss"));
  expect_close("importance loss", Tensor(&importance, Shape{1}), f.get("importance_loss"));
  expect_close("dx", g.dx, f.get("dx"));
  expect_close("dW", g.dw(), f.get("dw"));
  expect_close("dW_noise", g.dw_noise(), f.get("dw_noise"));
}

TEST(GateGolden, SwitchLossAndZLoss) {
  Fixture f("gate_switch_z");
  ASSERT_TRUE(f.ok());
  TensorBuffer x = f.get("x"), w = f.get("w");
  GateConfig c = config(GateKind::kTopKSoftmax, x, w, std::atoi(f.meta("k").c_str()));
  c.switch_loss = std::strtof(f.meta("switch_coef").c_str(), nullptr);
  c.z_loss = std::strtof(f.meta("z_coef").c_str(), nullptr);
  ASSERT_EQ(c.k, 2);
  GoldenGate g(c, f);
  GateInput in;
  in.x = x;
  AuxLosses aux;
  g.run(in, &aux, [](const RoutingPlan&, int64_t) { return 0.0f; });  // the losses alone
  float sw = static_cast<float>(aux.switch_loss), z = static_cast<float>(aux.z_loss);
  expect_close("switch loss", Tensor(&sw, Shape{1}), f.get("switch_loss"));
  expect_close("z loss", Tensor(&z, Shape{1}), f.get("z_loss"));
  expect_close("dx", g.dx, f.get("dx"));
  expect_close("dW", g.dw(), f.get("dw"));
}

TEST(GateGolden, ExpertChoice) {
  Fixture f("gate_expert_choice");
  ASSERT_TRUE(f.ok());
  TensorBuffer x = f.get("x"), w = f.get("w"), r = f.get("r");  // r [T, E]
  const int64_t t_n = x.shape()[0], e_n = w.shape()[0];
  GoldenGate g(config(GateKind::kExpertChoice, x, w, 1), f);
  GateInput in;
  in.x = x;
  AuxLosses aux;
  Tensor rt = r;
  RoutingPlan plan = g.run(in, &aux, [rt, e_n](const RoutingPlan& p, int64_t s) {
    return rt
        .f32()[p.slot_token[static_cast<size_t>(s)] * e_n + p.expert_ids[static_cast<size_t>(s)]];
  });
  TensorBuffer mask(Shape{t_n, e_n}), dense(Shape{t_n, e_n});
  for (int64_t s = 0; s < plan.n_slots(); ++s) {
    const int64_t i =
        plan.slot_token[static_cast<size_t>(s)] * e_n + plan.expert_ids[static_cast<size_t>(s)];
    mask.f32()[i] = 1.0f;
    dense.f32()[i] = plan.weights[static_cast<size_t>(s)];
  }
  expect_close("chosen pairs", mask, f.get("mask"), 0.0, 0.0);
  expect_close("weights", dense, f.get("weights"));
  expect_close("dx", g.dx, f.get("dx"));
  expect_close("dW", g.dw(), f.get("dw"));
}

TEST(GateGolden, SigmoidBiasSelection) {
  Fixture f("gate_sigmoid");
  ASSERT_TRUE(f.ok());
  TensorBuffer x = f.get("x"), w = f.get("w"), bias = f.get("bias"), r = f.get("r");
  TensorBuffer changed = f.get("changed_by_bias");
  double n_changed = 0;
  for (int64_t t = 0; t < changed.numel(); ++t) n_changed += changed.f32()[t];
  ASSERT_GT(n_changed, 0) << "the fixture's bias must change some choices to test anything";
  for (std::string name : {"norm", "raw"}) {
    SCOPED_TRACE(name);
    GateConfig c = config(GateKind::kSigmoidBias, x, w, r.shape()[1]);
    c.renormalize = name == "norm";
    GoldenGate g(c, f);
    copy(g.gate->bias(), bias);
    GateInput in;
    in.x = x;
    AuxLosses aux;
    RoutingPlan plan = g.run(in, &aux, per_slot(r));
    expect_close(name + " ids", ids_of(plan), f.get(name + "_ids"), 0.0, 0.0);
    expect_close(name + " weights", weights_of(plan), f.get(name + "_weights"));
    expect_close(name + " dx", g.dx, f.get(name + "_dx"));
    expect_close(name + " dW", g.dw(), f.get(name + "_dw"));
  }
}

TEST(GateGolden, GumbelSoftAndHardWithFixtureNoise) {
  Fixture f("gate_gumbel");
  ASSERT_TRUE(f.ok());
  TensorBuffer x = f.get("x"), w = f.get("w"), noise = f.get("g");
  TensorBuffer r_soft = f.get("r_soft"), r_hard = f.get("r_hard");
  const float tau = std::strtof(f.meta("tau").c_str(), nullptr);
  ASSERT_GT(tau, 0.0f);
  for (bool hard : {false, true}) {
    SCOPED_TRACE(hard ? "hard" : "soft");
    GateConfig c = config(GateKind::kGumbelSoftmax, x, w, 1);
    c.hard = hard;
    c.tau_start = tau;
    c.tau_min = tau;
    GoldenGate g(c, f);
    GateInput in;
    in.x = x;
    in.training = true;
    in.noise = noise;
    AuxLosses aux;
    RoutingPlan plan = g.run(in, &aux, per_slot(hard ? r_hard : r_soft));
    const std::string p = hard ? "hard_" : "soft_";
    if (hard)
      expect_close("hard ids", ids_of(plan), f.get("hard_ids"), 0.0, 0.0);
    else
      expect_close("soft weights", weights_of(plan), f.get("soft_weights"));
    expect_close(p + "dx", g.dx, f.get(p + "dx"));
    expect_close(p + "dW", g.dw(), f.get(p + "dw"));
  }
}

}  // namespace
}  // namespace moe
