// Helpers shared by the gate unit tests (gate_test.cpp, gate_kinds_test.cpp): a gate with its
// parameters, routing with plan validation, and reference logits and softmax in double.
//
// Dims: T tokens · D model width · E experts · K experts per token.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/moe/gate.h"
#include "testing/tensors.h"

namespace moe::gate_testing {

// A gate with its parameters, bound and initialised.
struct TestGate {
  ParamStore store;
  std::unique_ptr<Gate> gate;
  Tensor w() const { return store.value(store.find("router.w")); }
  Tensor dw() const { return store.grad(store.find("router.w")); }
};

inline std::unique_ptr<TestGate> make_gate(const GateConfig& c, uint64_t seed = 1) {
  auto g = std::make_unique<TestGate>();
  g->gate = std::make_unique<Gate>(c);
  g->gate->declare(g->store, "router");
  g->store.finalize();
  g->gate->bind(g->store);
  Rng rng(seed);
  g->gate->init(rng);
  return g;
}

inline GateConfig config(GateKind kind, int64_t d, int64_t e, int64_t k) {
  GateConfig c;
  c.kind = kind;
  c.d_model = d;
  c.n_experts = e;
  c.k = k;
  return c;
}

inline void expect_valid(const RoutingPlan& plan) {
  std::string why;
  EXPECT_TRUE(validate_plan(plan, &why)) << why;
}

// Runs forward and checks the plan's invariants.
inline RoutingPlan route(TestGate& g, Tensor x, bool training = false, Arena* arena_in = nullptr,
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

// Router logits of the test gate, computed here in double: x·Wᵀ.
inline std::vector<double> logits_of(const TestGate& g, Tensor x) {
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

inline std::vector<double> softmax_of(const std::vector<double>& l, int64_t e_n) {
  std::vector<double> p(l.size());
  for (size_t t = 0; t < l.size() / static_cast<size_t>(e_n); ++t) {
    double m = -1e300, s = 0.0;
    for (int64_t e = 0; e < e_n; ++e) m = std::max(m, l[t * e_n + e]);
    for (int64_t e = 0; e < e_n; ++e) s += std::exp(l[t * e_n + e] - m);
    for (int64_t e = 0; e < e_n; ++e) p[t * e_n + e] = std::exp(l[t * e_n + e] - m) / s;
  }
  return p;
}

}  // namespace moe::gate_testing
