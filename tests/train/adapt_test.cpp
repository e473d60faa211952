// Adaptive training (model.moe.adapt, train/adapt.h): the adapter's counts and decisions, runs
// that split and remove experts as they train, and a resume across a change that is
// bit-identical to the uninterrupted run.
#include "moe/train/adapt.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/model/model.h"
#include "moe/train/checkpoint.h"
#include "moe/train/trainer.h"
#include "train_testing.h"

namespace moe {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

LoadedData make_data() {
  return testing::two_class_data(160, 40, [](const float* x) { return x[0] * x[1] - x[3] > 0; });
}

// A dense block, then an MoE block of `experts` MLP experts (top-1, `gate`) that adapts as
// `adapt` (a JSON object's text) says.
Config make_config(const std::string& out, const std::string& adapt, int64_t epochs = 4,
                   const std::string& gate = R"({"kind": "topk_softmax"})") {
  json j = json::parse(R"({
    "data": {"train": "unused.csv"},
    "model": {"width": 8, "trunk": {"hidden": [8], "dropout": 0.1},
              "moe": {"experts": 4, "k": 1, "expert": {"kind": "mlp", "hidden": 8}}},
    "training": {"lr": 0.01, "batch_size": 16, "seed": 5, "threads": 1,
                 "schedule": "constant"}})");
  j["model"]["moe"]["adapt"] = json::parse(adapt);
  j["model"]["moe"]["gate"] = json::parse(gate);
  j["training"]["epochs"] = epochs;
  return testing::parse_test_config(j, out, "{}");
}

std::unique_ptr<Model> make_model(const Config& c) {
  Result<std::unique_ptr<Model>> m = Model::create(c.model, make_data().schema.shape());
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  return m.is_ok() ? std::move(m.value()) : nullptr;
}

std::vector<ExpertLoad> loads(std::vector<double> share) {
  return {ExpertLoad{"blocks.1.moe", std::move(share)}};
}

TEST(Adapt, CountsEpochsInARowAndNamesOneChangePerLayer) {
  const Config c = make_config(
      "unused", R"({"enabled": true, "split_above": 1.5, "remove_below": 0.2, "epochs": 2})");
  EXPECT_EQ(c.model.moe[0].adapt.max_experts, 8);  // twice the experts
  EXPECT_EQ(c.model.moe[0].adapt.min_experts, 2);
  std::unique_ptr<Model> model = make_model(c);
  ASSERT_TRUE(model);
  ExpertAdapter a(*model);
  ASSERT_FALSE(a.empty());
  // Expert 0 overloaded (over 1.5 × 25%), expert 3 dead (under 5%): one epoch is not enough.
  a.observe(*model, loads({0.5, 0.25, 0.23, 0.02}));
  EXPECT_TRUE(a.take_pending().empty());
  // A break in the run starts the count again.
  a.observe(*model, loads({0.26, 0.22, 0.4, 0.12}));
  EXPECT_TRUE(a.take_pending().empty());
  EXPECT_EQ(a.to_json()["counts"]["blocks.1.moe"]["over"], json::parse("[0, 0, 1, 0]"));
  EXPECT_EQ(a.to_json()["counts"]["blocks.1.moe"]["dead"], json::parse("[0, 0, 0, 0]"));
  // Expert 2 overloaded twice: the split comes first, with the layer's noise; it is pending
  // (in the training state) until taken.
  a.observe(*model, loads({0.3, 0.25, 0.43, 0.02}));
  EXPECT_EQ(a.to_json()["pending"].size(), 1u);
  std::vector<AdaptStep> steps = a.take_pending();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].surgery.op, ExpertOp::kSplit);
  EXPECT_EQ(steps[0].surgery.expert, 2);
  EXPECT_EQ(steps[0].surgery.layer, 0);
  EXPECT_FLOAT_EQ(steps[0].surgery.noise, 0.01f);
  EXPECT_EQ(steps[0].why,
            "it held over 1.5 × the mean share (25.0%) for 2 epochs, 43.0% this epoch");
  a.changed(steps[0]);
  EXPECT_EQ(a.to_json()["counts"]["blocks.1.moe"]["over"], json::parse("[0, 0, 0, 0, 0]"));
  EXPECT_EQ(a.to_json()["counts"]["blocks.1.moe"]["dead"], json::parse("[0, 0, 0, 1, 0]"));
  EXPECT_TRUE(a.to_json()["pending"].empty());
}

TEST(Adapt, RemovesAnExpertDeadForLongEnoughWithinTheBounds) {
  const Config c = make_config(
      "unused", R"({"enabled": true, "remove_below": 0.5, "epochs": 1, "min_experts": 3})");
  std::unique_ptr<Model> model = make_model(c);
  ASSERT_TRUE(model);
  ExpertAdapter a(*model);
  a.observe(*model, loads({0.4, 0.1, 0.45, 0.05}));
  // The saved counts and pending change come back, checked against the model.
  ExpertAdapter b(*model);
  ASSERT_TRUE(b.from_json(a.to_json(), *model).is_ok());
  EXPECT_EQ(b.to_json(), a.to_json());
  std::vector<AdaptStep> steps = b.take_pending();
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].surgery.op, ExpertOp::kRemove);
  EXPECT_EQ(steps[0].surgery.expert, 3);  // the least loaded of the dead
  EXPECT_EQ(steps[0].surgery.layer, 0);
  b.changed(steps[0]);
  EXPECT_EQ(b.to_json()["counts"]["blocks.1.moe"]["dead"], json::parse("[0, 1, 0]"));
  EXPECT_NE(a.from_json(b.to_json(), *model).message().find("expected 4 counts"),
            std::string::npos);
  EXPECT_FALSE(a.from_json(json::object(), *model).is_ok());
  json bad = a.to_json();
  bad["pending"][0]["expert"] = 9;
  EXPECT_EQ(b.from_json(bad, *model).message(),
            "adapt.pending: a change of blocks.1.moe is malformed");
}

// A translation model's one model.moe object configures its MoE layers in both stacks: each
// adapts (a regression: the second layer's config was read past the end of model.moe).
TEST(Adapt, ATranslationModelsSharedConfigAdaptsEveryLayer) {
  ModelConfig c;
  c.translation_model = true;
  c.width = 16;
  c.translation.encoder_layers = 2;
  c.translation.decoder_layers = 2;
  c.translation.heads = 2;
  MoeBlockConfig m;
  m.n_experts = 4;
  m.expert = {ExpertKind::kSwiglu, 8, 1, Activation::kGelu, false};
  m.gate.k = 2;
  m.adapt.enabled = true;
  m.adapt.max_experts = 8;
  m.adapt.min_experts = 2;
  c.moe = {m};
  DataShape shape;
  shape.input = FeatureKind::kPairs;
  shape.n_features = shape.n_outputs = 30;
  Result<std::unique_ptr<Model>> model = Model::create(c, shape);
  ASSERT_TRUE(model.is_ok()) << model.status().message();
  ASSERT_EQ((*model)->n_moe_layers(), 2);
  const ExpertAdapter adapter(**model);
  const nlohmann::json counts = adapter.to_json()["counts"];
  EXPECT_TRUE(counts.contains("encoder.1.moe")) << counts.dump();
  EXPECT_TRUE(counts.contains("decoder.1.moe")) << counts.dump();
}

TEST(Adapt, BadAdaptConfigsAreClearErrors) {
  json j = json::parse(R"({"data": {"train": "unused.csv"},
    "model": {"moe": {"experts": 4, "adapt": {"enabled": true, "max_experts": 3}}}})");
  Result<Config> c = parse_config(j, "test");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("model.moe.adapt: min_experts 2 and max_experts 3 must hold "
                                      "the layer's 4 experts"),
            std::string::npos)
      << c.status().message();
  j["model"]["moe"]["adapt"] = json::parse(R"({"enabled": true, "split_above": 1})");
  c = parse_config(j, "test");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("split_above"), std::string::npos);
  j["model"]["moe"]["gate"] = json::parse(R"({"kind": "hash"})");
  j["model"]["moe"]["adapt"] = json::parse(R"({"enabled": true})");
  c = parse_config(j, "test");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("not hash"), std::string::npos);
}

using testing::metric_lines;
using testing::read_file;

// Every expert over 1.05 × the mean splits: the layer grows by one expert an epoch up to its
// maximum; the changes are in metrics.jsonl, the checkpoint's config and its history.
TEST(Adapt, ARunSplitsExpertsAsItTrains) {
  const LoadedData data = make_data();
  const std::string out = testing::fresh_run_dir("adapt_grow");
  const Config c =
      make_config(out, R"({"enabled": true, "split_above": 1.05, "remove_below": 0, "epochs": 1,
               "max_experts": 6})");
  Result<TrainResult> r = testing::train(c, data);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  Result<Checkpoint> last = load_checkpoint(out + "/last");
  ASSERT_TRUE(last.is_ok()) << last.status().message();
  EXPECT_EQ(last->model->moe_layer(0).n_experts(), 6);
  EXPECT_EQ(last->config.model.moe[0].n_experts, 6);
  EXPECT_TRUE(last->config.model.moe[0].gate.router_bias);
  ASSERT_TRUE(last->info.contains("experts_history"));
  EXPECT_EQ(last->info["experts_history"].size(), 2u);
  int64_t changes = 0;
  for (const std::string& line : metric_lines(out)) {
    const json j = json::parse(line);
    if (!j.contains("expert_changes")) continue;
    for (const json& ch : j["expert_changes"]) {
      EXPECT_EQ(ch["op"], "split");
      EXPECT_EQ(ch["experts"], 5 + changes);
      ++changes;
    }
  }
  EXPECT_EQ(changes, 2);
  EXPECT_GT(r->n_params, 0);
  fs::remove_all(out);
}

// A run resumed after its experts changed ends bit-identical to the uninterrupted run: weights,
// training state, best model, metrics (changes included).
TEST(Adapt, ResumeAcrossAChangeEqualsAnUninterruptedRun) {
  const LoadedData data = make_data();
  const std::string adapt =
      R"({"enabled": true, "split_above": 1.05, "remove_below": 0.5, "epochs": 1,
          "max_experts": 5, "min_experts": 3, "noise": 0.05})";
  const std::string whole = testing::fresh_run_dir("adapt_whole");
  const std::string split = testing::fresh_run_dir("adapt_split");
  Result<TrainResult> a = testing::train(make_config(whole, adapt, 4), data);
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  ASSERT_TRUE(testing::train(make_config(split, adapt, 2), data).is_ok());
  Result<TrainResult> b =
      testing::train(make_config(split, adapt, 4), data, testing::quiet(), split + "/last");
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  EXPECT_EQ(a->steps, b->steps);
  for (const char* f :
       {"last/model.safetensors", "last/train_state.safetensors", "best/model.safetensors"})
    EXPECT_TRUE(read_file(fs::path(whole) / f) == read_file(fs::path(split) / f)) << f;
  EXPECT_EQ(metric_lines(whole), metric_lines(split));
  const json ga = json::parse(read_file(fs::path(whole) / "last/model.json"));
  const json gb = json::parse(read_file(fs::path(split) / "last/model.json"));
  EXPECT_EQ(ga["gates"], gb["gates"]);
  EXPECT_EQ(ga["config"]["model"], gb["config"]["model"]);
  EXPECT_EQ(ga["info"]["experts_history"], gb["info"]["experts_history"]);
  int64_t changes = 0;
  for (const std::string& line : metric_lines(whole))
    changes += json::parse(line).value("expert_changes", json::array()).size();
  EXPECT_GE(changes, 2) << "the runs must change their experts for the test to mean anything";
  fs::remove_all(whole);
  fs::remove_all(split);
}

}  // namespace
}  // namespace moe
