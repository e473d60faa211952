// The gates as scalar op cases: every gate kind and every balancing loss against central
// differences, and against PyTorch (tests/golden/gen_gates.py): top-k softmax in its three
// spellings, noisy top-k with the fixture's noise and its importance and load losses, the Switch
// loss and z-loss, expert choice, sigmoid + bias selection, Gumbel-softmax soft and hard.
//
// Dims: T tokens · D model width · E experts · K experts per token · S slots.
//
// A gate is driven through L = Σ_s r_s · weight_s over the kept slots + Σ coef · aux loss, so
// backward with dweights = r gives the analytic gradient. The routing decision must not change
// while an input is perturbed (a different choice of experts is a jump, not a derivative): the
// loss checks that the plan's experts and drops stay those of the unperturbed forward, the noise
// is fixed through GateInput.noise, and the router weights are scaled up so logits are well apart.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/kernels/ops.h"
#include "moe/moe/gate.h"
#include "op_cases.h"
#include "testing/tensors.h"

namespace moe::testing {
namespace {

GateConfig config(GateKind kind, int64_t d, int64_t e, int64_t k) {
  GateConfig c;
  c.kind = kind;
  c.d_model = d;
  c.n_experts = e;
  c.k = k;
  return c;
}

// A gate with its parameters declared as "router.*" and bound.
struct BoundGate {
  ParamStore store;
  std::unique_ptr<Gate> gate;
  explicit BoundGate(const GateConfig& c) : gate(std::make_unique<Gate>(c)) {
    gate->declare(store, "router");
    store.finalize();
    gate->bind(store);
  }
  Tensor value(const std::string& name) const { return store.value(store.find(name)); }
  Tensor grad(const std::string& name) const { return store.grad(store.find(name)); }
};

// ---- gradient checks ---------------------------------------------------------------------------

struct GateCheck {
  GateConfig cfg;
  int64_t n_tokens = 6;
  bool training = false;
  float w_scale = 3.0f;  // spreads the logits so that ±eps never flips a choice
  uint64_t seed = 1;
  bool slot_term = true;      // false: L is the auxiliary losses alone (r = 0)
  bool expect_signal = true;  // dW must not vanish (a zero gradient would pass any check)
};

struct GateCheckState {
  explicit GateCheckState(const GateConfig& c) : g(c) {}
  BoundGate g;
  GateInput in;
  Arena arena;
  RoutingPlan ref;  // the unperturbed forward's plan
  std::vector<float> r;
  int flips = 0;
};

GradCheckOptions gate_tolerance() {
  GradCheckOptions opts;
  opts.eps = 1e-3;
  return opts;
}

OpRun gate_check_run(const GateCheck& k) {
  const GateConfig& c = k.cfg;
  const int64_t t_n = k.n_tokens, d = c.d_model, e_n = c.n_experts;
  auto s = std::make_shared<GateCheckState>(c);
  BoundGate& g = s->g;
  Rng rng(k.seed);
  g.gate->init(rng);
  const bool noisy = g.store.find("router.w_noise") >= 0;
  const bool biased = g.store.find("router.b") >= 0;
  scale(g.value("router.w"), k.w_scale * std::sqrt(static_cast<float>(d)));
  if (noisy) rng.fill_uniform(g.value("router.w_noise"), -0.5f, 0.5f);
  if (biased) rng.fill_uniform(g.value("router.b"), -k.w_scale, k.w_scale);
  // A non-zero selection bias for the sigmoid gate: it steers the choice, never the gradient.
  const Tensor bias = g.gate->bias();
  if (!bias.empty())
    for (int64_t e = 0; e < bias.numel(); ++e) bias.f32()[e] = 0.05f * static_cast<float>(e % 3);

  OpRun run;
  OpTensors& t = run.t;
  const Tensor x = t.add("x", random_normal({t_n, d}, rng));
  const Tensor noise = t.zeros("noise", Shape{t_n, e_n});
  if (c.kind == GateKind::kGumbelSoftmax)
    rng.fill_gumbel(noise);
  else
    rng.fill_normal(noise, 0.0f, 1.0f);
  const Tensor dx = t.zeros_like("dx", "x");
  t.add_view("W", g.value("router.w"));
  t.add_view("dW", g.grad("router.w"));
  if (noisy) {
    t.add_view("W_noise", g.value("router.w_noise"));
    t.add_view("dW_noise", g.grad("router.w_noise"));
  }
  if (biased) {
    t.add_view("b", g.value("router.b"));
    t.add_view("db", g.grad("router.b"));
  }
  s->in.x = x;
  s->in.training = k.training;
  s->in.noise = noise;

  GateCheckState* st = s.get();
  run.y = "";
  run.forward = [st, k] {
    AuxLosses aux;
    st->g.gate->forward(st->in, st->arena, &st->ref, &aux);
    TensorBuffer rb(Shape{std::max<int64_t>(st->ref.n_slots(), 1)});
    seed_projection(rb, k.seed + 100);
    st->r.assign(static_cast<size_t>(st->ref.n_slots()), 0.0f);
    for (size_t i = 0; i < st->r.size(); ++i) st->r[i] = k.slot_term ? rb.f32()[i] : 0.0f;
  };
  run.backward = [st, dx](Tensor) {
    st->g.gate->backward(st->in, st->ref, st->r.data(), dx, st->arena);
  };
  run.loss = [st, c] {
    Arena a;
    RoutingPlan plan;
    AuxLosses al;
    st->g.gate->forward(st->in, a, &plan, &al);
    if (plan.expert_ids != st->ref.expert_ids || plan.dropped != st->ref.dropped) ++st->flips;
    double l = al.weighted_total(c);
    for (int64_t i = 0; i < plan.n_slots() && i < static_cast<int64_t>(st->r.size()); ++i)
      if (!plan.dropped[static_cast<size_t>(i)])
        l += static_cast<double>(st->r[i]) * plan.weights[i];
    return l;
  };
  run.after = [st, k] {
    double largest = 0.0;
    const Tensor dw = st->g.grad("router.w");
    for (int64_t i = 0; i < dw.numel(); ++i)
      largest = std::max(largest, std::fabs(double{dw.f32()[i]}));
    if (k.expect_signal) {
      EXPECT_GT(largest, 1e-3) << "the router gradient vanishes: nothing is checked";
    }
    EXPECT_EQ(st->flips, 0) << "the routing changed under perturbation: the check is not valid";
  };
  run.targets = {"x", "W"};
  if (noisy) run.targets.push_back("W_noise");
  if (biased) run.targets.push_back("b");
  run.state = s;
  return run;
}

GradcheckSpec gate_check(GateCheck k) {
  return GradcheckSpec{.make = [k] { return gate_check_run(k); }, .tolerance = gate_tolerance()};
}

// Straight-through is not the derivative of the hard forward (its weight is the constant 1),
// so it is checked against what it stands for: the derivative of the soft weight y_a of the
// chosen expert, y = softmax((l + g)/τ), computed by a soft Gumbel gate with the same router and
// noise. In evaluation the hard gate's gradient is that of softmax(l/τ): the soft gate with g = 0.
struct StraightThroughState {
  StraightThroughState(const GateConfig& c, const GateConfig& soft_cfg) : g(c), soft(soft_cfg) {}
  BoundGate g, soft;
  GateInput in;
  Arena arena;
  RoutingPlan plan;
  std::vector<float> r;
};

OpRun straight_through_run(bool training, bool hard) {
  constexpr int64_t kT = 6, kD = 5, kE = 4;  // tokens, model width, experts
  GateConfig c = config(GateKind::kGumbelSoftmax, kD, kE, 1);
  c.hard = hard;
  c.tau_start = 0.8f;
  GateConfig soft_cfg = c;
  soft_cfg.hard = false;
  auto s = std::make_shared<StraightThroughState>(c, soft_cfg);
  Rng rng(5);
  s->g.gate->init(rng);
  OpRun run;
  OpTensors& t = run.t;
  const Tensor x = t.add("x", random_normal({kT, kD}, rng));
  const Tensor noise = t.zeros("noise", Shape{kT, kE});
  rng.fill_gumbel(noise);
  const Tensor zero_noise = t.zeros("zero_noise", Shape{kT, kE});
  const Tensor dx = t.zeros_like("dx", "x");
  const Tensor w = t.add_view("W", s->g.value("router.w"));
  t.add_view("dW", s->g.grad("router.w"));
  s->in.x = x;
  s->in.training = training;
  s->in.noise = noise;
  for (int64_t i = 0; i < kT; ++i) s->r.push_back(0.5f + 0.25f * static_cast<float>(i % 3));

  StraightThroughState* st = s.get();
  run.y = "";
  run.forward = [st, kT] {
    AuxLosses aux;
    st->g.gate->forward(st->in, st->arena, &st->plan, &aux);
    ASSERT_EQ(st->plan.n_slots(), kT);
  };
  run.backward = [st, dx](Tensor) {
    st->g.gate->backward(st->in, st->plan, st->r.data(), dx, st->arena);
  };
  run.loss = [st, w, training, noise, zero_noise] {
    copy(st->soft.value("router.w"), w);
    GateInput sin = st->in;
    sin.training = true;
    sin.noise = training ? noise : zero_noise;
    Arena a;
    RoutingPlan sp;
    AuxLosses sa;
    st->soft.gate->forward(sin, a, &sp, &sa);
    double l = 0.0;
    for (int64_t i = 0; i < kT; ++i)
      l += st->r[static_cast<size_t>(i)] *
           sp.weights[static_cast<size_t>(i * kE + st->plan.expert_ids[static_cast<size_t>(i)])];
    return l;
  };
  run.targets = {"x", "W"};
  run.state = s;
  return run;
}

// ---- goldens -----------------------------------------------------------------------------------

GateConfig fixture_config(GateKind kind, const Fixture& f, int64_t k) {
  return config(kind, f.get("x").shape()[1], f.get("w").shape()[0], k);
}

struct GoldenGateState {
  explicit GoldenGateState(const GateConfig& c) : g(c) {}
  BoundGate g;
  GateInput in;
  Arena arena;
  RoutingPlan plan;
  AuxLosses aux;
};

// dL/d(weight of slot s) for the plan the forward produced.
using SlotGrad = std::function<float(const RoutingPlan&, int64_t)>;

// dweights = r [T, K] read in slot order.
SlotGrad per_slot(Tensor r) {
  return [r](const RoutingPlan&, int64_t s) { return r.f32()[s]; };
}

// The gate with its router (and noise projection) from the fixture, its forward on the fixture's
// x (the plan validated), and a backward with dweights from `dweight`. The run's tensors: x, dx,
// dW (and dW_noise); a case adds what it compares of the plan and the losses, written by `write`
// after the forward.
OpRun golden_gate_run(const GateConfig& c, const Fixture& f, bool training, Tensor noise,
                      const SlotGrad& dweight) {
  auto s = std::make_shared<GoldenGateState>(c);
  copy(s->g.value("router.w"), f.get("w"));
  if (c.kind == GateKind::kNoisyTopK) copy(s->g.value("router.w_noise"), f.get("w_noise"));
  OpRun run;
  OpTensors& t = run.t;
  const Tensor x = t.add("x", f.get("x")), dx = t.zeros_like("dx", "x");
  t.add_view("dW", s->g.grad("router.w"));
  if (c.kind == GateKind::kNoisyTopK) t.add_view("dW_noise", s->g.grad("router.w_noise"));
  s->in.x = x;
  s->in.training = training;
  s->in.noise = noise;
  GoldenGateState* st = s.get();
  run.y = "";
  run.forward = [st] {
    st->g.gate->forward(st->in, st->arena, &st->plan, &st->aux);
    std::string why;
    EXPECT_TRUE(validate_plan(st->plan, &why)) << why;
  };
  run.backward = [st, dx, dweight](Tensor) {
    std::vector<float> dweights(static_cast<size_t>(st->plan.n_slots()));
    for (int64_t i = 0; i < st->plan.n_slots(); ++i)
      dweights[static_cast<size_t>(i)] = dweight(st->plan, i);
    st->g.store.zero_grads();
    st->g.gate->backward(st->in, st->plan, dweights.data(), dx, st->arena);
  };
  run.state = s;
  return run;
}

GoldenGateState& golden_state(const OpRun& run) {
  return *static_cast<GoldenGateState*>(run.state.get());
}

// Runs `write` on the forward's plan and losses after each forward.
void then_write(OpRun& run, const std::function<void(const GoldenGateState&)>& write) {
  const GoldenGateState* st = &golden_state(run);
  run.forward = [inner = run.forward, st, write] {
    inner();
    write(*st);
  };
}

// A [T, K] fixture's worth of per-slot values of the plan (expert ids as floats, or weights).
void write_per_slot(const RoutingPlan& p, Tensor out, bool ids) {
  EXPECT_EQ(out.numel(), p.n_slots()) << "the plan and the fixture have different slot counts";
  for (int64_t s = 0; s < std::min(out.numel(), p.n_slots()); ++s)
    out.f32()[s] = ids ? static_cast<float>(p.expert_ids[static_cast<size_t>(s)])
                       : p.weights[static_cast<size_t>(s)];
}

// Adds "ids" and "weights", shaped like the fixture's `ids_key` and `weights_key`, written from
// the plan after each forward.
void add_slot_outputs(OpRun& run, const Fixture& f, const std::string& ids_key,
                      const std::string& weights_key) {
  const Tensor ids = ids_key.empty() ? Tensor() : run.t.zeros("ids", f.get(ids_key).shape());
  const Tensor weights =
      weights_key.empty() ? Tensor() : run.t.zeros("weights", f.get(weights_key).shape());
  then_write(run, [ids, weights](const GoldenGateState& st) {
    if (!ids.empty()) write_per_slot(st.plan, ids, true);
    if (!weights.empty()) write_per_slot(st.plan, weights, false);
  });
}

// The value of one auxiliary loss as a [1] tensor named `name`, written after each forward.
void add_loss_output(OpRun& run, const std::string& name, double AuxLosses::*loss) {
  const Tensor out = run.t.zeros(name, Shape{1});
  then_write(run, [out, loss](const GoldenGateState& st) {
    out.f32()[0] = static_cast<float>(st.aux.*loss);
  });
}

// Top-k softmax, sigmoid + bias (with the fixture's selection bias): ids, weights, dx and dW of
// the fixture's variant `v`, with dweights = r [T, K].
GoldenSpec routed_golden(const std::string& fixture, const std::string& v, GateKind kind,
                         const std::function<void(GateConfig&)>& configure) {
  auto make = [kind, v, configure](const Fixture& f) {
    auto r = std::make_shared<TensorBuffer>(f.get("r"));  // [T, K]
    GateConfig c = fixture_config(kind, f, r->shape()[1]);
    configure(c);
    OpRun run = golden_gate_run(c, f, false, Tensor(), per_slot(*r));
    if (f.contains("bias")) {
      TensorBuffer changed = f.get("changed_by_bias");
      double n_changed = 0;
      for (int64_t t = 0; t < changed.numel(); ++t) n_changed += changed.f32()[t];
      EXPECT_GT(n_changed, 0) << "the fixture's bias must change some choices to test anything";
      copy(golden_state(run).g.gate->bias(), f.get("bias"));
    }
    add_slot_outputs(run, f, v + "_ids", v + "_weights");
    run.t.add("r", std::move(*r));
    return run;
  };
  return GoldenSpec{.fixture = fixture,
                    .make = make,
                    .dy = "",
                    .compare = {{"ids", v + "_ids", 0.0, 0.0},
                                {"weights", v + "_weights"},
                                {"dx", v + "_dx"},
                                {"dW", v + "_dw"}}};
}

// A learned router bias b (logits x·Wᵀ + b): top-k renormalised with the Switch and z-losses, or
// the sigmoid gate with its selection bias beside b; ids, weights, dx, dW and db.
GoldenSpec router_bias_golden(bool sigmoid) {
  const std::string v = sigmoid ? "sigmoid" : "topk";
  auto make = [sigmoid, v](const Fixture& f) {
    auto r = std::make_shared<TensorBuffer>(f.get("r"));  // [T, K]
    GateConfig c = fixture_config(sigmoid ? GateKind::kSigmoidBias : GateKind::kTopKSoftmax, f,
                                  f.meta_int("k"));
    c.router_bias = true;
    c.renormalize = true;
    if (!sigmoid) {
      c.switch_loss = f.meta_float("switch_coef");
      c.z_loss = f.meta_float("z_coef");
      TensorBuffer changed = f.get("changed_by_b");
      double n_changed = 0;
      for (int64_t t = 0; t < changed.numel(); ++t) n_changed += changed.f32()[t];
      EXPECT_GT(n_changed, 0) << "the fixture's router bias must change some choices";
    }
    OpRun run = golden_gate_run(c, f, false, Tensor(), per_slot(*r));
    BoundGate& g = golden_state(run).g;
    copy(g.value("router.b"), f.get("b"));
    if (sigmoid) copy(g.gate->bias(), f.get("selection"));
    run.t.add_view("db", g.grad("router.b"));
    add_slot_outputs(run, f, v + "_ids", v + "_weights");
    run.t.add("r", std::move(*r));
    return run;
  };
  return GoldenSpec{.fixture = "gate_router_bias",
                    .make = make,
                    .dy = "",
                    .compare = {{"ids", v + "_ids", 0.0, 0.0},
                                {"weights", v + "_weights"},
                                {"dx", v + "_dx"},
                                {"dW", v + "_dw"},
                                {"db", v + "_db"}}};
}

// Noisy top-k with the fixture's noise, its importance and load losses.
GoldenSpec noisy_golden() {
  auto make = [](const Fixture& f) {
    auto r = std::make_shared<TensorBuffer>(f.get("r"));  // [T, K]
    GateConfig c = fixture_config(GateKind::kNoisyTopK, f, r->shape()[1]);
    c.importance_loss = f.meta_float("importance_coef");
    c.load_loss = f.meta_float("load_coef");
    EXPECT_GT(c.importance_loss, 0.0f);
    EXPECT_GT(c.load_loss, 0.0f);
    auto noise = std::make_shared<TensorBuffer>(f.get("noise"));
    OpRun run = golden_gate_run(c, f, true, *noise, per_slot(*r));
    add_slot_outputs(run, f, "ids", "weights");
    add_loss_output(run, "load_loss", &AuxLosses::load_loss);
    add_loss_output(run, "importance_loss", &AuxLosses::importance_loss);
    run.t.add("r", std::move(*r));
    run.t.add("noise", std::move(*noise));
    return run;
  };
  return GoldenSpec{.fixture = "gate_noisy",
                    .make = make,
                    .dy = "",
                    .compare = {{"ids", "", 0.0, 0.0},
                                {"weights"},
                                {"load_loss"},
                                {"importance_loss"},
                                {"dx"},
                                {"dW", "dw"},
                                {"dW_noise", "dw_noise"}}};
}

// The Switch loss and z-loss alone (dweights = 0).
GoldenSpec switch_z_golden() {
  auto make = [](const Fixture& f) {
    GateConfig c = fixture_config(GateKind::kTopKSoftmax, f, f.meta_int("k"));
    c.switch_loss = f.meta_float("switch_coef");
    c.z_loss = f.meta_float("z_coef");
    EXPECT_EQ(c.k, 2);
    OpRun run =
        golden_gate_run(c, f, false, Tensor(), [](const RoutingPlan&, int64_t) { return 0.0f; });
    add_loss_output(run, "switch_loss", &AuxLosses::switch_loss);
    add_loss_output(run, "z_loss", &AuxLosses::z_loss);
    return run;
  };
  return GoldenSpec{.fixture = "gate_switch_z",
                    .make = make,
                    .dy = "",
                    .compare = {{"switch_loss"}, {"z_loss"}, {"dx"}, {"dW", "dw"}}};
}

// Expert choice: the chosen (token, expert) pairs and their weights as dense [T, E] tensors, with
// dweights from r [T, E].
GoldenSpec expert_choice_golden() {
  auto make = [](const Fixture& f) {
    auto r = std::make_shared<TensorBuffer>(f.get("r"));  // [T, E]
    const int64_t t_n = r->shape()[0], e_n = r->shape()[1];
    const Tensor rt = *r;
    OpRun run = golden_gate_run(fixture_config(GateKind::kExpertChoice, f, 1), f, false, Tensor(),
                                [rt, e_n](const RoutingPlan& p, int64_t s) {
                                  return rt.f32()[p.slot_token[static_cast<size_t>(s)] * e_n +
                                                  p.expert_ids[static_cast<size_t>(s)]];
                                });
    const Tensor mask = run.t.zeros("mask", Shape{t_n, e_n}),
                 dense = run.t.zeros("weights", Shape{t_n, e_n});
    then_write(run, [mask, dense, e_n](const GoldenGateState& st) {
      const RoutingPlan& plan = st.plan;
      for (int64_t s = 0; s < plan.n_slots(); ++s) {
        const int64_t i =
            plan.slot_token[static_cast<size_t>(s)] * e_n + plan.expert_ids[static_cast<size_t>(s)];
        mask.f32()[i] = 1.0f;
        dense.f32()[i] = plan.weights[static_cast<size_t>(s)];
      }
    });
    run.t.add("r", std::move(*r));
    return run;
  };
  return GoldenSpec{.fixture = "gate_expert_choice",
                    .make = make,
                    .dy = "",
                    .compare = {{"mask", "", 0.0, 0.0}, {"weights"}, {"dx"}, {"dW", "dw"}}};
}

// Gumbel-softmax with the fixture's Gumbel noise: soft weights, or the hard choice.
GoldenSpec gumbel_golden(bool hard) {
  const std::string p = hard ? "hard_" : "soft_";
  auto make = [hard](const Fixture& f) {
    auto r = std::make_shared<TensorBuffer>(f.get(hard ? "r_hard" : "r_soft"));
    auto noise = std::make_shared<TensorBuffer>(f.get("g"));
    const float tau = f.meta_float("tau");
    EXPECT_GT(tau, 0.0f);
    GateConfig c = fixture_config(GateKind::kGumbelSoftmax, f, 1);
    c.hard = hard;
    c.tau_start = tau;
    c.tau_min = tau;
    OpRun run = golden_gate_run(c, f, true, *noise, per_slot(*r));
    if (hard)
      add_slot_outputs(run, f, "hard_ids", "");
    else
      add_slot_outputs(run, f, "", "soft_weights");
    run.t.add("r", std::move(*r));
    run.t.add("noise", std::move(*noise));
    return run;
  };
  GoldenSpec spec{.fixture = "gate_gumbel", .make = make, .dy = ""};
  if (hard)
    spec.compare.push_back({"ids", "hard_ids", 0.0, 0.0});
  else
    spec.compare.push_back({"weights", "soft_weights"});
  spec.compare.push_back({"dx", p + "dx"});
  spec.compare.push_back({"dW", p + "dw"});
  return spec;
}

}  // namespace

std::vector<OpCase> gate_op_cases() {
  std::vector<OpCase> cases;
  auto add = [&cases](std::string name, std::optional<GradcheckSpec> check,
                      std::optional<GoldenSpec> golden = std::nullopt) {
    cases.push_back(OpCase{.name = "gate_" + std::move(name),
                           .gradcheck = std::move(check),
                           .golden = std::move(golden)});
  };
  add("dense_softmax", gate_check({config(GateKind::kDenseSoftmax, 5, 4, 1)}));
  {
    GateConfig c = config(GateKind::kTopKSoftmax, 5, 6, 2);
    c.renormalize = false;
    add("topk_softmax_then_topk", gate_check({c}),
        routed_golden("gate_topk", "plain", GateKind::kTopKSoftmax,
                      [](GateConfig& g) { g.renormalize = false; }));
  }
  add("topk_softmax_renormalised", gate_check({config(GateKind::kTopKSoftmax, 5, 6, 3)}),
      routed_golden("gate_topk", "renorm", GateKind::kTopKSoftmax,
                    [](GateConfig& g) { g.renormalize = true; }));
  {
    GateConfig c = config(GateKind::kTopKSoftmax, 5, 6, 2);
    c.softmax_after_topk = true;
    add("topk_then_softmax", gate_check({c}),
        routed_golden("gate_topk", "after", GateKind::kTopKSoftmax, [](GateConfig& g) {
          g.renormalize = false;
          g.softmax_after_topk = true;
        }));
  }
  {
    GateConfig c = config(GateKind::kTopKSoftmax, 4, 3, 1);
    c.capacity_factor = 0.5f;  // C = 2 of 10 slots over 3 experts: several dropped
    c.renormalize = false;     // with K = 1 renormalised weights would all be 1
    add("topk_capacity_drops", gate_check({c, 10}));
  }
  {
    GateConfig c = config(GateKind::kGumbelSoftmax, 5, 4, 1);
    c.tau_start = 0.7f;
    add("gumbel_soft_training", gate_check({c, 6, true, 1.0f}), gumbel_golden(false));
  }
  add("gumbel_hard_straight_through",
      GradcheckSpec{.make = [] { return straight_through_run(true, true); },
                    .tolerance = gate_tolerance()},
      gumbel_golden(true));
  add("gumbel_hard_evaluation_straight_through",
      GradcheckSpec{.make = [] { return straight_through_run(false, true); },
                    .tolerance = gate_tolerance()});
  add("gumbel_soft_evaluation_straight_through",
      GradcheckSpec{.make = [] { return straight_through_run(false, false); },
                    .tolerance = gate_tolerance()});
  add("noisy_topk_training", gate_check({config(GateKind::kNoisyTopK, 5, 6, 2), 8, true}));
  add("noisy_topk_evaluation", gate_check({config(GateKind::kNoisyTopK, 5, 6, 2), 8, false}));
  add("sigmoid_bias_renormalised",
      gate_check({config(GateKind::kSigmoidBias, 5, 6, 2), 8, false, 1.0f}),
      routed_golden("gate_sigmoid", "norm", GateKind::kSigmoidBias,
                    [](GateConfig& g) { g.renormalize = true; }));
  {
    GateConfig c = config(GateKind::kSigmoidBias, 5, 6, 3);
    c.renormalize = false;
    add("sigmoid_bias_raw_scores", gate_check({c, 8, false, 1.0f}),
        routed_golden("gate_sigmoid", "raw", GateKind::kSigmoidBias,
                      [](GateConfig& g) { g.renormalize = false; }));
  }
  add("expert_choice", gate_check({config(GateKind::kExpertChoice, 5, 4, 1), 10}),
      expert_choice_golden());
  add("sinkhorn_training", gate_check({config(GateKind::kSinkhorn, 5, 4, 2), 8, true}));
  {
    GateConfig c = config(GateKind::kSinkhorn, 5, 4, 1);
    c.renormalize = false;
    add("sinkhorn_evaluation_raw_weights", gate_check({c, 8, false}));
  }
  // The learned router bias, on the gates whose weights it enters differently.
  auto with_bias = [](GateConfig c) {
    c.router_bias = true;
    return c;
  };
  add("dense_softmax_router_bias",
      gate_check({with_bias(config(GateKind::kDenseSoftmax, 5, 4, 1))}));
  {
    GateConfig c = with_bias(config(GateKind::kTopKSoftmax, 5, 6, 2));
    c.switch_loss = 0.5f;
    c.z_loss = 0.2f;
    add("topk_softmax_router_bias", gate_check({c}), router_bias_golden(false));
  }
  add("sigmoid_bias_router_bias",
      gate_check({with_bias(config(GateKind::kSigmoidBias, 5, 6, 2)), 8, false, 1.0f}),
      router_bias_golden(true));
  add("noisy_topk_router_bias",
      gate_check({with_bias(config(GateKind::kNoisyTopK, 5, 6, 2)), 8, true}));
  add("gumbel_soft_router_bias",
      gate_check({with_bias(config(GateKind::kGumbelSoftmax, 5, 4, 1)), 6, true, 1.0f}));
  add("noisy_topk_losses", std::nullopt, noisy_golden());
  add("switch_and_z_loss", std::nullopt, switch_z_golden());

  // Each balancing loss alone (r = 0), and on top of the slot term, on the gates where it means
  // something different.
  auto add_loss = [&add](const std::string& name, GateKind kind, float GateConfig::*coef,
                         bool training, int64_t k = 2, float w_scale = 1.0f,
                         bool expect_signal = true) {
    GateConfig c = config(kind, 5, 4, k);
    c.*coef = 1.0f;
    GateCheck cs{c, 8, training, w_scale};
    cs.expect_signal = expect_signal;
    cs.slot_term = false;
    add(name + "_alone", gate_check(cs));
    cs.slot_term = true;
    add(name, gate_check(cs));
  };
  add_loss("switch_loss_topk_softmax", GateKind::kTopKSoftmax, &GateConfig::switch_loss, false);
  add_loss("switch_loss_sigmoid_bias", GateKind::kSigmoidBias, &GateConfig::switch_loss,
           false);  // normalised σ
  // Expert choice fills every expert equally (f = 1/E), so its Switch loss is Σ_e P_e = 1, a
  // constant: the check confirms a zero gradient.
  add_loss("switch_loss_expert_choice", GateKind::kExpertChoice, &GateConfig::switch_loss, false, 2,
           1.0f, false);
  add_loss("z_loss_topk_softmax", GateKind::kTopKSoftmax, &GateConfig::z_loss, false);
  add_loss("z_loss_dense_softmax", GateKind::kDenseSoftmax, &GateConfig::z_loss, false);
  add_loss("importance_loss_topk_softmax", GateKind::kTopKSoftmax, &GateConfig::importance_loss,
           false, 2, 3.0f);
  add_loss("importance_loss_noisy_topk", GateKind::kNoisyTopK, &GateConfig::importance_loss, true,
           2, 3.0f);
  add_loss("importance_loss_sigmoid_bias", GateKind::kSigmoidBias, &GateConfig::importance_loss,
           false, 2, 3.0f);
  add_loss("importance_loss_gumbel", GateKind::kGumbelSoftmax, &GateConfig::importance_loss, true,
           1, 1.0f);
  add_loss("load_loss_noisy_top1", GateKind::kNoisyTopK, &GateConfig::load_loss, true, 1, 3.0f);
  add_loss("load_loss_noisy_top2", GateKind::kNoisyTopK, &GateConfig::load_loss, true, 2, 3.0f);
  return cases;
}

}  // namespace moe::testing
