// Shared helpers of the MoE layer tests: hand-made routing plans, a layer with its own ParamStore
// and Arena, configs in one line, parameter copies by name, and a slow per-token reference of the
// layer's output.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/moe/moe_layer.h"

namespace moe::testing {

inline ExpertConfig expert_config(ExpertKind kind, int64_t hidden, int depth = 1,
                                  Activation act = Activation::kGelu, bool bias = true) {
  ExpertConfig c;
  c.kind = kind;
  c.hidden = hidden;
  c.depth = depth;
  c.activation = act;
  c.bias = bias;
  return c;
}

inline GateConfig gate_config(GateKind kind, int64_t d, int64_t e, int64_t k) {
  GateConfig g;
  g.kind = kind;
  g.d_model = d;
  g.n_experts = e;
  g.k = k;
  return g;
}

// A flat layer of E identical experts.
inline MoeConfig moe_config(int64_t d, int64_t e, const ExpertConfig& expert, GateConfig gate) {
  MoeConfig c;
  c.d_model = d;
  c.gate = gate;
  c.experts = repeat_experts(expert, e);
  return c;
}

struct HandSlot {
  int32_t expert;
  float weight;
  bool dropped = false;
};

// A plan from each token's list of slots (in the gate's rank order), sorted by expert.
inline RoutingPlan make_plan(int64_t n_experts, const std::vector<std::vector<HandSlot>>& tokens) {
  RoutingPlan p;
  p.n_tokens = static_cast<int64_t>(tokens.size());
  p.n_experts = n_experts;
  p.token_offsets.push_back(0);
  for (const auto& slots : tokens) {
    for (const HandSlot& s : slots) {
      p.expert_ids.push_back(s.expert);
      p.weights.push_back(s.weight);
      p.dropped.push_back(s.dropped ? 1 : 0);
    }
    p.token_offsets.push_back(static_cast<int64_t>(p.expert_ids.size()));
  }
  sort_slots_by_expert(&p);
  std::string why;
  EXPECT_TRUE(validate_plan(p, &why)) << why;
  return p;
}

// A layer with its parameters declared as "moe.*", initialised from `seed`.
struct LayerHarness {
  ParamStore store;
  MoeLayer layer;
  Arena arena;

  LayerHarness(const MoeConfig& c, uint64_t seed) : layer(c) {
    layer.declare(store, "moe");
    store.finalize();
    layer.bind(store);
    Rng rng(seed);
    layer.init(rng);
  }
  // Copies every parameter of `from` that has the same name and shape here.
  void copy_params_from(const ParamStore& from) {
    for (ParamId id = 0; id < store.size(); ++id) {
      const ParamId src = from.find(store.info(id).name);
      if (src >= 0 && from.info(src).shape == store.info(id).shape)
        copy(store.value(id), from.value(src));
    }
  }
  void forward(Tensor x, Tensor y, bool training = false) {
    arena.reset();
    layer.forward(x, y, training, Rng(7), arena);
  }
};

// y[t] = Σ_{kept s of t} w_s · E_{e(s)}(x[t]) + Σ_i S_i(x[t]), one row at a time from the plan of
// the layer's last forward: an independent check of dispatch, segments and combine. It reruns the
// experts, so the layer's cache no longer matches: call it after backward, not between.
inline TensorBuffer reference_output(MoeLayer& layer, Tensor x) {
  const RoutingPlan& p = layer.plan();
  const int64_t d = x.cols();
  TensorBuffer y(Shape{x.rows(), d}), row(Shape{1, d});
  Arena arena;
  for (int64_t t = 0; t < x.rows(); ++t) {
    Tensor xt = x.slice(t, t + 1);
    for (int64_t s = p.token_offsets[t]; s < p.token_offsets[t + 1]; ++s) {
      if (p.dropped[s]) continue;
      layer.expert(p.expert_ids[s]).forward(xt, row, arena);
      for (int64_t j = 0; j < d; ++j) y.view().at(t, j) += p.weights[s] * row.f32()[j];
    }
    for (int64_t i = 0; i < static_cast<int64_t>(layer.config().shared.size()); ++i) {
      layer.shared_expert(i).forward(xt, row, arena);
      for (int64_t j = 0; j < d; ++j) y.view().at(t, j) += row.f32()[j];
    }
    arena.reset();
  }
  return y;
}

}  // namespace moe::testing
