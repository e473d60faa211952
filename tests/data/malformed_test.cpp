// Random damage to valid inputs: every reader must answer with a value or a Status naming the
// source, never crash, throw or hang. Seeded, so a failure reproduces.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

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
      "4,Paris,\xEF\xBB\xBFodd bytes \xff,other\n";
  Rng rng(2024);
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string s = good;
    mutate(&s, rng);
    Result<CsvTable> t = CsvTable::parse(s, "fuzz.csv", ',');
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
  Result<CsvTable> t = CsvTable::parse(csv, "t.csv", ',');
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

}  // namespace
}  // namespace moe
