// A run directory belongs to one run: a second trainer into it is refused while the first holds
// its lock, a fresh run refuses a directory holding a run unless told to overwrite it (and then
// leaves nothing of the old one), resume refuses training data whose content changed though its
// schema did not, and a resumed epoch's rows/s counts only the rows this process trained.
//
// Dims: N training rows · T = 16 rows a batch · D = 8 · E = 4.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "moe/io/run_lock.h"
#include "moe/train/trainer.h"
#include "train/train_testing.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int64_t kFeatures = 3;

// Rows x ~ N(0, 1)^3, class = [x0 − x1 + x2 > 0].
LoadedData make_data(int64_t n_train, uint64_t seed = 1) {
  const auto rows = [](int64_t n, uint64_t s) {
    Dataset d = testing::dense_rows(n, kFeatures, s, [](const float* x, Dataset& r) {
      r.labels.push_back(x[0] - x[1] + x[2] > 0 ? 1 : 0);
    });
    d.task = TaskKind::kClassification;
    d.n_classes = 2;
    return d;
  };
  LoadedData data;
  data.schema = testing::dense_schema(kFeatures);
  data.schema.labels.columns = {"y"};
  data.schema.labels.class_names = {"neg", "pos"};
  data.train = rows(n_train, seed);
  data.validation = rows(48, seed + 100);
  return data;
}

Config make_config(const std::string& out, const std::string& training = "{}") {
  return testing::parse_test_config(json::parse(R"({
    "data": {"train": "unused.csv"},
    "model": {"width": 8, "moe": {"experts": 4, "k": 2, "expert": {"hidden": 8}}},
    "training": {"lr": 0.01, "epochs": 2, "batch_size": 16, "seed": 5, "threads": 1,
                 "schedule": "constant"}})"),
                                    out, training);
}

std::string error_of(const Result<TrainResult>& r) {
  EXPECT_FALSE(r.is_ok());
  return r.is_ok() ? std::string() : r.status().message();
}

TEST(RunDir, ASecondRunIntoALockedDirectoryIsRefused) {
  const std::string out = testing::fresh_run_dir("run_dir_locked");
  Result<RunLock> other = RunLock::acquire(out);  // as another moe train would hold it
  ASSERT_TRUE(other.is_ok());
  const std::string m = error_of(testing::train(make_config(out), make_data(64)));
  EXPECT_NE(
      m.find(fmt::format("another moe train (pid {}) is writing this run directory", ::getpid())),
      std::string::npos)
      << m;
  EXPECT_FALSE(fs::exists(fs::path(out) / "config.json"));  // nothing written
  other->release();
  EXPECT_TRUE(testing::train(make_config(out), make_data(64)).is_ok());
  fs::remove_all(out);
}

TEST(RunDir, AFreshRunRefusesAnExistingRunUnlessOverwriting) {
  const std::string out = testing::fresh_run_dir("run_dir_existing");
  Config config = make_config(out);
  config.output.keep_last = 3;
  ASSERT_TRUE(testing::train(config, make_data(64)).is_ok());
  ASSERT_TRUE(fs::exists(fs::path(out) / "last.1"));
  const auto before = fs::last_write_time(fs::path(out) / "summary.json");
  const std::string m = error_of(testing::train(make_config(out), make_data(64)));
  EXPECT_EQ(m, fmt::format("{}: holds a run already (last, best, summary.json); resume it (moe "
                           "train --resume {}), replace it (--overwrite), or choose another "
                           "output directory",
                           out, out));
  EXPECT_EQ(fs::last_write_time(fs::path(out) / "summary.json"), before);  // untouched

  TrainOptions overwrite = testing::quiet();
  overwrite.overwrite = true;
  ASSERT_TRUE(
      testing::train(make_config(out, R"({"epochs": 1})"), make_data(64), overwrite).is_ok());
  EXPECT_FALSE(fs::exists(fs::path(out) / "last.1"));  // nothing of the old run is left
  std::ifstream metrics(fs::path(out) / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  EXPECT_EQ(lines, 1);
  fs::remove_all(out);
}

TEST(RunDir, ResumeRefusesDataWhoseContentChanged) {
  const std::string out = testing::fresh_run_dir("run_dir_changed");
  ASSERT_TRUE(testing::train(make_config(out, R"({"epochs": 1})"), make_data(64)).is_ok());
  // The same schema and batch count, other rows (as an edited text or flipped labels give).
  LoadedData edited = make_data(64);
  edited.train.labels[3] = 1 - edited.train.labels[3];
  Result<std::unique_ptr<Trainer>> t = Trainer::create(make_config(out), edited, testing::quiet());
  ASSERT_TRUE(t.is_ok());
  const Status st = (*t)->resume(out + "/last");
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(), out +
                              "/last/model.json: the training data differs from the data the "
                              "run was trained on (its content changed since the run "
                              "started); resume needs the same data");
  t->reset();  // its lock
  EXPECT_NE(data_fingerprint(edited), data_fingerprint(make_data(64)));
  EXPECT_EQ(data_fingerprint(make_data(64)), data_fingerprint(make_data(64)));
  // The same data resumes.
  EXPECT_TRUE(
      testing::train(make_config(out), make_data(64), testing::quiet(), out + "/last").is_ok());
  fs::remove_all(out);
}

// 75 batches an epoch, resumed from a checkpoint after batch 74: the resumed epoch trained one
// batch in this process, and its rows/s is that batch's rate, not 75 batches over its time.
TEST(RunDir, AResumedEpochCountsOnlyTheRowsItTrained) {
  const std::string whole = testing::fresh_run_dir("run_dir_rate_whole");
  const std::string cut = testing::fresh_run_dir("run_dir_rate_cut");
  const LoadedData data = make_data(1200);
  Config config = make_config(whole, R"({"epochs": 3})");
  config.output.checkpoint_every = 149;  // step 149: batch 74 of epoch 2
  config.output.keep_last = 10;
  ASSERT_TRUE(testing::train(config, data).is_ok());
  fs::path inside;
  for (int i = 1; i < 10; ++i) {
    const fs::path p = fs::path(whole) / fmt::format("last.{}", i);
    std::ifstream in(p / "model.json");
    if (in && json::parse(in)["info"]["step"] == 149) inside = p;
  }
  ASSERT_FALSE(inside.empty());
  fs::create_directories(cut);
  fs::copy(inside, fs::path(cut) / "last", fs::copy_options::recursive);
  config.output.dir = cut;
  ASSERT_TRUE(testing::train(config, data, testing::quiet(), cut + "/last").is_ok());
  const auto rates = [](const std::string& run) {
    std::vector<double> r;
    std::ifstream in(fs::path(run) / "metrics.jsonl");
    for (std::string line; std::getline(in, line);)
      r.push_back(json::parse(line)["rows_per_second"].get<double>());
    return r;
  };
  const std::vector<double> a = rates(whole), b = rates(cut);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 2u);  // epochs 2 and 3: cut/ had no metrics.jsonl before the resume
  // Counting the 74 batches before the checkpoint would make epoch 2 about 75 times faster.
  const double fastest = *std::max_element(a.begin(), a.end());
  EXPECT_LT(b[0], 10 * fastest) << "resumed epoch " << b[0] << " rows/s, uninterrupted at most "
                                << fastest;
  fs::remove_all(whole);
  fs::remove_all(cut);
}

}  // namespace
}  // namespace moe
