// The memory a training config needs at the least, and its refusal before anything is
// allocated: the message names the key to blame, its value, the memory and the limit.
//
// Dims: D width · D_in = 10 input features · C = 2 outputs · E experts · F expert hidden width.
#include "moe/train/config_budget.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "moe/model/model.h"

namespace moe {
namespace {

using json = nlohmann::json;

constexpr int64_t kInputs = 10, kOutputs = 2;
const MemoryLimit kOneGiB{int64_t{1} << 30, "a test limit of 1 GiB"};

// A config of width 16 with one MoE layer of 4 MLP experts of F = 16, with `model` merged in.
ModelConfig model_config(const std::string& model) {
  json j = json::parse(R"({"data": {"train": "t.csv"}, "model": {"width": 16,
      "moe": {"experts": 4, "k": 2, "expert": {"kind": "mlp", "hidden": 16}}}})");
  j["model"].merge_patch(json::parse(model));
  Result<Config> c = parse_config(j, "c.json");
  EXPECT_TRUE(c.is_ok()) << c.status().message();
  return c.is_ok() ? c->model : ModelConfig();
}

// The refusal's message ("" when the config fits the limit) under AdamW.
std::string refusal(const std::string& model) {
  const Status st =
      check_training_memory(model_config(model), OptimizerConfig(), kInputs, kOutputs, kOneGiB);
  return st.is_ok() ? std::string() : st.message();
}

TEST(ConfigBudget, WeightBytesCountTheGradientAndTheOptimizerState) {
  const ModelConfig m = model_config("{}");
  // input [16, 10], head [2, 16], 4 experts of W1 [16, 16] and W2 [16, 16], router [4, 16].
  const int64_t weights = 16 * 10 + 2 * 16 + 4 * 2 * 16 * 16 + 4 * 16;
  EXPECT_EQ(model_matrix_elements(m, kInputs, kOutputs), weights);
  OptimizerConfig adam;
  EXPECT_EQ(training_weight_bytes(m, adam, kInputs, kOutputs), 16 * weights);
  OptimizerConfig sgd;
  sgd.kind = OptimizerKind::kSgd;
  EXPECT_EQ(training_weight_bytes(m, sgd, kInputs, kOutputs), 8 * weights);
  sgd.momentum = 0.9;
  EXPECT_EQ(training_weight_bytes(m, sgd, kInputs, kOutputs), 12 * weights);
}

TEST(ConfigBudget, TranslationModelCountsEveryMatrixItBuilds) {
  for (const bool dense : {false, true}) {
    json j = json::parse(R"({"data": {"format": "pairs", "train": "t.tsv"}, "model": {"width": 16,
        "translation": {"encoder_layers": 3, "decoder_layers": 2, "heads": 4, "kv_heads": 2,
                        "tie_embeddings": false, "ffn_hidden": 12},
        "moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 8}}}})");
    j["model"]["dense"] = dense;
    Result<Config> c = parse_config(j, "c.json");
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    DataShape shape;
    shape.input = FeatureKind::kPairs;
    shape.n_features = shape.n_outputs = 50;
    Result<std::unique_ptr<Model>> model = Model::create(c->model, shape);
    ASSERT_TRUE(model.is_ok()) << model.status().message();
    int64_t matrices = 0;  // every parameter but the norm gains
    for (const NamedTensor& p : (*model)->named_parameters())
      if (p.name.find("gain") == std::string::npos) matrices += p.tensor.numel();
    EXPECT_EQ(model_matrix_elements(c->model, 50, 50), matrices) << "dense " << dense;
  }
}

TEST(ConfigBudget, Bf16CountsTheExpertWeightCopies) {
  // 4 SwiGLU experts of W1, W3 [16, 16] and W2 [16, 16] plus one shared of F = 8: in bf16 each
  // matrix also has a 2-byte copy; MLP experts stay fp32 and have none.
  const std::string swiglu =
      R"({"moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 16},
          "shared": 1, "shared_expert": {"kind": "swiglu", "hidden": 8}, "precision": "%"}})";
  auto with = [&](const std::string& precision) {
    std::string m = swiglu;
    m.replace(m.find('%'), 1, precision);
    return model_config(m);
  };
  OptimizerConfig adam;
  const int64_t fp32 = training_weight_bytes(with("fp32"), adam, kInputs, kOutputs);
  EXPECT_EQ(training_weight_bytes(with("bf16"), adam, kInputs, kOutputs),
            fp32 + 2 * (4 * 3 * 16 * 16 + 3 * 8 * 16));
  ModelConfig dense = with("bf16");
  dense.dense = true;
  ModelConfig dense32 = with("fp32");
  dense32.dense = true;
  EXPECT_GT(training_weight_bytes(dense, adam, kInputs, kOutputs),
            training_weight_bytes(dense32, adam, kInputs, kOutputs));
  // Every kind of expert computes in bf16 from copies of its weight matrices (not its biases).
  ModelConfig mlp = model_config(
      R"({"moe": {"experts": 4, "expert": {"kind": "mlp", "hidden": 16}, "precision": "bf16"}})");
  ModelConfig mlp32 = mlp;
  mlp32.moe[0].precision = Precision::kF32;
  EXPECT_EQ(training_weight_bytes(mlp, adam, kInputs, kOutputs),
            training_weight_bytes(mlp32, adam, kInputs, kOutputs) + 2 * (4 * 2 * 16 * 16));
}

TEST(ConfigBudget, AConfigThatFitsPasses) {
  EXPECT_EQ(refusal("{}"), "");
}

TEST(ConfigBudget, TheRefusalNamesTheKeyThatAccountsForMostOfTheNeed) {
  struct Case {
    const char* model;
    const char* message;
  };
  const Case cases[] = {
      // 65536 experts of 2 · 16 · 2^20 weights and a router of 65536 · 2^20, 16 bytes each:
      // shrinking the width saves the most.
      {R"({"width": 1048576, "moe": {"experts": 65536}})",
       "model.width is 1048576: training this model needs at least 33.0 TiB of memory for its "
       "2267.8 billion weights with their gradients and optimizer state, more than a test limit "
       "of 1 GiB"},
      {R"({"moe": {"experts": 1048576}})", "model.moe.experts is 1048576: "},
      {R"({"width": 4096, "moe": {"expert": {"hidden": 1048576}}})",
       "model.moe.expert.hidden is 1048576: "},
      {R"({"width": 4096, "trunk": {"hidden": [8, 1048576]}})",
       "model.trunk.hidden.1 is 1048576: "},
      {R"({"moe": [{}, {"experts": 1048576}]})", "model.moe.1.experts is 1048576: "},
      {R"({"width": 4096, "moe": {"experts": 3, "expert_list": [{}, {"hidden": 1048576}, {}]}})",
       "model.moe.expert_list.1.hidden is 1048576: "},
      {R"({"width": 4096, "moe": {"shared": 1, "shared_expert": {"hidden": 1048576}}})",
       "model.moe.shared_expert.hidden is 1048576: "},
  };
  for (const Case& c : cases) {
    const std::string m = refusal(c.model);
    EXPECT_EQ(m.rfind(c.message, 0), 0u) << c.model << "\n  got: " << m;
    EXPECT_NE(m.find("more than a test limit of 1 GiB"), std::string::npos) << m;
  }
}

TEST(ConfigBudget, TheMachineLimitIsPositiveAndNamed) {
  const MemoryLimit limit = training_memory_limit();
  EXPECT_GT(limit.bytes, int64_t{1} << 26);  // any machine that runs the tests has 64 MiB
  EXPECT_NE(limit.what.find("iB"), std::string::npos) << limit.what;
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

// Experts cost more than their weights: E × E co-activation tables, router outputs per batch.
// Narrow experts in large numbers fit any weight budget and are refused by these, with the key.
TEST(ConfigBudget, PerExpertCostsAreCountedAndNamed) {
  const MemoryLimit ample{int64_t{1} << 40, "a test limit of 1 TiB"};
  const auto check = [&](const std::string& model, const MemoryLimit& limit) {
    const Status st =
        check_training_memory(model_config(model), OptimizerConfig(), kInputs, kOutputs, limit);
    return st.is_ok() ? std::string() : st.message();
  };
  // 16000 experts of width 8: 256 million co-activation values, about 3.6 GiB of inspect.json.
  std::string m = check(R"({"width": 8, "moe": {"experts": 16000}})", ample);
  EXPECT_EQ(m.rfind("model.moe.experts is 16000: the routing statistics of inspect.json (an E × "
                    "E co-activation table per layer) would take about 3.6 GiB of JSON, more "
                    "than the 256.0 MiB moe writes; use fewer experts",
                    0),
            0u)
      << m;
  // The largest count the config reader allows, on width 1: tiny weights, no bad_alloc.
  m = check(R"({"width": 1, "moe": {"experts": 1048576, "expert": {"hidden": 1}}})", ample);
  EXPECT_EQ(m.rfind("model.moe.experts is 1048576: ", 0), 0u) << m;
  m = check(R"({"moe": [{}, {"experts": 20000}]})", ample);
  EXPECT_EQ(m.rfind("model.moe.1.experts is 20000: ", 0), 0u) << m;
  // Within the JSON budget but not the memory limit: 2048² · 48 bytes of tables.
  m = check(R"({"width": 8, "moe": {"experts": 2048}})", {int64_t{64} << 20, "64 MiB"});
  EXPECT_EQ(m.rfind("model.moe.experts is 2048: this model needs at least ", 0), 0u) << m;
  EXPECT_NE(m.find("of it for the per-expert routing statistics (router outputs per batch, E × E "
                   "co-activation tables), more than 64 MiB"),
            std::string::npos)
      << m;
  EXPECT_EQ(check(R"({"width": 8, "moe": {"experts": 256}})", ample), "");
}

TEST(ConfigBudget, AHundredThousandExpertListIsRefusedQuickly) {
  json list = json::array();
  for (int i = 0; i < 100000; ++i) list.push_back(json::object());
  const ModelConfig m =
      model_config(json({{"moe", {{"experts", 100000}, {"expert_list", list}}}}).dump());
  const Status st = check_training_memory(m, OptimizerConfig(), kInputs, kOutputs, kOneGiB);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message().rfind("model.moe.expert_list is 100000: ", 0), 0u) << st.message();
}

}  // namespace
}  // namespace moe
