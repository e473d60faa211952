// Translation data: reading TSV files of sentence pairs, and each kind of bad file refused with
// a message naming the file and the line.
//
// Dims: N pairs.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "data_testing.h"
#include "moe/data/pairs.h"

namespace moe {
namespace {

using testing::TempDir;

std::string read_error(const std::string& path) {
  Result<SentencePairs> r = read_sentence_pairs(path);
  EXPECT_FALSE(r.is_ok()) << path << " was read";
  return r.is_ok() ? std::string() : r.status().message();
}

int64_t total_bytes(const std::vector<std::string>& sentences) {
  int64_t n = 0;
  for (const std::string& s : sentences) n += static_cast<int64_t>(s.size());
  return n;
}

TEST(SentencePairs, ReadsPairsAcrossLineEndsBlanksQuotesAndUnicode) {
  TempDir dir;
  const std::string path =
      dir.write("pairs.tsv",
                "\xEF\xBB\xBF"
                "In the beginning\tEn el principio\r\n"
                "\r\n"
                "   \n"
                " \t \n"
                "He said \"let there be light\"\t\"Sea la luz\", dijo\n"
                "  caf\xC3\xA9 \t  \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80  \r\n"
                "\n"
                "a\"b\tc\"\"d");  // no newline after the last line
  Result<SentencePairs> r = read_sentence_pairs(path);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const SentencePairs& p = *r;
  EXPECT_EQ(p.source, path);
  const std::vector<std::string> sources = {"In the beginning", "He said \"let there be light\"",
                                            "caf\xC3\xA9", "a\"b"};
  const std::vector<std::string> targets = {"En el principio", "\"Sea la luz\", dijo",
                                            "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80", "c\"\"d"};
  EXPECT_EQ(p.sources, sources);
  EXPECT_EQ(p.targets, targets);
  EXPECT_EQ(p.lines, (std::vector<int64_t>{1, 5, 6, 8}));
  EXPECT_EQ(p.source_bytes, total_bytes(sources));
  EXPECT_EQ(p.target_bytes, total_bytes(targets));
}

TEST(SentencePairs, ReadsGzipAndKeepsInnerCarriageReturnsAndSpaces) {
  TempDir dir;
  const std::string path =
      dir.write_gzip("pairs.tsv.gz", "one  two\tuno  dos\nx\ry\tz\r\nlast\tfinal\r");
  Result<SentencePairs> r = read_sentence_pairs(path);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->sources, (std::vector<std::string>{"one  two", "x\ry", "last"}));
  EXPECT_EQ(r->targets, (std::vector<std::string>{"uno  dos", "z", "final"}));
  EXPECT_EQ(r->lines, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(r->source_bytes, 8 + 3 + 4);
  EXPECT_EQ(r->target_bytes, 8 + 1 + 5);
}

TEST(SentencePairs, BadLinesAreRefusedWithTheirLine) {
  TempDir dir;
  struct Case {
    const char* name;
    std::string bytes;
    std::string expected;  // the whole message after "<dir>/"
  };
  const std::vector<Case> cases = {
      {"no_tab.tsv", "a\tb\n\nsource only\n",
       "no_tab.tsv: line 3 has no tab: expected source<TAB>target"},
      {"two_tabs.tsv", "a\tb\nc\td\ttail of the target\n",
       "two_tabs.tsv: line 2 has 2 tabs: expected source<TAB>target with exactly one tab (a tab "
       "inside a sentence is not allowed)"},
      {"three_tabs.tsv", "\xEF\xBB\xBF\r\n\ta\tb\tc\r\n",
       "three_tabs.tsv: line 2 has 3 tabs: expected source<TAB>target with exactly one tab (a "
       "tab inside a sentence is not allowed)"},
      {"empty_source.tsv", "a\tb\r\nc\td\r\n   \tonly a target\r\n",
       "empty_source.tsv: line 3 has an empty source (before the tab): expected "
       "source<TAB>target"},
      {"empty_target.tsv", "a\tb\nonly a source\t   \n",
       "empty_target.tsv: line 2 has an empty target (after the tab): expected "
       "source<TAB>target"},
      {"no_target.tsv", "only a source\t",
       "no_target.tsv: line 1 has an empty target (after the tab): expected source<TAB>target"},
      {"nul.tsv", std::string("a\tb\ncd\te\0f\n", 11),
       "nul.tsv: NUL byte at byte 8 (line 2, column 5): not a text file"},
      {"bad_utf8.tsv", "ok\tfine \xC3\xA9\n\nthen \xE2\x82 here\tx\n",
       "bad_utf8.tsv: invalid UTF-8 at byte 17 (line 3, column 6, byte 0xE2)"},
      {"bad_utf8_bom.tsv", "\xEF\xBB\xBF\xFF\tx\n",
       "bad_utf8_bom.tsv: invalid UTF-8 at byte 3 (line 1, column 1, byte 0xFF)"},
      {"overlong.tsv", "a\t\xC0\xAF\n",
       "overlong.tsv: invalid UTF-8 at byte 2 (line 1, column 3, byte 0xC0)"},
      {"empty.tsv", "", "empty.tsv: empty file (no sentence pairs)"},
      {"bom_only.tsv", "\xEF\xBB\xBF", "bom_only.tsv: empty file (no sentence pairs)"},
      {"blank.tsv", "\n  \r\n\t\n \t ", "blank.tsv: no sentence pairs: its 4 lines are all blank"},
      {"one_blank.tsv", "\n", "one_blank.tsv: no sentence pairs: its 1 line is blank"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(read_error(dir.write(c.name, c.bytes)), dir.path(c.expected)) << c.name;
  // The same rules through gzip.
  EXPECT_EQ(read_error(dir.write_gzip("no_tab.tsv.gz", "a\tb\nsource only")),
            dir.path("no_tab.tsv.gz: line 2 has no tab: expected source<TAB>target"));
}

TEST(SentencePairs, UnreadableFilesAreRefusedWithThePath) {
  TempDir dir;
  EXPECT_EQ(read_error(dir.path("absent.tsv")).find(dir.path("absent.tsv") + ": cannot open"), 0U);
  EXPECT_EQ(read_error(dir.path("")), dir.path("") + ": is a directory, not a file");
  // Over 4 GiB: refused from its size, before anything is read (the file is sparse).
  const std::string big = dir.write("big.tsv", "a\tb\n");
  std::filesystem::resize_file(big, (uintmax_t{4} << 30) + 1);
  const std::string m = read_error(big);
  EXPECT_EQ(m.find(big + ": "), 0U) << m;
  EXPECT_NE(m.find("is more than the 4.0 GiB limit"), std::string::npos) << m;
}

}  // namespace
}  // namespace moe
