// Gradient checks of every gate and every balancing loss: dL/dx, dL/dW_router and dL/dW_noise
// against central differences.
//
// Dims: T tokens · D model width · E experts · S slots.
//
// L = Σ_s r_s · weight_s over the kept slots + Σ coef · aux loss, so backward with dweights = r
// gives the analytic gradient. The routing decision must not change while an input is perturbed
// (a different choice of experts is a jump, not a derivative): the loss function checks that the
// plan's experts and drops stay those of the unperturbed forward, the noise is fixed through
// GateInput.noise, and the router weights are scaled up so logits are well apart.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/kernels/ops.h"
#include "moe/moe/gate.h"
#include "testing/gradcheck.h"

namespace moe {
namespace {

struct Case {
  GateConfig cfg;
  int64_t n_tokens = 6;
  bool training = false;
  float w_scale = 3.0f;  // spreads the logits so that ±eps never flips a choice
  uint64_t seed = 1;
};

void check_gate(const Case& k) {
  const GateConfig& c = k.cfg;
  const int64_t t_n = k.n_tokens, d = c.d_model, e_n = c.n_experts;
  ParamStore store;
  Gate gate(c);
  gate.declare(store, "router");
  store.finalize();
  gate.bind(store);
  Rng rng(k.seed);
  gate.init(rng);
  const ParamId w_id = store.find("router.w"), wn_id = store.find("router.w_noise");
  scale(store.value(w_id), k.w_scale * std::sqrt(static_cast<float>(d)));
  if (wn_id >= 0) rng.fill_uniform(store.value(wn_id), -0.5f, 0.5f);

  TensorBuffer x(Shape{t_n, d}), noise(Shape{t_n, e_n}), dx(Shape{t_n, d});
  rng.fill_normal(x, 0.0f, 1.0f);
  if (c.kind == GateKind::kGumbelSoftmax)
    rng.fill_gumbel(noise);
  else
    rng.fill_normal(noise, 0.0f, 1.0f);
  GateInput in;
  in.x = x;
  in.training = k.training;
  in.noise = noise;

  Arena arena;
  RoutingPlan ref;
  AuxLosses aux;
  gate.forward(in, arena, &ref, &aux);
  std::vector<float> r(static_cast<size_t>(ref.n_slots()));
  {
    TensorBuffer rb(Shape{std::max<int64_t>(ref.n_slots(), 1)});
    testing::seed_projection(rb, k.seed + 100);
    for (size_t s = 0; s < r.size(); ++s) r[s] = rb.f32()[s];
  }
  gate.backward(in, ref, r.data(), dx, arena);

  int flips = 0;
  auto loss = [&]() {
    Arena a;
    RoutingPlan plan;
    AuxLosses al;
    gate.forward(in, a, &plan, &al);
    if (plan.expert_ids != ref.expert_ids || plan.dropped != ref.dropped) ++flips;
    double l = al.weighted_total(c);
    for (int64_t s = 0; s < plan.n_slots() && s < static_cast<int64_t>(r.size()); ++s)
      if (!plan.dropped[static_cast<size_t>(s)]) l += static_cast<double>(r[s]) * plan.weights[s];
    return l;
  };
  std::vector<testing::GradTarget> targets = {{"dx", x, dx},
                                              {"dW", store.value(w_id), store.grad(w_id)}};
  if (wn_id >= 0) targets.push_back({"dW_noise", store.value(wn_id), store.grad(wn_id)});
  testing::GradCheckOptions opts;
  opts.eps = 1e-3;
  testing::expect_gradients_match(loss, targets, opts);
  EXPECT_EQ(flips, 0) << "the routing changed under perturbation: the check is not valid";
}

GateConfig config(GateKind kind, int64_t d, int64_t e, int64_t k) {
  GateConfig c;
  c.kind = kind;
  c.d_model = d;
  c.n_experts = e;
  c.k = k;
  return c;
}

TEST(GateGradcheck, DenseSoftmax) {
  check_gate({config(GateKind::kDenseSoftmax, 5, 4, 1)});
}

TEST(GateGradcheck, TopKSoftmaxThenTopK) {
  GateConfig c = config(GateKind::kTopKSoftmax, 5, 6, 2);
  c.renormalize = false;
  check_gate({c});
}

TEST(GateGradcheck, TopKSoftmaxRenormalised) {
  check_gate({config(GateKind::kTopKSoftmax, 5, 6, 3)});
}

TEST(GateGradcheck, TopKThenSoftmax) {
  GateConfig c = config(GateKind::kTopKSoftmax, 5, 6, 2);
  c.softmax_after_topk = true;
  check_gate({c});
}

TEST(GateGradcheck, TopKWithCapacityDrops) {
  GateConfig c = config(GateKind::kTopKSoftmax, 4, 3, 1);
  c.capacity_factor = 0.5f;  // C = 2 of 10 slots over 3 experts: several dropped
  c.renormalize = false;     // with K = 1 renormalised weights would all be 1
  check_gate({c, 10});
}

// ---- balancing losses, each added to the slot-weight term --------------------------------

TEST(GateGradcheck, SwitchLoss) {
  GateConfig c = config(GateKind::kTopKSoftmax, 5, 4, 2);
  c.switch_loss = 1.0f;
  check_gate({c, 8});
}

TEST(GateGradcheck, ZLoss) {
  GateConfig c = config(GateKind::kTopKSoftmax, 5, 4, 2);
  c.z_loss = 0.5f;
  check_gate({c, 8, false, 1.0f});
}

TEST(GateGradcheck, ImportanceLoss) {
  GateConfig c = config(GateKind::kTopKSoftmax, 5, 4, 2);
  c.importance_loss = 2.0f;
  check_gate({c, 8});
}

}  // namespace
}  // namespace moe
