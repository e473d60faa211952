// The translation model against its PyTorch twin (tests/golden/gen_translation.py, float64
// autograd on the stored float32 values), as lm_golden.cpp does for the language model: the same
// parameters and sentence pairs give the same logits, task and auxiliary losses and every
// parameter gradient; then three AdamW steps give the same losses on the way and the same
// parameters at the end.
//
// Fixtures: translation_moe_tied (encoder block 1 and both decoder blocks MoE top-2 of 4, tied
// head, GQA 4 heads over 2, three pairs) and translation_mixed_untied (the one encoder block and
// decoder block 1 MoE top-1 of 3 weighted by p, untied head, MHA, two pairs).
//
// Dims: B pairs · Ts source and Tt target tokens · V vocabulary · D width.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "model_golden.h"
#include "moe/model/model.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

using testing::Fixture;

std::vector<int64_t> parse_list(const std::string& text) {
  std::vector<int64_t> out;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find(',', at), text.size());
    out.push_back(std::stoll(text.substr(at, end - at)));
    at = end + 1;
  }
  return out;
}

// "0,1" over two blocks is every block; "1" (or "1,3") every other one.
MoeLayers moe_layers_of(const std::string& blocks, int64_t layers) {
  const std::vector<int64_t> listed = parse_list(blocks);
  std::vector<int64_t> all, every_other;
  for (int64_t l = 0; l < layers; ++l) {
    all.push_back(l);
    if (l % 2 == 1) every_other.push_back(l);
  }
  if (listed == all) return MoeLayers::kAll;
  EXPECT_EQ(listed, every_other) << blocks;
  return MoeLayers::kEveryOther;
}

// The model the fixture's metadata describes.
ModelConfig config_of(const Fixture& f) {
  ModelConfig c;
  c.translation_model = true;
  c.width = f.meta_int("d_model");
  TranslationConfig& tr = c.translation;
  tr.encoder_layers = f.meta_int("encoder_layers");
  tr.decoder_layers = f.meta_int("decoder_layers");
  tr.heads = f.meta_int("n_heads");
  tr.kv_heads = f.meta_int("n_kv_heads");
  tr.max_tokens = 16;
  tr.tie_embeddings = f.meta("tied") == "1";
  tr.rope_theta = f.meta_double("rope_theta");
  tr.norm_eps = f.meta_float("norm_eps");
  tr.encoder_moe = moe_layers_of(f.meta("encoder_moe_blocks"), tr.encoder_layers);
  tr.decoder_moe = moe_layers_of(f.meta("decoder_moe_blocks"), tr.decoder_layers);
  tr.ffn_hidden = f.meta_int("ffn_hidden");
  MoeBlockConfig m;
  m.n_experts = f.meta_int("n_experts");
  m.expert = {ExpertKind::kSwiglu, f.meta_int("hidden"), 1, Activation::kGelu, false};
  m.gate.kind = GateKind::kTopKSoftmax;
  m.gate.k = f.meta_int("k");
  m.gate.renormalize = f.meta("renormalize") == "1";
  m.gate.switch_loss = f.meta_float("switch_coef");
  m.gate.z_loss = f.meta_float("z_coef");
  c.moe = {m};
  return c;
}

TensorBuffer starts_tensor(const std::string& text) {
  const std::vector<int64_t> starts = parse_list(text);
  TensorBuffer t(Shape{static_cast<int64_t>(starts.size())}, DType::kI64);
  std::copy(starts.begin(), starts.end(), t.view().data<int64_t>());
  return t;
}

void check_fixture(const std::string& name) {
  Fixture f(name);
  ASSERT_TRUE(f.ok());
  DataShape shape;
  shape.input = FeatureKind::kPairs;
  shape.n_features = shape.n_outputs = f.meta_int("vocab");
  Result<std::unique_ptr<Model>> created = Model::create(config_of(f), shape);
  ASSERT_TRUE(created.is_ok()) << created.status().message();
  Model& model = *created.value();

  const TensorBuffer src = f.get("src_tokens"), tgt_in = f.get("tgt_in"),
                     tgt_out = f.get("tgt_out");
  const TensorBuffer src_starts = starts_tensor(f.meta("src_starts")),
                     tgt_starts = starts_tensor(f.meta("tgt_starts"));
  Batch batch;
  batch.n_rows = src_starts.view().numel() - 1;
  batch.src_tokens = src.view();
  batch.src_starts = src_starts.view();
  batch.tgt_in = tgt_in.view();
  batch.tgt_out = tgt_out.view();
  batch.tgt_starts = tgt_starts.view();

  testing::expect_fixture_trajectory(name, f, model, batch, tgt_in.view().numel());
}

TEST(TranslationGolden, MoeTiedGqa) {
  check_fixture("translation_moe_tied");
}

TEST(TranslationGolden, MixedUntiedMha) {
  check_fixture("translation_mixed_untied");
}

}  // namespace
}  // namespace moe
