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
#include "moe/io/safetensors.h"
#include "moe/train/checkpoint.h"
#include "moe/train/config.h"
#include "moe/train/evaluate.h"

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

TEST(FuzzCorpus, TrainStateInputsAreHandled) {
  EXPECT_GE(replay("train_state", train_state_one), 5);
}

// The valid seed loads; the probe's loose values (a schedule horizon that is not the config's,
// an early-stopping counter of 1e9, negative rows in the epoch's sums) and malformed JSON do not.
TEST(FuzzCorpus, TrainStateSeedsGetTheirVerdicts) {
  const struct {
    const char* seed;
    const char* message;  // "" for accepted
  } cases[] = {
      {"valid_mid_epoch", ""},
      {"valid_adapt_counts", ""},  // the trainer checks the counts against the model
      {"bad_adapt_not_an_object", "train_state.json: field 'adapt' must be an object"},
      {"regress_total_steps_not_the_config",
       "train_state.json: schedule: total_steps 7 is not the config's training.epochs"},
      {"regress_since_best_1e9",
       "train_state.json: best: since_best 1000000000 is more than the 0 epochs done"},
      {"regress_negative_rows", "train_state.json: epoch_sums: field 'rows' must be an integer"},
      {"regress_duplicate_key", "train_state.json: the key \"seed\" appears twice in one object"},
      {"regress_deep_epoch_sums", "arrays and objects nested more than 64 deep"},
      {"bad_syntax", "invalid JSON"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.seed);
    const std::vector<uint8_t> bytes =
        read_all(std::filesystem::path(MOE_FUZZ_CORPUS) / "train_state" / c.seed);
    const std::string got = train_state_rejection(bytes.data(), bytes.size());
    if (c.message[0] == '\0') {
      EXPECT_EQ(got, "");
    } else {
      EXPECT_NE(got.find(c.message), std::string::npos) << got;
    }
  }
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

// Weights the fuzzer damaged into finite values near the float limit (regress_finite_weights_
// overflow: a gain of 1.7e27, a router and an expert near 1e35) pass the loader, which promises
// finite weights, not sane ones; the forward pass overflows, and prediction is refused with a
// message that names damaged weights as a cause, never answered with NaN.
TEST(FuzzCorpus, FiniteButAbsurdWeightsAreRefusedAtPrediction) {
  const auto seeds = corpus_files("checkpoint", "regress_finite_weights_overflow");
  ASSERT_EQ(seeds.size(), 1u);
  Result<Checkpoint> ck = load_seed(seeds[0], "overflow");
  ASSERT_TRUE(ck.is_ok()) << ck.status().message();
  const DataShape shape = ck->schema.shape();
  ASSERT_EQ(shape.input, FeatureKind::kDense);
  Dataset rows;
  rows.kind = shape.input;
  rows.task = shape.task;
  rows.n_rows = 1;
  rows.n_features = shape.n_features;
  rows.dense.assign(static_cast<size_t>(shape.n_features), 0.0f);
  rows.source_rows = {7};
  Predictions p;
  const Result<EvalMetrics> m = evaluate(*ck->model, rows, ck->schema.labels, EvalOptions(), &p);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("row 1 of the data (line or record 7)"), std::string::npos)
      << m.status().message();
  EXPECT_NE(m.status().message().find("weights are damaged"), std::string::npos)
      << m.status().message();
}

// The language model's seed carries its tokenizer.model after the weights: it loads, tokenizer
// included. Its corpus schema holds format, tokenizer and context only; one with the delimiter
// and quoting the first builds also wrote still loads, and an unknown field inside
// data.tokenizer is refused like any other unknown field of model.json.
TEST(FuzzCorpus, LanguageModelSeedLoadsWithItsTokenizer) {
  const auto seeds = corpus_files("checkpoint", "lm_");
  ASSERT_GE(seeds.size(), 1u);
  for (const auto& seed : seeds) {
    SCOPED_TRACE(seed.string());
    Result<Checkpoint> ck = load_seed(seed, seed.filename().string());
    ASSERT_TRUE(ck.is_ok()) << ck.status().message();
    EXPECT_NE(ck->schema.tokenizer, nullptr);

    const std::vector<uint8_t> bytes = read_all(seed);
    const auto nul = std::find(bytes.begin(), bytes.end(), uint8_t{0});
    ASSERT_NE(nul, bytes.end());
    const nlohmann::json j = nlohmann::json::parse(bytes.begin(), nul);
    std::vector<std::string> fields;
    for (const auto& [key, value] : j["data"].items()) fields.push_back(key);
    EXPECT_EQ(fields, (std::vector<std::string>{"context", "format", "tokenizer"}));

    const auto with = [&](const nlohmann::json& edited, const std::string& name) {
      const std::string text = edited.dump();
      std::vector<uint8_t> input(text.begin(), text.end());
      input.insert(input.end(), nul, bytes.end());
      const std::filesystem::path path = ::testing::TempDir() + name;
      std::ofstream(path, std::ios::binary)
          .write(reinterpret_cast<const char*>(input.data()),
                 static_cast<std::streamsize>(input.size()));
      Result<Checkpoint> got = load_seed(path, name + "_dir");
      std::filesystem::remove(path);
      return got;
    };
    nlohmann::json old = j;
    old["data"]["delimiter"] = "auto";
    old["data"]["quoting"] = "rfc4180";
    Result<Checkpoint> legacy = with(old, "lm_legacy");
    EXPECT_TRUE(legacy.is_ok()) << legacy.status().message();
    nlohmann::json extra = j;
    extra["data"]["tokenizer"]["normalizer"] = "nfkc";
    Result<Checkpoint> refused = with(extra, "lm_extra");
    ASSERT_FALSE(refused.is_ok());
    EXPECT_NE(refused.status().message().find("unexpected field 'tokenizer.normalizer'"),
              std::string::npos)
        << refused.status().message();
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

// A config seed (the file, then NUL-separated overrides, as config_one reads it): load_config's
// verdict.
Result<Config> load_config_seed(const std::filesystem::path& seed) {
  const std::vector<uint8_t> bytes = read_all(seed);
  std::vector<std::string> parts(1);
  for (uint8_t b : bytes) {
    if (b == 0) {
      parts.emplace_back();
    } else {
      parts.back().push_back(static_cast<char>(b));
    }
  }
  const std::string path = ::testing::TempDir() + "moe_fuzz_corpus_" + seed.filename().string();
  {
    std::ofstream out(path, std::ios::binary);
    out << parts[0];
  }
  Result<Config> c = load_config(path, std::vector<std::string>(parts.begin() + 1, parts.end()));
  std::filesystem::remove(path);
  return c;
}

// Found by a probe of hostile inputs (corpus/*/regress_deep_*): a value nested 100,000 deep parsed
// (nlohmann's parser is iterative), then overflowed the stack when an error message printed it
// (dump recurses once per level). Every JSON reader now refuses nesting beyond 64 levels.
TEST(FuzzCorpus, ValuesNestedTooDeepAreRefusedByEveryReader) {
  const std::string deep = "arrays and objects nested more than 64 deep";
  const auto configs = corpus_files("config", "regress_deep_");
  ASSERT_EQ(configs.size(), 5u);
  for (const auto& seed : configs) {
    Result<Config> c = load_config_seed(seed);
    ASSERT_FALSE(c.is_ok()) << seed;
    EXPECT_NE(c.status().message().find(deep), std::string::npos) << c.status().message();
  }
  for (const auto& seed : corpus_files("safetensors", "regress_deep_")) {
    const std::vector<uint8_t> bytes = read_all(seed);
    Result<SafetensorsFile> f = SafetensorsFile::parse(bytes, "deep.safetensors");
    ASSERT_FALSE(f.is_ok()) << seed;
    EXPECT_EQ(f.status().message().rfind("deep.safetensors: header line 1 column ", 0), 0u)
        << f.status().message();
    EXPECT_NE(f.status().message().find(deep), std::string::npos) << f.status().message();
  }
  Result<Checkpoint> ck = load_seed(
      std::filesystem::path(MOE_FUZZ_CORPUS) / "checkpoint" / "regress_deep_config_value", "deep");
  ASSERT_FALSE(ck.is_ok());
  EXPECT_NE(ck.status().message().find("model.json line 1 column "), std::string::npos)
      << ck.status().message();
  EXPECT_NE(ck.status().message().find(deep), std::string::npos) << ck.status().message();
}

// Also from the probe: nlohmann stops reading at a NUL, so a safetensors header with a NUL and
// garbage after its JSON loaded; and a key given twice in model.json was used, the last one
// winning (the config reader already refused that).
TEST(FuzzCorpus, NulInAHeaderAndRepeatedKeysAreRefused) {
  const std::vector<uint8_t> bytes =
      read_all(std::filesystem::path(MOE_FUZZ_CORPUS) / "safetensors" / "regress_nul_then_garbage");
  Result<SafetensorsFile> f = SafetensorsFile::parse(bytes, "nul.safetensors");
  ASSERT_FALSE(f.is_ok());
  EXPECT_EQ(f.status().message().rfind("nul.safetensors: header line 1 column 55: a NUL byte", 0),
            0u)
      << f.status().message();
  Result<Checkpoint> ck = load_seed(
      std::filesystem::path(MOE_FUZZ_CORPUS) / "checkpoint" / "regress_duplicate_key", "dup");
  ASSERT_FALSE(ck.is_ok());
  EXPECT_NE(ck.status().message().find(
                "model.json: the key \"format_version\" appears twice in one object"),
            std::string::npos)
      << ck.status().message();
  Result<Config> c =
      load_config_seed(std::filesystem::path(MOE_FUZZ_CORPUS) / "config" / "regress_huge_numbers");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("model.width"), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace moe::fuzz
