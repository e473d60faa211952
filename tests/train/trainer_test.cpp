// The training loop on small in-memory data: it learns, writes its run files,
// stops early, is deterministic, stops on a NaN with the epoch and step named,
// and checks its metric.
#include "moe/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "moe/train/checkpoint.h"
#include "moe/train/evaluate.h"
#include "train/train_testing.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int64_t kFeatures = 4;
// Regression targets a = 3 x0 − x1 + 10 and b = 2 x2 − 5: their means and standard deviations.
constexpr float kMeanA = 10, kStdA = 3.1622777f, kMeanB = -5, kStdB = 2;

// Rows x ~ N(0, 1)^4. Classification: class = [x0 + x1 > 0] (binary) or the
// third of x0 + x1 it falls in (3 classes). Regression: targets (3 x0 − x1 +
// 10, x2 · 2 − 5).
Dataset make_rows(int64_t n, int64_t n_classes, bool regression, uint64_t seed) {
  Dataset d = testing::dense_rows(n, kFeatures, seed, [&](const float* x, Dataset& r) {
    const float s = x[0] + x[1];
    if (regression) {
      // Stored standardised, as the data layer does: (y − mean) / std.
      r.targets.push_back((3 * x[0] - x[1] + 10 - kMeanA) / kStdA);
      r.targets.push_back((2 * x[2] - 5 - kMeanB) / kStdB);
    } else if (n_classes == 2) {
      r.labels.push_back(s > 0 ? 1 : 0);
    } else {
      r.labels.push_back(s < -0.6f ? 0 : (s < 0.6f ? 1 : 2));
    }
  });
  d.task = regression ? TaskKind::kRegression : TaskKind::kClassification;
  d.n_classes = regression ? 0 : n_classes;
  d.n_targets = regression ? 2 : 0;
  return d;
}

LoadedData make_data(int64_t n_classes, bool regression, int64_t n_train = 512,
                     int64_t n_validation = 256) {
  LoadedData data;
  data.schema = testing::dense_schema(kFeatures);
  DataSchema& s = data.schema;
  if (regression) {
    s.labels.task = TaskKind::kRegression;
    s.labels.columns = {"a", "b"};
    s.labels.target_mean = {kMeanA, kMeanB};
    s.labels.target_std = {kStdA, kStdB};
    s.labels.standardized = true;
  } else {
    s.labels.columns = {"y"};
    s.labels.class_names = n_classes == 2 ? std::vector<std::string>{"neg", "pos"}
                                          : std::vector<std::string>{"low", "mid", "high"};
  }
  data.train = make_rows(n_train, n_classes, regression, 1);
  data.validation = make_rows(n_validation, n_classes, regression, 2);
  return data;
}

// A small MoE model: width 16, 4 MLP experts of width 16, top-2 with the Switch
// loss.
Config make_config(const std::string& out, const std::string& extra_training = "{}",
                   TaskKind task = TaskKind::kClassification) {
  json j = json::parse(R"({
    "data": {"train": "unused.csv"},
    "model": {"width": 16, "moe": {"experts": 4, "k": 2,
              "expert": {"kind": "mlp", "hidden": 16}, "balance": {"switch": 0.01}}},
    "training": {"lr": 0.01, "epochs": 6, "batch_size": 32, "seed": 3,
                 "early_stopping": {"metric": "accuracy"}}})");
  j["data"]["task"] = task_kind_name(task);
  return testing::parse_test_config(j, out, extra_training);
}

std::string temp_dir(const std::string& name) {
  return testing::fresh_run_dir("trainer_" + name);
}

using testing::quiet;
using testing::train;

TEST(Trainer, LearnsAndWritesItsRunFiles) {
  const std::string out = temp_dir("learns");
  const LoadedData data = make_data(2, false);
  const Config config = make_config(out);
  Result<TrainResult> r = train(config, data);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->epochs, 6);
  EXPECT_EQ(r->steps, 6 * 16);
  EXPECT_GE(r->validation.classification.accuracy, 0.9);
  EXPECT_EQ(r->metric, "accuracy (validation)");
  EXPECT_GE(r->best_epoch, 1);
  EXPECT_GT(r->rows_per_second, 0);

  // metrics.jsonl: one line per epoch with every field.
  std::ifstream in(fs::path(out) / "metrics.jsonl");
  std::string line;
  int64_t n = 0;
  double first_loss = 0, last_loss = 0;
  while (std::getline(in, line)) {
    const json j = json::parse(line);
    ++n;
    EXPECT_EQ(j["epoch"].get<int64_t>(), n);
    (n == 1 ? first_loss : last_loss) = j["train_loss"].get<double>();
    EXPECT_TRUE(j["aux_losses"].contains("blocks.0.moe.switch")) << line;
    const json& load = j["expert_load"]["blocks.0.moe"];
    ASSERT_EQ(load.size(), 4u) << line;
    double total = 0;
    for (const json& s : load) total += s.get<double>();
    EXPECT_NEAR(total, 1.0, 1e-9);
    EXPECT_TRUE(j["validation"].contains("accuracy"));
    EXPECT_TRUE(j["validation"].contains("roc_auc"));
    EXPECT_GT(j["learning_rate"].get<double>(), 0);
    EXPECT_GT(j["seconds"].get<double>(), 0);
  }
  EXPECT_EQ(n, 6);
  EXPECT_LT(last_loss, first_loss);

  // config.json parses back to the same configuration.
  std::ifstream cfg(fs::path(out) / "config.json");
  const json saved = json::parse(cfg);
  Result<Config> back = parse_config(saved, "config.json");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(config_to_json(*back), config_to_json(config));
  EXPECT_TRUE(fs::exists(fs::path(out) / "summary.json"));
  std::ifstream summary_file(fs::path(out) / "summary.json");
  const json summary = json::parse(summary_file);
  EXPECT_TRUE(summary["warnings"].is_array()) << summary.dump();
  EXPECT_EQ(summary["warnings"].size(), r->warnings.size());
  EXPECT_GE(summary["threads"].get<int>(), 1);
  EXPECT_EQ(summary["threads_reason"].get<std::string>().rfind("auto: ", 0), 0u);

  // The best checkpoint reproduces the best epoch's validation accuracy.
  Result<Checkpoint> best = load_checkpoint((fs::path(out) / "best").string());
  ASSERT_TRUE(best.is_ok()) << best.status().message();
  EXPECT_EQ(best->info["epoch"].get<int64_t>(), r->best_epoch);
  Result<EvalMetrics> again = evaluate(*best->model, data.validation, data.schema.labels, {});
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_DOUBLE_EQ(again->classification.accuracy, r->validation.classification.accuracy);
  Result<Checkpoint> last = load_checkpoint((fs::path(out) / "last").string());
  ASSERT_TRUE(last.is_ok()) << last.status().message();
  EXPECT_EQ(last->info["epoch"].get<int64_t>(), 6);
  fs::remove_all(out);
}

TEST(Trainer, SameSeedSameRun) {
  const LoadedData data = make_data(3, false, 256, 128);
  const Config config = make_config(temp_dir("same"), R"({"epochs": 2})");
  TrainOptions o = quiet();
  o.write_files = false;
  Result<TrainResult> a = train(config, data, o);
  Result<TrainResult> b = train(config, data, o);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->validation.loss, b->validation.loss);  // bit for bit
  EXPECT_EQ(a->validation.classification.confusion, b->validation.classification.confusion);
}

TEST(Trainer, StopsEarlyWhenTheMetricStopsImproving) {
  // A learning rate this small leaves every prediction as it is: accuracy never
  // improves on epoch 1, so patience 2 ends the run after epoch 3.
  const LoadedData data = make_data(2, false, 128, 64);
  TrainOptions o = quiet();
  o.write_files = false;
  Result<TrainResult> r = train(make_config(temp_dir("early"), R"({"lr": 1e-12, "epochs": 10,
                          "early_stopping": {"metric": "accuracy", "patience": 2}})"),
                                data, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE(r->stopped_early);
  EXPECT_EQ(r->epochs, 3);
  EXPECT_EQ(r->best_epoch, 1);
}

// training.max_steps ends training inside an epoch (16 batches each) after exactly that many
// steps, validates and saves as at an epoch end; the schedule is planned over those steps.
TEST(Trainer, MaxStepsEndsTrainingInsideAnEpoch) {
  const std::string out = temp_dir("max_steps");
  Result<TrainResult> r = train(
      make_config(out, R"({"epochs": 6, "max_steps": 21, "min_lr": 0.001})"), make_data(2, false));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->steps, 21);
  EXPECT_EQ(r->epochs, 2);
  EXPECT_EQ(r->budget, "max_steps");
  EXPECT_TRUE(r->has_validation);
  // The cosine reached its floor at the last step.
  std::ifstream metrics(out + "/metrics.jsonl");
  std::string line, last;
  while (std::getline(metrics, line)) last = line;
  EXPECT_NEAR(json::parse(last)["learning_rate"].get<double>(), 0.001, 1e-4) << last;
}

// training.max_minutes ends training once that much training time has passed.
TEST(Trainer, MaxMinutesEndsTraining) {
  TrainOptions o = quiet();
  o.write_files = false;
  Result<TrainResult> r =
      train(make_config(temp_dir("max_minutes"), R"({"epochs": 1000, "max_minutes": 1e-6})"),
            make_data(2, false, 128, 64), o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->steps, 1);
  EXPECT_EQ(r->budget, "max_minutes");
}

TEST(Trainer, EpochsInsideTheWarmUpDoNotCountTowardsPatience) {
  // 4 steps per epoch and a warm-up of 10 steps: epochs 1 and 2 end inside it (steps 4 and 8)
  // and do not count; epochs 3 and 4 do, so patience 2 ends the run after epoch 4.
  const LoadedData data = make_data(2, false, 128, 64);
  TrainOptions o = quiet();
  o.write_files = false;
  Result<TrainResult> r = train(make_config(temp_dir("warmup"), R"({"lr": 1e-12, "epochs": 10,
                          "warmup_steps": 10,
                          "early_stopping": {"metric": "accuracy", "patience": 2}})"),
                                data, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE(r->stopped_early);
  EXPECT_EQ(r->epochs, 4);
  EXPECT_EQ(r->best_epoch, 1);
}

TEST(Trainer, NonFiniteLossNamesEpochAndStepAndKeepsTheLastGoodCheckpoint) {
  LoadedData data = make_data(2, false, 128, 0);
  // Find a row the first epoch reaches after a few steps, and poison it.
  const int64_t batch = 16;
  BatchOptions bo;
  bo.batch_size = batch;
  bo.seed = 3;  // the config's seed
  BatchIterator it(data.train, bo);
  BatchBuffers buffers = BatchBuffers::for_dataset(data.train, batch);
  it.start_epoch(0);
  Batch b;
  for (int s = 0; s < 4; ++s) ASSERT_TRUE(it.next(buffers, &b));
  const int64_t poisoned = b.rows.data<int64_t>()[0];  // in step 4 of epoch 1
  data.train.dense[static_cast<size_t>(poisoned * kFeatures)] = NAN;

  const std::string out = temp_dir("nan");
  const Config config =
      make_config(out, R"({"batch_size": 16, "early_stopping": {"metric": "loss"}})");
  Config every_step = config;
  every_step.output.checkpoint_every = 1;
  Result<TrainResult> r = train(every_step, data);
  ASSERT_FALSE(r.is_ok());
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("the loss is nan at epoch 1, step 4 of 8"), std::string::npos) << m;
  EXPECT_NE(m.find(out), std::string::npos) << m;
  Result<Checkpoint> last = load_checkpoint((fs::path(out) / "last").string());
  ASSERT_TRUE(last.is_ok()) << last.status().message();
  EXPECT_EQ(last->info["step"].get<int64_t>(), 3);  // the step before the NaN
  for (const NamedTensor& t : last->model->named_parameters()) {
    const float* p = t.tensor.f32();
    for (int64_t i = 0; i < t.tensor.numel(); ++i) ASSERT_TRUE(std::isfinite(p[i])) << t.name;
  }
  fs::remove_all(out);
}

TEST(Trainer, KeepLastRotatesEarlierCheckpointsAndBestCanBeOff) {
  const std::string out = temp_dir("rotate");
  const LoadedData data = make_data(2, false, 64, 32);
  Config config = make_config(out, R"({"epochs": 4})");
  config.output.keep_last = 3;
  config.output.save_best = false;
  Result<TrainResult> r = train(config, data);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const auto epoch_of = [&](const char* name) -> int64_t {
    Result<Checkpoint> c = load_checkpoint((fs::path(out) / name).string());
    EXPECT_TRUE(c.is_ok()) << name << ": " << c.status().message();
    return c.is_ok() ? c->info["epoch"].get<int64_t>() : -1;
  };
  EXPECT_EQ(epoch_of("last"), 4);
  EXPECT_EQ(epoch_of("last.1"), 3);
  EXPECT_EQ(epoch_of("last.2"), 2);
  EXPECT_FALSE(fs::exists(fs::path(out) / "last.3"));
  EXPECT_FALSE(fs::exists(fs::path(out) / "best"));
  fs::remove_all(out);
}

TEST(Trainer, RegressionReportsRawUnitMetrics) {
  const LoadedData data = make_data(0, true, 512, 256);
  TrainOptions o = quiet();
  o.write_files = false;
  Result<TrainResult> r =
      train(make_config(temp_dir("regression"),
                        R"({"lr": 0.01, "epochs": 8, "early_stopping": {"metric": "r2"}})",
                        TaskKind::kRegression),
            data, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->validation.task, TaskKind::kRegression);
  const RegressionMetrics& m = r->validation.regression;
  EXPECT_GT(m.r2[0], 0.97);
  EXPECT_GT(m.r2[1], 0.97);
  // In raw units MSE = (1 − R²) · Var(y) with Var the raw targets' population variance (about
  // 10 for a); in standardised units the ratio would be about 1.
  double mean = 0, var = 0;
  const int64_t n = data.validation.n_rows;
  for (int64_t i = 0; i < n; ++i) mean += data.validation.targets[2 * i] * kStdA + kMeanA;
  mean /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const double y = data.validation.targets[2 * i] * kStdA + kMeanA;
    var += (y - mean) * (y - mean) / static_cast<double>(n);
  }
  EXPECT_GT(var, 5.0);
  EXPECT_NEAR(m.mse[0] / (1 - m.r2[0]), var, 1e-3 * var);
}

TEST(Trainer, MetricTheTaskLacksIsAnErrorNamingTheKey) {
  const LoadedData data = make_data(3, false, 64, 32);
  Config config = make_config(temp_dir("metric"));
  config.training.metric = MetricKind::kMse;
  Result<std::unique_ptr<Trainer>> t = Trainer::create(config, data, quiet());
  ASSERT_FALSE(t.is_ok());
  EXPECT_EQ(t.status().message().rfind("training.early_stopping.metric: 'mse' is not a "
                                       "classification metric",
                                       0),
            0u)
      << t.status().message();
  // ROC AUC is one-vs-rest with more than two classes: three classes may stop on it.
  config.training.metric = MetricKind::kRocAuc;
  Result<std::unique_ptr<Trainer>> auc = Trainer::create(config, data, quiet());
  EXPECT_TRUE(auc.is_ok()) << auc.status().message();
}

}  // namespace
}  // namespace moe
