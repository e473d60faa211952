// The warnings a run ends with: dead and silent experts, a router that barely chooses (with the
// top-1 hint only where it applies), and a classifier that predicts one class.
#include "moe/train/run_warnings.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "train/train_testing.h"

namespace moe {
namespace {

// One flat layer's combined level over 100 rows: 4 experts, entropy `entropy` of ln 4.
LevelStats level(const std::string& layer, double entropy) {
  LevelStats s;
  s.layer = layer;
  s.gate = "topk_softmax";
  s.n_experts = 4;
  s.k = 2;
  s.n_rows = 100;
  s.entropy_from_router = true;
  s.entropy_mean = entropy;
  s.entropy_max = std::log(4.0);
  return s;
}

Config config_with(const std::string& moe, const std::string& training) {
  nlohmann::json j = nlohmann::json::parse(R"({"data": {"train": "unused.csv"},
                                               "model": {"width": 16}})");
  j["model"]["moe"] = nlohmann::json::parse(moe);
  return testing::parse_test_config(j, "unused", training);
}

bool has(const std::vector<std::string>& ws, const std::string& part) {
  for (const std::string& w : ws)
    if (w.find(part) != std::string::npos) return true;
  return false;
}

TEST(RunWarnings, AnMoeThatChoosesAndUsesEveryExpertHasNone) {
  InspectReport r;
  r.levels.push_back(level("blocks.0.moe", 0.5));
  EXPECT_TRUE(routing_warnings(r, config_with(R"({"experts": 4})", "{}"), "validation").empty());
}

TEST(RunWarnings, DeadAndSilentExpertsAreListed) {
  InspectReport r;
  LevelStats s = level("blocks.0.moe", 0.5);
  s.dead = {2};
  s.silent = {0, 3};
  r.levels.push_back(s);
  const auto adamw = routing_warnings(
      r, config_with(R"({"experts": 4})", R"({"optimizer": "adamw", "weight_decay": 0.01})"),
      "validation");
  ASSERT_EQ(adamw.size(), 2u);
  EXPECT_NE(adamw[0].find("blocks.0.moe: expert [2] is dead (on the 100 validation rows)"),
            std::string::npos)
      << adamw[0];
  EXPECT_NE(adamw[1].find("2 of 4 experts are silent [0 3]"), std::string::npos) << adamw[1];
  EXPECT_FALSE(has(adamw, "adamw"));  // the hint only under coupled decay
  const auto adam = routing_warnings(
      r, config_with(R"({"experts": 4})", R"({"optimizer": "adam", "weight_decay": 0.0003})"),
      "validation");
  EXPECT_TRUE(has(adam, "training.optimizer = \"adamw\"")) << adam[1];
}

TEST(RunWarnings, AUniformRouterIsNamedAndTopOneRenormalisedGetsItsCause) {
  InspectReport r;
  r.levels.push_back(level("blocks.0.moe", 0.99 * std::log(4.0)));
  const auto top2 = routing_warnings(r, config_with(R"({"experts": 4, "k": 2})", "{}"), "training");
  ASSERT_EQ(top2.size(), 1u);
  EXPECT_NE(top2[0].find("the router barely chooses (on the 100 training rows)"), std::string::npos)
      << top2[0];
  EXPECT_NE(top2[0].find("(99%)"), std::string::npos) << top2[0];
  EXPECT_FALSE(has(top2, "renormalize"));
  const auto top1 = routing_warnings(
      r, config_with(R"({"experts": 4, "k": 1, "gate": {"renormalize": true}})", "{}"), "x");
  EXPECT_TRUE(has(top1, "model.moe.gate.renormalize = false")) << top1[0];
  // Top-1 weighs by the gate probability unless told otherwise: no such cause to name.
  const auto switch_top1 = routing_warnings(r, config_with(R"({"experts": 4, "k": 1})", "{}"), "x");
  EXPECT_FALSE(has(switch_top1, "renormalize"));
  // Just under the line: no warning; hash routing (no router entropy): none.
  r.levels[0].entropy_mean = 0.94 * std::log(4.0);
  EXPECT_TRUE(routing_warnings(r, config_with(R"({"experts": 4})", "{}"), "x").empty());
  r.levels[0].entropy_mean = std::log(4.0);
  r.levels[0].entropy_from_router = false;
  EXPECT_TRUE(routing_warnings(r, config_with(R"({"experts": 4})", "{}"), "x").empty());
}

TEST(RunWarnings, OnlyCombinedLevelsOfEachLayerSpeak) {
  InspectReport r;
  r.levels.push_back(level("blocks.0.moe", 0.2));
  LevelStats top = level("blocks.0.moe", std::log(4.0));
  top.level = "top";
  r.levels.push_back(top);
  LevelStats second = level("blocks.1.moe", std::log(4.0));
  r.levels.push_back(second);
  const auto w = routing_warnings(
      r,
      config_with(
          R"([{"experts": 4, "k": 2}, {"experts": 4, "k": 1, "gate": {"renormalize": true}}])",
          "{}"),
      "x");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].rfind("blocks.1.moe: ", 0), 0u) << w[0];
  EXPECT_TRUE(has(w, "renormalize = false"));  // the second layer's config: k = 1, renormalised
}

TEST(RunWarnings, OneClassPredictedForEveryRow) {
  EvalMetrics m;
  m.task = TaskKind::kClassification;
  m.classification.n_classes = 3;
  m.classification.confusion = {5, 0, 0,  //
                                3, 0, 0,  //
                                2, 0, 0};
  const std::string w = single_class_warning(m, {"a", "b", "c"});
  EXPECT_NE(w.find("predicts one class (\"a\") for every validation row although 3 classes"),
            std::string::npos)
      << w;
  m.classification.confusion = {5, 0, 0, 3, 1, 0, 2, 0, 0};
  EXPECT_EQ(single_class_warning(m, {"a", "b", "c"}), "");
  m.classification.confusion = {5, 0, 0, 0, 0, 0, 0, 0, 0};  // one class among the rows too
  EXPECT_EQ(single_class_warning(m, {"a", "b", "c"}), "");
  m.task = TaskKind::kRegression;
  EXPECT_EQ(single_class_warning(m, {}), "");
}

}  // namespace
}  // namespace moe
