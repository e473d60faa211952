// Expert surgery (surgery.h): add, split and remove keep the model's function where surgery.h
// says they do, the optimizer state follows its expert (the best restarts), a changed run
// resumes, a frozen expert stays as it is, and bad requests are clear errors. The command end to
// end: tests/cli/experts_test.sh.
#include "moe/train/surgery.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "moe/optim/optimizer.h"
#include "moe/train/checkpoint.h"
#include "moe/train/freeze.h"
#include "moe/train/train_state.h"
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

LoadedData make_data() {
  return testing::two_class_data(128, 32, [](const float* x) { return x[0] + x[1] - x[3] > 0; });
}

// A dense block, then an MoE block (`moe`, a JSON object's text), one thread.
Config make_config(const std::string& moe, const std::string& training = "{}") {
  json j = json::parse(R"({
    "data": {"train": "unused.csv"},
    "model": {"width": 8, "trunk": {"hidden": [8]}},
    "training": {"lr": 0.01, "epochs": 2, "batch_size": 16, "seed": 7, "threads": 1,
                 "schedule": "constant"}})");
  j["model"]["moe"] = json::parse(moe);
  return testing::parse_test_config(j, testing::fresh_run_dir("surgery"), training);
}

// The model of `c`, initialised from `seed`, with its router weights spread so that choices are
// far from ties, saved as a checkpoint in <c.output.dir>/<name>.
std::string saved_model(const Config& c, const std::string& name, uint64_t seed = 3) {
  Result<std::unique_ptr<Model>> m = Model::create(c.model, schema().shape());
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  if (!m.is_ok()) return "";
  (*m)->init(seed);
  const ParamStore& store = (*m)->params();
  if (const ParamId id = store.find("blocks.1.moe.router.w"); id >= 0) {  // hash: no router
    const Tensor w = store.value(id);
    for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] *= 4.0f;
  }
  const std::string dir = c.output.dir + "/" + name;
  EXPECT_TRUE(save_checkpoint(dir, **m, c, schema()).is_ok());
  return dir;
}

// Outputs of a checkpoint's model on 64 fixed rows.
std::vector<float> outputs(const Model& model_in) {
  Model& model = const_cast<Model&>(model_in);
  TensorBuffer x(Shape{64, kFeatures}), rows(Shape{64}, DType::kI64);
  Rng(9).fill_normal(x, 0.0f, 1.0f);
  for (int64_t i = 0; i < 64; ++i) rows.view().data<int64_t>()[i] = i;
  Batch batch;
  batch.n_rows = 64;
  batch.features = x;
  batch.rows = rows;
  Arena arena;
  const Tensor y = model.forward(batch, false, Rng(1), arena);
  return {y.f32(), y.f32() + y.numel()};
}

std::vector<float> outputs(const std::string& dir) {
  Result<Checkpoint> ck = load_checkpoint(dir);
  EXPECT_TRUE(ck.is_ok()) << ck.status().message();
  return ck.is_ok() ? outputs(*ck->model) : std::vector<float>();
}

float max_difference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float worst = 0.0f;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

Result<SurgeryResult> operate(const std::string& dir, ExpertOp op, int64_t expert,
                              const std::string& out, float noise = 0.0f) {
  ExpertSurgery s;
  s.op = op;
  s.expert = expert;
  s.noise = noise;
  return operate_on_checkpoint(dir, s, out);
}

// Split keeps the function under dense softmax (the pair's logits lowered by ln 2) and under
// top-1 gates (the copies keep the logit; ties go to the lower index).
TEST(Surgery, SplitKeepsTheFunction) {
  for (
      const char* moe :
      {R"({"experts": 4, "gate": {"kind": "dense_softmax"}, "expert": {"kind": "mlp", "hidden": 8}})",
       R"({"experts": 4, "k": 1, "gate": {"kind": "topk_softmax", "renormalize": true}})",
       R"({"experts": 4, "k": 1, "gate": {"kind": "sigmoid_bias"}})",
       R"({"experts": 4, "gate": {"kind": "gumbel_softmax", "hard": true}})"}) {
    SCOPED_TRACE(moe);
    const Config c = make_config(moe);
    const std::string dir = saved_model(c, "a");
    for (int64_t e : {0, 2}) {
      const std::string out = c.output.dir + "/split" + std::to_string(e);
      Result<SurgeryResult> r = operate(dir, ExpertOp::kSplit, e, out);
      ASSERT_TRUE(r.is_ok()) << r.status().message();
      EXPECT_EQ(r->experts_after, 5);
      EXPECT_TRUE(r->config.model.moe[0].gate.router_bias);
      EXPECT_LT(max_difference(outputs(dir), outputs(out)), 2e-5f);
    }
    fs::remove_all(c.output.dir);
  }
}

// With k = 2 a token that chose the split expert takes both copies: the output changes, as
// surgery.h says; with noise the two copies differ, their mean stays the original.
TEST(Surgery, SplitUnderTopTwoChangesTheOutputAndNoiseIsSymmetric) {
  const Config c = make_config(R"({"experts": 4, "k": 2, "expert": {"kind": "mlp", "hidden": 8}})");
  const std::string dir = saved_model(c, "a");
  const std::string out = c.output.dir + "/noisy";
  ASSERT_TRUE(operate(dir, ExpertOp::kSplit, 1, c.output.dir + "/plain").is_ok());
  EXPECT_GT(max_difference(outputs(dir), outputs(c.output.dir + "/plain")), 1e-3f);
  ASSERT_TRUE(operate(dir, ExpertOp::kSplit, 1, out, 0.1f).is_ok());
  Result<Checkpoint> a = load_checkpoint(dir), b = load_checkpoint(out);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  const ParamStore &sa = a->model->params(), &sb = b->model->params();
  const Tensor w = sa.value(sa.find("blocks.1.moe.experts.1.w1"));
  const Tensor w1 = sb.value(sb.find("blocks.1.moe.experts.1.w1"));
  const Tensor w4 = sb.value(sb.find("blocks.1.moe.experts.4.w1"));
  float moved = 0.0f;
  for (int64_t i = 0; i < w.numel(); ++i) {
    EXPECT_NEAR(0.5f * (w1.f32()[i] + w4.f32()[i]), w.f32()[i], 1e-6f);
    moved = std::max(moved, std::fabs(w1.f32()[i] - w.f32()[i]));
  }
  EXPECT_GT(moved, 1e-4f);
  fs::remove_all(c.output.dir);
}

// A new expert (a copy or fresh) starts e^-20 below its source: the output is unchanged to float
// precision. Under the sigmoid gate no token chooses it at all.
TEST(Surgery, AddKeepsTheFunction) {
  for (
      const char* moe :
      {R"({"experts": 4, "gate": {"kind": "dense_softmax"}, "expert": {"kind": "mlp", "hidden": 8}})",
       R"({"experts": 4, "k": 2})", R"({"experts": 4, "k": 2, "gate": {"kind": "noisy_topk"}})",
       R"({"experts": 4, "k": 2, "gate": {"kind": "sigmoid_bias"}})"}) {
    SCOPED_TRACE(moe);
    const Config c = make_config(moe);
    const std::string dir = saved_model(c, "a");
    for (int64_t from : {-1, 3}) {
      const std::string out = c.output.dir + "/add" + std::to_string(from + 1);
      Result<SurgeryResult> r = operate(dir, ExpertOp::kAdd, from, out);
      ASSERT_TRUE(r.is_ok()) << r.status().message();
      EXPECT_EQ(r->experts_after, 5);
      EXPECT_LT(max_difference(outputs(dir), outputs(out)), 1e-5f);
      Result<Checkpoint> ck = load_checkpoint(out);
      ASSERT_TRUE(ck.is_ok());
      const std::vector<GateState> gates = ck->model->gate_states();
      if (!gates[0].bias.empty()) {
        EXPECT_EQ(gates[0].bias.size(), 5u);
        EXPECT_EQ(gates[0].bias[4], *std::min_element(gates[0].bias.begin(), gates[0].bias.end()));
      }
    }
    fs::remove_all(c.output.dir);
  }
}

// Removing expert r computes what the old model computes with r's logit at −∞ (its router bias
// at −1e4: e^-1e4 is 0 in float).
TEST(Surgery, RemoveEqualsRoutingWithTheExpertMasked) {
  for (const char* moe : {R"({"experts": 4, "gate": {"kind": "dense_softmax", "router_bias": true},
            "expert": {"kind": "mlp", "hidden": 8}})",
                          R"({"experts": 4, "k": 2, "gate": {"router_bias": true}})"}) {
    SCOPED_TRACE(moe);
    const Config c = make_config(moe);
    const std::string dir = saved_model(c, "a");
    Result<Checkpoint> masked = load_checkpoint(dir);
    ASSERT_TRUE(masked.is_ok());
    const ParamStore& store = masked->model->params();
    store.value(store.find("blocks.1.moe.router.b")).f32()[1] = -1e4f;
    const std::string out = c.output.dir + "/removed";
    Result<SurgeryResult> r = operate(dir, ExpertOp::kRemove, 1, out);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->experts_after, 3);
    EXPECT_LT(max_difference(outputs(*masked->model), outputs(out)), 1e-5f);
    EXPECT_GT(max_difference(outputs(dir), outputs(out)), 1e-4f);
    fs::remove_all(c.output.dir);
  }
}

// Bad requests are one clear message each, and nothing is written.
TEST(Surgery, BadRequestsAreClearErrors) {
  // The configs share one run directory (make_config clears it): made first.
  const Config c = make_config(R"({"experts": 2, "k": 2})");
  const Config one = make_config(R"({"experts": 1, "k": 1})");
  const Config hash = make_config(R"({"experts": 2, "gate": {"kind": "hash"}})");
  const Config full = make_config(R"({"experts": 4, "k": 2,
                                      "adapt": {"enabled": true, "max_experts": 4}})");
  const std::string dir = saved_model(c, "a");
  const std::string out = c.output.dir + "/out";
  const auto error = [&](ExpertOp op, int64_t e) {
    Result<SurgeryResult> r = operate(dir, op, e, out);
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out + ".staging"));
    return r.is_ok() ? std::string("(ok)") : r.status().message();
  };
  EXPECT_EQ(error(ExpertOp::kSplit, 2),
            "blocks.1.moe: split: --expert 2: the layer has 2 experts (0 to 1)");
  EXPECT_EQ(error(ExpertOp::kRemove, -1),
            "blocks.1.moe: remove: --expert -1: the layer has 2 experts (0 to 1)");
  EXPECT_EQ(error(ExpertOp::kRemove, 0),
            "blocks.1.moe: remove: the gate chooses k = 2 experts and 1 would remain; lower k "
            "first");
  const std::string single = saved_model(one, "one");
  ExpertSurgery s;
  s.op = ExpertOp::kRemove;
  s.expert = 0;
  EXPECT_EQ(operate_on_checkpoint(single, s, out).status().message(),
            "blocks.1.moe: remove: expert 0 is the layer's last expert");
  s.op = ExpertOp::kSplit;
  EXPECT_NE(operate_on_checkpoint(saved_model(hash, "hash"), s, out)
                .status()
                .message()
                .find("hash routing"),
            std::string::npos);
  Result<SurgeryResult> added = operate(dir, ExpertOp::kAdd, -1, out);
  ASSERT_TRUE(added.is_ok()) << added.status().message();
  EXPECT_EQ(operate(dir, ExpertOp::kAdd, -1, out).status().message(),
            out + ": already exists; choose a new --out");
  fs::remove_all(c.output.dir);
}

// The optimizer state follows its expert through a split of a run's last/ and best/, the best
// restarts; the changed run resumes and trains on; a frozen expert stays as it is.
TEST(Surgery, OptimizerStateFollowsItsExpertAndTheRunResumes) {
  const LoadedData data = make_data();
  const Config c =
      make_config(R"({"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 8}})");
  ASSERT_TRUE(testing::train(c, data).is_ok());
  const std::string run = c.output.dir, out = run + ".split";
  ExpertSurgery s;
  s.op = ExpertOp::kSplit;
  s.expert = 2;
  Result<SurgeryResult> r = operate_on_run(run, s, out);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const auto state = [&](const std::string& dir) {
    Result<Checkpoint> ck = load_checkpoint(dir);
    EXPECT_TRUE(ck.is_ok()) << ck.status().message();
    ParamStore& store = ck->model->params();
    EXPECT_TRUE(apply_frozen(ck->config.training, store).is_ok());
    auto opt = std::shared_ptr<Optimizer>(make_optimizer(store, ck->config.training.optimizer));
    Result<TrainState> st =
        load_train_state(dir, *ck->model, ck->weights_fnv1a64, *opt, ck->config.training);
    EXPECT_TRUE(st.is_ok()) << st.status().message();
    return std::make_tuple(std::move(ck.value()), opt, std::move(st.value()));
  };
  auto [a, opt_a, st_a] = state(run + "/last");
  auto [b, opt_b, st_b] = state(out + "/last");
  EXPECT_EQ(opt_a->step_count(), opt_b->step_count());
  const ParamStore &pa = a.model->params(), &pb = b.model->params();
  const auto slice = [](const Optimizer& o, const ParamStore& p, const std::string& name,
                        size_t which) {
    const Tensor t = o.state_slice(o.state()[which].tensor, p.find(name));
    return std::vector<float>(t.f32(), t.f32() + t.numel());
  };
  for (size_t which : {size_t{0}, size_t{1}}) {  // adam.m, adam.v
    EXPECT_EQ(slice(*opt_a, pa, "blocks.1.moe.experts.2.w2", which),
              slice(*opt_b, pb, "blocks.1.moe.experts.4.w2", which));
    EXPECT_EQ(slice(*opt_a, pa, "blocks.1.moe.experts.3.w1", which),
              slice(*opt_b, pb, "blocks.1.moe.experts.3.w1", which));
    EXPECT_EQ(slice(*opt_a, pa, "head.w", which), slice(*opt_b, pb, "head.w", which));
    const std::vector<float> ra = slice(*opt_a, pa, "blocks.1.moe.router.w", which),
                             rb = slice(*opt_b, pb, "blocks.1.moe.router.w", which);
    ASSERT_EQ(rb.size(), ra.size() / 4 * 5);
    EXPECT_TRUE(std::equal(ra.begin(), ra.end(), rb.begin()));
    EXPECT_TRUE(std::equal(ra.begin() + 16, ra.begin() + 24, rb.begin() + 32));  // row 2 → 4
    EXPECT_EQ(slice(*opt_b, pb, "blocks.1.moe.router.b", which), std::vector<float>(5, 0.0f));
  }
  // The best model so far had four experts: the changed run's best restarts.
  EXPECT_FALSE(st_a.best_values.empty());
  EXPECT_TRUE(st_b.best_values.empty());
  EXPECT_EQ(st_b.best_epoch, 0);
  EXPECT_EQ(st_a.epochs_done, st_b.epochs_done);
  // The changed run resumes for a third epoch, with expert 0 frozen first.
  s.op = ExpertOp::kFreeze;
  s.expert = 0;
  const std::string frozen = run + ".frozen";
  ASSERT_TRUE(operate_on_run(out, s, frozen).is_ok());
  Result<Config> next = load_config(frozen + "/config.json", {});
  ASSERT_TRUE(next.is_ok()) << next.status().message();
  next->training.epochs = 3;
  Result<TrainResult> resumed = testing::train(*next, data, testing::quiet(), frozen + "/last");
  ASSERT_TRUE(resumed.is_ok()) << resumed.status().message();
  const std::vector<float> before = outputs(frozen + "/last");
  auto [f, opt_f, st_f] = state(frozen + "/last");
  EXPECT_EQ(st_f.epochs_done, 3);
  const ParamStore& pf = f.model->params();
  for (const char* w : {"w1", "w2", "w3"}) {
    const std::string name = fmt::format("blocks.1.moe.experts.0.{}", w);
    const Tensor x = pb.value(pb.find(name)), y = pf.value(pf.find(name));
    EXPECT_TRUE(std::equal(x.f32(), x.f32() + x.numel(), y.f32())) << name;
  }
  EXPECT_FALSE(before.empty());
  for (const std::string& d : {run, out, frozen}) fs::remove_all(d);
}

}  // namespace
}  // namespace moe
