// The whole MoE layer as op cases: dL/dx and every parameter gradient (router, experts, shared
// experts, group routers) against central differences for every expert kind, shared,
// heterogeneous, capacity-limited and hierarchical layers; and output, input gradient and every
// parameter gradient against PyTorch (tests/golden/gen_moe.py: float64 autograd on the stored
// float32 values). Fixture parameters are stored under their ParamStore names, so a fixture also
// pins the naming scheme and the [out, in] layouts.
//
// Dims: T tokens · D model width · F expert hidden width · E experts · K experts per token.
//
// Router weights are scaled up so the logits are well apart, and the activations are smooth
// (ReLU's kink is checked in the layer cases); inputs are drawn until the routing is stable under
// the check's perturbations (moe/moe_module_gradcheck.h).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "moe/moe_layer_testing.h"
#include "moe/moe_module_gradcheck.h"
#include "op_cases.h"

namespace moe::testing {
namespace {

constexpr int64_t kD = 6, kF = 8, kE = 4;

GateConfig top2() {
  return gate_config(GateKind::kTopKSoftmax, kD, kE, 2);
}

// The layer's tensors: x, y, dx, and every parameter under its store name with its gradient
// under "d" + name.
OpRun layer_run(const std::shared_ptr<LayerHarness>& h, TensorBuffer x, Rng noise) {
  OpRun run;
  OpTensors& t = run.t;
  const Tensor xv = t.add("x", std::move(x)), y = t.zeros_like("y", "x"),
               dx = t.zeros_like("dx", "x");
  for (ParamId id = 0; id < h->store.size(); ++id) {
    const std::string& name = h->store.info(id).name;
    t.add_view(name, h->store.value(id));
    t.add_view("d" + name, h->store.grad(id));
  }
  LayerHarness* l = h.get();
  run.forward = [l, xv, y, noise] {
    l->arena.reset();
    l->layer.forward(xv, y, true, noise, l->arena);
  };
  run.backward = [l, dx](Tensor dy) { l->layer.backward(dy, dx, l->arena); };
  run.state = h;
  return run;
}

constexpr uint64_t kCheckOffset = 100;  // the input draws' seed: the layer's seed + 100

OpRun layer_check_run(const MoeConfig& c, uint64_t seed, int64_t t, float router_scale) {
  auto h = std::make_shared<LayerHarness>(c, seed);
  spread_routers(h->store, router_scale);
  LayerHarness* l = h.get();
  const Module m{[l](Tensor x, Tensor y, Arena& a) { l->layer.forward(x, y, true, Rng(3), a); },
                 [l](Tensor dy, Tensor dx, Arena& a) { l->layer.backward(dy, dx, a); },
                 [l] { return l->layer.aux_loss(); },
                 [l] { return std::vector<const RoutingPlan*>{&l->layer.plan()}; }};
  TensorBuffer x(Shape{t, c.d_model});
  find_usable_input(m, h->store, x, seed + kCheckOffset, GradCheckOptions{});
  OpRun run = layer_run(h, std::move(x), Rng(3));
  run.extra_loss = [l] { return l->layer.aux_loss(); };
  run.targets = {"x"};
  for (ParamId id = 0; id < h->store.size(); ++id) run.targets.push_back(h->store.info(id).name);
  return run;
}

OpCase layer_check(const std::string& name, const MoeConfig& c, uint64_t seed, int64_t t = 8,
                   float router_scale = 4.0f) {
  return OpCase{
      .name = "moe_layer_" + name,
      .gradcheck = GradcheckSpec{
          .make = [c, seed, t, router_scale] { return layer_check_run(c, seed, t, router_scale); },
          .projection_seed = seed + kCheckOffset + 1}};
}

MoeConfig hierarchical(GateConfig top, GateConfig inner, const ExpertConfig& expert, int64_t d) {
  MoeConfig c;
  c.d_model = d;
  c.gate = inner;
  c.experts = repeat_experts(expert, top.n_experts * inner.n_experts);
  c.hierarchy.n_groups = top.n_experts;
  c.hierarchy.top = top;
  return c;
}

// Every parameter from the fixture, forward in training mode, backward with the fixture's dy;
// y, dx and every gradient compared, and (for top-k gates) each token's expert ids, best first.
OpCase layer_golden(const std::string& fixture, const MoeConfig& c, bool check_ids) {
  auto make = [c, check_ids](const Fixture& f) {
    auto h = std::make_shared<LayerHarness>(c, 1);
    for (ParamId id = 0; id < h->store.size(); ++id) {
      TensorBuffer v = f.get(h->store.info(id).name);
      EXPECT_EQ(v.shape(), h->store.info(id).shape) << h->store.info(id).name;
      if (v.shape() == h->store.info(id).shape) copy(h->store.value(id), v);
    }
    h->store.zero_grads();
    OpRun run = layer_run(h, f.get("x"), Rng(7));
    for (ParamId id = 0; id < h->store.size(); ++id) {
      const std::string& name = h->store.info(id).name;
      run.compare.push_back({"d" + name, "grad." + name});
    }
    if (check_ids) {
      const Tensor ids = run.t.add("expert_ids", f.get("expert_ids"));  // [T, K]
      LayerHarness* l = h.get();
      run.after = [l, ids] {
        const RoutingPlan& p = l->layer.plan();
        const int64_t k = ids.cols();
        for (int64_t tok = 0; tok < ids.rows(); ++tok) {
          ASSERT_EQ(p.token_offsets[tok + 1] - p.token_offsets[tok], k) << "token " << tok;
          for (int64_t j = 0; j < k; ++j)
            EXPECT_EQ(p.expert_ids[p.token_offsets[tok] + j], static_cast<int32_t>(ids.at(tok, j)))
                << "token " << tok << " slot " << j;
        }
      };
    }
    return run;
  };
  return OpCase{.name = fixture,
                .golden = GoldenSpec{.fixture = fixture, .make = make, .compare = {{"y"}, {"dx"}}}};
}

}  // namespace

std::vector<OpCase> moe_layer_op_cases() {
  std::vector<OpCase> cases;
  cases.push_back(layer_check(
      "linear_experts", moe_config(kD, kE, expert_config(ExpertKind::kLinear, 0), top2()), 1));
  cases.push_back(layer_check(
      "mlp_experts",
      moe_config(kD, kE, expert_config(ExpertKind::kMlp, kF, 1, Activation::kGelu), top2()), 2));
  cases.push_back(layer_check(
      "deep_mlp_experts_without_bias",
      moe_config(kD, kE, expert_config(ExpertKind::kMlp, 5, 3, Activation::kTanh, false), top2()),
      3));
  cases.push_back(layer_check(
      "swiglu_experts", moe_config(kD, kE, expert_config(ExpertKind::kSwiglu, kF), top2()), 4));
  {
    // Switch-style: y = p_e · E_e(x), so the router's gradient comes from the weight itself.
    GateConfig g = gate_config(GateKind::kTopKSoftmax, kD, kE, 1);
    g.renormalize = false;
    cases.push_back(layer_check("top1_without_renormalisation",
                                moe_config(kD, kE, expert_config(ExpertKind::kSwiglu, kF), g), 5));
  }
  {
    MoeConfig c = moe_config(kD, kE, expert_config(ExpertKind::kSwiglu, kF), top2());
    c.shared = {expert_config(ExpertKind::kSwiglu, kF), expert_config(ExpertKind::kLinear, 0)};
    cases.push_back(layer_check("shared_experts", c, 6));
  }
  {
    MoeConfig c;
    c.d_model = kD;
    c.gate = top2();
    c.experts = {expert_config(ExpertKind::kLinear, 0), expert_config(ExpertKind::kMlp, 10, 2),
                 expert_config(ExpertKind::kSwiglu, 4), expert_config(ExpertKind::kSwiglu, 12)};
    c.shared = {expert_config(ExpertKind::kMlp, 7, 1, Activation::kSilu)};
    cases.push_back(layer_check("heterogeneous_experts", c, 7, 12));
  }
  {
    GateConfig g = top2();
    g.switch_loss = 0.5f;
    g.z_loss = 0.1f;
    g.importance_loss = 0.3f;
    cases.push_back(layer_check("auxiliary_losses",
                                moe_config(kD, kE, expert_config(ExpertKind::kLinear, 0), g), 8));
  }
  {
    GateConfig g = top2();
    // C = ceil(0.75 · 8 · 2 / 4) = 3 of the 4 slots an expert gets on average
    g.capacity_factor = 0.75f;
    const MoeConfig c = moe_config(kD, kE, expert_config(ExpertKind::kLinear, 0), g);
    OpCase oc = layer_check("capacity_drops_slots", c, 9);
    oc.gradcheck->make = [c, inner = oc.gradcheck->make] {
      LayerHarness probe(c, 9);
      TensorBuffer x(Shape{8, kD}), y(Shape{8, kD});
      Rng(109).fill_normal(x, 0.0f, 1.0f);
      spread_routers(probe.store, 4.0f);
      probe.forward(x, y, true);
      EXPECT_LT(probe.layer.plan().n_kept(), probe.layer.plan().n_slots()) << "nothing was dropped";
      return inner();
    };
    cases.push_back(std::move(oc));
  }
  // Jordan & Jacobs' 2×4 tree: dense softmax at both levels.
  cases.push_back(layer_check("hierarchical_dense",
                              hierarchical(gate_config(GateKind::kDenseSoftmax, kD, 2, 2),
                                           gate_config(GateKind::kDenseSoftmax, kD, 4, 4),
                                           expert_config(ExpertKind::kLinear, 0), kD),
                              10));
  {
    // Top-1 over 3 groups (weights not renormalised, so the top router has a gradient), top-2
    // inside each, with a Switch loss at both levels; and a sparse top over dense groups.
    GateConfig top = gate_config(GateKind::kTopKSoftmax, kD, 3, 1);
    top.renormalize = false;
    top.switch_loss = 0.2f;
    GateConfig inner = gate_config(GateKind::kTopKSoftmax, kD, 3, 2);
    inner.z_loss = 0.1f;
    cases.push_back(layer_check("hierarchical_sparse",
                                hierarchical(top, inner, expert_config(ExpertKind::kSwiglu, 5), kD),
                                11, 16));
    top = gate_config(GateKind::kTopKSoftmax, kD, 2, 1);
    top.renormalize = false;
    cases.push_back(layer_check("hierarchical_sparse_over_dense",
                                hierarchical(top, gate_config(GateKind::kDenseSoftmax, kD, 2, 2),
                                             expert_config(ExpertKind::kMlp, 5), kD),
                                12, 12));
  }

  cases.push_back(layer_golden("moe_top2_swiglu",
                               moe_config(8, 4, expert_config(ExpertKind::kSwiglu, 16),
                                          gate_config(GateKind::kTopKSoftmax, 8, 4, 2)),
                               true));
  {
    MoeConfig c;
    c.d_model = 8;
    c.gate = gate_config(GateKind::kTopKSoftmax, 8, 4, 2);
    c.experts = {expert_config(ExpertKind::kLinear, 0),
                 expert_config(ExpertKind::kMlp, 12, 2, Activation::kGelu),
                 expert_config(ExpertKind::kMlp, 6, 1, Activation::kSilu),
                 expert_config(ExpertKind::kSwiglu, 16)};
    c.shared = {expert_config(ExpertKind::kSwiglu, 8)};
    cases.push_back(layer_golden("moe_heterogeneous_shared", c, true));
  }
  cases.push_back(layer_golden("moe_hierarchical_dense",
                               hierarchical(gate_config(GateKind::kDenseSoftmax, 8, 2, 2),
                                            gate_config(GateKind::kDenseSoftmax, 8, 4, 4),
                                            expert_config(ExpertKind::kLinear, 0), 8),
                               false));
  return cases;
}

}  // namespace moe::testing
