// Random damage to valid inputs: every reader must answer with a value or a Status naming the
// source, never crash, throw or hang. Seeded, so a failure reproduces.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "data_testing.h"
#include "moe/core/rng.h"
#include "moe/data/idx.h"
#include "moe/data/tabular.h"
#include "moe/data/text.h"

namespace moe {
namespace {

using testing::TempDir;

// One to four random edits: overwrite a byte, insert a byte that matters to a parser, delete
// a byte, or cut the input short.
void mutate(std::string* s, Rng& rng) {
  static const char kSpecial[] = {'"', ',', '\t', '\n', '\r', '\0', '<', '&', ';', '\xff', '\xef'};
  const int edits = 1 + static_cast<int>(rng.below(4));
  for (int e = 0; e < edits && !s->empty(); ++e) {
    const size_t at = static_cast<size_t>(rng.below(s->size()));
    switch (rng.below(4)) {
      case 0:
        (*s)[at] = static_cast<char>(rng.below(256));
        break;
      case 1:
        s->insert(s->begin() + static_cast<ptrdiff_t>(at), kSpecial[rng.below(sizeof(kSpecial))]);
        break;
      case 2:
        s->erase(at, 1);
        break;
      default:
        s->resize(at);
        break;
    }
  }
}

TEST(Malformed, DamagedCsvTablesNeverCrashTheReaders) {
  const std::string good =
      "x,city,text,label\n"
      "1.5,Paris,\"<b>Good</b> &amp; \"\"fresh\"\"\",great\r\n"
      "2,Lyon,\"two\nlines\",other\n"
      ",Nice,plain,great\n"
      "4,Paris,\xEF\xBB\xBFodd bytes \xc3\xa9,other\n";
  Rng rng(2024);
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string s = good;
    mutate(&s, rng);
    // Every third input is read with quotes as ordinary bytes.
    const CsvQuoting quoting = i % 3 == 0 ? CsvQuoting::kNone : CsvQuoting::kRfc4180;
    Result<CsvTable> t = CsvTable::parse(s, "fuzz.csv", ',', quoting);
    if (!t.is_ok()) {
      EXPECT_EQ(t.status().message().rfind("fuzz.csv", 0), 0u) << t.status().message();
      continue;
    }
    ++parsed;
    TabularOptions o;
    o.label_columns = {"label"};
    o.ignore_columns = {"text"};
    o.impute_missing = (i % 2) == 0;
    Result<TabularData> tab = load_tabular(*t, nullptr, nullptr, o);
    if (!tab.is_ok()) {
      EXPECT_FALSE(tab.status().message().empty());
    }
    TextOptions to;
    to.bigram_buckets = 8;
    Result<TextData> text = load_text(*t, nullptr, nullptr, to);
    if (text.is_ok()) {
      const Dataset& d = text->train;
      ASSERT_EQ(d.offsets.size(), static_cast<size_t>(d.n_rows) + 1);
      for (int32_t id : d.ids) ASSERT_TRUE(id >= 0 && id < d.n_features);
    }
  }
  EXPECT_GT(parsed, 100);  // the damage leaves enough tables to exercise the later stages
}

TEST(Malformed, DamagedIdxFilesNeverCrashTheReader) {
  TempDir dir;
  const std::string plain_path = dir.path("good");
  const std::string gz_path = dir.path("good.gz");
  const IdxArray images{{2, 3, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}};
  ASSERT_TRUE(write_idx(plain_path, images, false).is_ok());
  ASSERT_TRUE(write_idx(gz_path, images, true).is_ok());
  std::string plain, packed;
  {
    std::FILE* f = std::fopen(plain_path.c_str(), "rb");
    char buf[256];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) plain.append(buf, n);
    std::fclose(f);
    f = std::fopen(gz_path.c_str(), "rb");
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) packed.append(buf, n);
    std::fclose(f);
  }
  Rng rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string s = plain;
    mutate(&s, rng);
    Result<IdxArray> a = parse_idx(s, "fuzz.idx");
    if (a.is_ok()) {
      uint64_t count = 1;
      for (int64_t d : a->dims) count *= static_cast<uint64_t>(d);
      EXPECT_EQ(count, a->data.size());
    }
  }
  for (int i = 0; i < 300; ++i) {
    std::string s = packed;
    mutate(&s, rng);
    const std::string path = dir.write("fuzz.gz", s);
    Result<IdxArray> a = read_idx(path);
    if (!a.is_ok()) {
      EXPECT_EQ(a.status().message().rfind(path, 0), 0u) << a.status().message();
    }
  }
}

TEST(Malformed, WrongJsonValuesAreErrorsNotExceptions) {
  const std::string csv = "x,city,label\n1,Paris,a\n2,Lyon,b\n3,Paris,a\n";
  Result<CsvTable> t = CsvTable::parse(csv, "t.csv", ',', CsvQuoting::kRfc4180);
  ASSERT_TRUE(t.is_ok());
  TabularOptions o;
  o.label_columns = {"label"};
  Result<TabularData> tab = load_tabular(*t, nullptr, nullptr, o);
  ASSERT_TRUE(tab.is_ok());
  TextOptions to;
  to.bigram_buckets = 4;
  to.text_column = "city";
  Result<TextData> text = load_text(*t, nullptr, nullptr, to);
  ASSERT_TRUE(text.is_ok()) << text.status().message();
  const nlohmann::json bad_values[] = {
      nullptr, "s", -1, 1e300, nlohmann::json::array(), nlohmann::json::object(), true};
  int rejected = 0;
  for (const nlohmann::json& original : {tab->schema.to_json(), text->vectorizer.to_json()}) {
    const nlohmann::json flat = original.flatten();
    for (const auto& [pointer, value] : flat.items()) {
      for (const nlohmann::json& bad : bad_values) {
        nlohmann::json j = original;
        j[nlohmann::json::json_pointer(pointer)] = bad;
        const bool ok = original.contains("features")
                            ? TabularSchema::from_json(j, "m.json").is_ok()
                            : TextVectorizer::from_json(j, "m.json").is_ok();
        rejected += ok ? 0 : 1;
      }
    }
  }
  EXPECT_GT(rejected, 50);
}

// What the probe of hostile tables found: each is refused with the file, line and column.
TEST(Malformed, HugeNumbersAndContradictoryColumnsAreRefusedNamingTheirPlace) {
  const auto csv = [](const std::string& bytes, const char* name = "data.csv") {
    Result<CsvTable> t = CsvTable::parse(bytes, name, ',', CsvQuoting::kRfc4180);
    EXPECT_TRUE(t.is_ok()) << t.status().message();
    return std::move(t.value());
  };
  const auto message = [](const auto& result) {
    EXPECT_FALSE(result.is_ok());
    return result.is_ok() ? std::string() : result.status().message();
  };
  TabularOptions o;
  o.label_columns = {"label"};
  const std::vector<int64_t> rows = {0, 1, 2};

  // A finite 1e308 overflowed the column statistics (mean and variance inf): training then
  // stopped with a hint to lower the learning rate, and predict printed -nan with exit 0.
  EXPECT_EQ(message(fit_tabular(csv("x,label\n1,a\n1e308,b\n2,a\n"), rows, o)),
            "data.csv line 3, column 'x': '1e308' is beyond ±3.4e38, the range of the 32-bit "
            "floats moe computes in");
  TabularOptions regression;
  regression.task = TaskKind::kRegression;
  regression.label_columns = {"y"};
  EXPECT_EQ(message(fit_tabular(csv("x,y\n1,2\n2,-1e300\n3,4\n"), rows, regression)),
            "data.csv line 3, column 'y': target '-1e300' is beyond ±3.4e38, the range of the "
            "32-bit floats moe computes in");
  // At the float limit the statistics stay finite.
  Result<TabularSchema> edge =
      fit_tabular(csv("x,label\n3.4e38,a\n-3.4e38,b\n3.4e38,a\n"), rows, o);
  ASSERT_TRUE(edge.is_ok()) << edge.status().message();
  EXPECT_TRUE(std::isfinite(edge->features.columns[0].mean));
  EXPECT_TRUE(std::isfinite(edge->features.columns[0].stddev));

  // Rows encoded with a training schema (evaluation, prediction): the value itself, and a value
  // that standardises beyond a float (the column's training values were nearly equal).
  Result<TabularSchema> s = fit_tabular(csv("x,label\n1,a\n1.0000001,b\n1,a\n"), rows, o);
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  EXPECT_EQ(message(encode_tabular(csv("x\n1\n1e300\n", "predict.csv"), *s, LabelUse::kIfPresent,
                                   nullptr)),
            "predict.csv line 3, column 'x': '1e300' is beyond ±3.4e38, the range of the 32-bit "
            "floats moe computes in (the column is numeric in the training data)");
  const std::string far =
      message(encode_tabular(csv("x\n3e38\n", "predict.csv"), *s, LabelUse::kIfPresent, nullptr));
  EXPECT_EQ(far.rfind("predict.csv line 2, column 'x': '3e38' is ", 0), 0u) << far;
  EXPECT_NE(far.find("standard deviations from the training mean"), std::string::npos) << far;

  // Ignoring the label column itself was accepted silently.
  TabularOptions ignore_label = o;
  ignore_label.ignore_columns = {"label"};
  EXPECT_EQ(message(fit_tabular(csv("x,label\n1,a\n2,b\n3,a\n"), rows, ignore_label)),
            "data.csv: data.ignore_columns lists 'label', which is a label column (data.label); a "
            "label is never a feature, so remove it from ignore_columns");
}

}  // namespace
}  // namespace moe
