// Warm starts at the level of the model (warm_start.h): sparse upcycling preserves the dense
// model's function, and the sigmoid gate's selection bias comes along with its router. The
// command's behaviour end to end is tests/cli/warm_start_test.sh.
#include "moe/train/warm_start.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "moe/train/checkpoint.h"
#include "train_testing.h"

namespace moe {
namespace {

using json = nlohmann::json;

constexpr int64_t kFeatures = 4;

DataSchema schema() {
  DataSchema s = testing::dense_schema(kFeatures);
  s.labels.columns = {"y"};
  s.labels.class_names = {"a", "b", "c"};
  return s;
}

Config config(const std::string& moe, bool dense) {
  json j = json::parse(R"({"data": {"train": "unused.csv"}, "model": {"width": 8}})");
  j["model"]["moe"] = json::parse(moe);
  j["model"]["dense"] = dense;
  return testing::parse_test_config(j, testing::fresh_run_dir("warm_start"), "{}");
}

std::unique_ptr<Model> make(const Config& c, uint64_t seed) {
  Result<std::unique_ptr<Model>> m = Model::create(c.model, schema().shape());
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  if (!m.is_ok()) return nullptr;
  (*m)->init(seed);
  return std::move(m.value());
}

// Outputs of `model` on 32 fixed rows.
std::vector<float> outputs(Model& model) {
  TensorBuffer x(Shape{32, kFeatures}), rows(Shape{32}, DType::kI64);
  Rng(9).fill_normal(x, 0.0f, 1.0f);
  for (int64_t i = 0; i < 32; ++i) rows.view().data<int64_t>()[i] = i;
  Batch batch;
  batch.n_rows = 32;
  batch.features = x;
  batch.rows = rows;
  Arena arena;
  const Tensor y = model.forward(batch, false, Rng(1), arena);
  return {y.f32(), y.f32() + y.numel()};
}

// A dense model upcycled into MLP or SwiGLU experts of its FFN's width under a top-1 gate whose
// weight is renormalised to 1: every expert is the FFN, so the model computes what the dense one
// did, whatever the fresh router says. (model.dense gives the FFN k times an expert's width, so
// the row model upcycles at k = 1; the language model's dense blocks take any width, and the
// command's test upcycles one at k = 2.)
TEST(WarmStart, SparseUpcyclingKeepsTheDenseModelsFunction) {
  for (const char* moe :
       {R"({"experts": 4, "k": 1, "gate": {"kind": "topk_softmax", "renormalize": true},
            "expert": {"kind": "mlp", "hidden": 16}})",
        R"({"experts": 3, "k": 1, "gate": {"kind": "topk_softmax", "renormalize": true},
            "expert": {"kind": "swiglu", "hidden": 12}})"}) {
    SCOPED_TRACE(moe);
    const Config dense_config = config(moe, true);
    const Config moe_config = config(moe, false);
    std::unique_ptr<Model> dense = make(dense_config, 1);
    std::unique_ptr<Model> sparse = make(moe_config, 2);
    ASSERT_TRUE(dense && sparse);
    const std::string dir = dense_config.output.dir + "/dense";
    ASSERT_TRUE(save_checkpoint(dir, *dense, dense_config, schema()).is_ok());
    const std::vector<float> before = outputs(*sparse);
    Result<WarmStartReport> r = warm_start(*sparse, schema(), dir);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_FALSE(r->upcycled.empty());
    for (const auto& [expert, from] : r->upcycled)
      EXPECT_EQ(from.substr(0, from.find(".ffn.")), expert.substr(0, expert.find(".moe.")));
    EXPECT_EQ(r->reinitialised.size(), 1u);  // the router
    EXPECT_EQ(r->reinitialised[0].name, "blocks.0.moe.router.w");
    EXPECT_TRUE(r->ignored.empty());
    const std::vector<float> want = outputs(*dense), got = outputs(*sparse);
    ASSERT_EQ(want.size(), got.size());
    float worst = 0;
    for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(want[i] - got[i]));
    EXPECT_LT(worst, 1e-5f);
    EXPECT_NE(before, got);  // the warm start did change the model
    std::filesystem::remove_all(dense_config.output.dir);
  }
}

// The sigmoid gate's selection bias is not a parameter: it comes along with a loaded router.
TEST(WarmStart, TheSigmoidGatesBiasComesWithItsRouter) {
  const char* moe = R"({"experts": 4, "k": 2, "gate": {"kind": "sigmoid_bias"},
                        "expert": {"kind": "mlp", "hidden": 8}})";
  const Config c = config(moe, false);
  std::unique_ptr<Model> a = make(c, 1), b = make(c, 2);
  ASSERT_TRUE(a && b);
  std::vector<GateState> states = a->gate_states();
  ASSERT_EQ(states.size(), 1u);
  states[0].bias = {0.5f, -0.25f, 0.0f, 1.0f};
  states[0].step = 40;
  ASSERT_TRUE(a->set_gate_states(states).is_ok());
  const std::string dir = c.output.dir + "/a";
  ASSERT_TRUE(save_checkpoint(dir, *a, c, schema()).is_ok());
  ASSERT_TRUE(warm_start(*b, schema(), dir).is_ok());
  EXPECT_EQ(b->gate_states()[0].bias, states[0].bias);
  EXPECT_EQ(b->gate_states()[0].step, 0);  // a new run's schedules start again
  EXPECT_EQ(outputs(*a), outputs(*b));
  std::filesystem::remove_all(c.output.dir);
}

}  // namespace
}  // namespace moe
