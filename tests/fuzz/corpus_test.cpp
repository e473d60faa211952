// Replays every committed fuzz input (tests/fuzz/corpus/<target>/) through its harness in the
// ordinary build, so the seeds and the regression inputs of fixed bugs stay covered by the unit
// label and its ASan run without clang or libFuzzer.
//
// Dims: none (files of bytes).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/harness.h"
#include "moe/io/checkpoint.h"
#include "moe/train/config.h"

namespace moe::fuzz {
namespace {

using Harness = void (*)(const uint8_t*, size_t);

std::vector<uint8_t> read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

// The files of corpus/<target> whose names start with `prefix`, sorted.
std::vector<std::filesystem::path> corpus_files(const std::string& target,
                                                const std::string& prefix = "") {
  std::vector<std::filesystem::path> files;
  for (const auto& e :
       std::filesystem::directory_iterator(std::filesystem::path(MOE_FUZZ_CORPUS) / target))
    if (e.is_regular_file() && e.path().filename().string().rfind(prefix, 0) == 0)
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

// Runs every file of corpus/<target> through `harness`; returns how many there were.
int replay(const std::string& target, Harness harness) {
  const std::vector<std::filesystem::path> files = corpus_files(target);
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    const std::vector<uint8_t> bytes = read_all(f);
    harness(bytes.data(), bytes.size());
  }
  return static_cast<int>(files.size());
}

// A checkpoint seed written out as a directory of its own; load_checkpoint's verdict.
Result<Checkpoint> load_seed(const std::filesystem::path& seed, const std::string& name) {
  const std::string dir = ::testing::TempDir() + "moe_fuzz_corpus_" + name;
  std::filesystem::create_directories(dir);
  const std::vector<uint8_t> bytes = read_all(seed);
  write_checkpoint_dir(bytes.data(), bytes.size(), dir);
  Result<Checkpoint> ck = load_checkpoint(dir);
  std::filesystem::remove_all(dir);
  return ck;
}

TEST(FuzzCorpus, SafetensorsInputsAreHandled) {
  EXPECT_GE(replay("safetensors", safetensors_one), 5);
}

TEST(FuzzCorpus, ConfigInputsAreHandled) {
  EXPECT_GE(replay("config", config_one), 5);
}

TEST(FuzzCorpus, CheckpointInputsAreHandled) {
  EXPECT_GE(replay("checkpoint", checkpoint_one), 3);
}

// The valid seeds (tabular, regression with sigmoid, expert-choice and hierarchical layers,
// text) load: the weight budget check is a lower bound that real checkpoints pass.
TEST(FuzzCorpus, ValidCheckpointSeedsLoad) {
  const auto seeds = corpus_files("checkpoint", "valid_");
  ASSERT_GE(seeds.size(), 3u);
  for (const auto& seed : seeds) {
    Result<Checkpoint> ck = load_seed(seed, seed.filename().string());
    EXPECT_TRUE(ck.is_ok()) << seed << ": " << ck.status().message();
  }
}

// A bug of the checkpoint loader and the config reader: model.json's config was used to allocate
// the model before the weights were compared with it, so a width of 2^20 asked for terabytes
// (its linear shared expert is [D, D]); and validating "experts": 2000000000 built a vector of
// two billion expert configs. Both are now refused first, with a message naming model.json.
TEST(FuzzCorpus, OversizedConfigsAreRefusedBeforeAllocating) {
  const struct {
    const char* seed;
    const char* message;
  } cases[] = {{"regress_oversized_width", "the config describes at least"},
               {"regress_two_billion_experts", "model.moe.experts: expected an integer in"}};
  for (const auto& c : cases) {
    Result<Checkpoint> ck =
        load_seed(std::filesystem::path(MOE_FUZZ_CORPUS) / "checkpoint" / c.seed, c.seed);
    ASSERT_FALSE(ck.is_ok()) << c.seed;
    EXPECT_NE(ck.status().message().find(c.message), std::string::npos) << ck.status().message();
    EXPECT_NE(ck.status().message().find("model.json"), std::string::npos);
  }
}

// Found by the config fuzzer (corpus/config/regress_override_invalid_utf8): an override value
// that is not JSON is taken as a string, and one that is not UTF-8 made the error message's
// json::dump() throw, which no caller catches. Such a value is now an error of its own.
TEST(FuzzCorpus, OverrideValueThatIsNotUtf8IsAnError) {
  for (const char* assignment : {"training.epochs=\x93"
                                 "3",
                                 "data.train=caf\xe9.csv"}) {
    nlohmann::json j = {{"data", {{"train", "t.csv"}}}};
    const Status st = apply_override(&j, assignment);
    ASSERT_FALSE(st.is_ok()) << assignment;
    EXPECT_NE(st.message().find("is not valid UTF-8"), std::string::npos) << st.message();
  }
}

// Found by the config fuzzer (corpus/config/regress_number_overflow): a number too large for a
// double is reported by nlohmann's parser as out_of_range, not parse_error, and escaped
// read_json_file. It is now a message naming the file.
TEST(FuzzCorpus, ConfigNumberOverflowIsAnError) {
  const std::string path = ::testing::TempDir() + "moe_fuzz_corpus_overflow.json";
  {
    std::ofstream out(path);
    out << R"({"data": {"train": "t.csv"}, "training": {"lr": 1e999}})";
  }
  Result<Config> c = load_config(path, {});
  std::filesystem::remove(path);
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("invalid JSON"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find(path), std::string::npos);
}

}  // namespace
}  // namespace moe::fuzz
