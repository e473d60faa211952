// Unit tests of each gate kind's own rules: the Gumbel temperature schedule and noise, noisy
// top-k's noise scale and load loss, the sigmoid gate's bias (selection and the aux-loss-free
// update), expert choice's capacity and ties, hash determinism, Sinkhorn balance.
//
// Dims: T tokens · D model width · E experts · K experts per token · S slots.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "gate_testing.h"
#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/moe/balance.h"
#include "moe/moe/gate.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using namespace gate_testing;  // NOLINT(google-build-using-namespace): test helpers

// ---- Gumbel-softmax ----------------------------------------------------------------------

TEST(GumbelGate, TemperatureSchedule) {
  GateConfig c = config(GateKind::kGumbelSoftmax, 3, 4, 1);
  c.tau_start = 2.0f;
  c.tau_min = 0.5f;
  c.tau_decay = 0.1f;
  auto g = make_gate(c);
  EXPECT_FLOAT_EQ(g->gate->temperature(), 2.0f);
  RoutingPlan plan;
  for (int i = 0; i < 5; ++i) g->gate->after_step(plan);
  EXPECT_EQ(g->gate->step(), 5);
  EXPECT_NEAR(g->gate->temperature(), 2.0 * std::exp(-0.5), 1e-6);
  g->gate->set_state(100);  // 2·e^−10 is below the floor
  EXPECT_FLOAT_EQ(g->gate->temperature(), 0.5f);
  g->gate->set_state(0);
  EXPECT_FLOAT_EQ(g->gate->temperature(), 2.0f);
}

TEST(GumbelGate, SoftWeightsUseTheGivenNoiseAndTemperature) {
  GateConfig c = config(GateKind::kGumbelSoftmax, 3, 4, 1);
  c.tau_start = 0.5f;
  auto g = make_gate(c);
  TensorBuffer x = testing::random_normal(Shape{5, 3}, 24), noise(Shape{5, 4});
  Rng(3).fill_gumbel(noise);
  GateInput in;
  in.x = x;
  in.training = true;
  in.noise = noise;
  Arena arena;
  RoutingPlan plan;
  AuxLosses aux;
  g->gate->forward(in, arena, &plan, &aux);
  expect_valid(plan);
  auto l = logits_of(*g, x);
  for (size_t i = 0; i < l.size(); ++i) l[i] = (l[i] + noise.f32()[i]) / 0.5;
  const auto y = softmax_of(l, 4);
  ASSERT_EQ(plan.n_slots(), 20);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(plan.weights[i], y[i], 1e-6);
}

TEST(GumbelGate, HardIsOneHotAndNoiseOnlyInTraining) {
  GateConfig c = config(GateKind::kGumbelSoftmax, 3, 5, 1);
  c.hard = true;
  auto g = make_gate(c);
  TensorBuffer x = testing::random_normal(Shape{64, 3}, 25);
  const auto l = logits_of(*g, x);
  GateInput in;
  in.x = x;
  Arena arena;
  AuxLosses aux;
  RoutingPlan eval_a, eval_b, train_a, train_b;
  in.rng = Rng(1);
  g->gate->forward(in, arena, &eval_a, &aux);
  in.rng = Rng(2);
  g->gate->forward(in, arena, &eval_b, &aux);
  EXPECT_EQ(eval_a.expert_ids, eval_b.expert_ids);  // evaluation ignores the rng
  for (int64_t t = 0; t < 64; ++t) {
    int best = 0;
    for (int e = 1; e < 5; ++e)
      if (l[t * 5 + e] > l[t * 5 + best]) best = e;
    EXPECT_EQ(eval_a.expert_ids[static_cast<size_t>(t)], best);
    EXPECT_EQ(eval_a.weights[static_cast<size_t>(t)], 1.0f);
  }
  in.training = true;
  in.rng = Rng(1);
  g->gate->forward(in, arena, &train_a, &aux);
  in.rng = Rng(2);
  g->gate->forward(in, arena, &train_b, &aux);
  EXPECT_NE(train_a.expert_ids, train_b.expert_ids);  // 64 tokens: the noise shows
  EXPECT_NE(train_a.expert_ids, eval_a.expert_ids);
  for (float w : train_a.weights) EXPECT_EQ(w, 1.0f);
}

// ---- noisy top-k -------------------------------------------------------------------------

TEST(NoisyGate, EvaluationIsPlainTopKThenSoftmax) {
  auto noisy = make_gate(config(GateKind::kNoisyTopK, 4, 6, 2), 4);
  GateConfig tc = config(GateKind::kTopKSoftmax, 4, 6, 2);
  tc.softmax_after_topk = true;
  auto topk = make_gate(tc, 4);
  TensorBuffer x = testing::random_normal(Shape{20, 4}, 26);
  AuxLosses aux;
  RoutingPlan a = route(*noisy, x, false, nullptr, &aux), b = route(*topk, x);
  EXPECT_EQ(a.expert_ids, b.expert_ids);
  for (size_t s = 0; s < a.weights.size(); ++s) EXPECT_NEAR(a.weights[s], b.weights[s], 1e-6);
  // Without noise the load loss is the CV² of the slot counts.
  std::vector<double> load(6);
  slot_counts(a, load.data());
  EXPECT_NEAR(aux.load_loss, cv_squared(load.data(), 6), 1e-12);
}

TEST(NoisyGate, NoiseScaleFollowsSoftplus) {
  // h = l + n · (softplus(ν) + 0.01): with W_noise = 0 the scale is log 2 + 0.01 everywhere,
  // so a fixed noise n gives a predictable h and choice.
  GateConfig c = config(GateKind::kNoisyTopK, 2, 3, 1);
  auto g = make_gate(c);
  fill(g->w(), 0.0f);  // l = 0: the noise alone decides
  TensorBuffer x = testing::random_normal(Shape{4, 2}, 27), noise(Shape{4, 3});
  const float n[12] = {0, 1, 2, 3, 2, 1, -1, -2, -3, 0.5f, 0.5f, 0.1f};
  for (int i = 0; i < 12; ++i) noise.f32()[i] = n[i];
  GateInput in;
  in.x = x;
  in.training = true;
  in.noise = noise;
  Arena arena;
  RoutingPlan plan;
  AuxLosses aux;
  g->gate->forward(in, arena, &plan, &aux);
  const int32_t want[4] = {2, 0, 0, 0};  // the last row ties 0.5 = 0.5: lower index
  for (int t = 0; t < 4; ++t) EXPECT_EQ(plan.expert_ids[static_cast<size_t>(t)], want[t]) << t;
  // K = 1 of E = 3, the load estimate is defined and finite.
  EXPECT_TRUE(std::isfinite(aux.load_loss));
}

TEST(NoisyGate, AllExpertsChosenMeansNoLoadLoss) {
  GateConfig c = config(GateKind::kNoisyTopK, 3, 3, 3);
  c.load_loss = 1.0f;
  auto g = make_gate(c);
  TensorBuffer x = testing::random_normal(Shape{7, 3}, 28);
  AuxLosses aux;
  route(*g, x, true, nullptr, &aux);
  EXPECT_EQ(aux.load_loss, 0.0);
}

// ---- sigmoid + bias ----------------------------------------------------------------------

TEST(SigmoidGate, BiasSelectsScoresWeigh) {
  for (bool renorm : {true, false}) {
    GateConfig c = config(GateKind::kSigmoidBias, 1, 4, 2);
    c.renormalize = renorm;
    auto g = make_gate(c);
    const float wv[4] = {2.0f, 1.0f, -1.0f, 0.5f};  // scores σ(2), σ(1), σ(−1), σ(0.5) at x = 1
    for (int e = 0; e < 4; ++e) g->w().at(e, 0) = wv[e];
    TensorBuffer x(Shape{1, 1});
    x.f32()[0] = 1.0f;
    RoutingPlan plan = route(*g, x);
    EXPECT_EQ(plan.expert_ids[0], 0);
    EXPECT_EQ(plan.expert_ids[1], 1);
    // A bias of +1 on expert 2 lifts σ(−1) + 1 = 1.27 above every other score.
    g->gate->bias().f32()[2] = 1.0f;
    plan = route(*g, x);
    EXPECT_EQ(plan.expert_ids[0], 2);
    EXPECT_EQ(plan.expert_ids[1], 0);
    const double s2 = 1.0 / (1.0 + std::exp(1.0)), s0 = 1.0 / (1.0 + std::exp(-2.0));
    EXPECT_NEAR(plan.weights[0], renorm ? s2 / (s0 + s2) : s2, 1e-6);  // the score, not the bias
    EXPECT_NEAR(plan.weights[1], renorm ? s0 / (s0 + s2) : s0, 1e-6);
  }
}

TEST(SigmoidGate, AuxFreeBiasUpdateSign) {
  GateConfig c = config(GateKind::kSigmoidBias, 2, 4, 1);
  c.bias_update_rate = 0.25f;
  auto g = make_gate(c);
  RoutingPlan plan;
  plan.reset_uniform(8, 4, 1);
  // Loads 4, 2, 2, 0 (mean 2): expert 0 overloaded, 1 and 2 at the mean, 3 starved.
  const int32_t ids[8] = {0, 0, 0, 0, 1, 1, 2, 2};
  for (int s = 0; s < 8; ++s) plan.expert_ids[static_cast<size_t>(s)] = ids[s];
  sort_slots_by_expert(&plan);
  g->gate->after_step(plan);
  const float want[4] = {-0.25f, 0.0f, 0.0f, 0.25f};
  for (int e = 0; e < 4; ++e) EXPECT_EQ(g->gate->bias().f32()[e], want[e]) << e;
  g->gate->after_step(plan);
  EXPECT_EQ(g->gate->bias().f32()[0], -0.5f);
  EXPECT_EQ(g->gate->step(), 2);
}

TEST(SigmoidGate, BiasBalancesASkewedRouter) {
  // Every token prefers expert 0 (a large shared input feature only it reads); the other
  // experts' scores vary by token. Repeated bias updates must spread the load.
  GateConfig c = config(GateKind::kSigmoidBias, 3, 4, 1);
  c.bias_update_rate = 0.02f;
  auto g = make_gate(c);
  for (int e = 0; e < 4; ++e) g->w().at(e, 2) = e == 0 ? 2.0f : 0.0f;
  TensorBuffer x = testing::random_normal(Shape{64, 3}, 29);
  for (int64_t t = 0; t < 64; ++t) x.view().at(t, 2) = 2.0f;
  RoutingPlan plan = route(*g, x);
  EXPECT_EQ(plan.expert_rows(0), 64);
  // Sign updates keep the biases oscillating around balance, so the load is judged over the
  // last 20 steps: every expert near its fair 16 rows per step, none starved, none flooded.
  std::vector<int64_t> rows(4, 0);
  for (int step = 0; step < 100; ++step) {
    plan = route(*g, x);
    g->gate->after_step(plan);
    if (step >= 80)
      for (int e = 0; e < 4; ++e) rows[static_cast<size_t>(e)] += plan.expert_rows(e);
  }
  for (int e = 0; e < 4; ++e) {
    EXPECT_GE(rows[static_cast<size_t>(e)], 20 * 8) << e;
    EXPECT_LE(rows[static_cast<size_t>(e)], 20 * 32) << e;
  }
}

// ---- expert choice -----------------------------------------------------------------------

TEST(ExpertChoiceGate, EachExpertTakesItsTopCTokens) {
  GateConfig c = config(GateKind::kExpertChoice, 4, 3, 1);
  c.capacity_factor = 1.0f;
  auto g = make_gate(c);
  TensorBuffer x = testing::random_normal(Shape{10, 4}, 30);
  RoutingPlan plan = route(*g, x);
  const int64_t cap = gate_capacity(c, 10);  // ceil(10 / 3) = 4
  ASSERT_EQ(cap, 4);
  const auto p = softmax_of(logits_of(*g, x), 3);
  for (int64_t e = 0; e < 3; ++e) {
    EXPECT_EQ(plan.expert_rows(e), cap);
    // Every token the expert took scores at least as high as every token it left.
    double lowest_taken = 2.0, highest_left = -1.0;
    std::vector<bool> taken(10, false);
    for (int64_t pos = plan.expert_offsets[e]; pos < plan.expert_offsets[e + 1]; ++pos)
      taken[static_cast<size_t>(
          plan.slot_token[static_cast<size_t>(plan.perm[static_cast<size_t>(pos)])])] = true;
    for (int64_t t = 0; t < 10; ++t) {
      const double v = p[static_cast<size_t>(t * 3 + e)];
      if (taken[static_cast<size_t>(t)])
        lowest_taken = std::min(lowest_taken, v);
      else
        highest_left = std::max(highest_left, v);
    }
    EXPECT_GE(lowest_taken, highest_left);
  }
  for (int64_t s = 0; s < plan.n_slots(); ++s) {
    const int64_t t = plan.slot_token[static_cast<size_t>(s)];
    EXPECT_NEAR(plan.weights[static_cast<size_t>(s)],
                p[static_cast<size_t>(t * 3 + plan.expert_ids[static_cast<size_t>(s)])], 1e-6);
  }
}

TEST(ExpertChoiceGate, TokensGetZeroToEExpertsAndTiesPickLowerTokens) {
  GateConfig c = config(GateKind::kExpertChoice, 1, 2, 1);
  c.capacity_factor = 1.0f;  // C = ceil(4 / 2) = 2
  auto g = make_gate(c);
  g->w().at(0, 0) = 1.0f;
  g->w().at(1, 0) = -1.0f;
  // p_{t,0} = σ(2x): tokens 1 and 3 are best for expert 0, and also worst for expert 1 (whose
  // best are 0 and 2). With x = (−1, 1, −1, 1) every token gets exactly one expert.
  TensorBuffer x(Shape{4, 1});
  const float xs[4] = {-1.0f, 1.0f, -1.0f, 1.0f};
  for (int i = 0; i < 4; ++i) x.f32()[i] = xs[i];
  RoutingPlan plan = route(*g, x);
  for (int t = 0; t < 4; ++t)
    EXPECT_EQ(
        plan.token_offsets[static_cast<size_t>(t + 1)] - plan.token_offsets[static_cast<size_t>(t)],
        1);
  // All equal scores (x = 0): both experts take tokens 0 and 1; tokens 2 and 3 get nothing.
  fill(x, 0.0f);
  plan = route(*g, x);
  const int64_t want[5] = {0, 2, 4, 4, 4};
  for (int t = 0; t < 5; ++t) EXPECT_EQ(plan.token_offsets[static_cast<size_t>(t)], want[t]) << t;
}

// ---- hash --------------------------------------------------------------------------------

TEST(HashGate, FixedDeterministicAndBalancedWithoutParameters) {
  GateConfig c = config(GateKind::kHash, 3, 8, 1);
  auto g = make_gate(c);
  EXPECT_EQ(g->store.size(), 0);  // nothing to learn
  TensorBuffer x = testing::random_normal(Shape{1000, 3}, 31);
  RoutingPlan a = route(*g, x);
  std::vector<int64_t> ids(1000);
  for (int64_t t = 0; t < 1000; ++t) ids[static_cast<size_t>(t)] = 5000 + t;
  GateInput in;
  in.x = x;
  in.first_row = 5000;
  Arena arena;
  RoutingPlan b, by_token;
  AuxLosses aux;
  g->gate->forward(in, arena, &b, &aux);
  in.first_row = 0;
  in.token_ids = ids.data();
  g->gate->forward(in, arena, &by_token, &aux);
  EXPECT_EQ(b.expert_ids, by_token.expert_ids);  // token ids and row ids hash alike
  EXPECT_NE(a.expert_ids, b.expert_ids);
  // The same id always lands on the same expert, whatever its position in the batch.
  std::vector<int64_t> same(4, 42);
  in.token_ids = same.data();
  TensorBuffer x4 = testing::random_normal(Shape{4, 3}, 32);
  in.x = x4;
  RoutingPlan s;
  g->gate->forward(in, arena, &s, &aux);
  for (int t = 1; t < 4; ++t) EXPECT_EQ(s.expert_ids[static_cast<size_t>(t)], s.expert_ids[0]);
  // 1000 consecutive ids spread over 8 experts: every expert within ±40% of its 125.
  for (int64_t e = 0; e < 8; ++e) {
    EXPECT_GT(a.expert_rows(e), 75);
    EXPECT_LT(a.expert_rows(e), 175);
  }
  for (float w : a.weights) EXPECT_EQ(w, 1.0f);
  // Backward contributes nothing.
  TensorBuffer dx(Shape{1000, 3});
  std::vector<float> dweights(1000, 1.0f);
  in.x = x;
  in.token_ids = nullptr;
  g->gate->forward(in, arena, &a, &aux);
  g->gate->backward(in, a, dweights.data(), dx, arena);
  for (int64_t i = 0; i < dx.numel(); ++i) EXPECT_EQ(dx.f32()[i], 0.0f);
}

// ---- Sinkhorn ----------------------------------------------------------------------------

TEST(SinkhornGate, BalanceImprovesOnASkewedRouter) {
  GateConfig c = config(GateKind::kSinkhorn, 4, 4, 1);
  c.sinkhorn_iterations = 16;
  auto g = make_gate(c);
  // Expert 0's row dominates for most tokens: greedy routing collapses onto it.
  for (int i = 0; i < 4; ++i) g->w().at(0, i) += 0.8f;
  TensorBuffer x = testing::random_normal(Shape{64, 4}, 33);
  for (int64_t t = 0; t < 64; ++t)
    for (int i = 0; i < 4; ++i) x.view().at(t, i) = 0.5f + 0.5f * x.view().at(t, i);
  RoutingPlan greedy = route(*g, x, false), balanced = route(*g, x, true);
  int64_t greedy_max = 0, balanced_max = 0;
  for (int e = 0; e < 4; ++e) {
    greedy_max = std::max(greedy_max, greedy.expert_rows(e));
    balanced_max = std::max(balanced_max, balanced.expert_rows(e));
  }
  EXPECT_GT(greedy_max, 32);    // the skew is real
  EXPECT_LE(balanced_max, 24);  // near the fair 16
  // The weights stay the ordinary softmax probabilities (K = 1, renormalised: 1).
  for (float w : balanced.weights) EXPECT_EQ(w, 1.0f);
}

TEST(SinkhornGate, EvaluationIsGreedyTopK) {
  auto s = make_gate(config(GateKind::kSinkhorn, 4, 5, 2), 6);
  auto t = make_gate(config(GateKind::kTopKSoftmax, 4, 5, 2), 6);
  TensorBuffer x = testing::random_normal(Shape{16, 4}, 34);
  RoutingPlan a = route(*s, x, false), b = route(*t, x, false);
  EXPECT_EQ(a.expert_ids, b.expert_ids);
  EXPECT_EQ(a.weights, b.weights);
}

}  // namespace
}  // namespace moe
