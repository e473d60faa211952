// The language model against its PyTorch twin (tests/golden/gen_lm.py, float64 autograd on the
// stored float32 values), llm.c's test_gpt2 way: the same parameters and tokens give the same
// logits, task and auxiliary losses and every parameter gradient; then three AdamW steps give
// the same losses on the way and the same parameters at the end.
//
// Fixtures: lm_moe_tied (every block MoE top-2 of 4, tied head, GQA 4 heads over 2) and
// lm_mixed_untied (block 0 a dense SwiGLU, block 1 MoE top-1 of 3, untied head, MHA).
//
// Dims: B windows · S context · T = B·S · V vocabulary · D width.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "model_golden.h"
#include "moe/model/model.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

using testing::Fixture;

// The model the fixture's metadata describes.
ModelConfig config_of(const Fixture& f) {
  ModelConfig c;
  c.language_model = true;
  c.width = f.meta_int("d_model");
  c.lm.layers = f.meta_int("n_layers");
  c.lm.heads = f.meta_int("n_heads");
  c.lm.kv_heads = f.meta_int("n_kv_heads");
  c.lm.context = f.meta_int("context");
  c.lm.tie_embeddings = f.meta("tied_head") == "true";
  c.lm.rope_theta = f.meta_double("rope_theta");
  c.lm.norm_eps = f.meta_float("norm_eps");
  const std::string moe_blocks = f.meta("moe_blocks");
  EXPECT_TRUE(moe_blocks == "0,1" || moe_blocks == "1") << moe_blocks;
  c.lm.moe_layers = moe_blocks == "1" ? MoeLayers::kEveryOther : MoeLayers::kAll;
  c.lm.ffn_hidden = moe_blocks == "1" ? f.meta_int("dense_hidden") : 0;
  MoeBlockConfig m;
  m.n_experts = f.meta_int("n_experts");
  m.expert = {ExpertKind::kSwiglu, f.meta_int("expert_hidden"), 1, Activation::kGelu, false};
  m.gate.kind = GateKind::kTopKSoftmax;
  m.gate.k = f.meta_int("top_k");
  m.gate.renormalize = f.meta("renormalize") == "true";
  m.gate.switch_loss = f.meta_float("switch_coef");
  m.gate.z_loss = f.meta_float("z_coef");
  c.moe = {m};
  return c;
}

void check_fixture(const std::string& name) {
  Fixture f(name);
  ASSERT_TRUE(f.ok());
  DataShape shape;
  shape.input = FeatureKind::kTokens;
  shape.n_features = shape.n_outputs = f.meta_int("vocab");
  Result<std::unique_ptr<Model>> created = Model::create(config_of(f), shape);
  ASSERT_TRUE(created.is_ok()) << created.status().message();
  Model& model = *created.value();

  // The windows: tokens [B, S] followed by the last target make [B, S+1].
  const TensorBuffer tokens = f.get("tokens"), targets = f.get("targets");
  const int64_t b = tokens.view().dim(0), s = tokens.view().dim(1);
  TensorBuffer windows(Shape{b, s + 1}, DType::kI32);
  for (int64_t i = 0; i < b; ++i) {
    int32_t* w = windows.view().data<int32_t>() + i * (s + 1);
    for (int64_t j = 0; j < s; ++j) {
      w[j] = tokens.view().data<int32_t>()[i * s + j];
      if (j > 0) {
        ASSERT_EQ(w[j], targets.view().data<int32_t>()[i * s + j - 1]) << "shifted";
      }
    }
    w[s] = targets.view().data<int32_t>()[i * s + s - 1];
  }
  Batch batch;
  batch.n_rows = b;
  batch.tokens = windows.view();

  testing::expect_fixture_trajectory(name, f, model, batch, b * s);
}

TEST(LmGolden, MoeTiedGqa) {
  check_fixture("lm_moe_tied");
}

TEST(LmGolden, MixedUntiedMha) {
  check_fixture("lm_mixed_untied");
}

}  // namespace
}  // namespace moe
