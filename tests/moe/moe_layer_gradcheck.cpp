// Gradient checks of the whole MoE layer: dL/dx and every parameter gradient (router, experts,
// shared experts, group routers, norms) against central differences, for every expert kind,
// shared, heterogeneous, capacity-limited, hierarchical and stacked layers.
//
// Dims: T tokens · D model width · F expert hidden width · E experts.
//
// L = Σ r ⊙ y + the layer's weighted auxiliary losses, so backward with dy = r gives the analytic
// gradient. A perturbation must not change the routing (a different choice of experts is a jump,
// not a derivative): inputs are drawn until every perturbation the check makes leaves every
// plan's experts and drops as they were, and every parameter receives a gradient (an all-zero
// gradient would pass any check). Router weights are scaled up so the logits are well apart, and
// the activations are smooth (ReLU's kink is checked in the layer tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "moe/kernels/ops.h"
#include "moe/moe/moe_stack.h"
#include "moe_layer_testing.h"
#include "testing/gradcheck.h"

namespace moe {
namespace {

using testing::expert_config;
using testing::gate_config;
using testing::moe_config;

// The routing decisions of a plan, for the flip guard.
std::vector<int32_t> routing_signature(const std::vector<const RoutingPlan*>& plans) {
  std::vector<int32_t> sig;
  for (const RoutingPlan* p : plans) {
    sig.push_back(static_cast<int32_t>(p->n_slots()));
    for (int64_t s = 0; s < p->n_slots(); ++s)
      sig.push_back(p->expert_ids[s] * 2 + (p->dropped[s] ? 1 : 0));
  }
  return sig;
}

// What a checked module offers: MoeLayer and MoeStack both fit.
struct Module {
  std::function<void(Tensor x, Tensor y, Arena& arena)> forward;
  std::function<void(Tensor dy, Tensor dx, Arena& arena)> backward;
  std::function<double()> aux_loss;
  std::function<std::vector<const RoutingPlan*>()> plans;
};

// True when every element the gradient check will visit can move by ±eps without changing the
// routing, and every parameter receives a gradient.
bool usable_point(const Module& m, ParamStore& store, Tensor x, Tensor y, Tensor r, Tensor dx,
                  Arena& arena, const testing::GradCheckOptions& opts) {
  store.zero_grads();
  arena.reset();
  m.forward(x, y, arena);
  m.backward(r, dx, arena);
  for (ParamId id = 0; id < store.size(); ++id)
    if (sum_squares(store.grad(id)) == 0.0) return false;
  const std::vector<int32_t> routing = routing_signature(m.plans());
  std::vector<Tensor> values = {x};
  for (ParamId id = 0; id < store.size(); ++id) values.push_back(store.value(id));
  bool stable = true;
  for (Tensor v : values) {
    const int64_t n = v.numel(), step = std::max<int64_t>(1, n / opts.max_elements);
    for (int64_t i = 0; i < n && stable; i += step) {
      const float saved = v.f32()[i];
      for (double sign : {1.0, -1.0}) {
        v.f32()[i] = static_cast<float>(saved + sign * opts.eps);
        arena.reset();
        m.forward(x, y, arena);
        stable = stable && routing_signature(m.plans()) == routing;
      }
      v.f32()[i] = saved;
    }
  }
  return stable;
}

// Draws inputs until the routing is stable under the check's perturbations and every parameter
// gets a gradient (a few tries: near-ties are a property of the draw, not of the code), then
// compares every gradient.
void check_module(const Module& m, ParamStore& store, int64_t t, int64_t d, uint64_t seed,
                  testing::GradCheckOptions opts = {}) {
  TensorBuffer x(Shape{t, d}), y(Shape{t, d}), r(Shape{t, d}), dx(Shape{t, d});
  testing::seed_projection(r, seed + 1);
  Arena arena;
  bool found = false;
  for (uint64_t attempt = 0; attempt < 8 && !found; ++attempt) {
    Rng(seed, attempt).fill_normal(x, 0.0f, 1.0f);
    found = usable_point(m, store, x, y, r, dx, arena, opts);
  }
  ASSERT_TRUE(found) << "no input among 8 draws gives stable routing and a gradient to every "
                        "parameter";
  store.zero_grads();
  arena.reset();
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

// Scales every router of the store ("*.router.w") so logits are well apart.
void spread_routers(ParamStore& store, float factor) {
  for (ParamId id = 0; id < store.size(); ++id) {
    const std::string& n = store.info(id).name;
    if (n.size() >= 9 && n.compare(n.size() - 9, 9, ".router.w") == 0)
      scale(store.value(id), factor);
  }
}

void check_layer(const MoeConfig& c, uint64_t seed, int64_t t = 8, float router_scale = 4.0f) {
  testing::LayerHarness h(c, seed);
  spread_routers(h.store, router_scale);
  MoeLayer& layer = h.layer;
  Module m{[&](Tensor x, Tensor y, Arena& a) { layer.forward(x, y, true, Rng(3), a); },
           [&](Tensor dy, Tensor dx, Arena& a) { layer.backward(dy, dx, a); },
           [&] { return layer.aux_loss(); },
           [&] { return std::vector<const RoutingPlan*>{&layer.plan()}; }};
  check_module(m, h.store, t, c.d_model, seed + 100);
}

constexpr int64_t kD = 6, kF = 8, kE = 4;

GateConfig top2() {
  return gate_config(GateKind::kTopKSoftmax, kD, kE, 2);
}

TEST(MoeLayerGradcheck, LinearExperts) {
  check_layer(moe_config(kD, kE, expert_config(ExpertKind::kLinear, 0), top2()), 1);
}

TEST(MoeLayerGradcheck, MlpExperts) {
  check_layer(moe_config(kD, kE, expert_config(ExpertKind::kMlp, kF, 1, Activation::kGelu), top2()),
              2);
  check_layer(
      moe_config(kD, kE, expert_config(ExpertKind::kMlp, 5, 3, Activation::kTanh, false), top2()),
      3);
}

TEST(MoeLayerGradcheck, SwigluExperts) {
  check_layer(moe_config(kD, kE, expert_config(ExpertKind::kSwiglu, kF), top2()), 4);
}

TEST(MoeLayerGradcheck, TopOneWithoutRenormalisation) {
  // Switch-style: y = p_e · E_e(x), so the router's gradient comes from the weight itself.
  GateConfig g = gate_config(GateKind::kTopKSoftmax, kD, kE, 1);
  g.renormalize = false;
  check_layer(moe_config(kD, kE, expert_config(ExpertKind::kSwiglu, kF), g), 5);
}

TEST(MoeLayerGradcheck, SharedExperts) {
  MoeConfig c = moe_config(kD, kE, expert_config(ExpertKind::kSwiglu, kF), top2());
  c.shared = {expert_config(ExpertKind::kSwiglu, kF), expert_config(ExpertKind::kLinear, 0)};
  check_layer(c, 6);
}

TEST(MoeLayerGradcheck, HeterogeneousExperts) {
  MoeConfig c;
  c.d_model = kD;
  c.gate = top2();
  c.experts = {expert_config(ExpertKind::kLinear, 0), expert_config(ExpertKind::kMlp, 10, 2),
               expert_config(ExpertKind::kSwiglu, 4), expert_config(ExpertKind::kSwiglu, 12)};
  c.shared = {expert_config(ExpertKind::kMlp, 7, 1, Activation::kSilu)};
  check_layer(c, 7, 12);
}

TEST(MoeLayerGradcheck, AuxiliaryLossesThroughTheLayer) {
  GateConfig g = top2();
  g.switch_loss = 0.5f;
  g.z_loss = 0.1f;
  g.importance_loss = 0.3f;
  check_layer(moe_config(kD, kE, expert_config(ExpertKind::kLinear, 0), g), 8);
}

TEST(MoeLayerGradcheck, CapacityDropsSlots) {
  GateConfig g = top2();
  g.capacity_factor =
      0.75f;  // C = ceil(0.75 · 8 · 2 / 4) = 3 of the 4 slots an expert gets on average
  testing::LayerHarness probe(moe_config(kD, kE, expert_config(ExpertKind::kLinear, 0), g), 9);
  TensorBuffer x(Shape{8, kD}), y(Shape{8, kD});
  Rng(109).fill_normal(x, 0.0f, 1.0f);
  spread_routers(probe.store, 4.0f);
  probe.forward(x, y, true);
  EXPECT_LT(probe.layer.plan().n_kept(), probe.layer.plan().n_slots()) << "nothing was dropped";
  check_layer(moe_config(kD, kE, expert_config(ExpertKind::kLinear, 0), g), 9);
}

MoeConfig hierarchical(GateConfig top, GateConfig inner, const ExpertConfig& expert) {
  MoeConfig c;
  c.d_model = kD;
  c.gate = inner;
  c.experts = repeat_experts(expert, top.n_experts * inner.n_experts);
  c.hierarchy.n_groups = top.n_experts;
  c.hierarchy.top = top;
  return c;
}

TEST(MoeLayerGradcheck, HierarchicalDense) {
  // Jordan & Jacobs' 2×4 tree: dense softmax at both levels.
  check_layer(hierarchical(gate_config(GateKind::kDenseSoftmax, kD, 2, 2),
                           gate_config(GateKind::kDenseSoftmax, kD, 4, 4),
                           expert_config(ExpertKind::kLinear, 0)),
              10);
}

TEST(MoeLayerGradcheck, HierarchicalSparse) {
  // Top-1 over 3 groups (weights not renormalised, so the top router has a gradient), top-2
  // inside each, with a Switch loss at both levels; and a sparse top over dense groups.
  GateConfig top = gate_config(GateKind::kTopKSoftmax, kD, 3, 1);
  top.renormalize = false;
  top.switch_loss = 0.2f;
  GateConfig inner = gate_config(GateKind::kTopKSoftmax, kD, 3, 2);
  inner.z_loss = 0.1f;
  check_layer(hierarchical(top, inner, expert_config(ExpertKind::kSwiglu, 5)), 11, 16);
  top = gate_config(GateKind::kTopKSoftmax, kD, 2, 1);
  top.renormalize = false;
  check_layer(hierarchical(top, gate_config(GateKind::kDenseSoftmax, kD, 2, 2),
                           expert_config(ExpertKind::kMlp, 5)),
              12, 12);
}

void check_stack(NormKind norm, uint64_t seed) {
  MoeStackConfig c;
  c.norm = norm;
  c.layers = {moe_config(kD, kE, expert_config(ExpertKind::kSwiglu, kF), top2()),
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
  spread_routers(store, 4.0f);
  // Gains and biases away from their initial 1 and 0, so their gradients are tested in general.
  for (ParamId id = 0; id < store.size(); ++id) {
    const std::string& n = store.info(id).name;
    if (n.find(".norm.gain") != std::string::npos) rng.fill_uniform(store.value(id), 0.5f, 1.5f);
    if (n.find(".norm.bias") != std::string::npos) rng.fill_uniform(store.value(id), -0.3f, 0.3f);
  }
  Module m{[&](Tensor x, Tensor y, Arena& a) { stack.forward(x, y, true, Rng(3), a); },
           [&](Tensor dy, Tensor dx, Arena& a) { stack.backward(dy, dx, a); },
           [&] { return stack.aux_loss(); },
           [&] {
             return std::vector<const RoutingPlan*>{&stack.layer(0).plan(), &stack.layer(1).plan()};
           }};
  check_module(m, store, 8, kD, seed + 100);
}

TEST(MoeLayerGradcheck, StackedWithRmsNorm) {
  check_stack(NormKind::kRms, 13);
}
TEST(MoeLayerGradcheck, StackedWithLayerNorm) {
  check_stack(NormKind::kLayer, 14);
}

}  // namespace
}  // namespace moe
