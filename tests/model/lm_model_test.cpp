// LmModel: the documented names and shapes, every parameter gradient of a small model against
// finite differences (tied and untied head, MoE and dense blocks, grouped-query attention), the
// refusal of gates that look across tokens, and a short training run that learns a repeating
// text.
//
// Dims: B windows · S context · T = B·S tokens · V vocabulary · D width · H heads · G kv heads.
#include "moe/model/lm_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "moe/core/arena.h"
#include "moe/optim/optimizer.h"
#include "testing/gradcheck.h"

namespace moe {
namespace {

constexpr int64_t kVocab = 23;

// Block 0 dense SwiGLU, block 1 an MoE of 3 SwiGLU experts under a top-3 softmax gate (every
// expert chosen for every token, so the loss is smooth for finite differences) with z-loss.
ModelConfig small_config(bool tied, int64_t kv_heads) {
  ModelConfig c;
  c.language_model = true;
  c.width = 8;
  c.lm.layers = 2;
  c.lm.heads = 2;
  c.lm.kv_heads = kv_heads;
  c.lm.context = 5;
  c.lm.tie_embeddings = tied;
  c.lm.moe_layers = MoeLayers::kEveryOther;
  c.lm.ffn_hidden = 6;
  MoeBlockConfig m;
  m.n_experts = 3;
  m.expert = {ExpertKind::kSwiglu, 4, 1, Activation::kGelu, false};
  m.gate.kind = GateKind::kTopKSoftmax;
  m.gate.k = 3;
  m.gate.switch_loss = 0.0f;
  m.gate.z_loss = 0.01f;
  c.moe = {m};
  return c;
}

DataShape lm_shape() {
  DataShape s;
  s.input = FeatureKind::kTokens;
  s.n_features = kVocab;
  s.task = TaskKind::kClassification;
  s.n_outputs = kVocab;
  return s;
}

std::unique_ptr<Model> make(const ModelConfig& c, uint64_t seed = 3) {
  Result<std::unique_ptr<Model>> m = Model::create(c, lm_shape());
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  if (!m.is_ok()) return nullptr;
  m.value()->init(seed);
  return std::move(m.value());
}

// B windows of S+1 tokens drawn from `seed`.
struct TokenBatch {
  TensorBuffer tokens;
  Batch batch;
  TokenBatch(int64_t b, int64_t s, uint64_t seed) : tokens(Shape{b, s + 1}, DType::kI32) {
    Rng rng(seed);
    int32_t* t = tokens.view().data<int32_t>();
    for (int64_t i = 0; i < b * (s + 1); ++i) t[i] = static_cast<int32_t>(rng.below(kVocab));
    batch.n_rows = b;
    batch.tokens = tokens.view();
  }
};

// Freezing the attention, the embedding (tied head), a dense FFN and an expert skips their
// weight-gradient products and nothing else: every other gradient is bit-identical to the
// unfrozen model's.
TEST(LmModel, FrozenWeightsSkipTheirGradientsAndChangeNoOther) {
  for (const bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const std::unique_ptr<Model> all = make(small_config(tied, 1));
    const std::unique_ptr<Model> some = make(small_config(tied, 1));
    ASSERT_TRUE(all && some);
    ParamStore& frozen = some->params();
    for (ParamId id = 0; id < frozen.size(); ++id) {
      const std::string& n = frozen.info(id).name;
      if (n.find(".attn.w") != std::string::npos || n == "embed.w" || n == "head.w" ||
          n.rfind("blocks.0.ffn.", 0) == 0 || n.rfind("blocks.1.moe.experts.1.", 0) == 0)
        frozen.freeze(id);
    }
    TokenBatch tb(2, 5, 21);
    for (Model* m : {all.get(), some.get()}) {
      Arena arena;
      Tensor logits = m->forward(tb.batch, true, Rng(4), arena);
      TensorBuffer r(logits.shape());
      testing::seed_projection(r.view(), 5);
      m->params().clear_grads();
      m->backward(r.view(), arena);
      m->params().settle_grads();
    }
    const int64_t compared = testing::expect_unfrozen_gradients_equal(all->params(), frozen);
    EXPECT_GT(compared, 5);
  }
}

TEST(LmModel, NamesAndShapes) {
  const std::unique_ptr<Model> m = make(small_config(false, 1));
  ASSERT_TRUE(m);
  const ParamStore& p = m->params();
  const auto shape_of = [&](const char* name) {
    const ParamId id = p.find(name);
    EXPECT_GE(id, 0) << name;
    return id >= 0 ? p.info(id).shape.str() : std::string();
  };
  EXPECT_EQ(shape_of("embed.w"), "[23, 8]");
  EXPECT_EQ(shape_of("blocks.0.attn_norm.gain"), "[8]");
  EXPECT_EQ(shape_of("blocks.0.attn.wq"), "[8, 8]");
  EXPECT_EQ(shape_of("blocks.0.attn.wk"), "[4, 8]");  // one kv head of width 4
  EXPECT_EQ(shape_of("blocks.0.attn.wv"), "[4, 8]");
  EXPECT_EQ(shape_of("blocks.0.attn.wo"), "[8, 8]");
  EXPECT_EQ(shape_of("blocks.0.ffn_norm.gain"), "[8]");
  EXPECT_EQ(shape_of("blocks.0.ffn.w1"), "[6, 8]");
  EXPECT_EQ(shape_of("blocks.1.moe.router.w"), "[3, 8]");
  EXPECT_EQ(shape_of("blocks.1.moe.experts.2.w2"), "[8, 4]");
  EXPECT_EQ(shape_of("final_norm.gain"), "[8]");
  EXPECT_EQ(shape_of("head.w"), "[23, 8]");
  EXPECT_EQ(m->n_moe_layers(), 1);
  EXPECT_EQ(m->moe_layer_name(0), "blocks.1.moe");
  const std::unique_ptr<Model> tied = make(small_config(true, 0));
  ASSERT_TRUE(tied);
  EXPECT_LT(tied->params().find("head.w"), 0);
}

// L = Σ r ⊙ logits + aux: every parameter's gradient against central differences.
void check_gradients(const ModelConfig& c) {
  const std::unique_ptr<Model> m = make(c);
  ASSERT_TRUE(m);
  TokenBatch tb(2, c.lm.context, 17);
  ParamStore& store = m->params();
  // Embedding rows of unit scale: at the initial N(0, 0.02²) a step of eps = 1e-2 moves a row's
  // RMS norm too far for central differences.
  Rng(8).fill_normal(store.value(store.find("embed.w")), 0.0f, 1.0f);
  Arena arena;
  const Rng rng(1);
  Tensor logits = m->forward(tb.batch, true, rng, arena);
  TensorBuffer r(logits.shape());
  testing::seed_projection(r.view(), 99);
  store.zero_grads();
  m->backward(r.view(), arena);
  std::vector<testing::GradTarget> targets;
  for (ParamId id = 0; id < store.size(); ++id)
    targets.push_back({store.info(id).name, store.value(id), store.grad(id)});
  const auto loss = [&] {
    Arena a;
    Tensor y = m->forward(tb.batch, true, rng, a);
    return testing::project(y, r.view()) + m->aux_loss();
  };
  testing::GradCheckOptions opts;
  opts.eps = 1e-2;
  opts.max_elements = 12;
  testing::expect_gradients_match(loss, targets, opts);
}

TEST(LmModel, GradientsUntiedGqa) {
  check_gradients(small_config(false, 1));
}

TEST(LmModel, GradientsTiedMha) {
  check_gradients(small_config(true, 0));
}

TEST(LmModel, RefusesGatesThatLookAcrossTokens) {
  ModelConfig c = small_config(true, 0);
  c.moe[0].gate.kind = GateKind::kExpertChoice;
  Result<std::unique_ptr<Model>> m = Model::create(c, lm_shape());
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("causal"), std::string::npos) << m.status().message();
  c = small_config(true, 0);
  c.moe[0].gate.k = 1;
  c.moe[0].gate.capacity_factor = 1.25f;
  EXPECT_FALSE(Model::create(c, lm_shape()).is_ok());
  c = small_config(true, 0);
  c.lm.heads = 3;  // 8 % 3 != 0
  EXPECT_FALSE(Model::create(c, lm_shape()).is_ok());
}

// A text that repeats with period 7 is learnt: the loss falls well below ln V.
TEST(LmModel, LearnsARepeatingText) {
  ModelConfig c = small_config(true, 0);
  c.width = 16;
  c.lm.context = 12;
  const std::unique_ptr<Model> m = make(c);
  ASSERT_TRUE(m);
  TensorBuffer tokens(Shape{4, 13}, DType::kI32);
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t s = 0; s < 13; ++s)
      tokens.view().data<int32_t>()[b * 13 + s] = static_cast<int32_t>((b * 3 + s) % 7 + 2);
  Batch batch;
  batch.n_rows = 4;
  batch.tokens = tokens.view();
  OptimizerConfig oc;
  oc.kind = OptimizerKind::kAdamW;
  std::unique_ptr<Optimizer> opt = make_optimizer(m->params(), oc);
  TensorBuffer dlogits(Shape{4 * 12, kVocab});
  Arena arena;
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    arena.reset();
    m->params().zero_grads();
    Tensor logits = m->forward(batch, true, Rng(2).fork(step), arena);
    const double loss = m->task_loss(batch, logits, dlogits.view(), TaskLossOptions());
    if (step == 0) first = loss;
    last = loss;
    m->backward(dlogits.view(), arena);
    opt->step(1e-2);
    m->after_step();
  }
  EXPECT_NEAR(first, std::log(static_cast<double>(kVocab)), 0.5);
  EXPECT_LT(last, 0.3) << "first " << first;
}

// Generation with the key/value cache gives the logits of recomputing the whole sequence: a
// prompt of 3 tokens at once, then one token at a time up to the context.
TEST(LmModel, CachedGenerationEqualsRecomputing) {
  for (bool tied : {true, false}) {
    ModelConfig c = small_config(tied, tied ? 0 : 1);
    const std::unique_ptr<Model> base = make(c);
    ASSERT_TRUE(base);
    auto* m = dynamic_cast<LmModel*>(base.get());
    ASSERT_NE(m, nullptr);
    const int64_t s = c.lm.context;
    TokenBatch tb(1, s, 23);
    const int32_t* seq = tb.tokens.view().data<int32_t>();
    // Recomputed: forward over the window gives logits at every position [S, V].
    Arena full;
    const Tensor all = m->forward(tb.batch, false, Rng(0), full);
    m->start_generation();
    Arena arena;
    int64_t done = 0;
    for (int64_t n : {int64_t{3}, int64_t{1}, int64_t{1}}) {
      arena.reset();
      const Tensor logits = m->extend(std::span<const int32_t>(seq + done, n), arena);
      done += n;
      for (int64_t v = 0; v < kVocab; ++v)
        EXPECT_NEAR(logits.f32()[v], all.at(done - 1, v), 1e-4)
            << "tied " << tied << " position " << done - 1 << " token " << v;
    }
    EXPECT_EQ(m->cached_positions(), s);
  }
}

}  // namespace
}  // namespace moe
