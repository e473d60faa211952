// training.frozen and training.trainable: which parameters a run trains (freeze.h).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/train/freeze.h"
#include "moe/train/trainer.h"
#include "train_testing.h"

namespace moe {
namespace {

using json = nlohmann::json;

LoadedData make_data() {
  return testing::two_class_data(128, 32, [](const float* x) { return x[0] + x[1] - x[3] > 0; });
}

// A dense block, then a MoE block of 4 SwiGLU experts (top-2), one thread.
Config make_config(const std::string& training) {
  return testing::parse_test_config(json::parse(R"({
    "data": {"train": "unused.csv"},
    "model": {"width": 8, "trunk": {"hidden": [8]},
              "moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 8}}},
    "training": {"lr": 0.01, "epochs": 3, "batch_size": 16, "seed": 7, "threads": 1}})"),
                                    testing::fresh_run_dir("freeze"), training);
}

std::vector<float> values(const ParamStore& s, ParamId id) {
  return {s.value(id).f32(), s.value(id).f32() + s.value(id).numel()};
}

TEST(Freeze, PatternsAreShellGlobsOverTheWholeName) {
  EXPECT_TRUE(param_name_matches("head.*", "head.w"));
  EXPECT_TRUE(param_name_matches("blocks.1.moe.experts.[02].*", "blocks.1.moe.experts.2.w3"));
  EXPECT_FALSE(param_name_matches("blocks.1.moe.experts.[02].*", "blocks.1.moe.experts.1.w3"));
  EXPECT_FALSE(param_name_matches("head", "head.w"));
  EXPECT_TRUE(param_name_matches("*.router.?", "blocks.1.moe.router.w"));
}

// Frozen parameters end training bit-identical; the rest train.
TEST(Freeze, FrozenParametersKeepTheirValuesAndTheRestTrain) {
  const LoadedData data = make_data();
  const Config config =
      make_config(R"({"frozen": ["input.*", "blocks.0.*", "blocks.1.moe.experts.[13].*"]})");
  TrainOptions o = testing::quiet();
  o.write_files = false;
  Result<std::unique_ptr<Trainer>> t = Trainer::create(config, data, o);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  const ParamStore& store = (*t)->model().params();
  std::vector<std::vector<float>> before;
  for (ParamId id = 0; id < store.size(); ++id) before.push_back(values(store, id));
  Result<TrainResult> r = (*t)->run();
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  int64_t frozen = 0;
  for (ParamId id = 0; id < store.size(); ++id) {
    const std::string& name = store.info(id).name;
    const bool should = name.rfind("input.", 0) == 0 || name.rfind("blocks.0.", 0) == 0 ||
                        name.rfind("blocks.1.moe.experts.1.", 0) == 0 ||
                        name.rfind("blocks.1.moe.experts.3.", 0) == 0;
    EXPECT_EQ(store.frozen(id), should) << name;
    if (should) {
      frozen += store.info(id).shape.numel();
      EXPECT_EQ(values(store, id), before[static_cast<size_t>(id)]) << name << " changed";
    } else if (name == "head.w" || name == "blocks.1.moe.experts.0.w2") {
      EXPECT_NE(values(store, id), before[static_cast<size_t>(id)]) << name << " did not train";
    }
  }
  EXPECT_EQ(r->n_trainable_params, r->n_params - frozen);
}

TEST(Freeze, TrainableFreezesEverythingItDoesNotName) {
  ParamStore store;
  for (const char* name : {"input.w", "blocks.0.ffn.w1", "head.w", "head.b"})
    store.add(name, Shape{2});
  store.finalize();
  TrainingConfig t;
  t.trainable = {"head.*"};
  ASSERT_TRUE(apply_frozen(t, store).is_ok());
  EXPECT_TRUE(store.frozen(0));
  EXPECT_TRUE(store.frozen(1));
  EXPECT_FALSE(store.frozen(2));
  EXPECT_EQ(store.n_trainable_elements(), 4);
}

TEST(Freeze, APatternThatMatchesNothingOrFreezingEverythingIsAnError) {
  const LoadedData data = make_data();
  TrainOptions o = testing::quiet();
  o.write_files = false;
  Result<std::unique_ptr<Trainer>> none =
      Trainer::create(make_config(R"({"frozen": ["heads.*"]})"), data, o);
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find(
                "training.frozen: \"heads.*\" matches no parameter of this model"),
            std::string::npos)
      << none.status().message();
  Result<std::unique_ptr<Trainer>> all =
      Trainer::create(make_config(R"({"frozen": ["*"]})"), data, o);
  ASSERT_FALSE(all.is_ok());
  EXPECT_NE(all.status().message().find("every parameter of the model would be frozen"),
            std::string::npos)
      << all.status().message();
  Result<std::unique_ptr<Trainer>> trainable =
      Trainer::create(make_config(R"({"trainable": ["head.x"]})"), data, o);
  ASSERT_FALSE(trainable.is_ok());
  EXPECT_NE(trainable.status().message().find("training.trainable: \"head.x\""), std::string::npos)
      << trainable.status().message();
}

}  // namespace
}  // namespace moe
