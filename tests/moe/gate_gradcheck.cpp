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
  bool slot_term = true;      // false: L is the auxiliary losses alone (r = 0)
  bool expect_signal = true;  // dW must not vanish (a zero gradient would pass any check)
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
  // A non-zero selection bias for the sigmoid gate: it steers the choice, never the gradient.
  Tensor bias = gate.bias();
  if (!bias.empty())
    for (int64_t e = 0; e < bias.numel(); ++e) bias.f32()[e] = 0.05f * static_cast<float>(e % 3);

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
    for (size_t s = 0; s < r.size(); ++s) r[s] = k.slot_term ? rb.f32()[s] : 0.0f;
  }
  gate.backward(in, ref, r.data(), dx, arena);
  double largest = 0.0;
  const Tensor dw = store.grad(w_id);
  for (int64_t i = 0; i < dw.numel(); ++i)
    largest = std::max(largest, std::fabs(double{dw.f32()[i]}));
  if (k.expect_signal) {
    EXPECT_GT(largest, 1e-3) << "the router gradient vanishes: nothing is checked";
  }

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

TEST(GateGradcheck, GumbelSoftTraining) {
  GateConfig c = config(GateKind::kGumbelSoftmax, 5, 4, 1);
  c.tau_start = 0.7f;
  check_gate({c, 6, true, 1.0f});
}

// Straight-through is not the derivative of the hard forward (its weight is the constant 1),
// so it is checked against what it stands for: the derivative of the soft weight y_a of the
// chosen expert, y = softmax((l + g)/τ), computed by a soft Gumbel gate with the same router and
// noise. In evaluation the hard gate's gradient is that of softmax(l/τ): the soft gate with g = 0.
void check_straight_through(bool training, bool hard) {
  const int64_t t_n = 6, d = 5, e_n = 4;
  GateConfig c = config(GateKind::kGumbelSoftmax, d, e_n, 1);
  c.hard = hard;
  c.tau_start = 0.8f;
  GateConfig soft_cfg = c;
  soft_cfg.hard = false;
  ParamStore store, soft_store;
  Gate gate(c), soft(soft_cfg);
  gate.declare(store, "router");
  soft.declare(soft_store, "router");
  store.finalize();
  soft_store.finalize();
  gate.bind(store);
  soft.bind(soft_store);
  Rng rng(5);
  gate.init(rng);
  TensorBuffer x(Shape{t_n, d}), noise(Shape{t_n, e_n}), zero_noise(Shape{t_n, e_n});
  TensorBuffer dx(Shape{t_n, d});
  rng.fill_normal(x, 0.0f, 1.0f);
  rng.fill_gumbel(noise);
  GateInput in;
  in.x = x;
  in.training = training;
  in.noise = noise;
  Arena arena;
  RoutingPlan plan;
  AuxLosses aux;
  gate.forward(in, arena, &plan, &aux);
  ASSERT_EQ(plan.n_slots(), t_n);
  std::vector<float> r(static_cast<size_t>(t_n));
  for (int64_t t = 0; t < t_n; ++t)
    r[static_cast<size_t>(t)] = 0.5f + 0.25f * static_cast<float>(t % 3);
  gate.backward(in, plan, r.data(), dx, arena);

  Tensor w = store.value(store.find("router.w"));
  auto surrogate = [&]() {
    copy(soft_store.value(soft_store.find("router.w")), w);
    GateInput sin = in;
    sin.training = true;
    sin.noise = training ? Tensor(noise) : Tensor(zero_noise);
    Arena a;
    RoutingPlan sp;
    AuxLosses sa;
    soft.forward(sin, a, &sp, &sa);
    double l = 0.0;
    for (int64_t t = 0; t < t_n; ++t)
      l += r[static_cast<size_t>(t)] *
           sp.weights[static_cast<size_t>(t * e_n + plan.expert_ids[static_cast<size_t>(t)])];
    return l;
  };
  testing::GradCheckOptions opts;
  opts.eps = 1e-3;
  testing::expect_gradients_match(
      surrogate, {{"dx", x, dx}, {"dW", w, store.grad(store.find("router.w"))}}, opts);
}

TEST(GateGradcheck, GumbelHardStraightThrough) {
  check_straight_through(true, true);
}
TEST(GateGradcheck, GumbelEvaluationStraightThrough) {
  check_straight_through(false, true);
  check_straight_through(false, false);
}

TEST(GateGradcheck, NoisyTopKTraining) {
  check_gate({config(GateKind::kNoisyTopK, 5, 6, 2), 8, true});
}

TEST(GateGradcheck, NoisyTopKEvaluation) {
  check_gate({config(GateKind::kNoisyTopK, 5, 6, 2), 8, false});
}

TEST(GateGradcheck, SigmoidBiasRenormalised) {
  check_gate({config(GateKind::kSigmoidBias, 5, 6, 2), 8, false, 1.0f});
}

TEST(GateGradcheck, SigmoidBiasRawScores) {
  GateConfig c = config(GateKind::kSigmoidBias, 5, 6, 3);
  c.renormalize = false;
  check_gate({c, 8, false, 1.0f});
}

TEST(GateGradcheck, ExpertChoice) {
  check_gate({config(GateKind::kExpertChoice, 5, 4, 1), 10});
}

TEST(GateGradcheck, SinkhornTraining) {
  check_gate({config(GateKind::kSinkhorn, 5, 4, 2), 8, true});
}

TEST(GateGradcheck, SinkhornEvaluationRawWeights) {
  GateConfig c = config(GateKind::kSinkhorn, 5, 4, 1);
  c.renormalize = false;
  check_gate({c, 8, false});
}

// ---- balancing losses, each added to the slot-weight term --------------------------------

// Each loss alone (slot_term false) on the gates where it means something different.
void check_loss(GateKind kind, float GateConfig::*coef, bool training, int64_t k = 2,
                float w_scale = 1.0f, bool expect_signal = true) {
  GateConfig c = config(kind, 5, 4, k);
  c.*coef = 1.0f;
  Case cs{c, 8, training, w_scale};
  cs.slot_term = false;
  cs.expect_signal = expect_signal;
  check_gate(cs);
  cs.slot_term = true;  // and on top of the task term
  check_gate(cs);
}

TEST(GateGradcheck, SwitchLoss) {
  check_loss(GateKind::kTopKSoftmax, &GateConfig::switch_loss, false);
  check_loss(GateKind::kSigmoidBias, &GateConfig::switch_loss, false);  // normalised σ
  // Expert choice fills every expert equally (f = 1/E), so its Switch loss is Σ_e P_e = 1, a
  // constant: the check confirms a zero gradient.
  check_loss(GateKind::kExpertChoice, &GateConfig::switch_loss, false, 2, 1.0f, false);
}

TEST(GateGradcheck, ZLoss) {
  check_loss(GateKind::kTopKSoftmax, &GateConfig::z_loss, false);
  check_loss(GateKind::kDenseSoftmax, &GateConfig::z_loss, false);
}

TEST(GateGradcheck, ImportanceLoss) {
  check_loss(GateKind::kTopKSoftmax, &GateConfig::importance_loss, false, 2, 3.0f);
  check_loss(GateKind::kNoisyTopK, &GateConfig::importance_loss, true, 2, 3.0f);
  check_loss(GateKind::kSigmoidBias, &GateConfig::importance_loss, false, 2, 3.0f);
  check_loss(GateKind::kGumbelSoftmax, &GateConfig::importance_loss, true, 1, 1.0f);
}

TEST(GateGradcheck, LoadLoss) {
  check_loss(GateKind::kNoisyTopK, &GateConfig::load_loss, true, 1, 3.0f);
  check_loss(GateKind::kNoisyTopK, &GateConfig::load_loss, true, 2, 3.0f);
}

}  // namespace
}  // namespace moe
