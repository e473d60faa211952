// Expert pruning (compress.h): the lowest scores go (REAP or load), the model left equals the
// old one with those experts masked out of the router, the kept experts' weights are untouched,
// the history records each removal, and impossible requests are clear errors. The command end to
// end: tests/cli/compress_test.sh.
#include "moe/train/compress.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "moe/train/checkpoint.h"
#include "moe/train/inspect.h"
#include "train_testing.h"

namespace moe {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr int64_t kFeatures = 4;

DataSchema schema() {
  DataSchema s = testing::dense_schema(kFeatures);
  s.labels.columns = {"y"};
  s.labels.class_names = {"neg", "pos"};
  return s;
}

// A dense block, then an MoE block of 6 experts (top-2 unless `moe` says otherwise).
Config make_config(const std::string& moe) {
  json j = json::parse(R"({
    "data": {"train": "unused.csv"},
    "model": {"width": 8, "trunk": {"hidden": [8]}},
    "training": {"threads": 1}})");
  j["model"]["moe"] = json::parse(moe);
  return testing::parse_test_config(j, testing::fresh_run_dir("compress"), "{}");
}

const char* kTopTwo = R"({"experts": 6, "k": 2, "gate": {"router_bias": true}})";

// A checkpoint of `c`'s model with its router weights spread (choices far from ties), loaded.
Checkpoint checkpoint(const Config& c) {
  Result<std::unique_ptr<Model>> m = Model::create(c.model, schema().shape());
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  (*m)->init(3);
  const ParamStore& store = (*m)->params();
  const Tensor w = store.value(store.find("blocks.1.moe.router.w"));
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] *= 4.0f;
  const std::string dir = c.output.dir + "/model";
  EXPECT_TRUE(save_checkpoint(dir, **m, c, schema(), json{{"epoch", 4}}).is_ok());
  Result<Checkpoint> ck = load_checkpoint(dir);
  EXPECT_TRUE(ck.is_ok()) << ck.status().message();
  return std::move(*ck);
}

const Dataset& rows() {
  static const LoadedData data =
      testing::two_class_data(256, 8, [](const float* x) { return x[0] - x[2] > 0; });
  return data.train;
}

std::vector<float> outputs(Model& model) {
  const Dataset& d = rows();
  Batch batch;
  TensorBuffer idx(Shape{d.n_rows}, DType::kI64);
  for (int64_t i = 0; i < d.n_rows; ++i) idx.view().data<int64_t>()[i] = i;
  batch.n_rows = d.n_rows;
  batch.features = Tensor(const_cast<float*>(d.dense.data()), Shape{d.n_rows, kFeatures});
  batch.rows = idx;
  Arena arena;
  const Tensor y = model.forward(batch, false, Rng(1), arena);
  return {y.f32(), y.f32() + y.numel()};
}

// The layer's combined level on the rows.
LevelStats stats(Checkpoint& ck) {
  Result<InspectReport> r =
      inspect_model(*ck.model, InspectContext::from_schema(ck.schema, rows(), "rows"), {});
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r->levels.at(0);
}

// The indices of the `n` smallest values, ties to the higher index, increasing.
std::vector<int64_t> smallest(const std::vector<double>& v, int64_t n) {
  std::vector<int64_t> order(v.size());
  for (size_t i = 0; i < v.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return v[static_cast<size_t>(a)] != v[static_cast<size_t>(b)]
               ? v[static_cast<size_t>(a)] < v[static_cast<size_t>(b)]
               : a > b;
  });
  order.resize(static_cast<size_t>(n));
  std::sort(order.begin(), order.end());
  return order;
}

TEST(Compress, ExpertsKept) {
  CompressOptions o;
  EXPECT_FALSE(prunes(o));
  EXPECT_EQ(experts_kept(8, o), 8);
  o.prune_to = 3;
  EXPECT_TRUE(prunes(o));
  EXPECT_EQ(experts_kept(8, o), 3);
  EXPECT_EQ(experts_kept(2, o), 2);  // never more than it has
  o.prune_to = 0;
  o.prune_fraction = 0.5;
  EXPECT_EQ(experts_kept(8, o), 4);
  EXPECT_EQ(experts_kept(7, o), 4);  // 3.5 rounded down are removed
  o.prune_fraction = 0.1;
  EXPECT_EQ(experts_kept(8, o), 8);
}

// REAP removes the experts with the smallest router-weighted output norms; what is left computes
// what the old model computes with their router bias at −∞, and keeps the others' weights.
TEST(Compress, PruningRemovesTheLowestScoresAndEqualsMaskingThem) {
  for (const PruneBy by : {PruneBy::kReap, PruneBy::kLoad}) {
    SCOPED_TRACE(enum_name(kPruneByNames, by));
    const Config c = make_config(kTopTwo);
    Checkpoint ck = checkpoint(c);
    Checkpoint masked = checkpoint(c);
    const LevelStats before = stats(ck);
    const std::vector<double>& score = by == PruneBy::kReap ? before.reap : before.load;
    ASSERT_EQ(score.size(), 6u);
    const std::vector<int64_t> want = smallest(score, 3);
    const ParamStore& old_store = masked.model->params();
    for (const int64_t e : want)
      old_store.value(old_store.find("blocks.1.moe.router.b")).f32()[e] = -1e4f;

    CompressOptions o;
    o.prune_to = 3;
    o.prune_by = by;
    Result<std::vector<PrunedLayer>> r =
        prune_checkpoint(&ck, InspectContext::from_schema(ck.schema, rows(), "rows"), o);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    ASSERT_EQ(r->size(), 1u);
    EXPECT_EQ((*r)[0].removed, want);
    EXPECT_EQ((*r)[0].experts_after, 3);
    EXPECT_EQ(ck.model->moe_layer(0).n_experts(), 3);
    EXPECT_EQ(ck.config.model.moe.at(0).n_experts, 3);

    const std::vector<float> a = outputs(*masked.model), b = outputs(*ck.model);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5f) << i;
    // The survivors' weights moved down unchanged.
    int64_t to = 0;
    for (int64_t e = 0; e < 6; ++e) {
      if (std::binary_search(want.begin(), want.end(), e)) continue;
      const ParamStore& s = ck.model->params();
      const Tensor x =
          old_store.value(old_store.find(fmt::format("blocks.1.moe.experts.{}.w1", e)));
      const Tensor y = s.value(s.find(fmt::format("blocks.1.moe.experts.{}.w1", to++)));
      ASSERT_TRUE(std::equal(x.f32(), x.f32() + x.numel(), y.f32())) << e;
    }
    // No row is routed to an expert that is gone: every slot is on one of the three left.
    const LevelStats after = stats(ck);
    EXPECT_EQ(after.load.size(), 3u);
    ASSERT_TRUE(ck.info["experts_history"].is_array());
    EXPECT_EQ(ck.info["experts_history"].size(), 3u);
    EXPECT_EQ(ck.info["experts_history"][0]["expert"], want[2]);  // the highest index first
    EXPECT_EQ(ck.info["experts_history"][0]["epoch"], 4);
    fs::remove_all(c.output.dir);
  }
}

TEST(Compress, ImpossibleRequestsAreClearErrors) {
  const Config c = make_config(kTopTwo);
  Checkpoint ck = checkpoint(c);
  CompressOptions o;
  o.prune_to = 1;  // below the gate's k = 2
  Result<std::vector<PrunedLayer>> r =
      prune_checkpoint(&ck, InspectContext::from_schema(ck.schema, rows(), "rows"), o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("k"), std::string::npos) << r.status().message();

  Checkpoint ok = checkpoint(c);
  EXPECT_TRUE(save_compressed(ok, WeightFormat::kInt8, c.output.dir + "/small").is_ok());
  Result<Checkpoint> small = load_checkpoint(c.output.dir + "/small");
  ASSERT_TRUE(small.is_ok()) << small.status().message();
  EXPECT_EQ(small->weights_format, WeightFormat::kInt8);
  const Status again = save_compressed(ok, WeightFormat::kInt8, c.output.dir + "/small");
  EXPECT_NE(again.message().find("already exists"), std::string::npos) << again.message();

  const Config dense = make_config(R"({"experts": 4})");
  Config no_moe = dense;
  no_moe.model.dense = true;
  Result<std::unique_ptr<Model>> m = Model::create(no_moe.model, schema().shape());
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  ASSERT_TRUE(save_checkpoint(dense.output.dir + "/d", **m, no_moe, schema()).is_ok());
  Result<Checkpoint> d = load_checkpoint(dense.output.dir + "/d");
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  o.prune_to = 2;
  r = prune_checkpoint(&*d, InspectContext::from_schema(d->schema, rows(), "rows"), o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "a dense model has no experts to prune");
  fs::remove_all(c.output.dir);
  fs::remove_all(dense.output.dir);
}

}  // namespace
}  // namespace moe
