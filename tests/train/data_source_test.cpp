// Data source: each format loaded from a config (split by ratio or by files), the schema's JSON
// round trip, encoding a new file with a saved schema, and the errors a user can cause. Also
// checks that every example configuration in examples/ parses.
//
// Dims: N rows · D dense feature width · V text id range.
#include "moe/train/data_source.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <span>
#include <string>

#include "moe/data/idx.h"
#include "testing/temp_dir.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using testing::TempDir;

Config config_from(const std::string& text) {
  Result<Config> c = parse_config(json::parse(text), "test");
  EXPECT_TRUE(c.is_ok()) << c.status().message();
  return c.is_ok() ? *c : Config{};
}

TEST(DataSourceTest, TabularSplitByRatioAndEncodedAgainWithTheSchema) {
  TempDir dir;
  std::string csv = "size,colour,label\n";
  for (int i = 0; i < 40; ++i)
    csv += fmt::format("{},{},{}\n", i, i % 3 == 0 ? "red" : "blue", i % 2 == 0 ? "even" : "odd");
  const std::string path = dir.write("t.csv", csv);
  Config c = config_from(fmt::format(
      R"({{"data": {{"train": "{}", "split": {{"validation": 0.25, "test": 0.25}}}}}})", path));
  Result<LoadedData> d = load_data(c.data);
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_EQ(d->train.n_rows, 20);
  EXPECT_EQ(d->validation.n_rows, 10);
  EXPECT_EQ(d->test.n_rows, 10);
  const DataShape s = d->schema.shape();
  EXPECT_EQ(s.input, FeatureKind::kDense);
  EXPECT_EQ(s.n_features, 3);  // size + colour one-hot over {blue, red}
  EXPECT_EQ(s.n_outputs, 2);
  EXPECT_EQ(d->schema.labels.class_names, (std::vector<std::string>{"even", "odd"}));

  Result<DataSchema> back = DataSchema::from_json(d->schema.to_json(), "model.json: data");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->to_json(), d->schema.to_json());
  std::string report;
  Result<Dataset> again = load_with_schema(*back, path, "", LabelUse::kRequired, &report);
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  ASSERT_EQ(again->n_rows, 40);
  // Training row r came from file row source_rows[r] - 2 (line numbers, header on line 1).
  for (int64_t r = 0; r < d->train.n_rows; ++r) {
    const int64_t row = d->train.source_rows[static_cast<size_t>(r)] - 2;
    for (int64_t j = 0; j < 3; ++j)
      EXPECT_EQ(d->train.dense[static_cast<size_t>(r * 3 + j)],
                again->dense[static_cast<size_t>(row * 3 + j)]);
  }
  // A TSV file of the same columns is read as TSV, by its extension.
  std::string tsv = "size\tcolour\tlabel\n3\tred\todd\n";
  Result<Dataset> t =
      load_with_schema(*back, dir.write("more.tsv", tsv), "", LabelUse::kRequired, nullptr);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->labels[0], 1);
}

TEST(DataSourceTest, TextWithSeparateTestFile) {
  TempDir dir;
  const std::string train = dir.write(
      "train.tsv",
      "text\tlabel\ngreat tea\tgreat\nawful tea\tother\ngreat coffee\tgreat\nstale coffee\tother\n"
      "great value\tgreat\nawful value\tother\n");
  const std::string test = dir.write("test.tsv", "text\tlabel\ngreat stale tea\tgreat\n");
  Config c = config_from(fmt::format(
      R"({{"data": {{"format": "text", "train": "{}", "test": "{}", "split": {{"validation": 0}},
          "text": {{"min_count": 1}}}}}})",
      train, test));
  Result<LoadedData> d = load_data(c.data);
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_EQ(d->train.n_rows, 6);
  EXPECT_EQ(d->validation.n_rows, 0);
  EXPECT_EQ(d->test.n_rows, 1);
  ASSERT_TRUE(d->schema.text.has_value());
  EXPECT_EQ(d->schema.shape().input, FeatureKind::kSparse);
  EXPECT_EQ(d->schema.shape().n_features, d->schema.text->n_features());
  EXPECT_EQ(d->test.row_ids(0), 3);  // great, stale, tea all in the vocabulary

  Result<DataSchema> back = DataSchema::from_json(d->schema.to_json(), "m");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  const std::string unseen = dir.write("unseen.tsv", "text\tlabel\ngreat tea\tmeh\n");
  Result<Dataset> bad = load_with_schema(*back, unseen, "", LabelUse::kRequired, nullptr);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("meh"), std::string::npos) << bad.status().message();
  Result<Dataset> ok = load_with_schema(*back, unseen, "", LabelUse::kIgnore, nullptr);
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  EXPECT_FALSE(ok->has_labels);
}

// A TSV of raw text whose texts start with quotes trains with the default quoting (none for a
// tab); the schema saves it, so evaluation reads its files the same way. A schema written
// before the field existed reads with RFC 4180.
TEST(DataSourceTest, QuotingIsSavedInTheSchemaAndUsedToEncode) {
  TempDir dir;
  const std::string train =
      dir.write("train.tsv",
                "text\tlabel\n\"great\" tea, he said\tgreat\n\"awful\" tea\tother\n"
                "great coffee\tgreat\n\"stale coffee\tother\n");
  Config c = config_from(fmt::format(
      R"({{"data": {{"format": "text", "train": "{}", "split": {{"validation": 0}},
          "text": {{"min_count": 1}}}}}})",
      train));
  ASSERT_EQ(c.data.quoting, CsvQuoting::kNone);
  Result<LoadedData> d = load_data(c.data);
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_EQ(d->train.n_rows, 4);
  EXPECT_EQ(d->schema.quoting, CsvQuoting::kNone);
  const json saved = d->schema.to_json();
  EXPECT_EQ(saved["quoting"], "none");
  Result<DataSchema> back = DataSchema::from_json(saved, "m");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->quoting, CsvQuoting::kNone);
  Result<Dataset> again = load_with_schema(*back, train, "", LabelUse::kRequired, nullptr);
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(again->n_rows, 4);

  // Asked for, RFC 4180 refuses the file, and the message says what to set.
  c.data.quoting = CsvQuoting::kRfc4180;
  Result<LoadedData> refused = load_data(c.data);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("line 2: field 1: ' ' after a closing quote"),
            std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("set data.quoting = \"none\""), std::string::npos);

  // Without the field (an older checkpoint), a tab-separated file is read with RFC 4180 as it
  // was when that model trained: the quotes around a field are removed.
  json older = saved;
  older.erase("quoting");
  Result<DataSchema> old = DataSchema::from_json(older, "m");
  ASSERT_TRUE(old.is_ok()) << old.status().message();
  EXPECT_EQ(old->quoting, CsvQuoting::kRfc4180);
  const std::string quoted = dir.write("quoted.tsv", "text\tlabel\n\"great\ttea\"\tgreat\n");
  Result<Dataset> q = load_with_schema(*old, quoted, "", LabelUse::kRequired, nullptr);
  ASSERT_TRUE(q.is_ok()) << q.status().message();
  EXPECT_EQ(q->row_ids(0), 2);  // great, tea: one field
  Result<Dataset> ragged = load_with_schema(*back, quoted, "", LabelUse::kRequired, nullptr);
  ASSERT_FALSE(ragged.is_ok());
  EXPECT_NE(ragged.status().message().find("3 fields, header has 2"), std::string::npos)
      << ragged.status().message();

  json bad = saved;
  bad["quoting"] = "csv";
  EXPECT_EQ(DataSchema::from_json(bad, "m").status().message(),
            "m: quoting must be \"none\" or \"rfc4180\", got \"csv\"");
}

TEST(DataSourceTest, IdxImagesSplitAndChecked) {
  TempDir dir;
  IdxArray images{{12, 2, 3}, std::vector<uint8_t>(72)}, labels{{12}, std::vector<uint8_t>(12)};
  for (size_t i = 0; i < 72; ++i) images.data[i] = static_cast<uint8_t>(i * 3);
  for (size_t i = 0; i < 12; ++i) labels.data[i] = static_cast<uint8_t>(i % 3);
  ASSERT_TRUE(write_idx(dir.file("img.gz"), images, true).is_ok());
  ASSERT_TRUE(write_idx(dir.file("lab"), labels, false).is_ok());
  IdxArray small{{2, 2, 2}, std::vector<uint8_t>(8)};
  ASSERT_TRUE(write_idx(dir.file("small"), small, false).is_ok());
  Config c = config_from(fmt::format(
      R"({{"data": {{"format": "idx", "split": {{"validation": 0.25}},
          "idx": {{"train_images": "{0}", "train_labels": "{1}", "test_images": "{0}",
                  "test_labels": "{1}", "n_classes": 3}}}}}})",
      dir.file("img.gz"), dir.file("lab")));
  Result<LoadedData> d = load_data(c.data);
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_EQ(d->train.n_rows, 9);
  EXPECT_EQ(d->validation.n_rows, 3);
  EXPECT_EQ(d->test.n_rows, 12);
  EXPECT_EQ(d->schema.image_size, 6);
  EXPECT_EQ(d->schema.shape().n_outputs, 3);

  Result<DataSchema> back = DataSchema::from_json(d->schema.to_json(), "m");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  Result<Dataset> wrong =
      load_with_schema(*back, dir.file("small"), "", LabelUse::kIgnore, nullptr);
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_EQ(wrong.status().message(),
            dir.file("small") + ": images of 4 pixels, the model was trained on 6");
  Result<Dataset> no_labels =
      load_with_schema(*back, dir.file("img.gz"), "", LabelUse::kRequired, nullptr);
  ASSERT_FALSE(no_labels.is_ok());
}

TEST(DataSourceTest, ErrorsNameTheFileOrField) {
  DataConfig missing;
  missing.train = "/nonexistent/moe/train.csv";
  Result<LoadedData> d = load_data(missing);
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find("/nonexistent/moe/train.csv"), std::string::npos);

  const json base = json::parse(
      R"({"format": "csv", "delimiter": ",", "labels": {"task": "classification",
          "columns": ["y"], "class_names": ["a", "b"], "target_mean": [], "target_std": [],
          "standardized": false}})");
  Result<DataSchema> r = DataSchema::from_json(base, "model.json: data");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "model.json: data: missing field 'features'");
  json extra = base;
  extra["text"] = json::object();
  r = DataSchema::from_json(extra, "model.json: data");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "model.json: data: unexpected field 'text' for format \"csv\"");
  json bad_format = base;
  bad_format["format"] = "xls";
  EXPECT_FALSE(DataSchema::from_json(bad_format, "m").is_ok());
}

// n lines of English-like text (a fixed LCG over small word lists), about 40 bytes each.
std::string sentences(int n, uint32_t seed) {
  const char* det[] = {"the", "a", "her", "his", "one", "every", "that", "this"};
  const char* noun[] = {"captain", "lady",    "sister",   "letter", "house",
                        "garden",  "morning", "carriage", "friend", "evening"};
  const char* verb[] = {"saw", "found", "walked", "wrote", "kept", "left", "loved", "heard"};
  std::string text;
  for (int i = 0; i < n; ++i) {
    const auto next = [&](uint32_t m) {
      seed = seed * 1103515245u + 12345u;
      return (seed >> 16) % m;
    };
    text += fmt::format("{} {} {} {} {}.\n", det[next(8)], noun[next(10)], verb[next(8)],
                        det[next(8)], noun[next(10)]);
  }
  return text;
}

// A corpus: windows of S + 1 tokens, the schema written with the corpus fields alone, and the
// bytes the windows cover counted exactly: the text less the tokens a final partial window
// leaves out (bits per byte divides by it).
TEST(DataSourceTest, CorpusWindowsCountTheBytesTheyCover) {
  TempDir dir;
  const std::string train = dir.write("train.txt", sentences(200, 7));
  const std::string valid = dir.write("valid.txt", sentences(40, 9));
  Config c = config_from(fmt::format(
      R"({{"data": {{"format": "corpus", "train": "{}", "validation": "{}",
                     "corpus": {{"vocab_size": 300}}}}}})",
      train, valid));
  for (const int64_t context : {5, 8, 16}) {
    SCOPED_TRACE(context);
    Result<LoadedData> d = load_data(c.data, context);
    ASSERT_TRUE(d.is_ok()) << d.status().message();
    const Tokenizer& tokenizer = *d->schema.tokenizer;
    for (const Dataset* part : {&d->train, &d->validation}) {
      const int64_t covered = part->n_rows * context + 1;  // tokens 0 .. W·S
      ASSERT_LE(covered, static_cast<int64_t>(part->ids.size()));
      // ASCII text: decoding gives its bytes back exactly.
      const std::string text = tokenizer.decode(
          std::span<const int32_t>(part->ids.data(), static_cast<size_t>(covered)));
      EXPECT_EQ(part->window_bytes, static_cast<int64_t>(text.size()));
      EXPECT_EQ(part->n_bytes, static_cast<int64_t>(tokenizer.decode(part->ids).size()));
      if (covered == static_cast<int64_t>(part->ids.size())) {
        EXPECT_EQ(part->window_bytes, part->n_bytes);
      } else {
        EXPECT_LT(part->window_bytes, part->n_bytes);
      }
    }
    // The schema: the corpus fields alone (no delimiter or quoting), and back.
    const json schema = d->schema.to_json();
    std::vector<std::string> fields;
    for (const auto& [key, value] : schema.items()) fields.push_back(key);
    EXPECT_EQ(fields, (std::vector<std::string>{"context", "format", "tokenizer"}));
    Result<DataSchema> back = DataSchema::from_json(schema, "model.json: data");
    ASSERT_TRUE(back.is_ok()) << back.status().message();
    EXPECT_EQ(back->context, context);
    // What the first builds wrote still reads; an unknown tokenizer field does not.
    json old = schema;
    old["delimiter"] = "auto";
    old["quoting"] = "rfc4180";
    EXPECT_TRUE(DataSchema::from_json(old, "model.json: data").is_ok());
    json extra = schema;
    extra["tokenizer"]["kind"] = "bpe";
    back = DataSchema::from_json(extra, "model.json: data");
    ASSERT_FALSE(back.is_ok());
    EXPECT_EQ(back.status().message(), "model.json: data: unexpected field 'tokenizer.kind'");
  }
}

// Sentence pairs: one tokenizer for both sides, sources with eos, targets bare, validation drawn
// from the training pairs, the schema's max_tokens, and a pair over max_tokens refused with its
// line, or dropped and counted with data.pairs.drop_long.
TEST(DataSourceTest, SentencePairsShareATokenizerAndRespectMaxTokens) {
  TempDir dir;
  std::string tsv;
  for (int i = 0; i < 120; ++i)
    tsv += fmt::format("the house number {} is red\tla casa numero {} es roja\n", i, i);
  tsv += "a very long source sentence with many many many many many many words in it\tcorta\n";
  const std::string train = dir.write("train.tsv", tsv);
  const auto config = [&](bool drop_long) {
    return config_from(fmt::format(
        R"({{"data": {{"format": "pairs", "train": "{}", "split": {{"validation": 0.1}},
                       "corpus": {{"vocab_size": 300}}, "pairs": {{"drop_long": {}}}}}}})",
        train, drop_long));
  };
  Result<LoadedData> refused = load_data(config(false).data, 40);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("train.tsv: line 121: the source has"),
            std::string::npos)
      << refused.status().message();
  Result<LoadedData> d = load_data(config(true).data, 40);
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_NE(d->report.find("1 pairs of"), std::string::npos) << d->report;
  EXPECT_EQ(d->train.n_rows + d->validation.n_rows, 120);
  EXPECT_EQ(d->validation.n_rows, 12);
  const Dataset& t = d->train;
  EXPECT_EQ(t.kind, FeatureKind::kPairs);
  const Tokenizer& tokenizer = *d->schema.tokenizer;
  EXPECT_EQ(t.eos_id, tokenizer.eos_id());
  EXPECT_EQ(t.bos_id, tokenizer.bos_id());
  // Row 0's source decodes back, ending in eos; its target has no eos.
  const std::vector<int32_t> src(t.ids.begin(), t.ids.begin() + t.offsets[1]);
  EXPECT_EQ(src.back(), tokenizer.eos_id());
  const std::vector<int32_t> tgt(t.target_ids.begin(), t.target_ids.begin() + t.target_offsets[1]);
  EXPECT_EQ(tokenizer.decode(tgt).find("la casa numero"), 0U);
  const json schema = d->schema.to_json();
  EXPECT_EQ(schema["format"], "pairs");
  EXPECT_EQ(schema["max_tokens"], 40);
  Result<DataSchema> back = DataSchema::from_json(schema, "model.json: data");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->context, 40);
  EXPECT_EQ(back->shape().input, FeatureKind::kPairs);
}

TEST(DataSourceTest, ExampleConfigsParse) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("../examples")) {
    if (e.path().extension() != ".json") continue;
    SCOPED_TRACE(e.path().string());
    Result<Config> c = load_config(e.path().string(), {});
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    ++n;
  }
  EXPECT_GE(n, 3);
}

}  // namespace
}  // namespace moe
