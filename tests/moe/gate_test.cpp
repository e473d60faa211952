// Unit tests of the gates: plan shapes and invariants, ties, edge cases (an expert with no rows,
// all rows on one expert, K = E, E = 1, T = 1), capacity drops, and each kind's own rules.
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

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/kernels/ops.h"
#include "moe/moe/balance.h"
#include "moe/moe/gate.h"

namespace moe {
namespace {

// A gate with its parameters, bound and initialised.
struct TestGate {
  ParamStore store;
  std::unique_ptr<Gate> gate;
  Tensor w() const { return store.value(store.find("router.w")); }
  Tensor dw() const { return store.grad(store.find("router.w")); }
};

std::unique_ptr<TestGate> make_gate(const GateConfig& c, uint64_t seed = 1) {
  auto g = std::make_unique<TestGate>();
  g->gate = std::make_unique<Gate>(c);
  g->gate->declare(g->store, "router");
  g->store.finalize();
  g->gate->bind(g->store);
  Rng rng(seed);
  g->gate->init(rng);
  return g;
}

GateConfig config(GateKind kind, int64_t d, int64_t e, int64_t k) {
  GateConfig c;
  c.kind = kind;
  c.d_model = d;
  c.n_experts = e;
  c.k = k;
  return c;
}

void expect_valid(const RoutingPlan& plan) {
  std::string why;
  EXPECT_TRUE(validate_plan(plan, &why)) << why;
}

// Runs forward and checks the plan's invariants.
RoutingPlan route(TestGate& g, Tensor x, bool training = false, Arena* arena_in = nullptr,
                  AuxLosses* aux_out = nullptr) {
  Arena local;
  Arena& arena = arena_in ? *arena_in : local;
  RoutingPlan plan;
  AuxLosses aux;
  GateInput in;
  in.x = x;
  in.training = training;
  in.rng = Rng(7, 3);
  g.gate->forward(in, arena, &plan, &aux);
  expect_valid(plan);
  if (aux_out) *aux_out = aux;
  return plan;
}

TensorBuffer random_x(int64_t t, int64_t d, uint64_t seed) {
  TensorBuffer x(Shape{t, d});
  Rng rng(seed);
  rng.fill_normal(x, 0.0f, 1.0f);
  return x;
}

// Router logits of the test gate, computed here in double: x·Wᵀ.
std::vector<double> logits_of(const TestGate& g, Tensor x) {
  const int64_t t_n = x.rows(), d = x.cols(), e_n = g.w().dim(0);
  std::vector<double> l(static_cast<size_t>(t_n * e_n));
  for (int64_t t = 0; t < t_n; ++t)
    for (int64_t e = 0; e < e_n; ++e) {
      double s = 0.0;
      for (int64_t i = 0; i < d; ++i) s += static_cast<double>(x.at(t, i)) * g.w().at(e, i);
      l[static_cast<size_t>(t * e_n + e)] = s;
    }
  return l;
}

std::vector<double> softmax_of(const std::vector<double>& l, int64_t e_n) {
  std::vector<double> p(l.size());
  for (size_t t = 0; t < l.size() / static_cast<size_t>(e_n); ++t) {
    double m = -1e300, s = 0.0;
    for (int64_t e = 0; e < e_n; ++e) m = std::max(m, l[t * e_n + e]);
    for (int64_t e = 0; e < e_n; ++e) s += std::exp(l[t * e_n + e] - m);
    for (int64_t e = 0; e < e_n; ++e) p[t * e_n + e] = std::exp(l[t * e_n + e] - m) / s;
  }
  return p;
}

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
  TensorBuffer x = random_x(6, 5, 11);
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
  TensorBuffer x = random_x(7, 5, 12);
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
      TensorBuffer x = random_x(9, 6, 13);
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
  TensorBuffer x = random_x(4, 3, 14);
  RoutingPlan plan = route(*g, x);
  for (int64_t s = 0; s < plan.n_slots(); ++s) {
    EXPECT_EQ(plan.expert_ids[static_cast<size_t>(s)], 0);
    EXPECT_EQ(plan.weights[static_cast<size_t>(s)], 1.0f);
  }
  auto g2 = make_gate(config(GateKind::kTopKSoftmax, 3, 5, 2));
  TensorBuffer x1 = random_x(1, 3, 15);
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
  TensorBuffer x = random_x(t_n, 3, 21);
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
      TensorBuffer x = random_x(t_n, 4, 22);
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
    TensorBuffer x = random_x(40, 4, 35);
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
    TensorBuffer x = random_x(40, 4, 23), dx(Shape{40, 4});
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
  TensorBuffer x = random_x(5, 3, 24), noise(Shape{5, 4});
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
  TensorBuffer x = random_x(64, 3, 25);
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
  TensorBuffer x = random_x(20, 4, 26);
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
  TensorBuffer x = random_x(4, 2, 27), noise(Shape{4, 3});
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
  TensorBuffer x = random_x(7, 3, 28);
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
  TensorBuffer x = random_x(64, 3, 29);
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
  TensorBuffer x = random_x(10, 4, 30);
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
  TensorBuffer x = random_x(1000, 3, 31);
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
  TensorBuffer x4 = random_x(4, 3, 32);
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
  TensorBuffer x = random_x(64, 4, 33);
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
  TensorBuffer x = random_x(16, 4, 34);
  RoutingPlan a = route(*s, x, false), b = route(*t, x, false);
  EXPECT_EQ(a.expert_ids, b.expert_ids);
  EXPECT_EQ(a.weights, b.weights);
}

}  // namespace
}  // namespace moe
