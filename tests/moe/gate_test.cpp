// Unit tests of the gates, common rules: names and config validation, the capacity formula and
// drops, dense and top-k softmax, ties, and every kind at the edge shapes (an expert with no
// rows, all rows on one expert, K = E, E = 1, T = 1, an empty batch), determinism and the
// steady-state arena. Each kind's own rules: gate_kinds_test.cpp.
//
// Dims: T tokens · D model width · E experts · K experts per token · S slots.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "gate_testing.h"
#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/moe/gate.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using namespace gate_testing;  // NOLINT(google-build-using-namespace): test helpers

// ---- names and configs -------------------------------------------------------------------

TEST(GateConfig, NamesRoundTrip) {
  for (GateKind k : {GateKind::kDenseSoftmax, GateKind::kGumbelSoftmax, GateKind::kTopKSoftmax,
                     GateKind::kNoisyTopK, GateKind::kSigmoidBias, GateKind::kExpertChoice,
                     GateKind::kHash, GateKind::kSinkhorn}) {
    GateKind back;
    ASSERT_TRUE(parse_gate_kind(gate_kind_name(k), &back)) << gate_kind_name(k);
    EXPECT_EQ(back, k);
  }
  GateKind unused;
  EXPECT_FALSE(parse_gate_kind("top2", &unused));
}

TEST(GateConfig, ValidationNamesTheProblem) {
  GateConfig c = config(GateKind::kTopKSoftmax, 4, 4, 5);
  Status st = validate_gate_config(c);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("k must be in [1, 4]"), std::string::npos) << st.message();
  c.k = 2;
  EXPECT_TRUE(validate_gate_config(c).is_ok());
  c.load_loss = 0.01f;
  st = validate_gate_config(c);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("load loss"), std::string::npos) << st.message();
  c.kind = GateKind::kNoisyTopK;
  EXPECT_TRUE(validate_gate_config(c).is_ok());
  GateConfig h = config(GateKind::kHash, 0, 3, 1);
  EXPECT_TRUE(validate_gate_config(h).is_ok());
  h.switch_loss = 0.01f;
  EXPECT_FALSE(validate_gate_config(h).is_ok());
  GateConfig neg = config(GateKind::kDenseSoftmax, 4, 4, 1);
  neg.capacity_factor = -1.0f;
  EXPECT_FALSE(validate_gate_config(neg).is_ok());
}

TEST(GateConfig, CapacityFormula) {
  GateConfig c = config(GateKind::kTopKSoftmax, 4, 8, 2);
  EXPECT_EQ(gate_capacity(c, 100), 0);  // dropless by default
  c.capacity_factor = 1.25f;
  EXPECT_EQ(gate_capacity(c, 100), 32);  // ceil(1.25 · 100 · 2 / 8) = ceil(31.25)
  c.min_capacity = 40;
  EXPECT_EQ(gate_capacity(c, 100), 40);
  // 0.3f is a hair above 0.3: ceil(0.3 · 10 · 1 / 3) must stay 1, not become 2.
  GateConfig k1 = config(GateKind::kTopKSoftmax, 4, 3, 1);
  k1.capacity_factor = 0.3f;
  EXPECT_EQ(gate_capacity(k1, 10), 1);
  k1.capacity_factor = 0.31f;
  EXPECT_EQ(gate_capacity(k1, 10), 2);
  GateConfig ec = config(GateKind::kExpertChoice, 4, 8, 2);
  EXPECT_EQ(gate_capacity(ec, 100), 13);  // ceil(100 / 8), factor 1
  ec.capacity_factor = 2.0f;
  EXPECT_EQ(gate_capacity(ec, 100), 25);
  ec.capacity_factor = 100.0f;
  EXPECT_EQ(gate_capacity(ec, 100), 100);  // at most every token
}

// ---- dense softmax -----------------------------------------------------------------------

TEST(DenseGate, EveryExpertWithSoftmaxWeights) {
  auto g = make_gate(config(GateKind::kDenseSoftmax, 5, 4, 2));
  TensorBuffer x = testing::random_normal(Shape{6, 5}, 11);
  RoutingPlan plan = route(*g, x);
  ASSERT_EQ(plan.n_slots(), 24);
  const auto p = softmax_of(logits_of(*g, x), 4);
  for (int64_t t = 0; t < 6; ++t)
    for (int64_t e = 0; e < 4; ++e) {
      EXPECT_EQ(plan.expert_ids[static_cast<size_t>(t * 4 + e)], e);
      EXPECT_NEAR(plan.weights[static_cast<size_t>(t * 4 + e)], p[static_cast<size_t>(t * 4 + e)],
                  1e-6);
    }
  for (int64_t e = 0; e < 4; ++e) EXPECT_EQ(plan.expert_rows(e), 6);
}

// Property: top-k with K = E and renormalisation is the dense softmax gate.
TEST(DenseGate, EqualsTopKWithKEqualE) {
  auto dense = make_gate(config(GateKind::kDenseSoftmax, 5, 4, 1), 3);
  auto topk = make_gate(config(GateKind::kTopKSoftmax, 5, 4, 4), 3);
  TensorBuffer x = testing::random_normal(Shape{7, 5}, 12);
  RoutingPlan a = route(*dense, x), b = route(*topk, x);
  ASSERT_EQ(a.n_slots(), b.n_slots());
  for (int64_t t = 0; t < 7; ++t)
    for (int64_t j = 0; j < 4; ++j) {
      const auto s = static_cast<size_t>(t * 4 + j);
      const auto e = static_cast<size_t>(t * 4 + b.expert_ids[s]);  // dense slot of that expert
      EXPECT_NEAR(b.weights[s], a.weights[e], 1e-6);
    }
}

// ---- top-k softmax -----------------------------------------------------------------------

TEST(TopKGate, ChoosesTheLargestBestFirst) {
  for (bool renorm : {false, true}) {
    for (bool after : {false, true}) {
      GateConfig c = config(GateKind::kTopKSoftmax, 6, 5, 2);
      c.renormalize = renorm;
      c.softmax_after_topk = after;
      auto g = make_gate(c, 5);
      TensorBuffer x = testing::random_normal(Shape{9, 6}, 13);
      RoutingPlan plan = route(*g, x);
      const auto l = logits_of(*g, x);
      const auto p = softmax_of(l, 5);
      for (int64_t t = 0; t < 9; ++t) {
        std::vector<int> order(5);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(),
                         [&](int a, int b) { return l[t * 5 + a] > l[t * 5 + b]; });
        const int e0 = plan.expert_ids[static_cast<size_t>(t * 2)];
        const int e1 = plan.expert_ids[static_cast<size_t>(t * 2 + 1)];
        EXPECT_EQ(e0, order[0]);
        EXPECT_EQ(e1, order[1]);
        const double p0 = p[t * 5 + e0], p1 = p[t * 5 + e1];
        const bool normalised = renorm || after;
        EXPECT_NEAR(plan.weights[static_cast<size_t>(t * 2)], normalised ? p0 / (p0 + p1) : p0,
                    1e-6);
        EXPECT_NEAR(plan.weights[static_cast<size_t>(t * 2 + 1)], normalised ? p1 / (p0 + p1) : p1,
                    1e-6);
      }
    }
  }
}

TEST(TopKGate, TiedLogitsPickTheLowerExpert) {
  auto g = make_gate(config(GateKind::kTopKSoftmax, 3, 6, 3));
  // Experts 1, 3, 4 and 5 share one row of W, larger than experts 0 and 2: ties everywhere.
  fill(g->w(), 0.0f);
  for (int e : {1, 3, 4, 5})
    for (int i = 0; i < 3; ++i) g->w().at(e, i) = 1.0f;
  TensorBuffer x(Shape{4, 3});
  fill(x, 0.5f);
  RoutingPlan plan = route(*g, x);
  for (int64_t t = 0; t < 4; ++t) {
    EXPECT_EQ(plan.expert_ids[static_cast<size_t>(t * 3)], 1);
    EXPECT_EQ(plan.expert_ids[static_cast<size_t>(t * 3 + 1)], 3);
    EXPECT_EQ(plan.expert_ids[static_cast<size_t>(t * 3 + 2)], 4);
  }
  // All logits equal (x = 0): experts 0, 1, 2.
  fill(x, 0.0f);
  plan = route(*g, x);
  for (int64_t t = 0; t < 4; ++t)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(plan.expert_ids[static_cast<size_t>(t * 3 + j)], j);
}

TEST(TopKGate, AllRowsOnOneExpertLeavesOthersEmpty) {
  auto g = make_gate(config(GateKind::kTopKSoftmax, 2, 4, 1));
  fill(g->w(), 0.0f);
  g->w().at(2, 0) = 5.0f;
  TensorBuffer x(Shape{5, 2});
  fill(x, 1.0f);
  AuxLosses aux;
  RoutingPlan plan = route(*g, x, false, nullptr, &aux);
  EXPECT_EQ(plan.expert_rows(2), 5);
  for (int e : {0, 1, 3}) EXPECT_EQ(plan.expert_rows(e), 0);
  // The Switch loss sees the collapse: E · f_2 · P_2 with f_2 = 1.
  const double p2 = std::exp(5.0) / (std::exp(5.0) + 3.0);
  EXPECT_NEAR(aux.switch_loss, 4.0 * p2, 1e-5);
}

TEST(TopKGate, SingleExpertAndSingleToken) {
  auto g = make_gate(config(GateKind::kTopKSoftmax, 3, 1, 1));
  TensorBuffer x = testing::random_normal(Shape{4, 3}, 14);
  RoutingPlan plan = route(*g, x);
  for (int64_t s = 0; s < plan.n_slots(); ++s) {
    EXPECT_EQ(plan.expert_ids[static_cast<size_t>(s)], 0);
    EXPECT_EQ(plan.weights[static_cast<size_t>(s)], 1.0f);
  }
  auto g2 = make_gate(config(GateKind::kTopKSoftmax, 3, 5, 2));
  TensorBuffer x1 = testing::random_normal(Shape{1, 3}, 15);
  RoutingPlan one = route(*g2, x1);
  EXPECT_EQ(one.n_slots(), 2);
  EXPECT_NEAR(one.weights[0] + one.weights[1], 1.0f, 1e-6);
}

// ---- capacity ----------------------------------------------------------------------------

TEST(Capacity, DropsLowestWeightThenLaterToken) {
  // E = 2, K = 1, T = 6 and factor 0.5: C = max(1, ceil(0.5 · 6 / 2)) = 2.
  GateConfig c = config(GateKind::kTopKSoftmax, 1, 2, 1);
  c.capacity_factor = 0.5f;
  c.renormalize = false;
  auto g = make_gate(c);
  // l = x · [1, −1]: positive x goes to expert 0 with weight σ(2x), negative to expert 1.
  g->w().at(0, 0) = 1.0f;
  g->w().at(1, 0) = -1.0f;
  TensorBuffer x(Shape{6, 1});
  const float xs[6] = {0.5f, 2.0f, 1.0f, 2.0f, -3.0f, -0.1f};
  for (int i = 0; i < 6; ++i) x.f32()[i] = xs[i];
  RoutingPlan plan = route(*g, x);
  // Expert 0 has tokens 0..3 with weights σ(1), σ(4), σ(2), σ(4): keeps 1 and 3 (the tie at σ(4)
  // keeps both), drops 0 (lowest) and 2. Expert 1 has tokens 4 and 5, within capacity.
  const uint8_t want[6] = {1, 0, 1, 0, 0, 0};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(plan.dropped[static_cast<size_t>(i)], want[i]) << i;
  EXPECT_EQ(plan.expert_rows(0), 2);
  EXPECT_EQ(plan.expert_rows(1), 2);
  // A tie at the boundary drops the later token: weights σ(4) three times, C = 2.
  x.f32()[0] = 2.0f;
  x.f32()[2] = 2.0f;
  plan = route(*g, x);
  // Expert 0 now has tokens 0..3 with σ(4), σ(4), σ(4), σ(4): keeps 0 and 1.
  const uint8_t want2[6] = {0, 0, 1, 1, 0, 0};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(plan.dropped[static_cast<size_t>(i)], want2[i]) << i;
}

TEST(Capacity, DroppedSlotsGetNoGradient) {
  GateConfig c = config(GateKind::kTopKSoftmax, 1, 2, 1);
  c.capacity_factor = 0.5f;
  c.renormalize = false;
  auto g = make_gate(c);
  g->w().at(0, 0) = 1.0f;
  g->w().at(1, 0) = -1.0f;
  TensorBuffer x(Shape{6, 1});
  const float xs[6] = {0.5f, 2.0f, 1.0f, 2.5f, -3.0f, -0.1f};
  for (int i = 0; i < 6; ++i) x.f32()[i] = xs[i];
  Arena arena;
  GateInput in;
  in.x = x;
  RoutingPlan plan;
  AuxLosses aux;
  g->gate->forward(in, arena, &plan, &aux);
  ASSERT_EQ(plan.dropped[0], 1);
  ASSERT_EQ(plan.dropped[2], 1);
  // Gradient only on the dropped slots (and garbage the gate must ignore): nothing moves.
  std::vector<float> dweights(6, 0.0f);
  dweights[0] = 123.0f;
  dweights[2] = -7.0f;
  TensorBuffer dx(Shape{6, 1});
  g->gate->backward(in, plan, dweights.data(), dx, arena);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(dx.f32()[i], 0.0f);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(g->dw().f32()[i], 0.0f);
}

// ---- every kind: edge cases, determinism, steady state ------------------------------------

const GateKind kAllKinds[] = {
    GateKind::kDenseSoftmax, GateKind::kGumbelSoftmax, GateKind::kTopKSoftmax, GateKind::kNoisyTopK,
    GateKind::kSigmoidBias,  GateKind::kExpertChoice,  GateKind::kHash,        GateKind::kSinkhorn};

// Forward and backward of every kind at shape (T, E, K), training and evaluation: the plan is
// valid, each top-k token has K distinct experts, and backward runs and stays finite.
void exercise(GateKind kind, int64_t t_n, int64_t e_n, int64_t k, bool hard = false) {
  SCOPED_TRACE(fmt::format("{} T={} E={} K={} hard={}", gate_kind_name(kind), t_n, e_n, k, hard));
  GateConfig c = config(kind, 3, e_n, k);
  c.hard = hard;
  if (kind != GateKind::kHash) c.switch_loss = c.importance_loss = c.z_loss = 0.01f;
  if (kind == GateKind::kNoisyTopK) c.load_loss = 0.01f;
  auto g = make_gate(c);
  TensorBuffer x = testing::random_normal(Shape{t_n, 3}, 21);
  for (bool training : {false, true}) {
    Arena arena;
    RoutingPlan plan = route(*g, x, training, &arena);
    EXPECT_EQ(plan.n_tokens, t_n);
    const int64_t per = gate_slots_per_token(c);
    if (per > 0) {
      const int64_t want = kind == GateKind::kGumbelSoftmax && !training ? 1 : per;
      EXPECT_EQ(plan.n_slots(), t_n * want);
      for (int64_t t = 0; t < t_n; ++t)
        for (int64_t i = plan.token_offsets[t]; i < plan.token_offsets[t + 1]; ++i)
          for (int64_t j = plan.token_offsets[t]; j < i; ++j)
            EXPECT_NE(plan.expert_ids[static_cast<size_t>(i)],
                      plan.expert_ids[static_cast<size_t>(j)]);
    }
    for (float w : plan.weights) EXPECT_TRUE(std::isfinite(w) && w >= 0.0f && w <= 1.0f) << w;
    std::vector<float> dweights(static_cast<size_t>(plan.n_slots()), 0.5f);
    TensorBuffer dx(Shape{t_n, 3});
    GateInput in;
    in.x = x;
    in.training = training;
    in.rng = Rng(7, 3);
    g->gate->backward(in, plan, dweights.data(), dx, arena);
    for (int64_t i = 0; i < dx.numel(); ++i) EXPECT_TRUE(std::isfinite(dx.f32()[i]));
  }
}

TEST(AllGates, EdgeShapes) {
  for (GateKind kind : kAllKinds) {
    exercise(kind, 5, 4, 2);
    exercise(kind, 1, 4, 2);  // T = 1
    exercise(kind, 5, 1, 1);  // E = 1
    exercise(kind, 5, 4, 4);  // K = E
    exercise(kind, 0, 4, 2);  // an empty batch
  }
  exercise(GateKind::kGumbelSoftmax, 5, 4, 1, /*hard=*/true);
}

// Twice the same routing, small and large enough (T·E = 2^15) for the threaded per-token paths,
// with gradients too: bit-identical.
TEST(AllGates, SameSeedSamePlanBitForBit) {
  for (GateKind kind : kAllKinds) {
    for (int64_t t_n : {33, 1024}) {
      SCOPED_TRACE(fmt::format("{} T={}", gate_kind_name(kind), t_n));
      GateConfig c = config(kind, 4, 32, 2);
      if (kind != GateKind::kHash) c.switch_loss = c.z_loss = 0.01f;
      if (kind == GateKind::kNoisyTopK) c.load_loss = 0.01f;
      auto g1 = make_gate(c, 9), g2 = make_gate(c, 9);
      TensorBuffer x = testing::random_normal(Shape{t_n, 4}, 22);
      Arena arena1, arena2;
      RoutingPlan a = route(*g1, x, true, &arena1), b = route(*g2, x, true, &arena2);
      EXPECT_EQ(a.expert_ids, b.expert_ids);
      EXPECT_EQ(a.weights, b.weights);
      EXPECT_EQ(a.token_offsets, b.token_offsets);
      EXPECT_EQ(a.perm, b.perm);
      if (kind == GateKind::kHash) continue;
      std::vector<float> dweights(static_cast<size_t>(a.n_slots()), 0.25f);
      GateInput in;
      in.x = x;
      in.training = true;
      in.rng = Rng(7, 3);
      TensorBuffer dx1(Shape{t_n, 4}), dx2(Shape{t_n, 4});
      g1->gate->backward(in, a, dweights.data(), dx1, arena1);
      g2->gate->backward(in, b, dweights.data(), dx2, arena2);
      EXPECT_EQ(0, std::memcmp(dx1.f32(), dx2.f32(), static_cast<size_t>(dx1.numel()) * 4));
      EXPECT_EQ(0, std::memcmp(g1->dw().f32(), g2->dw().f32(),
                               static_cast<size_t>(g1->dw().numel()) * 4));
    }
  }
}

// Evaluation draws no noise: two different random streams give the same plan.
TEST(AllGates, EvaluationIgnoresTheRng) {
  for (GateKind kind : kAllKinds) {
    SCOPED_TRACE(gate_kind_name(kind));
    auto g = make_gate(config(kind, 4, 6, 2));
    TensorBuffer x = testing::random_normal(Shape{40, 4}, 35);
    Arena arena;
    RoutingPlan a, b;
    AuxLosses aux;
    GateInput in;
    in.x = x;
    in.rng = Rng(1, 1);
    g->gate->forward(in, arena, &a, &aux);
    in.rng = Rng(2, 2);
    g->gate->forward(in, arena, &b, &aux);
    expect_valid(a);
    EXPECT_EQ(a.expert_ids, b.expert_ids);
    EXPECT_EQ(a.weights, b.weights);
  }
}

TEST(AllGates, SteadyStateAllocatesNothing) {
  for (GateKind kind : kAllKinds) {
    SCOPED_TRACE(gate_kind_name(kind));
    GateConfig c = config(kind, 4, 6, 2);
    c.capacity_factor = kind == GateKind::kExpertChoice ? 0.0f : 0.75f;  // capacity scratch too
    if (kind != GateKind::kHash) c.switch_loss = c.importance_loss = c.z_loss = 0.01f;
    if (kind == GateKind::kNoisyTopK) c.load_loss = 0.01f;
    auto g = make_gate(c);
    TensorBuffer x = testing::random_normal(Shape{40, 4}, 23), dx(Shape{40, 4});
    Arena arena;
    RoutingPlan plan;
    std::vector<float> dweights(40 * 6, 1.0f);
    const void* ids = nullptr;
    int overflows = 0;
    for (int step = 0; step < 3; ++step) {
      arena.reset();
      AuxLosses aux;
      GateInput in;
      in.x = x;
      in.training = true;
      in.rng = Rng(1, static_cast<uint64_t>(step));
      g->gate->forward(in, arena, &plan, &aux);
      g->gate->backward(in, plan, dweights.data(), dx, arena);
      if (step == 1) {
        ids = plan.expert_ids.data();
        overflows = arena.overflow_allocations();
      }
    }
    EXPECT_EQ(arena.overflow_allocations(), overflows) << "the arena grew after the first step";
    EXPECT_EQ(plan.expert_ids.data(), ids) << "the plan reallocated";
  }
}

}  // namespace
}  // namespace moe
