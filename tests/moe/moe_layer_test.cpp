// MoeLayer unit tests: the layer against a per-token reference for every expert kind, shared,
// heterogeneous and fine-grained experts, edge sizes (K = E, E = 1, T = 1), the dense/top-k
// equivalence, and the learning tests on a synthetic clustered task.
#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "moe/kernels/ops.h"
#include "moe/moe/hierarchical.h"
#include "moe/moe/moe_layer.h"
#include "moe/optim/optimizer.h"
#include "moe_testing.h"
#include "testing/fixtures.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using testing::expert_config;
using testing::gate_config;
using testing::LayerHarness;
using testing::LayerStep;
using testing::moe_config;
using testing::random_normal;
using testing::swiglu_top_k_config;

// Forward (inference mode) and backward with dy ~ N(0, 1).
LayerStep run(LayerHarness& h, Tensor x, uint64_t seed = 99) {
  return testing::forward_backward(h, x, testing::random_normal(Shape{x.rows(), x.cols()}, seed),
                                   /*training=*/false);
}

TEST(MoeLayer, MatchesPerTokenReferenceForEveryExpertKind) {
  const int64_t d = 8, t = 12;
  for (const ExpertConfig& ec :
       {expert_config(ExpertKind::kLinear, 0), expert_config(ExpertKind::kMlp, 16, 1),
        expert_config(ExpertKind::kMlp, 6, 3, Activation::kRelu, false),
        expert_config(ExpertKind::kSwiglu, 16)}) {
    LayerHarness h(moe_config(d, 4, ec, gate_config(GateKind::kTopKSoftmax, d, 4, 2)), 1);
    TensorBuffer x = testing::random_normal(Shape{t, d}, 2);
    const LayerStep r = run(h, x);
    testing::expect_close(fmt::format("{} expert y", expert_kind_name(ec.kind)), r.y,
                          testing::reference_output(h.layer, x), 1e-5, 1e-6);
  }
}

TEST(MoeLayer, ParameterNamesAndShapesFollowTheScheme) {
  MoeConfig c = swiglu_top_k_config(8, 2, 1, 16);
  c.experts[1] = expert_config(ExpertKind::kMlp, 5, 2);
  c.shared = {expert_config(ExpertKind::kLinear, 0)};
  LayerHarness h(c, 1);
  const std::vector<std::pair<std::string, Shape>> want = {
      {"moe.router.w", Shape{2, 8}},      {"moe.experts.0.w1", Shape{16, 8}},
      {"moe.experts.0.w2", Shape{8, 16}}, {"moe.experts.0.w3", Shape{16, 8}},
      {"moe.experts.1.w1", Shape{5, 8}},  {"moe.experts.1.b1", Shape{5}},
      {"moe.experts.1.w2", Shape{5, 5}},  {"moe.experts.1.b2", Shape{5}},
      {"moe.experts.1.w3", Shape{8, 5}},  {"moe.experts.1.b3", Shape{8}},
      {"moe.shared.0.w1", Shape{8, 8}},   {"moe.shared.0.b1", Shape{8}}};
  ASSERT_EQ(h.store.size(), static_cast<int32_t>(want.size()));
  for (const auto& [name, shape] : want) {
    const ParamId id = h.store.find(name);
    ASSERT_GE(id, 0) << name;
    EXPECT_EQ(h.store.info(id).shape, shape) << name;
  }
  EXPECT_FALSE(h.store.info(h.store.find("moe.experts.1.b1")).decay);
  EXPECT_EQ(h.layer.expert(0).n_params(), 3 * 8 * 16);
  EXPECT_EQ(h.layer.expert(1).n_params(), 5 * 8 + 5 + 5 * 5 + 5 + 8 * 5 + 8);
}

TEST(MoeLayer, DenseSoftmaxEqualsTopKWithKEqualsE) {
  // With K = E and renormalisation, top-k keeps every expert with weight p_i / Σ p = p_i: the
  // dense mixture, in output and in every gradient (the renormalisation's Jacobian vanishes
  // against softmax's at Σ p = 1).
  const int64_t d = 8, e = 4, t = 10;
  const ExpertConfig ec = expert_config(ExpertKind::kSwiglu, 16);
  LayerHarness dense(moe_config(d, e, ec, gate_config(GateKind::kDenseSoftmax, d, e, e)), 3);
  LayerHarness topk(moe_config(d, e, ec, gate_config(GateKind::kTopKSoftmax, d, e, e)), 4);
  topk.copy_params_from(dense.store);
  TensorBuffer x = testing::random_normal(Shape{t, d}, 5);
  const LayerStep a = run(dense, x), b = run(topk, x);
  testing::expect_close("y", b.y, a.y, 1e-5, 1e-6);
  testing::expect_close("dx", b.dx, a.dx, 1e-5, 1e-6);
  EXPECT_GT(sum_squares(dense.store.grad(dense.store.find("moe.router.w"))), 1e-6);
  for (ParamId id = 0; id < dense.store.size(); ++id)
    testing::expect_close("d" + dense.store.info(id).name, topk.store.grad(id),
                          dense.store.grad(id), 1e-4, 1e-6);
}

TEST(MoeLayer, SingleExpertIsThatExpert) {
  // E = 1, K = 1, renormalised: weight 1, the layer is its expert.
  const int64_t d = 8, t = 5;
  LayerHarness h(moe_config(d, 1, expert_config(ExpertKind::kMlp, 12, 2),
                            gate_config(GateKind::kTopKSoftmax, d, 1, 1)),
                 6);
  TensorBuffer x = testing::random_normal(Shape{t, d}, 7);
  const LayerStep r = run(h, x);
  TensorBuffer want(Shape{t, d});
  Arena arena;
  h.layer.expert(0).forward(x, want, arena);
  for (int64_t i = 0; i < t * d; ++i) EXPECT_EQ(r.y.f32()[i], want.f32()[i]);
  // The router's weight is constant 1, so its gradient is exactly zero.
  EXPECT_EQ(sum_squares(h.store.grad(h.store.find("moe.router.w"))), 0.0);
}

TEST(MoeLayer, SingleToken) {
  const int64_t d = 8;
  LayerHarness h(swiglu_top_k_config(d, 4, 2, 16), 8);
  TensorBuffer x = testing::random_normal(Shape{1, d}, 9);
  const LayerStep r = run(h, x);
  EXPECT_EQ(h.layer.plan().n_kept(), 2);
  int busy = 0;
  for (int64_t e = 0; e < 4; ++e) busy += h.layer.plan().expert_rows(e) > 0;
  EXPECT_EQ(busy, 2);
  testing::expect_close("y", r.y, testing::reference_output(h.layer, x), 1e-5, 1e-6);
}

TEST(MoeLayer, SharedExpertsAddTheirOutputToEveryToken) {
  const int64_t d = 8, t = 9;
  MoeConfig routed = swiglu_top_k_config(d, 4, 2, 16);
  MoeConfig with_shared = routed;
  with_shared.shared = {expert_config(ExpertKind::kSwiglu, 16),
                        expert_config(ExpertKind::kMlp, 8, 1, Activation::kSilu)};
  LayerHarness a(routed, 10), b(with_shared, 11);
  b.copy_params_from(a.store);
  TensorBuffer x = testing::random_normal(Shape{t, d}, 12);
  const LayerStep ra = run(a, x), rb = run(b, x);
  // y_shared − y_routed = S_0(x) + S_1(x), every token.
  TensorBuffer s0(Shape{t, d}), s1(Shape{t, d}), want(Shape{t, d});
  Arena arena;
  b.layer.shared_expert(0).forward(x, s0, arena);
  b.layer.shared_expert(1).forward(x, s1, arena);
  add(s0, s1, want);
  add(want, ra.y, want);
  testing::expect_close("y with shared", rb.y, want, 1e-5, 1e-6);
  // The routed experts' gradients do not change; the shared experts get gradients from all T.
  for (ParamId id = 0; id < a.store.size(); ++id)
    testing::expect_close("d" + a.store.info(id).name,
                          b.store.grad(b.store.find(a.store.info(id).name)), a.store.grad(id), 1e-5,
                          1e-6);
  EXPECT_GT(sum_squares(b.store.grad(b.store.find("moe.shared.1.w1"))), 0.0);
}

TEST(MoeLayer, HeterogeneousExpertsInOneLayer) {
  const int64_t d = 8, t = 16;
  MoeConfig c;
  c.d_model = d;
  c.gate = gate_config(GateKind::kTopKSoftmax, d, 4, 2);
  c.experts = {expert_config(ExpertKind::kLinear, 0), expert_config(ExpertKind::kMlp, 24, 1),
               expert_config(ExpertKind::kMlp, 4, 3, Activation::kTanh),
               expert_config(ExpertKind::kSwiglu, 32)};
  LayerHarness h(c, 13);
  TensorBuffer x = testing::random_normal(Shape{t, d}, 14);
  const LayerStep r = run(h, x);
  for (int64_t e = 0; e < 4; ++e) EXPECT_GT(h.layer.plan().expert_rows(e), 0) << "expert " << e;
  testing::expect_close("heterogeneous y", r.y, testing::reference_output(h.layer, x), 1e-5, 1e-6);
}

TEST(MoeLayer, FineGrainedExpertsSpendTheSameComputePerToken) {
  // DeepSeekMoE's fine-grained split: 4 experts of width 32 with K = 1 against 16 experts of
  // width 8 with K = 4. Same active FLOPs per token, more combinations of experts.
  const int64_t d = 8, t = 32;
  LayerHarness coarse(swiglu_top_k_config(d, 4, 1, 32), 15);
  LayerHarness fine(swiglu_top_k_config(d, 16, 4, 8), 15);
  EXPECT_EQ(coarse.layer.expert(0).flops_per_row() * 1, fine.layer.expert(0).flops_per_row() * 4);
  TensorBuffer x = testing::random_normal(Shape{t, d}, 16);
  const LayerStep r = run(fine, x);
  EXPECT_EQ(fine.layer.plan().n_kept(), 4 * t);
  for (int64_t tok = 0; tok < t; ++tok) {  // four distinct experts per token
    std::vector<int> seen(16, 0);
    for (int64_t s = fine.layer.plan().token_offsets[tok];
         s < fine.layer.plan().token_offsets[tok + 1]; ++s)
      EXPECT_EQ(seen[fine.layer.plan().expert_ids[s]]++, 0);
  }
  int busy = 0;
  for (int64_t e = 0; e < 16; ++e) busy += fine.layer.plan().expert_rows(e) > 0;
  EXPECT_GE(busy, 12);
  testing::expect_close("fine-grained y", r.y, testing::reference_output(fine.layer, x), 1e-5,
                        1e-6);
}

TEST(MoeLayer, BitIdenticalReruns) {
  const int64_t d = 8, t = 64;
  LayerHarness h(swiglu_top_k_config(d, 4, 2, 16), 17);
  TensorBuffer x = testing::random_normal(Shape{t, d}, 18);
  const LayerStep a = run(h, x);
  const LayerStep b = run(h, x);
  EXPECT_EQ(std::memcmp(a.y.f32(), b.y.f32(), a.y.view().nbytes()), 0);
  EXPECT_EQ(std::memcmp(a.dx.f32(), b.dx.f32(), a.dx.view().nbytes()), 0);
  EXPECT_EQ(std::memcmp(a.grads.f32(), b.grads.f32(), a.grads.view().nbytes()), 0);
}

TEST(MoeLayer, ArenaStopsGrowingAfterTheFirstStep) {
  const int64_t d = 8, t = 32;
  LayerHarness h(moe_config(d, 4, expert_config(ExpertKind::kMlp, 16, 2),
                            gate_config(GateKind::kTopKSoftmax, d, 4, 2)),
                 19);
  TensorBuffer x = testing::random_normal(Shape{t, d}, 20);
  run(h, x);
  run(h, x);  // the arena folds its overflow into one block at this reset
  const int overflows = h.arena.overflow_allocations();
  run(h, x);
  run(h, x);
  EXPECT_EQ(h.arena.overflow_allocations(), overflows);
}

TEST(MoeLayer, ConfigValidationNamesTheProblem) {
  MoeConfig c = swiglu_top_k_config(8, 4, 2, 16);
  EXPECT_TRUE(validate_moe_config(c).is_ok());
  MoeConfig bad = c;
  bad.gate.n_experts = 3;
  EXPECT_NE(validate_moe_config(bad).message().find("n_experts"), std::string::npos);
  bad = c;
  bad.experts[2].hidden = 0;
  EXPECT_NE(validate_moe_config(bad).message().find("experts[2]"), std::string::npos);
  bad = c;
  bad.hierarchy.n_groups = 3;
  EXPECT_NE(validate_moe_config(bad).message().find("groups"), std::string::npos);
  bad = c;
  bad.hierarchy.n_groups = 2;
  bad.hierarchy.top = gate_config(GateKind::kDenseSoftmax, 8, 2, 2);
  EXPECT_NE(validate_moe_config(bad).message().find("n_experts = 2"), std::string::npos);
  bad.gate.n_experts = 2;
  EXPECT_TRUE(validate_moe_config(bad).is_ok()) << validate_moe_config(bad).message();
}

TEST(Hierarchy, CombinedPlanMultipliesWeightsAlongThePath) {
  using testing::make_plan;
  // Top plan over 2 groups: token 0 -> g1 (0.7), g0 (0.3); token 1 -> g0; token 2 -> g1 (0.6)
  // and g0 (0.4, dropped by the top gate's capacity).
  const RoutingPlan top =
      make_plan(2, {{{1, 0.7f}, {0, 0.3f}}, {{0, 1.0f}}, {{1, 0.6f}, {0, 0.4f, true}}});
  // Group 0 sees tokens 0, 1; group 1 sees tokens 0, 2 (its rows, in token order).
  std::vector<RoutingPlan> groups = {make_plan(2, {{{1, 0.8f}, {0, 0.2f}}, {{0, 1.0f}}}),
                                     make_plan(2, {{{0, 0.5f}, {1, 0.5f, true}}, {{1, 1.0f}}})};
  RoutingPlan combined;
  HierarchySlots slots;
  combine_hierarchical_plans(top, groups, &combined, &slots);
  std::string why;
  ASSERT_TRUE(validate_plan(combined, &why)) << why;
  EXPECT_EQ(combined.n_experts, 4);
  EXPECT_EQ(combined.token_offsets, (std::vector<int64_t>{0, 4, 5, 6}));
  // Group-major expert numbers, top rank first, then the group's rank.
  EXPECT_EQ(combined.expert_ids, (std::vector<int32_t>{2, 3, 1, 0, 0, 3}));
  const std::vector<float> want_w = {0.7f * 0.5f, 0.7f * 0.5f, 0.3f * 0.8f,
                                     0.3f * 0.2f, 1.0f,        0.6f};
  for (size_t s = 0; s < want_w.size(); ++s) EXPECT_FLOAT_EQ(combined.weights[s], want_w[s]);
  EXPECT_EQ(combined.dropped, (std::vector<uint8_t>{0, 1, 0, 0, 0, 0}));

  // dL/dw_top = Σ dL/dw · w_inner, dL/dw_inner = dL/dw · w_top.
  const std::vector<float> dw = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  std::vector<float> dtop(static_cast<size_t>(top.n_slots()));
  std::vector<float> d0(static_cast<size_t>(groups[0].n_slots())),
      d1(static_cast<size_t>(groups[1].n_slots()));
  split_hierarchical_dweights(top, groups, slots, dw.data(), dtop.data(), {d0.data(), d1.data()});
  EXPECT_FLOAT_EQ(dtop[0], 1.0f * 0.5f + 2.0f * 0.5f);
  EXPECT_FLOAT_EQ(dtop[1], 3.0f * 0.8f + 4.0f * 0.2f);
  EXPECT_FLOAT_EQ(dtop[2], 5.0f * 1.0f);
  EXPECT_FLOAT_EQ(dtop[3], 6.0f * 1.0f);
  EXPECT_EQ(dtop[4], 0.0f);  // the dropped top slot reached no group
  EXPECT_FLOAT_EQ(d0[0], 3.0f * 0.3f);
  EXPECT_FLOAT_EQ(d0[1], 4.0f * 0.3f);
  EXPECT_FLOAT_EQ(d0[2], 5.0f * 1.0f);
  EXPECT_FLOAT_EQ(d1[0], 1.0f * 0.7f);
  EXPECT_FLOAT_EQ(d1[1], 2.0f * 0.7f);
  EXPECT_FLOAT_EQ(d1[2], 6.0f * 0.6f);
}

MoeConfig two_level(GateConfig top, GateConfig inner, const ExpertConfig& expert) {
  MoeConfig c;
  c.d_model = top.d_model;
  c.gate = inner;
  c.experts = repeat_experts(expert, top.n_experts * inner.n_experts);
  c.hierarchy.n_groups = top.n_experts;
  c.hierarchy.top = top;
  return c;
}

TEST(Hierarchy, SparseTreeMatchesPerTokenReference) {
  const int64_t d = 8, t = 24;
  GateConfig top = gate_config(GateKind::kTopKSoftmax, d, 3, 2);
  LayerHarness h(two_level(top, gate_config(GateKind::kTopKSoftmax, d, 4, 2),
                           expert_config(ExpertKind::kSwiglu, 16)),
                 30);
  TensorBuffer x = testing::random_normal(Shape{t, d}, 31);
  const LayerStep r = run(h, x);
  EXPECT_EQ(h.layer.plan().n_experts, 12);
  EXPECT_EQ(h.layer.plan().n_kept(), 4 * t);  // 2 groups × 2 experts per token
  EXPECT_EQ(h.layer.top_plan().n_experts, 3);
  for (int64_t tok = 0; tok < t; ++tok) {  // each token's path weights sum to 1
    double total = 0.0;
    for (int64_t s = h.layer.plan().token_offsets[tok]; s < h.layer.plan().token_offsets[tok + 1];
         ++s)
      total += h.layer.plan().weights[s];
    EXPECT_NEAR(total, 1.0, 1e-6) << "token " << tok;
  }
  testing::expect_close("hierarchical y", r.y, testing::reference_output(h.layer, x), 1e-5, 1e-6);
}

TEST(Hierarchy, GroupThatReceivesNoTokenIsSkipped) {
  // One token, top-1 over two groups: the other group's gate does not run and gets no gradient.
  const int64_t d = 8;
  GateConfig top = gate_config(GateKind::kTopKSoftmax, d, 2, 1);
  top.renormalize = false;
  LayerHarness h(two_level(top, gate_config(GateKind::kTopKSoftmax, d, 3, 2),
                           expert_config(ExpertKind::kLinear, 0)),
                 32);
  TensorBuffer x = testing::random_normal(Shape{1, d}, 33);
  const LayerStep r = run(h, x);
  const int64_t chosen = h.layer.top_plan().expert_ids[0];
  EXPECT_EQ(h.layer.plan().n_kept(), 2);
  for (int64_t g = 0; g < 2; ++g) {
    const double grad =
        sum_squares(h.store.grad(h.store.find(fmt::format("moe.groups.{}.router.w", g))));
    if (g == chosen)
      EXPECT_GT(grad, 0.0);
    else
      EXPECT_EQ(grad, 0.0);
  }
  EXPECT_GT(sum_squares(r.dx), 0.0);
  testing::expect_close("y", r.y, testing::reference_output(h.layer, x), 1e-5, 1e-6);
}

// The learning task: 4 clusters in D = 8, cluster c around 4·e_c (N(0, 0.5²) spread), each with its
// own linear map y = A_c x (A_c ~ N(0, 1/D)). One linear expert can fit only one compromise map; a
// mixture whose router separates the clusters can fit every map exactly.
struct ClusterTask {
  static constexpr int64_t kClusters = 4;
  TensorBuffer x, target;    // [T, D]
  std::vector<int> cluster;  // [T]
};

ClusterTask make_cluster_task(int64_t per_cluster, uint64_t seed) {
  const int64_t d = 8, t = per_cluster * ClusterTask::kClusters;
  Rng rng(seed);
  TensorBuffer maps(Shape{ClusterTask::kClusters, d, d});
  rng.fill_normal(maps, 0.0f, 1.0f / std::sqrt(static_cast<float>(d)));
  ClusterTask task{TensorBuffer(Shape{t, d}), TensorBuffer(Shape{t, d}), {}};
  rng.fill_normal(task.x, 0.0f, 0.5f);
  for (int64_t i = 0; i < t; ++i) {
    const int c = static_cast<int>(i % ClusterTask::kClusters);
    task.cluster.push_back(c);
    task.x.view().at(i, c) += 4.0f;
    for (int64_t r = 0; r < d; ++r) {
      double v = 0.0;
      for (int64_t k = 0; k < d; ++k) v += maps.f32()[(c * d + r) * d + k] * task.x.view().at(i, k);
      task.target.view().at(i, r) = static_cast<float>(v);
    }
  }
  return task;
}

struct TrainResult {
  double loss = 0.0;                       // final MSE, without the auxiliary losses
  std::vector<std::vector<int64_t>> hits;  // [cluster][expert] tokens whose first slot is e
  std::vector<int64_t> load;               // [E] kept slots per expert
};

// Full-batch Adam on MSE(y, target) + the layer's auxiliary losses.
TrainResult train(const MoeConfig& c, const ClusterTask& task, int steps, double lr,
                  uint64_t seed) {
  LayerHarness h(c, seed);
  OptimizerConfig oc;
  oc.kind = OptimizerKind::kAdam;
  auto opt = make_optimizer(h.store, oc);
  const int64_t t = task.x.view().rows(), d = c.d_model;
  TensorBuffer y(Shape{t, d}), dy(Shape{t, d}), dx(Shape{t, d});
  TrainResult r;
  for (int step = 0; step <= steps; ++step) {
    h.store.zero_grads();
    h.arena.reset();
    h.layer.forward(task.x, y, /*training=*/true, Rng(5).fork(step), h.arena);
    double loss = 0.0;
    for (int64_t i = 0; i < t * d; ++i) {
      const double diff = static_cast<double>(y.f32()[i]) - task.target.f32()[i];
      loss += diff * diff;
      dy.f32()[i] = static_cast<float>(2.0 * diff / static_cast<double>(t * d));
    }
    r.loss = loss / static_cast<double>(t * d);
    if (step == steps) break;
    h.layer.backward(dy, dx, h.arena);
    opt->step(lr);
    h.layer.after_step();
  }
  const RoutingPlan& p = h.layer.plan();
  r.hits.assign(ClusterTask::kClusters, std::vector<int64_t>(static_cast<size_t>(p.n_experts)));
  for (int64_t i = 0; i < t; ++i) {  // the expert with the largest weight (dense gates: all E)
    int64_t best = -1;
    for (int64_t s = p.token_offsets[i]; s < p.token_offsets[i + 1]; ++s)
      if (!p.dropped[s] && (best < 0 || p.weights[s] > p.weights[best])) best = s;
    if (best >= 0) ++r.hits[task.cluster[i]][p.expert_ids[best]];
  }
  for (int64_t e = 0; e < p.n_experts; ++e) r.load.push_back(p.expert_rows(e));
  return r;
}

// The matrices here are tiny (D = 8): threads would only add synchronisation, and on a busy
// machine a descheduled thread at a barrier costs milliseconds per step.
class SingleThread {
 public:
  SingleThread() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThread() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

double min_share(const TrainResult& r) {  // least-loaded expert's load / its fair share
  int64_t total = 0, least = r.load[0];
  for (int64_t n : r.load) {
    total += n;
    least = std::min(least, n);
  }
  return static_cast<double>(least) * static_cast<double>(r.load.size()) /
         static_cast<double>(total);
}

TEST(MoeLayerLearning, FourExpertsSpecialiseOnFourClusters) {
  // Mixtral's recipe: top-2 with renormalised weights and a Switch balancing loss (α = 0.1),
  // which keeps the router from parking two clusters on one expert early on. Several task and
  // init seeds, so the result is not one lucky draw.
  SingleThread single;
  const int64_t d = 8;
  const ExpertConfig linear = expert_config(ExpertKind::kLinear, 0);
  GateConfig gate = gate_config(GateKind::kTopKSoftmax, d, 4, 2);
  gate.switch_loss = 0.1f;
  for (uint64_t seed : {22, 23, 24}) {
    const ClusterTask task = make_cluster_task(64, seed);
    const TrainResult one =
        train(moe_config(d, 1, linear, gate_config(GateKind::kTopKSoftmax, d, 1, 1)), task, 1000,
              0.03, seed);
    const TrainResult mix = train(moe_config(d, 4, linear, gate), task, 1000, 0.03, seed);
    std::printf("  seed %d: one linear expert MSE %.4g, 4-expert MoE MSE %.4g (ratio %.3g)\n",
                static_cast<int>(seed), one.loss, mix.loss, mix.loss / one.loss);
    EXPECT_LT(mix.loss, one.loss / 10) << "seed " << seed;
    std::vector<int> owner(4, -1);
    for (int c = 0; c < 4; ++c) {
      const auto& hits = mix.hits[static_cast<size_t>(c)];
      const auto top = std::max_element(hits.begin(), hits.end());
      owner[static_cast<size_t>(c)] = static_cast<int>(top - hits.begin());
      EXPECT_GT(*top, 0.9 * 64) << "seed " << seed << ": cluster " << c << " is split";
    }
    std::sort(owner.begin(), owner.end());
    EXPECT_EQ(std::unique(owner.begin(), owner.end()) - owner.begin(), 4)
        << "seed " << seed << ": two clusters share an expert";
  }
}

TEST(MoeLayerLearning, SwitchLossKeepsEveryExpertAboveHalfItsFairShare) {
  // Eight experts for four clusters: without balancing, the router specialises on about four
  // and starves the rest; with the Switch loss each cluster is split over two experts.
  SingleThread single;
  const int64_t d = 8;
  const ExpertConfig linear = expert_config(ExpertKind::kLinear, 0);
  const ClusterTask task = make_cluster_task(64, 22);
  GateConfig gate = gate_config(GateKind::kTopKSoftmax, d, 8, 2);
  const TrainResult free_run = train(moe_config(d, 8, linear, gate), task, 300, 0.03, 22);
  gate.switch_loss = 0.1f;
  const TrainResult balanced = train(moe_config(d, 8, linear, gate), task, 300, 0.03, 22);
  std::printf("  least-loaded expert / fair share: %.2f without the Switch loss, %.2f with it\n",
              min_share(free_run), min_share(balanced));
  EXPECT_LT(min_share(free_run), 0.5);  // the imbalance is real, so the next check means something
  EXPECT_GE(min_share(balanced), 0.5);
}

}  // namespace
}  // namespace moe
