// Language-model text: reading files (and their errors), the token stream, exact splits, windows.
//
// Dims: n tokens · S context · W windows.
#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "data_testing.h"
#include "moe/data/corpus.h"

namespace moe {
namespace {

using testing::TempDir;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Lines of seeded words, with blank lines between paragraphs.
std::string prose(uint32_t seed, int n_lines) {
  static const char* kWords[] = {"the", "river", "ran",  "past", "a",     "mill",  "and",  "over",
                                 "old", "stone", "into", "sea",  "where", "gulls", "cried"};
  std::mt19937 rng(seed);
  std::string text;
  for (int line = 0; line < n_lines; ++line) {
    const int n = 3 + static_cast<int>(rng() % 8);
    for (int w = 0; w < n; ++w) text += std::string(kWords[rng() % 15]) + (w + 1 < n ? " " : "");
    text += line % 5 == 4 ? ".\n\n" : ",\n";
  }
  return text;
}

const Tokenizer& tokenizer() {
  static const Tokenizer t = [] {
    const std::vector<std::string> docs = {prose(1, 200)};
    SubwordOptions o;
    o.vocab_size = 300;
    Result<Tokenizer> r = Tokenizer::train(docs, o);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return std::move(r).value();
  }();
  return t;
}

TextCorpus corpus_of(std::vector<std::string> docs) {
  TextCorpus c;
  c.source = "test corpus";
  for (const std::string& d : docs) c.n_bytes += static_cast<int64_t>(d.size());
  c.documents = std::move(docs);
  return c;
}

std::string decoded(const TokenStream& s) {
  return tokenizer().decode(s.tokens);
}

TEST(TextCorpus, ReadsFilesAsDocuments) {
  TempDir dir;
  const std::vector<std::string> paths = {dir.write("a.txt",
                                                    "\xEF\xBB\xBF"
                                                    "First line.\r\n\r\nSecond paragraph.\n"),
                                          dir.write_gzip("b.txt.gz", "caf\xC3\xA9 \xE4\xB8\xAD\n")};
  Result<TextCorpus> c = read_text_files(paths);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  ASSERT_EQ(c->documents.size(), 2U);
  EXPECT_EQ(c->documents[0], "First line.\r\n\r\nSecond paragraph.\n");  // BOM dropped
  EXPECT_EQ(c->documents[1], "caf\xC3\xA9 \xE4\xB8\xAD\n");
  EXPECT_EQ(c->n_bytes, static_cast<int64_t>(c->documents[0].size() + c->documents[1].size()));
  EXPECT_TRUE(contains(c->source, "a.txt and 1 more files")) << c->source;
}

TEST(TextCorpus, FileErrorsNameTheFileAndPlace) {
  TempDir dir;
  const auto error_of = [](const std::string& path) {
    const std::vector<std::string> paths = {path};
    Result<TextCorpus> c = read_text_files(paths);
    EXPECT_FALSE(c.is_ok()) << path;
    return c.is_ok() ? std::string() : c.status().message();
  };
  std::string m = error_of(dir.path("missing.txt"));
  EXPECT_TRUE(contains(m, "missing.txt")) << m;
  m = error_of(dir.write("empty.txt", ""));
  EXPECT_TRUE(contains(m, "empty.txt") && contains(m, "empty file")) << m;
  m = error_of(dir.write("bom.txt", "\xEF\xBB\xBF"));
  EXPECT_TRUE(contains(m, "empty file")) << m;
  m = error_of(dir.write("nul.txt", std::string("ab\ncd\0e", 7)));
  EXPECT_TRUE(contains(m, "nul.txt") && contains(m, "NUL byte at byte 5") &&
              contains(m, "line 2, column 3"))
      << m;
  m = error_of(dir.write("bad.txt", "ok\nfine \xC3\xA9\nthen \xE2\x82 here\n"));
  EXPECT_TRUE(contains(m, "bad.txt") && contains(m, "invalid UTF-8 at byte 16") &&
              contains(m, "line 3, column 6") && contains(m, "0xE2"))
      << m;
  m = error_of(dir.write("ff.txt", "\xFF"));
  EXPECT_TRUE(contains(m, "invalid UTF-8 at byte 0")) << m;
  EXPECT_FALSE(read_text_files(std::vector<std::string>{}).is_ok());
}

TEST(TokenStreamTest, DocumentsFollowBosAndKeepTheirBytes) {
  const std::string a = prose(2, 12), b = "Short second document\nwith two lines";
  const TokenStream s = tokenize(tokenizer(), corpus_of({a, b}));
  EXPECT_EQ(s.source, "test corpus");
  EXPECT_EQ(s.n_documents, 2);
  EXPECT_EQ(s.n_bytes, static_cast<int64_t>(a.size() + b.size()));
  ASSERT_FALSE(s.tokens.empty());
  EXPECT_EQ(s.tokens[0], tokenizer().bos_id());
  EXPECT_EQ(decoded(s), a + b);  // bos decodes to nothing
  // Line by line is the same as the whole document.
  std::vector<int32_t> whole = {tokenizer().bos_id()};
  tokenizer().encode(a, &whole);
  whole.push_back(tokenizer().bos_id());
  tokenizer().encode(b, &whole);
  EXPECT_EQ(s.tokens, whole);
  // One cut per line start; documents at their bos.
  const auto lines = [](const std::string& d) {
    return std::count(d.begin(), d.end(), '\n') + (d.back() == '\n' ? 0 : 1);
  };
  EXPECT_EQ(static_cast<int64_t>(s.cuts.size()), lines(a) + lines(b));
  for (const StreamCut& c : s.cuts) {
    const std::vector<int32_t> head(s.tokens.begin(), s.tokens.begin() + c.token);
    EXPECT_EQ(static_cast<int64_t>(tokenizer().decode(head).size()), c.byte);
    EXPECT_EQ(c.document, s.tokens[static_cast<size_t>(c.token)] == tokenizer().bos_id());
  }
}

TEST(TokenStreamTest, SplitHasNoOverlapAndExactBytes) {
  // One document: cut at a line start.
  const TokenStream one = tokenize(tokenizer(), corpus_of({prose(3, 100)}));
  Result<StreamSplit> split = split_stream(one, 0.1);
  ASSERT_TRUE(split.is_ok()) << split.status().message();
  const TokenStream& train = split->train;
  const TokenStream& validation = split->validation;
  std::vector<int32_t> joined = train.tokens;
  joined.insert(joined.end(), validation.tokens.begin(), validation.tokens.end());
  EXPECT_EQ(joined, one.tokens);
  EXPECT_EQ(static_cast<int64_t>(decoded(train).size()), train.n_bytes);
  EXPECT_EQ(static_cast<int64_t>(decoded(validation).size()), validation.n_bytes);
  EXPECT_EQ(train.n_bytes + validation.n_bytes, one.n_bytes);
  const double share =
      static_cast<double>(validation.tokens.size()) / static_cast<double>(one.tokens.size());
  EXPECT_NEAR(share, 0.1, 0.03);
  EXPECT_EQ(train.n_documents, 1);
  EXPECT_EQ(validation.n_documents, 0);
  EXPECT_EQ(validation.cuts.front().token, 0);
  EXPECT_TRUE(contains(validation.source, "validation"));

  // Ten documents of equal length: the last one held out whole.
  std::vector<std::string> docs;
  for (uint32_t i = 0; i < 10; ++i) docs.push_back(prose(10 + i, 20));
  const TokenStream many = tokenize(tokenizer(), corpus_of(docs));
  Result<StreamSplit> by_doc = split_stream(many, 0.1);
  ASSERT_TRUE(by_doc.is_ok());
  EXPECT_EQ(by_doc->validation.tokens.front(), tokenizer().bos_id());
  EXPECT_EQ(by_doc->validation.n_documents, 1);
  EXPECT_EQ(by_doc->train.n_documents, 9);
  EXPECT_EQ(decoded(by_doc->validation), docs.back());
  EXPECT_EQ(by_doc->validation.n_bytes, static_cast<int64_t>(docs.back().size()));
}

TEST(TokenStreamTest, SplitErrors) {
  const TokenStream one = tokenize(tokenizer(), corpus_of({prose(3, 10)}));
  for (const double f : {0.0, 1.0, -0.5, 2.0}) EXPECT_FALSE(split_stream(one, f).is_ok()) << f;
  const TokenStream single_line = tokenize(tokenizer(), corpus_of({"the river ran"}));
  Result<StreamSplit> s = split_stream(single_line, 0.2);
  ASSERT_FALSE(s.is_ok());
  EXPECT_TRUE(contains(s.status().message(), "test corpus")) << s.status().message();
}

TEST(TokenWindowsTest, CountsAndContents) {
  constexpr int64_t kContext = 4;
  TokenStream s;
  s.source = "windows stream";
  const auto windows_of = [&](int64_t n) {
    s.tokens.resize(static_cast<size_t>(n));
    std::iota(s.tokens.begin(), s.tokens.end(), 100);
    return make_windows(s, kContext);
  };
  Result<TokenWindows> too_short = windows_of(kContext);
  ASSERT_FALSE(too_short.is_ok());
  EXPECT_TRUE(contains(too_short.status().message(), "windows stream"));
  Result<TokenWindows> one = windows_of(kContext + 1);
  ASSERT_TRUE(one.is_ok());
  EXPECT_EQ(one->n_windows, 1);
  EXPECT_EQ(std::vector<int32_t>(one->input(0).begin(), one->input(0).end()),
            (std::vector<int32_t>{100, 101, 102, 103}));
  EXPECT_EQ(std::vector<int32_t>(one->target(0).begin(), one->target(0).end()),
            (std::vector<int32_t>{101, 102, 103, 104}));
  Result<TokenWindows> still_one = windows_of(2 * kContext);  // the partial second is dropped
  ASSERT_TRUE(still_one.is_ok());
  EXPECT_EQ(still_one->n_windows, 1);
  Result<TokenWindows> two = windows_of(2 * kContext + 1);
  ASSERT_TRUE(two.is_ok());
  EXPECT_EQ(two->n_windows, 2);
  EXPECT_EQ(two->start(1), kContext);
  EXPECT_EQ(two->window(1).front(), 104);  // shared with the end of window 0
  EXPECT_EQ(two->window(1).back(), 108);
  EXPECT_EQ(two->window(0).back(), two->window(1).front());
  EXPECT_FALSE(make_windows(s, 0).is_ok());
}

}  // namespace
}  // namespace moe
