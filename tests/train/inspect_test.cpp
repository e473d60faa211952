// Routing inspection: the statistics of hand-made routings against values worked out by hand,
// the collapse flag on a routing sent to one expert and on a balanced one, and a model with
// hand-set router weights on clustered data whose right routing is known (the mutual
// information between label and expert reaches its maximum), flat and hierarchical.
//
// Dims: N rows · E experts · C classes · D_in input width · D model width.
#include "moe/train/inspect.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "moe/core/rng.h"

namespace moe {
namespace {

// A level with no router probabilities; each row given as (expert, weight, dropped) triples.
struct Slot {
  int32_t expert;
  float weight;
  bool dropped = false;
};

LevelRouting hand_routing(int64_t n_experts, const std::vector<std::vector<Slot>>& rows) {
  LevelRouting r;
  r.layer = "blocks.0.moe";
  r.gate = "topk_softmax";
  r.n_experts = n_experts;
  r.k = 2;
  r.offsets.push_back(0);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<int32_t> e;
    std::vector<float> w;
    std::vector<uint8_t> d;
    for (const Slot& s : rows[i]) {
      e.push_back(s.expert);
      w.push_back(s.weight);
      d.push_back(s.dropped ? 1 : 0);
    }
    r.add_row(static_cast<int64_t>(i), e.data(), w.data(), d.data(), static_cast<int64_t>(e.size()),
              nullptr);
  }
  return r;
}

// N rows of dense data (D_in features) with class labels.
Dataset labelled(const std::vector<int32_t>& labels, int64_t n_classes, int64_t d_in) {
  Dataset d;
  d.source = "hand";
  d.n_rows = static_cast<int64_t>(labels.size());
  d.n_features = d_in;
  d.dense.assign(labels.size() * static_cast<size_t>(d_in), 0.0f);
  d.has_labels = true;
  d.n_classes = n_classes;
  d.labels = labels;
  return d;
}

LabelSpec class_spec(int64_t n_classes) {
  LabelSpec s;
  s.columns = {"label"};
  for (int64_t c = 0; c < n_classes; ++c)
    s.class_names.push_back(std::string(1, 'c').append(std::to_string(c)));
  return s;
}

double xlogx(double p) {
  return p > 0 ? p * std::log(p) : 0.0;
}

TEST(InspectLevel, HandMadeRoutingMatchesHandComputedValues) {
  // Four rows over three experts, top-2; row 2's second slot was dropped by capacity.
  const LevelRouting r = hand_routing(3, {{{0, 0.6f}, {1, 0.4f}},
                                          {{0, 0.7f}, {2, 0.3f}},
                                          {{1, 0.5f}, {2, 0.5f, true}},
                                          {{1, 0.8f}, {0, 0.2f}}});
  const Dataset data = labelled({0, 0, 1, 1}, 2, 1);
  InspectContext ctx;
  ctx.data = &data;
  ctx.labels = class_spec(2);
  const LevelStats s = inspect_level(r, ctx, InspectOptions());

  ASSERT_EQ(s.n_rows, 4);
  // Kept slots: expert 0 three, expert 1 three, expert 2 one, of seven.
  EXPECT_NEAR(s.load[0], 3.0 / 7, 1e-12);
  EXPECT_NEAR(s.load[1], 3.0 / 7, 1e-12);
  EXPECT_NEAR(s.load[2], 1.0 / 7, 1e-12);
  // Importance: kept weights per expert over four rows.
  EXPECT_NEAR(s.importance[0], (0.6 + 0.7 + 0.2) / 4, 1e-6);
  EXPECT_NEAR(s.importance[1], (0.4 + 0.5 + 0.8) / 4, 1e-6);
  EXPECT_NEAR(s.importance[2], 0.3 / 4, 1e-6);
  const double mean = 1.0 / 3;
  const double sd = std::sqrt((2 * std::pow(3.0 / 7 - mean, 2) + std::pow(1.0 / 7 - mean, 2)) / 3);
  EXPECT_NEAR(s.cv_load, sd / mean, 1e-12);
  EXPECT_NEAR(s.max_over_mean_load, 9.0 / 7, 1e-12);
  EXPECT_NEAR(s.dropped_rate, 1.0 / 8, 1e-12);
  EXPECT_TRUE(s.dead.empty());
  EXPECT_FALSE(s.collapsed);
  EXPECT_NEAR(s.entropy_max, std::log(3.0), 1e-12);

  // Without router probabilities: each row's kept weights normalised (row 2 keeps one slot).
  EXPECT_FALSE(s.entropy_from_router);
  const double h_rows =
      -(xlogx(0.6) + xlogx(0.4)) - (xlogx(0.7) + xlogx(0.3)) - 0.0 - (xlogx(0.8) + xlogx(0.2));
  EXPECT_NEAR(s.entropy_mean, h_rows / 4, 1e-6);
  EXPECT_NEAR(s.entropy_of_mean, -(xlogx(0.375) + xlogx(0.55) + xlogx(0.075)), 1e-6);

  // Co-activation: share of the four rows keeping both.
  const std::vector<double> co = {0.75, 0.5, 0.25, 0.5, 0.75, 0.0, 0.25, 0.0, 0.25};
  for (size_t i = 0; i < co.size(); ++i) EXPECT_NEAR(s.coactivation[i], co[i], 1e-12) << i;

  // Class × expert: rows of each class keeping each expert, then shares per class.
  EXPECT_EQ(s.class_counts, (std::vector<int64_t>{2, 1, 1, 1, 2, 0}));
  const std::vector<double> shares = {0.5, 0.25, 0.25, 1.0 / 3, 2.0 / 3, 0.0};
  for (size_t i = 0; i < shares.size(); ++i) EXPECT_NEAR(s.class_shares[i], shares[i], 1e-12);

  // Joint p(c, e): each row's mass split over its kept slots.
  const double joint[2][3] = {{0.25, 0.125, 0.125}, {0.125, 0.375, 0.0}};
  const double pc[2] = {0.5, 0.5}, pe[3] = {0.375, 0.5, 0.125};
  double mi = 0.0;
  for (int c = 0; c < 2; ++c)
    for (int e = 0; e < 3; ++e)
      if (joint[c][e] > 0) mi += joint[c][e] * std::log(joint[c][e] / (pc[c] * pe[e]));
  EXPECT_NEAR(s.mutual_information, mi, 1e-12);
  const double h_e = -(xlogx(0.375) + xlogx(0.5) + xlogx(0.125));
  EXPECT_NEAR(s.mutual_information_max, std::min(std::log(2.0), h_e), 1e-12);
}

TEST(InspectLevel, OutputRatiosPerExpertAndSilentExperts) {
  // Slots in row order: (0, 1), (0, 2), (1, 2 dropped), (1, 0). Expert 2's kept slot returns
  // nothing; the dropped slot and a zero input row (-1) are left out of the means.
  LevelRouting r = hand_routing(3, {{{0, 0.6f}, {1, 0.4f}},
                                    {{0, 0.7f}, {2, 0.3f}},
                                    {{1, 0.5f}, {2, 0.5f, true}},
                                    {{1, 0.8f}, {0, 0.2f}}});
  EXPECT_TRUE(inspect_level(r, InspectContext(), InspectOptions()).output_ratio.empty());
  r.output_ratio = {0.5f, 0.2f, 0.3f, 0.0f, -1.0f, -1.0f, 0.4f, 0.1f};
  const LevelStats s = inspect_level(r, InspectContext(), InspectOptions());
  ASSERT_EQ(s.output_ratio.size(), 3u);
  EXPECT_NEAR(s.output_ratio[0], (0.5 + 0.3 + 0.1) / 3, 1e-6);
  EXPECT_NEAR(s.output_ratio[1], (0.2 + 0.4) / 2, 1e-6);
  EXPECT_EQ(s.output_ratio[2], 0.0);
  EXPECT_EQ(s.silent, (std::vector<int64_t>{2}));
}

TEST(InspectLevel, RouterProbabilitiesGiveTheEntropies) {
  LevelRouting r = hand_routing(2, {});
  const int32_t e0 = 0, e1 = 1;
  const float w = 1.0f;
  const uint8_t kept = 0;
  const float p0[2] = {0.5f, 0.5f}, p1[2] = {3.0f, 1.0f};  // any scale: normalised to sum 1
  r.add_row(0, &e0, &w, &kept, 1, p0);
  r.add_row(1, &e1, &w, &kept, 1, p1);
  const LevelStats s = inspect_level(r, InspectContext(), InspectOptions());
  EXPECT_TRUE(s.entropy_from_router);
  EXPECT_NEAR(s.entropy_mean, (std::log(2.0) - xlogx(0.75) - xlogx(0.25)) / 2, 1e-6);
  EXPECT_NEAR(s.entropy_of_mean, -(xlogx(0.625) + xlogx(0.375)), 1e-6);
}

TEST(InspectLevel, OneExpertForEveryRowIsCollapsedAndBalancedIsNot) {
  std::vector<std::vector<Slot>> one, spread;
  std::vector<int32_t> labels;
  for (int i = 0; i < 40; ++i) {
    one.push_back({{0, 1.0f}});
    spread.push_back({{static_cast<int32_t>(i % 4), 1.0f}});
    labels.push_back(i % 4);
  }
  const Dataset data = labelled(labels, 4, 1);
  InspectContext ctx;
  ctx.data = &data;
  ctx.labels = class_spec(4);

  const LevelStats c = inspect_level(hand_routing(4, one), ctx, InspectOptions());
  EXPECT_TRUE(c.collapsed);
  EXPECT_EQ(c.dead, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_NEAR(c.max_over_mean_load, 4.0, 1e-12);
  EXPECT_NEAR(c.mutual_information, 0.0, 1e-12);

  const LevelStats b = inspect_level(hand_routing(4, spread), ctx, InspectOptions());
  EXPECT_FALSE(b.collapsed);
  EXPECT_TRUE(b.dead.empty());
  EXPECT_NEAR(b.cv_load, 0.0, 1e-12);
  // Expert = label: the mutual information is all of H(label) = ln 4.
  EXPECT_NEAR(b.mutual_information, std::log(4.0), 1e-12);
  EXPECT_NEAR(b.mutual_information_max, std::log(4.0), 1e-12);

  // Top-2 over two of eight experts only: as collapsed as top-1 on one.
  std::vector<std::vector<Slot>> pair;
  for (int i = 0; i < 40; ++i) pair.push_back({{2, 0.6f}, {5, 0.4f}});
  EXPECT_TRUE(inspect_level(hand_routing(8, pair), ctx, InspectOptions()).collapsed);
  // A dense gate keeps every expert: judged on importance, one expert taking the weight is
  // collapse, even weights are not.
  std::vector<std::vector<Slot>> dense_one, dense_even;
  for (int i = 0; i < 40; ++i) {
    dense_one.push_back({{0, 0.97f}, {1, 0.01f}, {2, 0.01f}, {3, 0.01f}});
    dense_even.push_back({{0, 0.25f}, {1, 0.25f}, {2, 0.25f}, {3, 0.25f}});
  }
  EXPECT_TRUE(inspect_level(hand_routing(4, dense_one), ctx, InspectOptions()).collapsed);
  EXPECT_FALSE(inspect_level(hand_routing(4, dense_even), ctx, InspectOptions()).collapsed);
}

TEST(InspectLevel, RegressionTargetsPerExpertInTheirOwnUnits) {
  // Three rows, targets stored standardised with mean 100 and std 10; expert 2 gets no row.
  Dataset data;
  data.n_rows = 3;
  data.n_features = 1;
  data.dense.assign(3, 0.0f);
  data.task = TaskKind::kRegression;
  data.has_labels = true;
  data.n_targets = 1;
  data.targets = {-1.0f, 1.0f, 2.0f};  // 90, 110, 120
  InspectContext ctx;
  ctx.data = &data;
  ctx.labels.task = TaskKind::kRegression;
  ctx.labels.columns = {"price"};
  ctx.labels.target_mean = {100.0};
  ctx.labels.target_std = {10.0};
  ctx.labels.standardized = true;
  const LevelStats s = inspect_level(
      hand_routing(3, {{{0, 1.0f}}, {{0, 0.5f}, {1, 0.5f}}, {{1, 1.0f}}}), ctx, InspectOptions());
  ASSERT_EQ(s.target_mean.size(), 3u);
  EXPECT_NEAR(s.target_mean[0], 100.0, 1e-4);  // rows 0, 1
  EXPECT_NEAR(s.target_std[0], 10.0, 1e-4);
  EXPECT_NEAR(s.target_mean[1], 115.0, 1e-4);  // rows 1, 2
  EXPECT_NEAR(s.target_std[1], 5.0, 1e-4);
  EXPECT_TRUE(std::isnan(s.target_mean[2]));
  EXPECT_TRUE(s.class_counts.empty());
}

TEST(InspectLevel, TokensByLiftAndMeanImages) {
  // Text: four rows over the words a, b, c; expert 0 takes the rows holding "a".
  Dataset text;
  text.kind = FeatureKind::kSparse;
  text.n_rows = 4;
  text.n_features = 3;
  text.ids = {0, 1, 0, 2, 1, 2};
  text.offsets = {0, 2, 4, 5, 6};
  text.weights.assign(6, 1.0f);
  InspectContext ctx;
  ctx.data = &text;
  ctx.input = InputKind::kText;
  ctx.words = {"a", "b", "c"};
  InspectOptions options;
  options.min_count = 1;
  const LevelRouting r = hand_routing(2, {{{0, 1.0f}}, {{0, 1.0f}}, {{1, 1.0f}}, {{1, 1.0f}}});
  const LevelStats s = inspect_level(r, ctx, options);
  ASSERT_EQ(s.tokens.size(), 2u);
  ASSERT_EQ(s.tokens[0].size(), 3u);
  // "a": in both of expert 0's rows, in 2 of 4 rows overall: lift (2/2)/(2/4) = 2.
  EXPECT_EQ(s.tokens[0][0].word, "a");
  EXPECT_EQ(s.tokens[0][0].count, 2);
  EXPECT_NEAR(s.tokens[0][0].lift, 2.0, 1e-12);
  EXPECT_NEAR(s.tokens[0][1].lift, 1.0, 1e-12);  // "b", then "c", both 1 of 2 over 2 of 4
  EXPECT_EQ(s.tokens[0][1].word, "b");
  options.min_count = 2;  // only "a" for expert 0; expert 1's words each occur once
  const LevelStats m = inspect_level(r, ctx, options);
  EXPECT_EQ(m.tokens[0].size(), 1u);
  EXPECT_TRUE(m.tokens[1].empty());

  // Images: 1 × 2 pixels, the mean of each expert's rows.
  Dataset img;
  img.n_rows = 3;
  img.n_features = 2;
  img.dense = {0.0f, 1.0f, 0.5f, 0.5f, 1.0f, 0.0f};
  InspectContext ictx;
  ictx.data = &img;
  ictx.input = InputKind::kImage;
  ictx.image_height = 1;
  ictx.image_width = 2;
  const LevelStats i = inspect_level(hand_routing(3, {{{0, 1.0f}}, {{0, 1.0f}}, {{1, 1.0f}}}), ictx,
                                     InspectOptions());
  EXPECT_EQ(i.mean_images, (std::vector<float>{0.25f, 0.75f, 1.0f, 0.0f, 0.0f, 0.0f}));
}

// Four clusters in four dimensions: row i of class c = i mod 4 is 4·e_c plus uniform noise in
// [−0.3, 0.3]. Features are named f0..f3.
Dataset clustered(int64_t n) {
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(static_cast<int32_t>(i % 4));
  Dataset d = labelled(labels, 4, 4);
  Rng rng(7);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < 4; ++f)
      d.dense[static_cast<size_t>(i * 4 + f)] =
          (f == i % 4 ? 4.0f : 0.0f) + 0.6f * (rng.uniform() - 0.5f);
  return d;
}

// Width 4, no norm, the identity as input layer: the router sees the input itself.
std::unique_ptr<Model> clustered_model(int64_t n_groups) {
  ModelConfig c;
  c.width = 4;
  c.trunk.norm = NormChoice::kNone;
  MoeBlockConfig b;
  b.n_experts = 4;
  b.expert = {ExpertKind::kMlp, 4, 1, Activation::kGelu, true};
  b.gate.kind = GateKind::kTopKSoftmax;
  b.gate.k = 1;
  b.gate.switch_loss = 0.0f;
  b.n_groups = n_groups;
  b.top_gate.kind = GateKind::kTopKSoftmax;
  b.top_gate.k = 1;
  b.top_gate.switch_loss = 0.0f;
  c.moe = {b};
  DataShape shape;
  shape.n_features = 4;
  shape.n_outputs = 4;
  Result<std::unique_ptr<Model>> m = Model::create(c, shape);
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  if (!m.is_ok()) return nullptr;
  std::unique_ptr<Model> model = std::move(m.value());
  model->init(3);
  for (const NamedTensor& p : model->named_parameters()) {
    if (p.name == "input.w") {
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 4; ++j) p.tensor.at(i, j) = i == j ? 1.0f : 0.0f;
    } else if (p.name == "input.b") {
      for (int64_t i = 0; i < 4; ++i) p.tensor.at(i) = 0.0f;
    }
  }
  return model;
}

// Sets the router weights [E, D] of `name`.
void set_router(Model& model, const std::string& name, const std::vector<float>& w) {
  for (const NamedTensor& p : model.named_parameters()) {
    if (p.name != name) continue;
    ASSERT_EQ(static_cast<size_t>(p.tensor.numel()), w.size()) << name;
    for (size_t i = 0; i < w.size(); ++i) p.tensor.at(static_cast<int64_t>(i)) = w[i];
    return;
  }
  FAIL() << "no parameter " << name;
}

InspectContext clustered_context(const Dataset& data) {
  InspectContext ctx;
  ctx.data = &data;
  ctx.path = "clustered";
  ctx.labels = class_spec(4);
  ctx.feature_names = {"f0", "f1", "f2", "f3"};
  return ctx;
}

TEST(InspectModel, RouterMatchingTheClustersFindsTheSpecialisation) {
  const Dataset data = clustered(200);
  std::unique_ptr<Model> model = clustered_model(0);
  ASSERT_NE(model, nullptr);
  // Router = 5 · identity: cluster c's logits peak at expert c.
  set_router(*model, "blocks.0.moe.router.w", {5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 5});
  InspectOptions options;
  options.batch_size = 64;  // several batches
  options.keep_trace = true;
  Result<InspectReport> r = inspect_model(*model, clustered_context(data), options);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->levels.size(), 1u);
  const LevelStats& s = r->levels[0];
  EXPECT_EQ(s.n_rows, 200);
  EXPECT_NEAR(s.mutual_information, s.mutual_information_max, 1e-9);
  EXPECT_NEAR(s.mutual_information_max, std::log(4.0), 1e-9);
  EXPECT_FALSE(s.collapsed);
  EXPECT_TRUE(s.entropy_from_router);
  EXPECT_LT(s.entropy_mean, 0.5 * std::log(4.0));      // confident rows...
  EXPECT_GT(s.entropy_of_mean, 0.99 * std::log(4.0));  // ...spread evenly over the experts
  // Each expert's most distinctive feature is its own cluster's direction, above the mean.
  ASSERT_EQ(s.features.size(), 4u);
  for (int e = 0; e < 4; ++e) {
    ASSERT_FALSE(s.features[static_cast<size_t>(e)].empty());
    EXPECT_EQ(s.features[static_cast<size_t>(e)][0].feature,
              std::string(1, 'f').append(std::to_string(e)));
    EXPECT_GT(s.features[static_cast<size_t>(e)][0].delta, 1.0);
  }
  // The trace holds every row, each with its one expert.
  ASSERT_EQ(r->trace.size(), 1u);
  ASSERT_EQ(r->trace[0].offsets.size(), 201u);
  for (int64_t i = 0; i < 200; ++i) EXPECT_EQ(r->trace[0].experts[static_cast<size_t>(i)], i % 4);

  const nlohmann::ordered_json j = inspect_to_json(*r);
  EXPECT_EQ(j["format"], "moe.inspect");
  EXPECT_EQ(j["layers"][0]["class_expert"]["counts"][2][2], 50);
  EXPECT_NE(inspect_to_text(*r).find("collapsed no"), std::string::npos);
}

TEST(InspectModel, ExpertWithZeroWeightsIsSilent) {
  const Dataset data = clustered(120);
  std::unique_ptr<Model> model = clustered_model(0);
  ASSERT_NE(model, nullptr);
  set_router(*model, "blocks.0.moe.router.w", {5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 5});
  for (const NamedTensor& p : model->named_parameters())
    if (p.name.starts_with("blocks.0.moe.experts.2."))
      for (int64_t i = 0; i < p.tensor.numel(); ++i) p.tensor.at(i) = 0.0f;
  Result<InspectReport> r = inspect_model(*model, clustered_context(data), InspectOptions());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const LevelStats& s = r->levels[0];
  ASSERT_EQ(s.output_ratio.size(), 4u);
  EXPECT_EQ(s.output_ratio[2], 0.0);
  for (int e : {0, 1, 3}) EXPECT_GT(s.output_ratio[static_cast<size_t>(e)], 0.01) << e;
  EXPECT_TRUE(s.dead.empty());
  EXPECT_EQ(s.silent, (std::vector<int64_t>{2}));
  const std::string text = inspect_to_text(*r);
  EXPECT_NE(text.find("dead none  silent [2]  collapsed no"), std::string::npos) << text;
  EXPECT_NE(text.find("note: 1 of 4 experts are silent"), std::string::npos) << text;
  EXPECT_EQ(inspect_to_json(*r)["layers"][0]["silent"], nlohmann::json::array({2}));
}

TEST(InspectModel, RouterSendingEverythingToOneExpertIsCollapsed) {
  const Dataset data = clustered(120);
  std::unique_ptr<Model> model = clustered_model(0);
  ASSERT_NE(model, nullptr);
  // Expert 0's logit is the sum of the (positive) inputs; the others' are 0.
  set_router(*model, "blocks.0.moe.router.w", {1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  Result<InspectReport> r = inspect_model(*model, clustered_context(data), InspectOptions());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const LevelStats& s = r->levels[0];
  EXPECT_TRUE(s.collapsed);
  EXPECT_NEAR(s.load[0], 1.0, 1e-12);
  EXPECT_EQ(s.dead, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_NEAR(s.mutual_information, 0.0, 1e-9);
  EXPECT_NE(inspect_to_text(*r).find("collapsed YES"), std::string::npos);
}

TEST(InspectModel, HierarchyHasOneEntryPerLevel) {
  const Dataset data = clustered(100);
  std::unique_ptr<Model> model = clustered_model(2);
  ASSERT_NE(model, nullptr);
  // Top gate: clusters 0, 1 to group 0, clusters 2, 3 to group 1; inside each group the cluster
  // picks its own expert (expert g·2 + j).
  set_router(*model, "blocks.0.moe.router.w", {5, 5, 0, 0, 0, 0, 5, 5});
  set_router(*model, "blocks.0.moe.groups.0.router.w", {5, 0, 0, 0, 0, 5, 0, 0});
  set_router(*model, "blocks.0.moe.groups.1.router.w", {0, 0, 5, 0, 0, 0, 0, 5});
  Result<InspectReport> r = inspect_model(*model, clustered_context(data), InspectOptions());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->levels.size(), 4u);
  const std::vector<std::string> levels = {"", "top", "group.0", "group.1"};
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r->levels[i].level, levels[i]);
  const LevelStats& all = r->levels[0];
  EXPECT_EQ(all.n_experts, 4);
  EXPECT_EQ(all.output_ratio.size(), 4u);  // the combined level's experts are the layer's
  for (size_t i = 1; i < 4; ++i) EXPECT_TRUE(r->levels[i].output_ratio.empty()) << i;
  EXPECT_FALSE(all.entropy_from_router);  // the combined routing has no router of its own
  EXPECT_NEAR(all.mutual_information, std::log(4.0), 1e-9);
  const LevelStats& top = r->levels[1];
  EXPECT_EQ(top.n_experts, 2);
  EXPECT_TRUE(top.entropy_from_router);
  EXPECT_NEAR(top.mutual_information, std::log(2.0), 1e-9);
  EXPECT_EQ(r->levels[2].n_rows + r->levels[3].n_rows, 100);
  EXPECT_EQ(r->levels[2].n_rows, 50);
  // Group 0 sees classes 0 and 1 only, one per expert.
  EXPECT_EQ(r->levels[2].class_counts, (std::vector<int64_t>{25, 0, 0, 25, 0, 0, 0, 0}));
  EXPECT_NEAR(r->levels[2].mutual_information, std::log(2.0), 1e-9);
}

TEST(InspectModel, DenseModelIsAnError) {
  const Dataset data = clustered(8);
  ModelConfig c;
  c.width = 4;
  DataShape shape;
  shape.n_features = 4;
  shape.n_outputs = 4;
  Result<std::unique_ptr<Model>> m = Model::create(c, shape);
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_FALSE(inspect_model(*m.value(), clustered_context(data), InspectOptions()).is_ok());
}

}  // namespace
}  // namespace moe
