// Model: built for each input kind with the documented names and shapes, gradients of a whole
// small model against finite differences, the dense equivalent's active size, gate states, a
// steady-state step without arena growth, and a short training run that lowers the loss.
//
// Dims: T rows · D_in input width · V text ids · D model width · C classes.
#include "moe/model/model.h"
#include "moe/train/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "moe/layers/loss.h"
#include "moe/optim/optimizer.h"
#include "testing/gradcheck.h"

namespace moe {
namespace {

// A config with every kind of block: one trunk block, a dense-softmax MoE with MLP experts and
// the balancing losses, and a top-2-of-2 SwiGLU MoE with a shared expert. Every expert is chosen
// for every row, so the loss is smooth in every parameter (what finite differences need).
ModelConfig smooth_config(NormChoice norm) {
  ModelConfig c;
  c.width = 6;
  c.trunk.hidden = {5};
  c.trunk.norm = norm;
  MoeBlockConfig a;
  a.n_experts = 3;
  a.expert = {ExpertKind::kMlp, 4, 1, Activation::kGelu, true};
  a.gate.kind = GateKind::kDenseSoftmax;
  a.gate.switch_loss = 0.0f;
  a.gate.importance_loss = 0.1f;
  a.gate.z_loss = 0.01f;
  MoeBlockConfig b;
  b.n_experts = 2;
  b.expert = {ExpertKind::kSwiglu, 4, 1, Activation::kGelu, false};
  b.gate.kind = GateKind::kTopKSoftmax;
  b.gate.k = 2;
  b.gate.switch_loss = 0.0f;
  b.n_shared = 1;
  b.shared = {ExpertKind::kSwiglu, 3, 1, Activation::kGelu, false};
  c.moe = {a, b};
  return c;
}

std::unique_ptr<Model> make(const ModelConfig& c, const DataShape& s, uint64_t seed = 5) {
  Result<std::unique_ptr<Model>> m = Model::create(c, s);
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  if (!m.is_ok()) return nullptr;
  std::unique_ptr<Model> model = std::move(m.value());
  model->init(seed);
  return model;
}

// A dense batch of T rows [T, D_in] with row ids; the buffers outlive the Batch views.
struct DenseBatch {
  TensorBuffer x, rows;
  Batch batch;
  DenseBatch(int64_t t, int64_t d_in, uint64_t seed)
      : x(Shape{t, d_in}), rows(Shape{t}, DType::kI64) {
    Rng(seed).fill_normal(x, 0.0f, 1.0f);
    for (int64_t i = 0; i < t; ++i) rows.view().data<int64_t>()[i] = i;
    batch.n_rows = t;
    batch.features = x;
    batch.rows = rows;
  }
};

// Three documents over V = 10 ids (one empty), TF-IDF-like weights.
struct TextBatch {
  TensorBuffer ids{Shape{5}, DType::kI32}, offsets{Shape{4}, DType::kI64}, weights{Shape{5}};
  Batch batch;
  TextBatch() {
    const int32_t id[] = {1, 4, 9, 0, 4};
    const int64_t off[] = {0, 3, 3, 5};
    const float w[] = {0.6f, 0.7f, 0.38f, 0.8f, 0.6f};
    for (int i = 0; i < 5; ++i) ids.view().data<int32_t>()[i] = id[i], weights.f32()[i] = w[i];
    for (int i = 0; i < 4; ++i) offsets.view().data<int64_t>()[i] = off[i];
    batch.n_rows = 3;
    batch.ids = ids;
    batch.offsets = offsets;
    batch.weights = weights;
  }
};

TEST(ModelTest, BuildsEachInputKindWithDocumentedNames) {
  const ModelConfig c = smooth_config(NormChoice::kLayer);
  struct Kind {
    DataShape shape;
    Shape input_w;
  };
  const Kind kinds[] = {
      {{FeatureKind::kDense, 7, TaskKind::kClassification, 3}, Shape{6, 7}},     // tabular
      {{FeatureKind::kSparse, 10, TaskKind::kClassification, 2}, Shape{10, 6}},  // text
      {{FeatureKind::kDense, 16, TaskKind::kClassification, 10}, Shape{6, 16}},  // 4x4 images
      {{FeatureKind::kDense, 3, TaskKind::kRegression, 2}, Shape{6, 3}},         // 2 targets
  };
  for (const Kind& k : kinds) {
    std::unique_ptr<Model> m = make(c, k.shape);
    ASSERT_TRUE(m);
    const ParamStore& p = m->params();
    const auto shape_of = [&](const char* name) {
      const ParamId id = p.find(name);
      EXPECT_GE(id, 0) << name;
      return id >= 0 ? p.info(id).shape : Shape{};
    };
    EXPECT_EQ(shape_of("input.w"), k.input_w);
    EXPECT_EQ(shape_of("input.b"), (Shape{6}));
    EXPECT_EQ(shape_of("blocks.0.norm.gain"), (Shape{6}));
    EXPECT_EQ(shape_of("blocks.0.norm.bias"), (Shape{6}));
    EXPECT_EQ(shape_of("blocks.0.ffn.w1"), (Shape{5, 6}));
    EXPECT_EQ(shape_of("blocks.1.moe.router.w"), (Shape{3, 6}));
    EXPECT_EQ(shape_of("blocks.1.moe.experts.2.w2"), (Shape{6, 4}));
    EXPECT_EQ(shape_of("blocks.2.moe.experts.1.w3"), (Shape{4, 6}));
    EXPECT_EQ(shape_of("blocks.2.moe.shared.0.w1"), (Shape{3, 6}));
    EXPECT_EQ(shape_of("final_norm.gain"), (Shape{6}));
    EXPECT_EQ(shape_of("head.w"), (Shape{k.shape.n_outputs, 6}));
    EXPECT_EQ(shape_of("head.b"), (Shape{k.shape.n_outputs}));
    EXPECT_EQ(m->n_blocks(), 3);
    ASSERT_EQ(m->n_moe_layers(), 2);
    EXPECT_EQ(m->moe_layer_name(1), "blocks.2.moe");
    EXPECT_EQ(m->moe_layer_block(0), 1);
    EXPECT_EQ(m->n_params(), p.n_elements());

    Arena arena;
    TextBatch text;
    DenseBatch dense(4, k.shape.n_features, 3);
    const Batch& b = k.shape.input == FeatureKind::kSparse ? text.batch : dense.batch;
    const Tensor logits = m->forward(b, false, Rng(1), arena);
    EXPECT_EQ(logits.shape(), (Shape{b.n_rows, k.shape.n_outputs}));
    for (int64_t i = 0; i < logits.numel(); ++i) EXPECT_TRUE(std::isfinite(logits.f32()[i]));
  }
}

TEST(ModelTest, RejectsBadShapesWithAStatus) {
  const ModelConfig c = smooth_config(NormChoice::kRms);
  EXPECT_FALSE(Model::create(c, {FeatureKind::kDense, 0, TaskKind::kClassification, 2}).is_ok());
  Result<std::unique_ptr<Model>> one =
      Model::create(c, {FeatureKind::kDense, 4, TaskKind::kClassification, 1});
  ASSERT_FALSE(one.is_ok());
  EXPECT_EQ(one.status().message(), "model: a classifier needs at least 2 classes, the data has 1");
  ModelConfig bad = c;
  bad.moe[1].gate.k = 3;  // of 2 experts
  Result<std::unique_ptr<Model>> r =
      Model::create(bad, {FeatureKind::kDense, 4, TaskKind::kClassification, 2});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message().rfind("model.moe.1: ", 0), 0u) << r.status().message();
}

// L = Σ r ⊙ logits + the auxiliary losses; backward with dlogits = r must give dL/dθ.
void check_model_gradients(Model& m, const Batch& batch, const std::vector<const char*>& names) {
  Arena arena;
  const Tensor probe = m.forward(batch, true, Rng(9), arena);
  TensorBuffer r(probe.shape());
  testing::seed_projection(r, 17);
  const auto loss = [&]() {
    arena.reset();
    const Tensor logits = m.forward(batch, true, Rng(9), arena);
    return testing::project(logits, r) + m.aux_loss();
  };
  m.params().zero_grads();
  arena.reset();
  m.forward(batch, true, Rng(9), arena);
  m.backward(r, arena);
  std::vector<testing::GradTarget> targets;
  for (const char* name : names) {
    const ParamId id = m.params().find(name);
    ASSERT_GE(id, 0) << name;
    targets.push_back({name, m.params().value(id), m.params().grad(id)});
  }
  testing::GradCheckOptions opts;
  opts.max_elements = 12;
  testing::expect_gradients_match(loss, targets, opts);
}

TEST(ModelTest, GradientsOfAWholeModelMatchFiniteDifferences) {
  for (NormChoice norm : {NormChoice::kRms, NormChoice::kLayer, NormChoice::kNone}) {
    SCOPED_TRACE(norm_choice_name(norm));
    ModelConfig c = smooth_config(norm);
    c.trunk.final_norm = norm != NormChoice::kLayer;  // LayerNorm blocks without a final norm
    c.trunk.dropout = 0.2f;                           // the same mask every call: the rng is fixed
    std::unique_ptr<Model> m = make(c, {FeatureKind::kDense, 5, TaskKind::kClassification, 3});
    ASSERT_TRUE(m);
    DenseBatch b(4, 5, 21);
    std::vector<const char*> names = {"input.w",
                                      "input.b",
                                      "blocks.0.ffn.w1",
                                      "blocks.1.moe.router.w",
                                      "blocks.1.moe.experts.1.w2",
                                      "blocks.2.moe.experts.0.w3",
                                      "blocks.2.moe.shared.0.w2",
                                      "head.w",
                                      "head.b"};
    if (norm != NormChoice::kNone) names.push_back("blocks.1.norm.gain");
    if (norm == NormChoice::kRms) names.push_back("final_norm.gain");
    EXPECT_EQ(m->params().find("final_norm.gain") >= 0, norm == NormChoice::kRms);
    if (norm == NormChoice::kLayer) names.push_back("blocks.2.norm.bias");
    check_model_gradients(*m, b.batch, names);
  }
}

TEST(ModelTest, TextModelGradientsReachTheEmbeddingTable) {
  ModelConfig c = smooth_config(NormChoice::kRms);
  c.input_dropout = 0.25f;
  c.word_dropout = 0.3f;  // the same ids dropped every call: the rng is fixed
  std::unique_ptr<Model> m = make(c, {FeatureKind::kSparse, 10, TaskKind::kClassification, 2});
  ASSERT_TRUE(m);
  // The empty document's embedding is the bias alone, zero at init, where an RMSNorm has slope
  // 1/√eps: finite differences need a bias away from 0 to stay in the linear range.
  Rng(4).fill_normal(m->params().value(m->params().find("input.b")), 0.0f, 1.0f);
  TextBatch b;
  check_model_gradients(*m, b.batch, {"input.w", "input.b", "blocks.1.moe.router.w", "head.w"});
}

// Freezing the input stage, the head, a trunk FFN, an MLP expert and a SwiGLU expert skips
// their weight-gradient products and nothing else: every other gradient is bit-identical to the
// unfrozen model's, for dense and text inputs, with linear experts too.
TEST(ModelTest, FrozenWeightsSkipTheirGradientsAndChangeNoOther) {
  TextBatch text;
  DenseBatch dense(4, 5, 21);
  for (FeatureKind kind : {FeatureKind::kSparse, FeatureKind::kDense}) {
    SCOPED_TRACE(kind == FeatureKind::kSparse ? "text" : "dense");
    const DataShape shape{kind, kind == FeatureKind::kSparse ? 10 : 5, TaskKind::kClassification,
                          2};
    const Batch& batch = kind == FeatureKind::kSparse ? text.batch : dense.batch;
    ModelConfig c = smooth_config(NormChoice::kRms);
    MoeBlockConfig linear = c.moe[0];
    linear.expert = {ExpertKind::kLinear, 6, 1, Activation::kGelu, true};
    c.moe.push_back(linear);
    std::unique_ptr<Model> all = make(c, shape), some = make(c, shape);
    ASSERT_TRUE(all && some);
    ParamStore& frozen = some->params();
    for (ParamId id = 0; id < frozen.size(); ++id) {
      const std::string& n = frozen.info(id).name;
      if (n.rfind("input.", 0) == 0 || n.rfind("head.", 0) == 0 ||
          n.rfind("blocks.0.ffn.", 0) == 0 || n.rfind("blocks.1.moe.experts.2.", 0) == 0 ||
          n.rfind("blocks.2.moe.experts.0.", 0) == 0 || n.rfind("blocks.3.moe.experts.1.", 0) == 0)
        frozen.freeze(id);
    }
    ASSERT_GE(frozen.find("blocks.3.moe.experts.1.w1"), 0);  // the linear experts' block
    EXPECT_TRUE(frozen.frozen(frozen.find("blocks.3.moe.experts.1.w1")));
    for (Model* m : {all.get(), some.get()}) {
      Arena arena;
      m->params().clear_grads();
      const Tensor logits = m->forward(batch, true, Rng(9), arena);
      TensorBuffer r(logits.shape());
      testing::seed_projection(r.view(), 3);
      m->backward(r.view(), arena);
      m->params().settle_grads();
    }
    const int64_t compared = testing::expect_unfrozen_gradients_equal(all->params(), frozen);
    EXPECT_GT(compared, 10);
  }
}

// model.input_l2 λ adds λ·W_in to the input weights' gradient and changes nothing else.
TEST(ModelTest, InputL2AddsItsGradientToTheInputWeightsOnly) {
  constexpr float kLambda = 0.5f;
  TextBatch text;
  DenseBatch dense(4, 5, 21);
  for (FeatureKind kind : {FeatureKind::kSparse, FeatureKind::kDense}) {
    SCOPED_TRACE(kind == FeatureKind::kSparse ? "text" : "dense");
    const DataShape shape{kind, kind == FeatureKind::kSparse ? 10 : 5, TaskKind::kClassification,
                          2};
    const Batch& batch = kind == FeatureKind::kSparse ? text.batch : dense.batch;
    ModelConfig c = smooth_config(NormChoice::kRms);
    std::unique_ptr<Model> plain = make(c, shape);
    c.input_l2 = kLambda;
    std::unique_ptr<Model> penalised = make(c, shape);
    ASSERT_TRUE(plain && penalised);
    for (Model* m : {plain.get(), penalised.get()}) {
      Arena arena;
      m->params().zero_grads();
      const Tensor logits = m->forward(batch, true, Rng(9), arena);  // [T, C]
      TensorBuffer r(logits.shape());
      testing::seed_projection(r, 17);
      m->backward(r, arena);
    }
    for (ParamId id = 0; id < plain->params().size(); ++id) {
      const std::string& name = plain->params().info(id).name;
      const Tensor g0 = plain->params().grad(id), g1 = penalised->params().grad(id);
      const Tensor w = plain->params().value(id);
      const float lambda = name == "input.w" ? kLambda : 0.0f;
      for (int64_t i = 0; i < g0.numel(); ++i)
        ASSERT_FLOAT_EQ(g1.f32()[i], g0.f32()[i] + lambda * w.f32()[i]) << name << " " << i;
    }
  }
  ModelConfig bad = smooth_config(NormChoice::kRms);
  bad.input_l2 = -1.0f;
  Result<std::unique_ptr<Model>> r =
      Model::create(bad, {FeatureKind::kDense, 4, TaskKind::kClassification, 2});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message().rfind("model.input_l2: ", 0), 0u) << r.status().message();
}

TEST(ModelTest, DenseEquivalentHasTheMoeActiveSize) {
  ModelConfig c;
  c.width = 16;
  MoeBlockConfig b;
  b.n_experts = 8;
  b.expert = {ExpertKind::kSwiglu, 12, 1, Activation::kGelu, false};
  b.gate.k = 2;
  c.moe = {b};
  const DataShape shape{FeatureKind::kDense, 10, TaskKind::kClassification, 4};
  std::unique_ptr<Model> sparse = make(c, shape);
  c.dense = true;
  std::unique_ptr<Model> dense = make(c, shape);
  ASSERT_TRUE(sparse && dense);
  EXPECT_EQ(dense->n_moe_layers(), 0);
  const ParamId ffn = dense->params().find("blocks.0.ffn.w1");
  ASSERT_GE(ffn, 0);
  EXPECT_EQ(dense->params().info(ffn).shape, (Shape{24, 16}));  // K · F
  EXPECT_EQ(dense->n_active_params(), dense->n_params());
  // The MoE's active size is the dense model's plus its router [E, D].
  EXPECT_EQ(sparse->n_active_params(), dense->n_params() + 8 * 16);
  EXPECT_EQ(sparse->n_params(), dense->n_params() + 8 * 16 + 6 * 3 * 16 * 12);
}

TEST(ModelTest, GateStatesRoundTripAndAreChecked) {
  ModelConfig c;
  c.width = 8;
  MoeBlockConfig b;
  b.n_experts = 4;
  b.expert = {ExpertKind::kLinear, 8, 1, Activation::kGelu, true};
  b.gate.kind = GateKind::kSigmoidBias;
  b.gate.k = 1;
  MoeBlockConfig h;
  h.n_experts = 4;
  h.expert = b.expert;
  h.n_groups = 2;
  h.gate.k = 1;
  h.top_gate.k = 1;
  c.moe = {b, h};
  const DataShape shape{FeatureKind::kDense, 3, TaskKind::kClassification, 2};
  std::unique_ptr<Model> m = make(c, shape);
  ASSERT_TRUE(m);
  DenseBatch batch(16, 3, 4);
  Arena arena;
  for (int step = 0; step < 3; ++step) {
    arena.reset();
    m->forward(batch.batch, true, Rng(step), arena);
    m->after_step();
  }
  const std::vector<GateState> states = m->gate_states();
  ASSERT_EQ(states.size(), 4u);
  EXPECT_EQ(states[0].name, "blocks.0.moe.router");
  EXPECT_EQ(states[0].bias.size(), 4u);
  EXPECT_EQ(states[0].step, 3);
  EXPECT_EQ(states[3].name, "blocks.1.moe.groups.1.router");
  EXPECT_TRUE(states[3].bias.empty());

  std::unique_ptr<Model> fresh = make(c, shape);
  ASSERT_TRUE(fresh->set_gate_states(states).is_ok());
  const std::vector<GateState> again = fresh->gate_states();
  for (size_t i = 0; i < states.size(); ++i) {
    EXPECT_EQ(again[i].step, states[i].step);
    EXPECT_EQ(again[i].bias, states[i].bias);
  }
  std::vector<GateState> missing(states.begin(), states.end() - 1);
  EXPECT_EQ(fresh->set_gate_states(missing).message(),
            "gate state blocks.1.moe.groups.1.router: missing");
  std::vector<GateState> extra = states;
  extra.push_back({"blocks.7.moe.router", 0, {}});
  EXPECT_EQ(fresh->set_gate_states(extra).message(),
            "gate state blocks.7.moe.router: the model has no such gate");
  std::vector<GateState> short_bias = states;
  short_bias[0].bias.pop_back();
  EXPECT_EQ(fresh->set_gate_states(short_bias).message(),
            "gate state blocks.0.moe.router: bias of 3 values, the gate has 4");
}

// Four clusters, each labelled by its own linear rule: an MoE classifier must beat chance fast.
TEST(ModelTest, ShortTrainingRunLowersTheLossWithoutArenaGrowth) {
  constexpr int64_t kT = 64, kIn = 8, kC = 3;
  Rng world(3);
  TensorBuffer centres(Shape{4, kIn}), rules(Shape{4, kC, kIn});
  world.fill_normal(centres, 0.0f, 2.0f);
  world.fill_normal(rules, 0.0f, 1.0f);
  DenseBatch batch(kT, kIn, 8);
  TensorBuffer labels(Shape{kT}, DType::kI32);
  for (int64_t i = 0; i < kT; ++i) {
    const int64_t cl = i % 4;
    float* x = batch.x.f32() + i * kIn;
    int best = 0;
    float best_v = -1e30f;
    for (int k = 0; k < kC; ++k) {
      float v = 0;
      for (int64_t j = 0; j < kIn; ++j) v += rules.f32()[(cl * kC + k) * kIn + j] * x[j];
      if (v > best_v) best_v = v, best = k;
    }
    for (int64_t j = 0; j < kIn; ++j) x[j] += centres.f32()[cl * kIn + j];
    labels.view().data<int32_t>()[i] = best;
  }
  ModelConfig c;
  c.width = 16;
  MoeBlockConfig b;
  b.n_experts = 4;
  b.expert = {ExpertKind::kSwiglu, 16, 1, Activation::kGelu, false};
  b.gate.k = 1;
  b.gate.switch_loss = 0.01f;
  c.moe = {b};
  std::unique_ptr<Model> m = make(c, {FeatureKind::kDense, kIn, TaskKind::kClassification, kC});
  ASSERT_TRUE(m);
  OptimizerConfig oc;
  oc.kind = OptimizerKind::kAdamW;
  std::unique_ptr<Optimizer> opt = make_optimizer(m->params(), oc);
  Arena arena;
  TensorBuffer dlogits(Shape{kT, kC});
  double first = 0, last = 0;
  int overflow_after_warmup = 0;
  for (int step = 0; step < 60; ++step) {
    arena.reset();
    m->params().zero_grads();
    const Tensor logits = m->forward(batch.batch, true, Rng(1).fork(step), arena);
    const double loss = cross_entropy_loss(logits, labels, dlogits);
    m->backward(dlogits, arena);
    opt->step(1e-2);
    m->after_step();
    if (step == 0) first = loss;
    last = loss;
    if (step == 2) overflow_after_warmup = arena.overflow_allocations();
  }
  EXPECT_LT(last, 0.5 * first) << "first " << first << ", last " << last;
  EXPECT_EQ(arena.overflow_allocations(), overflow_after_warmup);  // no growth once sized
}

TEST(ModelTest, SameSeedSameLogits) {
  const ModelConfig c = smooth_config(NormChoice::kRms);
  const DataShape shape{FeatureKind::kDense, 5, TaskKind::kClassification, 3};
  std::unique_ptr<Model> a = make(c, shape, 11), b = make(c, shape, 11), other = make(c, shape, 12);
  DenseBatch batch(6, 5, 2);
  Arena arena_a, arena_b, arena_o;
  const Tensor la = a->forward(batch.batch, false, Rng(0), arena_a);
  const Tensor lb = b->forward(batch.batch, false, Rng(0), arena_b);
  const Tensor lo = other->forward(batch.batch, false, Rng(0), arena_o);
  bool differs = false;
  for (int64_t i = 0; i < la.numel(); ++i) {
    EXPECT_EQ(la.f32()[i], lb.f32()[i]);
    differs = differs || la.f32()[i] != lo.f32()[i];
  }
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace moe
