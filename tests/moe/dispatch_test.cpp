// Dispatch and combine on hand-made plans: exact gathers and sums, adjointness, empty and full
// experts, dropped slots, variable slots per token, bit-identical results across thread counts.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <vector>

#include "moe/core/rng.h"
#include "moe/moe/dispatch.h"
#include "moe/moe/experts.h"
#include "moe_layer_testing.h"
#include "testing/fixtures.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using testing::HandSlot;
using testing::make_plan;

// T tokens with K distinct experts each, random weights, a fraction of slots dropped.
RoutingPlan random_plan(int64_t t, int64_t e, int64_t k, float drop_rate, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<HandSlot>> tokens(static_cast<size_t>(t));
  for (auto& slots : tokens) {
    while (static_cast<int64_t>(slots.size()) < k) {
      const auto ex = static_cast<int32_t>(rng.below(static_cast<uint64_t>(e)));
      bool seen = false;
      for (const HandSlot& s : slots) seen = seen || s.expert == ex;
      if (!seen) slots.push_back({ex, rng.uniform(), rng.uniform() < drop_rate});
    }
  }
  return make_plan(e, tokens);
}

double dot(Tensor a, Tensor b) {
  double s = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a.f32()[i]) * b.f32()[i];
  return s;
}

TEST(Dispatch, GathersRowsInExpertOrder) {
  // Token 0 -> experts 2, 0; token 1 -> 0, 1; token 2 -> 2, 1.
  const RoutingPlan p =
      make_plan(3, {{{2, 0.7f}, {0, 0.3f}}, {{0, 0.6f}, {1, 0.4f}}, {{2, 0.5f}, {1, 0.5f}}});
  EXPECT_EQ(p.expert_offsets, (std::vector<int64_t>{0, 2, 4, 6}));
  TensorBuffer x(Shape{3, 2});
  for (int64_t i = 0; i < 6; ++i) x.f32()[i] = static_cast<float>(i);
  TensorBuffer xs(Shape{6, 2});
  dispatch_forward(p, x, xs);
  // Expert 0 gets tokens 0, 1; expert 1 tokens 1, 2; expert 2 tokens 0, 2.
  const int want_tokens[6] = {0, 1, 1, 2, 0, 2};
  for (int64_t r = 0; r < 6; ++r) {
    EXPECT_EQ(xs.view().at(r, 0), 2.0f * want_tokens[r]) << "row " << r;
    EXPECT_EQ(xs.view().at(r, 1), 2.0f * want_tokens[r] + 1) << "row " << r;
  }
}

TEST(Dispatch, CombineIsTheWeightedSumOfEachTokensRows) {
  const RoutingPlan p = random_plan(9, 4, 2, 0.0f, 1);
  TensorBuffer ys = testing::random_uniform(Shape{p.n_kept(), 5}, 2);
  TensorBuffer y(Shape{9, 5});
  combine_forward(p, ys, y);
  for (int64_t t = 0; t < 9; ++t) {
    for (int64_t j = 0; j < 5; ++j) {
      double want = 0.0;
      for (int64_t s = p.token_offsets[t]; s < p.token_offsets[t + 1]; ++s)
        want += static_cast<double>(p.weights[s]) * ys.view().at(p.inv_perm[s], j);
      EXPECT_NEAR(y.view().at(t, j), want, 1e-6) << "token " << t << " col " << j;
    }
  }
}

TEST(Dispatch, CombineAndDispatchAreAdjoints) {
  for (float drop : {0.0f, 0.3f}) {
    const RoutingPlan p = random_plan(13, 5, 3, drop, 3);
    const int64_t d = 7, sk = p.n_kept();
    TensorBuffer ys = testing::random_uniform(Shape{sk, d}, 4),
                 dy = testing::random_uniform(Shape{13, d}, 5);
    TensorBuffer y(Shape{13, d}), dys(Shape{sk, d});
    std::vector<float> dweights(static_cast<size_t>(p.n_slots()));
    combine_forward(p, ys, y);
    combine_backward(p, ys, dy, dys, dweights.data());
    // <combine(ys), dy> = <ys, combine_backward(dy)>
    EXPECT_NEAR(dot(y, dy), dot(ys, dys), 1e-5);
    // Combine is linear in the weights too: <combine(ys), dy> = Σ_s w_s · dweights_s.
    double by_weights = 0.0;
    for (int64_t s = 0; s < p.n_slots(); ++s) by_weights += p.weights[s] * dweights[s];
    EXPECT_NEAR(dot(y, dy), by_weights, 1e-5);

    // <dispatch(x), dxs> = <x, dispatch_backward(dxs)>
    TensorBuffer x = testing::random_uniform(Shape{13, d}, 6),
                 dxs = testing::random_uniform(Shape{sk, d}, 7);
    TensorBuffer xs(Shape{sk, d}), dx(Shape{13, d});
    dispatch_forward(p, x, xs);
    dispatch_backward(p, dxs, dx);
    EXPECT_NEAR(dot(xs, dxs), dot(x, dx), 1e-5);
  }
}

TEST(Dispatch, DroppedSlotsContributeNothing) {
  // Token 1 loses its second slot, token 2 loses both.
  const RoutingPlan p = make_plan(
      2,
      {{{0, 0.5f}, {1, 0.5f}}, {{1, 0.9f}, {0, 0.1f, true}}, {{0, 0.6f, true}, {1, 0.4f, true}}});
  ASSERT_EQ(p.n_kept(), 3);
  TensorBuffer ys = testing::random_uniform(Shape{3, 4}, 8), y(Shape{3, 4});
  fill(y, 99.0f);
  combine_forward(p, ys, y);
  for (int64_t j = 0; j < 4; ++j) {
    EXPECT_FLOAT_EQ(y.view().at(1, j), 0.9f * ys.view().at(p.inv_perm[2], j));
    EXPECT_EQ(y.view().at(2, j), 0.0f);
  }
  TensorBuffer dy = testing::random_uniform(Shape{3, 4}, 9), dys(Shape{3, 4});
  std::vector<float> dweights(6, 99.0f);
  combine_backward(p, ys, dy, dys, dweights.data());
  EXPECT_EQ(dweights[3], 0.0f);
  EXPECT_EQ(dweights[4], 0.0f);
  EXPECT_EQ(dweights[5], 0.0f);
  TensorBuffer dx(Shape{3, 4});
  fill(dx, 99.0f);
  dispatch_backward(p, dys, dx);
  for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(dx.view().at(2, j), 0.0f);
}

TEST(Dispatch, VariableSlotsPerToken) {
  // Expert-choice shaped: token 0 has none, token 1 three, token 2 one.
  const RoutingPlan p = make_plan(3, {{}, {{2, 0.2f}, {0, 0.3f}, {1, 0.5f}}, {{2, 1.0f}}});
  TensorBuffer x = testing::random_uniform(Shape{3, 3}, 10), xs(Shape{4, 3}), y(Shape{3, 3});
  dispatch_forward(p, x, xs);
  combine_forward(p, xs, y);  // identity experts: y[t] = (Σ weights) · x[t]
  for (int64_t j = 0; j < 3; ++j) {
    EXPECT_EQ(y.view().at(0, j), 0.0f);
    EXPECT_NEAR(y.view().at(1, j), x.view().at(1, j), 1e-6);
    EXPECT_EQ(y.view().at(2, j), x.view().at(2, j));
  }
}

// Dispatch -> one expert per segment -> combine, with the experts' own backward in between.
struct Pipeline {
  std::vector<Expert> experts;
  ParamStore store;
  Arena arena;

  Pipeline(int64_t d, int64_t e, ExpertConfig c) {
    for (int64_t i = 0; i < e; ++i) experts.emplace_back(d, c);
    for (int64_t i = 0; i < e; ++i) experts[i].declare(store, fmt::format("experts.{}", i));
    store.finalize();
    Rng rng(11);
    for (Expert& x : experts) {
      x.bind(store);
      x.init(rng);
    }
  }
  void run(const RoutingPlan& p, Tensor x, Tensor y, Tensor dy, Tensor dx) {
    const int64_t d = x.cols(), sk = p.n_kept();
    Tensor xs = arena.alloc(Shape{sk, d}), ys = arena.alloc(Shape{sk, d});
    dispatch_forward(p, x, xs);
    for (size_t e = 0; e < experts.size(); ++e) {
      const int64_t b = p.expert_offsets[e], end = p.expert_offsets[e + 1];
      experts[e].forward(xs.slice(b, end), ys.slice(b, end), arena);
    }
    combine_forward(p, ys, y);
    Tensor dys = arena.alloc(Shape{sk, d}), dxs = arena.alloc(Shape{sk, d});
    std::vector<float> dweights(static_cast<size_t>(p.n_slots()));
    combine_backward(p, ys, dy, dys, dweights.data());
    for (size_t e = 0; e < experts.size(); ++e) {
      const int64_t b = p.expert_offsets[e], end = p.expert_offsets[e + 1];
      experts[e].backward(dys.slice(b, end), dxs.slice(b, end), arena);
    }
    dispatch_backward(p, dxs, dx);
    arena.reset();
  }
};

TEST(Dispatch, ExpertWithNoRowsCostsNothingAndGetsNoGradient) {
  ExpertConfig c;
  c.kind = ExpertKind::kSwiglu;
  c.hidden = 6;
  Pipeline pipe(4, 3, c);
  // Nobody goes to expert 1.
  const RoutingPlan p = make_plan(3, {{{0, 0.5f}, {2, 0.5f}}, {{2, 1.0f}}, {{0, 0.25f}}});
  ASSERT_EQ(p.expert_rows(1), 0);
  TensorBuffer x = testing::random_uniform(Shape{3, 4}, 12),
               dy = testing::random_uniform(Shape{3, 4}, 13);
  TensorBuffer y(Shape{3, 4}), dx(Shape{3, 4});
  pipe.run(p, x, y, dy, dx);
  for (int32_t id = 0; id < pipe.store.size(); ++id) {
    const std::string& name = pipe.store.info(id).name;
    const double g = sum_squares(pipe.store.grad(id));
    if (name.rfind("experts.1.", 0) == 0)
      EXPECT_EQ(g, 0.0) << name;
    else
      EXPECT_GT(g, 0.0) << name;
  }
}

TEST(Dispatch, AllRowsOnOneExpertMatchesRunningItDensely) {
  ExpertConfig c;
  c.kind = ExpertKind::kMlp;
  c.hidden = 5;
  c.depth = 2;
  c.activation = Activation::kRelu;
  Pipeline pipe(4, 3, c);
  const int64_t t = 6;
  std::vector<std::vector<HandSlot>> tokens(t, std::vector<HandSlot>{{2, 1.0f}});
  const RoutingPlan p = make_plan(3, tokens);
  EXPECT_EQ(p.expert_rows(2), t);
  TensorBuffer x = testing::random_uniform(Shape{t, 4}, 14),
               dy = testing::random_uniform(Shape{t, 4}, 15);
  TensorBuffer y(Shape{t, 4}), dx(Shape{t, 4});
  pipe.run(p, x, y, dy, dx);
  // Weight 1 and one slot per token: the MoE is exactly expert 2 applied to x.
  TensorBuffer want(Shape{t, 4});
  Arena arena;
  pipe.experts[2].forward(x, want, arena);
  for (int64_t i = 0; i < t * 4; ++i) EXPECT_EQ(y.f32()[i], want.f32()[i]);
}

TEST(Dispatch, BitIdenticalAcrossRunsAndThreadCounts) {
  // Big enough that every stage runs threaded (T·K·D above the parallel threshold).
  const RoutingPlan p = random_plan(700, 8, 2, 0.1f, 16);
  const int64_t d = 48, sk = p.n_kept();
  TensorBuffer x = testing::random_uniform(Shape{700, d}, 17),
               dy = testing::random_uniform(Shape{700, d}, 18);
  struct Out {
    TensorBuffer xs, y, dys, dx;
    std::vector<float> dweights;
  };
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Out o{TensorBuffer(Shape{sk, d}), TensorBuffer(Shape{700, d}), TensorBuffer(Shape{sk, d}),
          TensorBuffer(Shape{700, d}), std::vector<float>(static_cast<size_t>(p.n_slots()))};
    dispatch_forward(p, x, o.xs);
    combine_forward(p, o.xs, o.y);  // the gathered rows stand in for expert outputs
    combine_backward(p, o.xs, dy, o.dys, o.dweights.data());
    dispatch_backward(p, o.dys, o.dx);
    return o;
  };
  const int saved = omp_get_max_threads();
  const Out one = run(1), two = run(2), again = run(2);
  omp_set_num_threads(saved);
  for (const Out* o : {&two, &again}) {
    EXPECT_EQ(std::memcmp(one.y.f32(), o->y.f32(), one.y.view().nbytes()), 0);
    EXPECT_EQ(std::memcmp(one.dys.f32(), o->dys.f32(), one.dys.view().nbytes()), 0);
    EXPECT_EQ(std::memcmp(one.dx.f32(), o->dx.f32(), one.dx.view().nbytes()), 0);
    EXPECT_EQ(one.dweights, o->dweights);
  }
}

}  // namespace
}  // namespace moe
