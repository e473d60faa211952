// model.moe.precision: its default, both values reaching the layer and the dense FFN, a bad
// value named by its key, and the resolved form round-tripping it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "moe/core/arena.h"
#include "moe/core/rng.h"
#include "moe/model/model.h"
#include "moe/train/config.h"

namespace moe {
namespace {

using json = nlohmann::json;

json with_precision(const char* value) {
  json j = json::parse(R"({"data": {"train": "t.csv"}, "model": {"moe": {}}})");
  if (value != nullptr) j["model"]["moe"]["precision"] = value;
  return j;
}

TEST(ConfigPrecision, DefaultIsFp32AndBf16Parses) {
  Result<Config> d = parse_config(with_precision(nullptr), "c.json");
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_EQ(d->model.moe[0].precision, Precision::kF32);
  Result<Config> b = parse_config(with_precision("bf16"), "c.json");
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  EXPECT_EQ(b->model.moe[0].precision, Precision::kBF16);
  EXPECT_EQ(moe_layer_config(b->model.moe[0], 64).precision, Precision::kBF16);
  // The resolved form keeps it.
  const json resolved = config_to_json(*b);
  EXPECT_EQ(resolved["model"]["moe"]["precision"], "bf16");
  Result<Config> again = parse_config(resolved, "resolved");
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(again->model.moe[0].precision, Precision::kBF16);
}

TEST(ConfigPrecision, BadValueNamesTheKey) {
  Result<Config> c = parse_config(with_precision("fp16"), "c.json");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("model.moe.precision"), std::string::npos)
      << c.status().message();
}

// The same model in fp32 and bf16 (same seed): the logits differ, by bf16's rounding and no
// more, for the MoE layer and for the dense FFN that replaces it; the parameters stay fp32.
TEST(ConfigPrecision, ModelLayersAndDenseFfnComputeInBf16) {
  for (bool dense : {false, true}) {
    TensorBuffer logits[2] = {TensorBuffer(Shape{32, 3}), TensorBuffer(Shape{32, 3})};
    for (int i = 0; i < 2; ++i) {
      ModelConfig mc;
      mc.width = 32;
      MoeBlockConfig b;
      b.n_experts = 4;
      b.expert.kind = ExpertKind::kSwiglu;
      b.expert.hidden = 48;
      b.precision = i == 0 ? Precision::kF32 : Precision::kBF16;
      mc.moe = {b};
      mc.dense = dense;
      const DataShape shape{FeatureKind::kDense, 5, TaskKind::kClassification, 3};
      Result<std::unique_ptr<Model>> made = Model::create(mc, shape);
      ASSERT_TRUE(made.is_ok()) << made.status().message();
      Model& model = *made.value();
      model.init(1);
      const ParamStore& store = model.params();
      for (ParamId id = 0; id < store.size(); ++id)
        EXPECT_EQ(store.value(id).dtype(), DType::kF32) << store.info(id).name;
      TensorBuffer features(Shape{32, 5}), rows(Shape{32}, DType::kI64);
      Rng(2).fill_normal(features, 0.0f, 1.0f);
      for (int64_t r = 0; r < 32; ++r) rows.view().data<int64_t>()[r] = r;
      Batch batch;
      batch.n_rows = 32;
      batch.features = features;
      batch.rows = rows;
      Arena arena;
      copy(logits[i], model.forward(batch, /*training=*/false, Rng(3), arena));
    }
    double max_diff = 0.0, max_abs = 0.0;
    for (int64_t j = 0; j < logits[0].numel(); ++j) {
      max_diff = std::max(max_diff,
                          std::fabs(static_cast<double>(logits[0].f32()[j]) - logits[1].f32()[j]));
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(logits[0].f32()[j])));
    }
    EXPECT_GT(max_diff, 0.0) << "dense=" << dense << ": bf16 gave the fp32 logits";
    // A residual block's bf16 error is ~1% of its output at most (moe_bf16_test.cpp).
    EXPECT_LT(max_diff, 0.05 * max_abs + 1e-3) << "dense=" << dense;
  }
}

}  // namespace
}  // namespace moe
