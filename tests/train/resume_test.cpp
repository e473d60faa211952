// Resuming a run: 2 epochs + resume + 2 epochs gives weights, optimizer state and metrics
// bit-identical to 4 uninterrupted epochs; so does resuming from a checkpoint inside an epoch;
// a finished or early-stopped run stays finished; resume refuses a changed config or data.
//
// Dims: N = 96 training rows · T = 16 rows a batch (6 batches an epoch) · D = 8 · E = 4.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "moe/train/checkpoint.h"
#include "moe/train/train_state.h"
#include "moe/train/trainer.h"
#include "train/train_testing.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int64_t kFeatures = 3;

// Rows x ~ N(0, 1)^3, class = [x0 − x1 + x2 > 0].
Dataset make_rows(int64_t n, uint64_t seed) {
  Dataset d = testing::dense_rows(n, kFeatures, seed, [](const float* x, Dataset& r) {
    r.labels.push_back(x[0] - x[1] + x[2] > 0 ? 1 : 0);
  });
  d.task = TaskKind::kClassification;
  d.n_classes = 2;
  return d;
}

LoadedData make_data(int64_t n_train = 96) {
  LoadedData data;
  data.schema = testing::dense_schema(kFeatures);
  data.schema.labels.columns = {"y"};
  data.schema.labels.class_names = {"neg", "pos"};
  data.train = make_rows(n_train, 1);
  data.validation = make_rows(48, 2);
  return data;
}

// Everything that carries state across steps: dropout (the step noise), a sigmoid gate with
// bias balancing (gate state), a noisy gate, Adam moments; one thread, so runs are comparable.
Config make_config(const std::string& out, const std::string& training = "{}") {
  return testing::parse_test_config(json::parse(R"({
    "data": {"train": "unused.csv"},
    "model": {"width": 8, "trunk": {"dropout": 0.1}, "moe": [
      {"experts": 4, "k": 2, "expert": {"kind": "mlp", "hidden": 8},
       "gate": {"kind": "sigmoid_bias", "bias_update_rate": 0.01}},
      {"experts": 4, "k": 1, "expert": {"hidden": 8}, "gate": {"kind": "noisy_topk"},
       "balance": {"switch": 0.01}}]},
    "training": {"lr": 0.01, "epochs": 4, "batch_size": 16, "seed": 5, "threads": 1,
                 "early_stopping": {"metric": "accuracy"}}})"),
                                    out, training);
}

std::string temp_dir(const std::string& name) {
  return testing::fresh_run_dir("resume_" + name);
}

Result<TrainResult> train(const Config& config, const LoadedData& data,
                          const std::string& resume_from = "") {
  return testing::train(config, data, testing::quiet(), resume_from);
}

using testing::metric_lines;
using testing::read_file;

// Two run directories hold the same final state: model weights, training state tensors (Adam
// moments and best parameters), gate states, best model, and metrics.
void expect_same_run(const fs::path& a, const fs::path& b) {
  for (const char* f :
       {"last/model.safetensors", "last/train_state.safetensors", "best/model.safetensors"})
    EXPECT_TRUE(read_file(a / f) == read_file(b / f)) << f << " differs";
  const json ga = json::parse(read_file(a / "last/model.json"))["gates"];
  const json gb = json::parse(read_file(b / "last/model.json"))["gates"];
  EXPECT_EQ(ga, gb);
  EXPECT_EQ(metric_lines(a), metric_lines(b));
}

// Frozen parameters have no optimizer state: the training state holds the others' alone, and a
// resume restores exactly that (the second block's SwiGLU experts 2 and 3 skip their weight
// gradients).
TEST(Resume, WithFrozenParametersEqualsAnUninterruptedRun) {
  const LoadedData data = make_data();
  const std::string frozen =
      R"("frozen": ["blocks.0.*", "blocks.1.moe.experts.[23].*"], "schedule": "constant")";
  const std::string whole = temp_dir("frozen_whole"), split = temp_dir("frozen_split");
  Result<TrainResult> a = train(make_config(whole, "{" + frozen + "}"), data);
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  ASSERT_TRUE(train(make_config(split, "{" + frozen + R"(, "epochs": 2})"), data).is_ok());
  Result<TrainResult> b = train(make_config(split, "{" + frozen + "}"), data, split + "/last");
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  EXPECT_LT(a->n_trainable_params, a->n_params);
  EXPECT_EQ(b->steps, a->steps);
  expect_same_run(whole, split);
  fs::remove_all(whole);
  fs::remove_all(split);
}

TEST(Resume, TwoEpochsThenTwoMoreEqualFourUninterrupted) {
  const LoadedData data = make_data();
  // A constant schedule: its learning rates do not depend on the epoch count resume extends.
  const std::string whole = temp_dir("whole"), split = temp_dir("split");
  Result<TrainResult> a = train(make_config(whole, R"({"schedule": "constant"})"), data);
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  Result<TrainResult> first =
      train(make_config(split, R"({"schedule": "constant", "epochs": 2})"), data);
  ASSERT_TRUE(first.is_ok()) << first.status().message();
  Result<TrainResult> b =
      train(make_config(split, R"({"schedule": "constant"})"), data, split + "/last");
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  EXPECT_EQ(b->epochs, 4);
  EXPECT_EQ(b->steps, a->steps);
  EXPECT_EQ(b->best_epoch, a->best_epoch);
  EXPECT_EQ(b->best_value, a->best_value);
  EXPECT_EQ(b->validation.loss, a->validation.loss);
  expect_same_run(whole, split);
  fs::remove_all(whole);
  fs::remove_all(split);
}

TEST(Resume, FromACheckpointInsideAnEpochIsExact) {
  const LoadedData data = make_data();
  const std::string whole = temp_dir("inside_whole"), cut = temp_dir("inside_cut");
  // Every 4 steps with 6 batches an epoch: checkpoints at steps 4, 8, 16, 20 fall inside epochs.
  Config config = make_config(whole, R"({"epochs": 3})");
  config.output.checkpoint_every = 4;
  config.output.keep_last = 20;
  ASSERT_TRUE(train(config, data).is_ok());

  // The run as a kill right after step 8 (inside epoch 2) would have left it.
  fs::path inside;
  for (int i = 1; i < 20; ++i) {
    const fs::path p = fs::path(whole) / fmt::format("last.{}", i);
    if (fs::exists(p) && json::parse(read_file(p / "model.json"))["info"]["step"] == 8) inside = p;
  }
  ASSERT_FALSE(inside.empty());
  const json state = json::parse(read_file(inside / "train_state.json"));
  EXPECT_EQ(state["position"]["epochs_done"], 1);
  EXPECT_EQ(state["position"]["batches_done"], 2);
  fs::create_directories(cut);
  fs::copy(inside, fs::path(cut) / "last", fs::copy_options::recursive);
  // metrics.jsonl as it was then: epoch 1, plus a later line resume must drop.
  std::ifstream in(fs::path(whole) / "metrics.jsonl");
  std::string line1, line2;
  std::getline(in, line1);
  std::getline(in, line2);
  std::ofstream(fs::path(cut) / "metrics.jsonl") << line1 << "\n" << line2 << "\n";

  config.output.dir = cut;
  Result<TrainResult> r = train(config, data, cut + "/last");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->epochs, 3);
  for (const char* f :
       {"last/model.safetensors", "last/train_state.safetensors", "best/model.safetensors"})
    EXPECT_TRUE(read_file(fs::path(whole) / f) == read_file(fs::path(cut) / f)) << f;
  EXPECT_EQ(metric_lines(whole), metric_lines(cut));  // the partial epoch's sums were kept
  fs::remove_all(whole);
  fs::remove_all(cut);
}

TEST(Resume, AFinishedOrEarlyStoppedRunStaysFinished) {
  const LoadedData data = make_data();
  const std::string out = temp_dir("finished");
  const Config config = make_config(out, R"({"epochs": 2})");
  Result<TrainResult> a = train(config, data);
  ASSERT_TRUE(a.is_ok());
  const std::string weights = read_file(fs::path(out) / "last/model.safetensors");
  Result<TrainResult> b = train(config, data, out + "/last");
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  EXPECT_EQ(b->epochs, 2);
  EXPECT_EQ(b->steps, a->steps);
  EXPECT_EQ(b->best_epoch, a->best_epoch);
  EXPECT_EQ(b->validation.loss, a->validation.loss);  // re-evaluated from the best parameters
  EXPECT_TRUE(read_file(fs::path(out) / "last/model.safetensors") == weights);

  // A learning rate this small never improves on epoch 1: patience 1 stops after epoch 2, and
  // resuming with more epochs keeps it stopped.
  const std::string early = temp_dir("early");
  Result<TrainResult> c =
      train(make_config(early, R"({"lr": 1e-12, "schedule": "constant", "epochs": 5,
                             "early_stopping": {"metric": "accuracy", "patience": 1}})"),
            data);
  ASSERT_TRUE(c.is_ok());
  EXPECT_TRUE(c->stopped_early);
  Result<TrainResult> d =
      train(make_config(early, R"({"lr": 1e-12, "schedule": "constant", "epochs": 8,
                             "early_stopping": {"metric": "accuracy", "patience": 1}})"),
            data, early + "/last");
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_TRUE(d->stopped_early);
  EXPECT_EQ(d->epochs, c->epochs);
  fs::remove_all(out);
  fs::remove_all(early);
}

TEST(Resume, RefusesAChangedConfigOrData) {
  const LoadedData data = make_data();
  const std::string out = temp_dir("refuse");
  ASSERT_TRUE(train(make_config(out, R"({"epochs": 1})"), data).is_ok());
  const std::string last = out + "/last";
  const auto refused = [&](const Config& c, const LoadedData& d) {
    Result<std::unique_ptr<Trainer>> t = Trainer::create(c, d, testing::quiet());
    EXPECT_TRUE(t.is_ok());
    const Status st = t.is_ok() ? (*t)->resume(last) : t.status();
    EXPECT_FALSE(st.is_ok());
    return st.message();
  };
  std::string m = refused(make_config(out, R"({"epochs": 1, "lr": 0.02})"), data);
  EXPECT_NE(m.find("model.json: training.lr differs from the run's (0.01 in the checkpoint, "
                   "0.02 now); on resume only training.epochs"),
            std::string::npos)
      << m;
  m = refused(make_config(out, R"({"epochs": 3})"), data);
  EXPECT_NE(m.find("training.epochs cannot change on resume under the cosine schedule"),
            std::string::npos)
      << m;
  m = refused(make_config(out, R"({"epochs": 1, "seed": 6})"), data);
  EXPECT_NE(m.find("training.seed differs"), std::string::npos) << m;
  m = refused(make_config(out, R"({"epochs": 1})"), make_data(112));
  EXPECT_NE(m.find("train_state.json: position.batches_per_epoch is 6, the data and batch size "
                   "now give 7"),
            std::string::npos)
      << m;
  // Allowed: patience, threads, checkpoint frequency and rotation.
  Config ok = make_config(out, R"({"epochs": 1, "threads": 2,
                                   "early_stopping": {"metric": "accuracy", "patience": 3}})");
  ok.output.checkpoint_every = 2;
  ok.output.keep_last = 2;
  Result<std::unique_ptr<Trainer>> t = Trainer::create(ok, data, testing::quiet());
  ASSERT_TRUE(t.is_ok());
  const Status st = (*t)->resume(last);
  EXPECT_TRUE(st.is_ok()) << st.message();
  fs::remove_all(out);
}

}  // namespace
}  // namespace moe
