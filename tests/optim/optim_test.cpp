// Unit tests of the optimizers, gradient clipping and learning-rate schedules.
//
// Dims: N = a ParamStore's arena length.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/optim/clip.h"
#include "moe/optim/optimizer.h"
#include "moe/optim/schedule.h"

// Counts every C++ heap allocation in this test binary, to prove a steady-state step makes none.
namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace

// The replacement new and delete are a matched pair over malloc/free; GCC 12 still flags free()
// inside operator delete once both are inlined, a known false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace moe {
namespace {

// f(p) = ½ Σ a_i p_i² over one parameter of n elements; its gradient is a ⊙ p.
struct Quadratic {
  ParamStore store;
  ParamId id = -1;
  std::vector<double> curvature;  // a

  explicit Quadratic(std::vector<double> a, double start = 1.0) : curvature(std::move(a)) {
    id = store.add("p", Shape{static_cast<int64_t>(curvature.size())});
    store.finalize();
    fill(store.value(id), static_cast<float>(start));
  }
  void compute_grad() {
    Tensor p = store.value(id), g = store.grad(id);
    for (size_t i = 0; i < curvature.size(); ++i)
      g.f32()[i] = static_cast<float>(curvature[i] * p.f32()[i]);
  }
  double value() const {
    double f = 0.0;
    Tensor p = store.value(id);
    for (size_t i = 0; i < curvature.size(); ++i) f += 0.5 * curvature[i] * p.f32()[i] * p.f32()[i];
    return f;
  }
};

OptimizerConfig sgd(double momentum = 0.0, bool nesterov = false, double wd = 0.0) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kSgd;
  c.momentum = momentum;
  c.nesterov = nesterov;
  c.weight_decay = wd;
  return c;
}

OptimizerConfig adam(OptimizerKind kind, double wd = 0.0) {
  OptimizerConfig c;
  c.kind = kind;
  c.weight_decay = wd;
  return c;
}

TEST(Sgd, PlainStepOnAQuadraticMatchesTheClosedForm) {
  // p_t = (1 − η a)^t · p_0
  Quadratic q({0.5, 2.0});
  Sgd opt(q.store, sgd());
  for (int t = 0; t < 10; ++t) {
    q.compute_grad();
    opt.step(0.1);
  }
  EXPECT_NEAR(q.store.value(q.id).f32()[0], std::pow(1 - 0.1 * 0.5, 10), 1e-6);
  EXPECT_NEAR(q.store.value(q.id).f32()[1], std::pow(1 - 0.1 * 2.0, 10), 1e-6);
  EXPECT_EQ(opt.step_count(), 10);
  EXPECT_TRUE(opt.state().empty());
}

// The heavy-ball and Nesterov recurrences written out in double on one coordinate.
double momentum_reference(double a, double lr, double mu, bool nesterov, int steps) {
  double p = 1.0, b = 0.0;
  for (int t = 0; t < steps; ++t) {
    const double g = a * p;
    b = mu * b + g;
    p -= lr * (nesterov ? g + mu * b : b);
  }
  return p;
}

TEST(Sgd, MomentumAndNesterovFollowTheirRecurrences) {
  for (bool nesterov : {false, true}) {
    SCOPED_TRACE(nesterov ? "nesterov" : "heavy ball");
    Quadratic q({1.0, 0.2});
    Sgd opt(q.store, sgd(0.9, nesterov));
    const double f0 = q.value();
    for (int t = 0; t < 30; ++t) {
      q.compute_grad();
      opt.step(0.05);
    }
    for (int i = 0; i < 2; ++i)
      EXPECT_NEAR(q.store.value(q.id).f32()[i],
                  momentum_reference(q.curvature[static_cast<size_t>(i)], 0.05, 0.9, nesterov, 30),
                  1e-5);
    EXPECT_LT(q.value(), 0.1 * f0);
    ASSERT_EQ(opt.state().size(), 1u);
    EXPECT_EQ(opt.state()[0].name, "sgd.momentum");
  }
}

TEST(Sgd, MomentumConvergesFasterOnAnIllConditionedQuadratic) {
  Quadratic plain({1.0, 0.01}), heavy({1.0, 0.01});
  Sgd o1(plain.store, sgd()), o2(heavy.store, sgd(0.9));
  for (int t = 0; t < 100; ++t) {
    plain.compute_grad();
    o1.step(0.5);
    heavy.compute_grad();
    o2.step(0.5);
  }
  EXPECT_LT(heavy.value(), 0.1 * plain.value());
}

TEST(Sgd, WeightDecayIsAddedToTheGradient) {
  // g = 0: p ← p − η λ p
  Quadratic q({0.0});
  Sgd opt(q.store, sgd(0.0, false, 0.1));
  q.compute_grad();
  opt.step(0.5);
  EXPECT_FLOAT_EQ(q.store.value(q.id).f32()[0], 1.0f - 0.5f * 0.1f);
}

TEST(Adam, FirstStepMovesEachCoordinateByTheLearningRate) {
  // After one step m̂ = g and v̂ = g², so the update is η·g/(|g| + ε) ≈ η·sign(g).
  Quadratic q({3.0, -0.01, 100.0});
  Adam opt(q.store, adam(OptimizerKind::kAdam));
  q.compute_grad();
  opt.step(0.01);
  const float* p = q.store.value(q.id).f32();
  EXPECT_NEAR(p[0], 0.99f, 1e-6);
  EXPECT_NEAR(p[1], 1.01f, 1e-6);
  EXPECT_NEAR(p[2], 0.99f, 1e-6);
  ASSERT_EQ(opt.state().size(), 2u);
  EXPECT_EQ(opt.state()[0].name, "adam.m");
  EXPECT_EQ(opt.state()[1].name, "adam.v");
  EXPECT_EQ(opt.state()[0].tensor.numel(), q.store.values().numel());
}

TEST(Adam, DecayCoupledVersusDecoupled) {
  // With g = 0: AdamW shrinks p by exactly (1 − η λ) and leaves the moments at 0; Adam feeds λ·p
  // through the moments, so its first step moves p by η whatever λ.
  Quadratic qw({0.0}, 0.5), ql({0.0}, 0.5);
  Adam adamw(qw.store, adam(OptimizerKind::kAdamW, 0.1));
  Adam adam_l2(ql.store, adam(OptimizerKind::kAdam, 0.1));
  qw.compute_grad();
  ql.compute_grad();
  adamw.step(0.2);
  adam_l2.step(0.2);
  EXPECT_FLOAT_EQ(qw.store.value(qw.id).f32()[0], 0.5f * (1.0f - 0.2f * 0.1f));
  EXPECT_EQ(adamw.state()[0].tensor.f32()[0], 0.0f);
  EXPECT_NEAR(ql.store.value(ql.id).f32()[0], 0.5 - 0.2, 1e-6);
}

TEST(Adam, MinimisesAQuadratic) {
  Quadratic q({1.0, 10.0, 0.1});
  Adam opt(q.store, adam(OptimizerKind::kAdamW));
  const double f0 = q.value();
  for (int t = 0; t < 300; ++t) {
    q.compute_grad();
    opt.step(0.05);
  }
  EXPECT_LT(q.value(), 1e-3 * f0);
}

// Two parameters with equal values and zero gradients, one opted out of weight decay.
TEST(Optimizer, NoDecayFlagExemptsAParameter) {
  for (OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kAdam, OptimizerKind::kAdamW}) {
    SCOPED_TRACE(optimizer_kind_name(kind));
    ParamStore store;
    const ParamId w = store.add("w", Shape{3, 5});
    const ParamId b = store.add("b", Shape{5}, /*decay=*/false);
    store.finalize();
    fill(store.value(w), 0.75f);
    fill(store.value(b), 0.75f);
    OptimizerConfig c = kind == OptimizerKind::kSgd ? sgd(0.9, false, 0.1) : adam(kind, 0.1);
    std::unique_ptr<Optimizer> opt = make_optimizer(store, c);
    for (int t = 0; t < 3; ++t) opt->step(0.1);
    for (int64_t i = 0; i < 15; ++i) EXPECT_LT(store.value(w).f32()[i], 0.75f);
    for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(store.value(b).f32()[i], 0.75f);
  }
}

TEST(Optimizer, RestoredStateContinuesBitIdentically) {
  // Run A for 3 steps, copy its parameters, state and step count into a fresh B, then both
  // take 3 more steps on the same gradients: the results must agree bit for bit.
  for (OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kAdamW}) {
    SCOPED_TRACE(optimizer_kind_name(kind));
    const OptimizerConfig c = kind == OptimizerKind::kSgd ? sgd(0.8, true, 0.01) : adam(kind, 0.01);
    ParamStore sa, sb;
    for (ParamStore* s : {&sa, &sb}) {
      s->add("a", Shape{7, 3});
      s->add("b", Shape{3}, false);
      s->finalize();
    }
    Rng rng(9);
    rng.fill_normal(sa.values(), 0.0f, 1.0f);
    std::unique_ptr<Optimizer> oa = make_optimizer(sa, c);
    Rng grads(10);
    for (int t = 0; t < 3; ++t) {
      grads.fill_normal(sa.grads(), 0.0f, 1.0f);
      oa->step(0.01);
    }
    std::unique_ptr<Optimizer> ob = make_optimizer(sb, c);
    copy(sb.values(), sa.values());
    const std::vector<NamedTensor> state_a = oa->state(), state_b = ob->state();
    ASSERT_EQ(state_a.size(), state_b.size());
    for (size_t i = 0; i < state_a.size(); ++i) copy(state_b[i].tensor, state_a[i].tensor);
    ob->set_step_count(oa->step_count());
    for (int t = 0; t < 3; ++t) {
      grads.fill_normal(sa.grads(), 0.0f, 1.0f);
      copy(sb.grads(), sa.grads());
      oa->step(0.01);
      ob->step(0.01);
    }
    EXPECT_EQ(std::memcmp(sa.values().f32(), sb.values().f32(), sa.values().nbytes()), 0);
    EXPECT_EQ(ob->step_count(), 6);
  }
}

TEST(Optimizer, SteadyStateStepAllocatesNothing) {
  ParamStore store;
  store.add("big", Shape{300, 200});  // above the threading threshold
  store.add("small", Shape{7}, false);
  store.finalize();
  Rng rng(1);
  rng.fill_normal(store.grads(), 0.0f, 1.0f);
  for (OptimizerConfig c : {sgd(0.9, true, 0.1), adam(OptimizerKind::kAdamW, 0.1)}) {
    std::unique_ptr<Optimizer> opt = make_optimizer(store, c);
    opt->step(0.01);
    (void)clip_grad_norm(store, 1e9);
    const int64_t before = g_allocations.load();
    for (int t = 0; t < 5; ++t) {
      (void)clip_grad_norm(store, 1e9);
      opt->step(0.01);
    }
    EXPECT_EQ(g_allocations.load(), before) << optimizer_kind_name(c.kind);
  }
}

TEST(Optimizer, ConfigValidationNamesTheField) {
  OptimizerConfig c = sgd(0.0, true);
  EXPECT_NE(c.validate().message().find("nesterov"), std::string::npos);
  c = adam(OptimizerKind::kAdamW, -1.0);
  EXPECT_NE(c.validate().message().find("weight_decay"), std::string::npos);
  c = adam(OptimizerKind::kAdam);
  c.beta2 = 1.0;
  EXPECT_NE(c.validate().message().find("beta2"), std::string::npos);
  c = adam(OptimizerKind::kAdam);
  c.eps = 0.0;
  EXPECT_NE(c.validate().message().find("eps"), std::string::npos);
  EXPECT_TRUE(adam(OptimizerKind::kAdamW, 0.01).validate().is_ok());
  OptimizerKind k{};
  EXPECT_TRUE(parse_optimizer_kind("adamw", &k));
  EXPECT_EQ(k, OptimizerKind::kAdamW);
  EXPECT_FALSE(parse_optimizer_kind("adagrad", &k));
}

TEST(Clip, ScalesByMaxNormOverNormAndReturnsThePreClipNorm) {
  ParamStore store;
  const ParamId a = store.add("a", Shape{2});
  const ParamId b = store.add("b", Shape{1}, false);  // after padding: norm spans parameters
  store.finalize();
  store.grad(a).f32()[0] = 3.0f;
  store.grad(a).f32()[1] = 0.0f;
  store.grad(b).f32()[0] = 4.0f;
  EXPECT_DOUBLE_EQ(grad_norm(store), 5.0);
  EXPECT_DOUBLE_EQ(clip_grad_norm(store, 1.0), 5.0);
  const double coef = 1.0 / (5.0 + 1e-6);
  EXPECT_FLOAT_EQ(store.grad(a).f32()[0], static_cast<float>(3.0 * coef));
  EXPECT_FLOAT_EQ(store.grad(b).f32()[0], static_cast<float>(4.0 * coef));
  EXPECT_NEAR(grad_norm(store), 1.0, 1e-6);
  // Below the threshold nothing changes, bit for bit.
  const float before = store.grad(a).f32()[0];
  EXPECT_NEAR(clip_grad_norm(store, 2.0), 1.0, 1e-6);
  EXPECT_EQ(store.grad(a).f32()[0], before);
}

TEST(Clip, NonFiniteNormIsReportedNotSpread) {
  ParamStore store;
  const ParamId a = store.add("a", Shape{3});
  store.finalize();
  store.grad(a).f32()[0] = 1.0f;
  store.grad(a).f32()[1] = NAN;
  EXPECT_TRUE(std::isnan(clip_grad_norm(store, 1.0)));
  EXPECT_EQ(store.grad(a).f32()[0], 1.0f);
}

TEST(Clip, NormIsIdenticalForAnyThreadCount) {
  ParamStore store;
  store.add("a", Shape{1 << 19});
  store.add("b", Shape{1000});
  store.finalize();
  Rng rng(2);
  rng.fill_normal(store.grads(), 0.0f, 1.0f);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double n1 = grad_norm(store);
  omp_set_num_threads(2);
  const double n2 = grad_norm(store);
  omp_set_num_threads(saved);
  EXPECT_EQ(n1, n2);
  EXPECT_NEAR(n1, std::sqrt((1 << 19) + 1000.0), 0.01 * n1);
}

TEST(Schedule, ConstantAndLinearWarmup) {
  const LrSchedule flat = LrSchedule::constant(0.3);
  EXPECT_EQ(flat.lr_at(0), 0.3);
  EXPECT_EQ(flat.lr_at(1000000), 0.3);
  const LrSchedule warm = LrSchedule::constant(1.0, 4);
  const double want[] = {0.25, 0.5, 0.75, 1.0, 1.0, 1.0};
  for (int s = 0; s < 6; ++s) EXPECT_DOUBLE_EQ(warm.lr_at(s), want[s]) << s;
}

TEST(Schedule, CosineAtKnownSteps) {
  const LrSchedule c = LrSchedule::cosine(1.0, 10);
  EXPECT_DOUBLE_EQ(c.lr_at(0), 1.0);
  EXPECT_NEAR(c.lr_at(5), 0.5, 1e-15);
  EXPECT_NEAR(c.lr_at(10), 0.0, 1e-15);
  EXPECT_NEAR(c.lr_at(25), 0.0, 1e-15);
  // With a floor, the midpoint is halfway between lr and min_lr.
  const LrSchedule floor = LrSchedule::cosine(1.0, 10, 0, 0.1);
  EXPECT_NEAR(floor.lr_at(5), 0.55, 1e-15);
  EXPECT_NEAR(floor.lr_at(99), 0.1, 1e-15);
  // Warm-up of 2, then cosine over the remaining 10 steps.
  const LrSchedule wc = LrSchedule::cosine(2.0, 12, 2);
  EXPECT_DOUBLE_EQ(wc.lr_at(0), 1.0);
  EXPECT_DOUBLE_EQ(wc.lr_at(1), 2.0);
  EXPECT_DOUBLE_EQ(wc.lr_at(2), 2.0);
  EXPECT_NEAR(wc.lr_at(7), 1.0, 1e-15);
  EXPECT_NEAR(wc.lr_at(12), 0.0, 1e-15);
}

TEST(Schedule, StepDecayAtKnownSteps) {
  const LrSchedule s = LrSchedule::step_decay(1.0, 3, 0.5);
  const double want[] = {1, 1, 1, 0.5, 0.5, 0.5, 0.25};
  for (int t = 0; t < 7; ++t) EXPECT_DOUBLE_EQ(s.lr_at(t), want[t]) << t;
  const LrSchedule warm = LrSchedule::step_decay(1.0, 2, 0.1, 2);  // decay counts after warm-up
  EXPECT_DOUBLE_EQ(warm.lr_at(0), 0.5);
  EXPECT_DOUBLE_EQ(warm.lr_at(3), 1.0);
  EXPECT_NEAR(warm.lr_at(4), 0.1, 1e-15);
}

TEST(Schedule, ValidationAndNames) {
  EXPECT_TRUE(LrSchedule::cosine(1e-3, 100, 10, 1e-5).validate().is_ok());
  EXPECT_NE(LrSchedule::cosine(1e-3, 10, 10).validate().message().find("total_steps"),
            std::string::npos);
  EXPECT_NE(LrSchedule::cosine(1e-3, 100, 0, 1.0).validate().message().find("min_lr"),
            std::string::npos);
  EXPECT_NE(LrSchedule::step_decay(1e-3, 0, 0.5).validate().message().find("step_size"),
            std::string::npos);
  EXPECT_NE(LrSchedule::step_decay(1e-3, 5, 1.5).validate().message().find("gamma"),
            std::string::npos);
  EXPECT_NE(LrSchedule::constant(-1.0).validate().message().find("learning rate"),
            std::string::npos);
  ScheduleKind k{};
  EXPECT_TRUE(parse_schedule_kind("cosine", &k));
  EXPECT_EQ(k, ScheduleKind::kCosine);
  EXPECT_STREQ(schedule_kind_name(ScheduleKind::kStep), "step");
  EXPECT_FALSE(parse_schedule_kind("linear", &k));
}

// Three parameters, the middle one frozen: it keeps its value and has no state, and the others
// take exactly the steps they take when nothing is frozen, under each optimizer.
TEST(Optimizer, FrozenParameterGetsNoUpdateAndNoState) {
  for (const OptimizerConfig& config :
       {sgd(0.9, false, 0.1), adam(OptimizerKind::kAdam, 0.1), adam(OptimizerKind::kAdamW, 0.1)}) {
    SCOPED_TRACE(optimizer_kind_name(config.kind));
    ParamStore all, some;
    for (ParamStore* s : {&all, &some}) {
      s->add("a", Shape{5});
      s->add("b", Shape{40});
      s->add("c", Shape{3, 7});
      s->finalize();
      Rng rng(11);
      for (ParamId id = 0; id < s->size(); ++id) rng.fill_normal(s->value(id), 0.0f, 1.0f);
    }
    some.freeze(1);
    EXPECT_TRUE(some.frozen(1));
    EXPECT_EQ(some.n_trainable_elements(), 5 + 21);
    const std::vector<float> b_before(some.value(1).f32(), some.value(1).f32() + 40);
    std::unique_ptr<Optimizer> oa = make_optimizer(all, config);
    std::unique_ptr<Optimizer> os = make_optimizer(some, config);
    for (int step = 0; step < 3; ++step) {
      for (ParamStore* s : {&all, &some}) {
        Rng rng(100 + step);
        for (ParamId id = 0; id < s->size(); ++id) rng.fill_normal(s->grad(id), 0.0f, 1.0f);
      }
      oa->step(0.05);
      os->step(0.05);
    }
    for (ParamId id : {0, 2})
      EXPECT_EQ(std::memcmp(all.value(id).f32(), some.value(id).f32(),
                            static_cast<size_t>(all.value(id).numel()) * sizeof(float)),
                0)
          << all.info(id).name;
    EXPECT_EQ(std::memcmp(b_before.data(), some.value(1).f32(), 40 * sizeof(float)), 0);
    // The state arenas leave b out: a (5, padded to 16) and c (21, padded to 32).
    ASSERT_EQ(oa->state().size(), os->state().size());
    for (size_t k = 0; k < os->state().size(); ++k) {
      EXPECT_EQ(os->state()[k].tensor.numel(), 16 + 32);
      const Tensor mine = os->state_slice(os->state()[k].tensor, 2);
      const Tensor theirs = oa->state_slice(oa->state()[k].tensor, 2);
      EXPECT_EQ(std::memcmp(mine.f32(), theirs.f32(), 21 * sizeof(float)), 0);
    }
  }
}

// The global gradient norm leaves frozen parameters out.
TEST(ClipGradNorm, FrozenParametersAreNotCounted) {
  ParamStore store;
  store.add("a", Shape{1});
  store.add("b", Shape{1});
  store.finalize();
  store.grad(0).f32()[0] = 3.0f;
  store.grad(1).f32()[0] = 4.0f;
  EXPECT_DOUBLE_EQ(grad_norm(store), 5.0);
  store.freeze(1);
  EXPECT_DOUBLE_EQ(grad_norm(store), 3.0);
}

}  // namespace
}  // namespace moe
