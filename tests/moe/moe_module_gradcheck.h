// Gradient checking of whole MoE modules: the routing guard and the search for an input point
// where the check is valid. Used by the MoE layer's op cases (tests/ops/moe_layer_ops.cpp).
//
// L = Σ r ⊙ y + the module's weighted auxiliary losses, so backward with dy = r gives the
// analytic gradient. A perturbation must not change the routing (a different choice of experts
// is a jump, not a derivative): inputs are drawn until every perturbation the check makes leaves
// every plan's experts and drops as they were, and every parameter receives a gradient (an
// all-zero gradient would pass any check).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/kernels/ops.h"
#include "moe/moe/routing_plan.h"
#include "testing/gradcheck.h"

namespace moe::testing {

// The routing decisions of the plans, for the flip guard.
inline std::vector<int32_t> routing_signature(const std::vector<const RoutingPlan*>& plans) {
  std::vector<int32_t> sig;
  for (const RoutingPlan* p : plans) {
    sig.push_back(static_cast<int32_t>(p->n_slots()));
    for (int64_t s = 0; s < p->n_slots(); ++s)
      sig.push_back(p->expert_ids[s] * 2 + (p->dropped[s] ? 1 : 0));
  }
  return sig;
}

// What a checked module offers (a MoeLayer fits).
struct Module {
  std::function<void(Tensor x, Tensor y, Arena& arena)> forward;
  std::function<void(Tensor dy, Tensor dx, Arena& arena)> backward;
  std::function<double()> aux_loss;
  std::function<std::vector<const RoutingPlan*>()> plans;
};

// True when every element the gradient check will visit can move by ±eps without changing the
// routing, and every parameter receives a gradient.
inline bool usable_point(const Module& m, ParamStore& store, Tensor x, Tensor y, Tensor r,
                         Tensor dx, Arena& arena, const GradCheckOptions& opts) {
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

// Draws x [T, D] ~ N(0, 1) from Rng(seed, attempt) until the routing is stable under the check's
// perturbations and every parameter gets a gradient (a few tries: near-ties are a property of the
// draw, not of the code), with r = seed_projection(seed + 1). Fails the test if none is found;
// leaves the gradients zero.
inline void find_usable_input(const Module& m, ParamStore& store, Tensor x, uint64_t seed,
                              const GradCheckOptions& opts) {
  TensorBuffer y(x.shape()), r(x.shape()), dx(x.shape());
  seed_projection(r, seed + 1);
  Arena arena;
  bool found = false;
  for (uint64_t attempt = 0; attempt < 8 && !found; ++attempt) {
    Rng(seed, attempt).fill_normal(x, 0.0f, 1.0f);
    found = usable_point(m, store, x, y, r, dx, arena, opts);
  }
  store.zero_grads();
  EXPECT_TRUE(found) << "no input among 8 draws gives stable routing and a gradient to every "
                        "parameter";
}

// Scales every router of the store ("*.router.w") so logits are well apart.
inline void spread_routers(ParamStore& store, float factor) {
  for (ParamId id = 0; id < store.size(); ++id) {
    const std::string& n = store.info(id).name;
    if (n.size() >= 9 && n.compare(n.size() - 9, 9, ".router.w") == 0)
      scale(store.value(id), factor);
  }
}

}  // namespace moe::testing
