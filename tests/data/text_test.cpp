#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data_testing.h"
#include "moe/data/text.h"

namespace moe {
namespace {

using testing::TempDir;
using Tokens = std::vector<std::string>;

Tokens tok(std::string_view text, bool lowercase = true, bool strip_html = true) {
  return tokenize(text, TokenizerOptions{lowercase, strip_html});
}

TEST(Tokenizer, StripsHtmlDecodesEntitiesAndLowerCases) {
  EXPECT_EQ(tok("<p>Great&amp;tasty!<br />I'd buy   AGAIN</p>"),
            (Tokens{"great", "tasty", "i'd", "buy", "again"}));
  EXPECT_EQ(tok("<a href=\"x.html\">link</a> &quot;quoted&quot; &#39;single&#39;"),
            (Tokens{"link", "quoted", "single"}));
  // An entity decoded to '<' is text, not a tag; a '<' that cannot open a tag stays.
  EXPECT_EQ(tok("I &lt;b&gt; &lt;3 it, a < b"), (Tokens{"i", "b", "3", "it", "a", "b"}));
  EXPECT_EQ(tok("&#65;&#x42;c R&D &#0; &bogus;"), (Tokens{"abc", "r", "d", "0", "bogus"}));
  EXPECT_EQ(normalize_text("A<br/>B &gt; c", {}), "a b > c");
  EXPECT_EQ(tok("<b>Bold</b>", false, false), (Tokens{"b", "Bold", "b"}));
}

TEST(Tokenizer, WordRule) {
  // Letters, digits and apostrophes; apostrophes trimmed at the ends; U+2019 is an apostrophe.
  EXPECT_EQ(tok("Don\xE2\x80\x99t stop!! 'quoted' '' 4-pack 3.5oz"),
            (Tokens{"don't", "stop", "quoted", "4", "pack", "3", "5oz"}));
  // Bytes of other scripts belong to words (lower-casing is ASCII only); an em dash and
  // Latin-1 punctuation separate them.
  EXPECT_EQ(tok("Caf\xC3\xA9\xE2\x80\x94na\xC3\xAFve \xC2\xABOK\xC2\xBB \xC3\x89t\xC3\xA9"),
            (Tokens{"caf\xC3\xA9", "na\xC3\xAFve", "ok", "\xC3\x89t\xC3\xA9"}));
  EXPECT_TRUE(tok("  ... !!! ").empty());
  EXPECT_TRUE(tok("").empty());
}

TEST(Tokenizer, BigramHashingIsFixed) {
  // FNV-1a-64 of "good food" is pinned, so ids are the same on every machine and run.
  EXPECT_EQ(bigram_bucket("good", "food", 1000), 716u);
  EXPECT_EQ(bigram_bucket("food", "good", 1000), 802u);
  EXPECT_EQ(bigram_bucket("good", "food", 7), 0u);
  for (uint32_t b : {1u, 2u, 1000u, 1u << 20})
    EXPECT_EQ(bigram_bucket("a", "b", b), bigram_bucket("a", "b", b));
}

TEST(Tokenizer, StopWords) {
  const std::vector<std::string>& words = builtin_english_stop_words();
  EXPECT_TRUE(std::is_sorted(words.begin(), words.end()));
  EXPECT_TRUE(std::binary_search(words.begin(), words.end(), "the"));
  EXPECT_FALSE(std::binary_search(words.begin(), words.end(), "not"));
  EXPECT_FALSE(std::binary_search(words.begin(), words.end(), "no"));

  TempDir dir;
  const std::string path = dir.write("stop.txt", "# my words\nFood\r\n\n  taste  \nfood\n");
  Result<std::vector<std::string>> r = read_stop_words(path, true);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(*r, (std::vector<std::string>{"food", "taste"}));
  EXPECT_TRUE(read_stop_words(dir.path("none.txt"), true)
                  .status()
                  .message()
                  .find("none.txt: cannot open") != std::string::npos);

  TextOptions o;
  o.builtin_stop_words = true;
  o.stop_words_file = path;
  const std::vector<std::string_view> docs = {"The food is not good", "the taste of it"};
  Result<TextVectorizer> v = TextVectorizer::fit(docs, o);
  ASSERT_TRUE(v.is_ok()) << v.status().message();
  EXPECT_EQ(v->words(), (std::vector<std::string>{"good", "not"}));
}

TEST(Vocabulary, MinCountMaxSizeAndTies) {
  // Document frequencies: a 2, b 2, c 2, d 1 (a repeated word counts once per document).
  std::vector<std::string_view> docs = {"b a a a", "a c", "c b", "d"};
  TextOptions o;
  Result<TextVectorizer> all = TextVectorizer::fit(docs, o);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(all->words(), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(all->doc_freq(), (std::vector<int64_t>{2, 2, 2, 1}));
  EXPECT_EQ(all->word_id("c"), 2);
  EXPECT_EQ(all->word_id("zzz"), -1);
  o.min_count = 2;
  Result<TextVectorizer> frequent = TextVectorizer::fit(docs, o);
  EXPECT_EQ(frequent->words(), (std::vector<std::string>{"a", "b", "c"}));
  o.max_vocab = 2;
  Result<TextVectorizer> capped = TextVectorizer::fit(docs, o);
  EXPECT_EQ(capped->words(), (std::vector<std::string>{"a", "b"}));
  // The order of the documents does not matter.
  std::reverse(docs.begin(), docs.end());
  EXPECT_EQ(TextVectorizer::fit(docs, o)->words(), (std::vector<std::string>{"a", "b"}));
  o.min_count = 0;
  EXPECT_EQ(TextVectorizer::fit(docs, o).status().message(),
            "text: min_count must be at least 1, not 0");
}

// idf of a word in 2 of 3 documents: ln(4/3) + 1; in 1 of 3: ln(4/2) + 1.
constexpr double kIdf2 = 1.2876820724517808;
constexpr double kIdf1 = 1.6931471805599454;

TEST(TfIdf, ThreeDocumentsByHand) {
  const std::vector<std::string_view> docs = {"good food", "Good good service", "bad food"};
  Result<TextVectorizer> v = TextVectorizer::fit(docs, TextOptions{});
  ASSERT_TRUE(v.is_ok());
  // df: food 2, good 2, bad 1, service 1 -> ids in that order.
  ASSERT_EQ(v->words(), (std::vector<std::string>{"food", "good", "bad", "service"}));
  EXPECT_FLOAT_EQ(v->idf(0), static_cast<float>(kIdf2));
  EXPECT_FLOAT_EQ(v->idf(3), static_cast<float>(kIdf1));

  std::vector<int32_t> ids;
  std::vector<float> w;
  v->transform(docs[1], &ids, &w);
  // tf·idf = (2·1.28768, 1.69315), L2-normalised: (0.83559, 0.54935).
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 3}));
  EXPECT_NEAR(w[0], 0.8355915419449177, 1e-6);
  EXPECT_NEAR(w[1], 0.5493512310263033, 1e-6);
  ids.clear();
  w.clear();
  v->transform("food good unknown", &ids, &w);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1}));
  EXPECT_NEAR(w[0], 0.7071067811865476, 1e-6);
  ids.clear();
  w.clear();
  v->transform("nothing known", &ids, &w);
  EXPECT_TRUE(ids.empty());

  TextOptions sub;
  sub.sublinear_tf = true;
  Result<TextVectorizer> s = TextVectorizer::fit(docs, sub);
  ids.clear();
  w.clear();
  s->transform(docs[1], &ids, &w);
  // tf = 1 + ln 2 for "good".
  EXPECT_NEAR(w[0], 0.7898069290660905, 1e-6);
  EXPECT_NEAR(w[1], 0.6133555370249717, 1e-6);
}

TEST(TfIdf, HashedBigramsFollowTheWords) {
  TextOptions o;
  o.bigram_buckets = 1000;
  const std::vector<std::string_view> docs = {"good food", "bad food"};
  Result<TextVectorizer> v = TextVectorizer::fit(docs, o);
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(v->n_words(), 3);
  EXPECT_EQ(v->n_features(), 1003);
  std::vector<int32_t> ids;
  std::vector<float> w;
  v->transform("Good food", &ids, &w);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 2, 3 + 716}));  // food, good, "good food"
  double norm = 0;
  for (float x : w) norm += static_cast<double>(x) * x;
  EXPECT_NEAR(norm, 1.0, 1e-6);
}

TEST(TfIdf, VocabularyBigramsAreCountedAndKeptLikeWords) {
  TextOptions o;
  o.bigrams = true;
  o.min_count = 2;
  // Document frequencies: food 3, good 3, "good food" 2 (twice in the second document, counted
  // once); bad, not, "bad food", "food good", "good good" and "not good" 1 each.
  const std::vector<std::string_view> docs = {"good food", "Good food, good good", "bad food",
                                              "not good"};
  Result<TextVectorizer> v = TextVectorizer::fit(docs, o);
  ASSERT_TRUE(v.is_ok()) << v.status().message();
  EXPECT_TRUE(v->bigrams());
  EXPECT_EQ(v->words(), (std::vector<std::string>{"food", "good", "good food"}));
  EXPECT_EQ(v->doc_freq(), (std::vector<int64_t>{3, 3, 2}));
  EXPECT_EQ(v->n_features(), 3);
  std::vector<int32_t> ids;
  std::vector<float> w;
  v->transform("so GOOD food", &ids, &w);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, 2}));
  // "food good" is no vocabulary entry: only the words count.
  ids.clear();
  w.clear();
  v->transform("food good", &ids, &w);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1}));

  o.bigram_buckets = 8;
  EXPECT_EQ(TextVectorizer::fit(docs, o).status().message(),
            "text: bigrams (vocabulary bigrams) and bigram_buckets 8 (hashed bigrams) exclude "
            "each other; set one");
}

TEST(TextVectorizer, BigramsRoundTripThroughJsonAndOldFilesHaveNone) {
  TextOptions o;
  o.bigrams = true;
  const std::vector<std::string_view> docs = {"good food", "bad food"};
  Result<TextVectorizer> v = TextVectorizer::fit(docs, o);
  ASSERT_TRUE(v.is_ok());
  nlohmann::json j = v->to_json();
  Result<TextVectorizer> back = TextVectorizer::from_json(j, "m.json");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_TRUE(back->bigrams());
  std::vector<int32_t> a_ids, b_ids;
  std::vector<float> a_w, b_w;
  v->transform("bad food good food", &a_ids, &a_w);
  back->transform("bad food good food", &b_ids, &b_w);
  EXPECT_EQ(a_ids, b_ids);
  EXPECT_EQ(a_w, b_w);
  EXPECT_EQ(a_ids.size(), 5u);  // bad, food, good, "bad food", "good food"
  // A vocabulary written before the key existed had no vocabulary bigrams.
  j.erase("bigrams");
  back = TextVectorizer::from_json(j, "m.json");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_FALSE(back->bigrams());
}

TEST(TextVectorizer, RoundTripsThroughJson) {
  TextOptions o;
  o.bigram_buckets = 16;
  o.builtin_stop_words = true;
  o.sublinear_tf = true;
  const std::vector<std::string_view> docs = {"the good food", "not good at all", "food, food!"};
  Result<TextVectorizer> v = TextVectorizer::fit(docs, o);
  ASSERT_TRUE(v.is_ok());
  const nlohmann::json j = v->to_json();
  Result<TextVectorizer> back =
      TextVectorizer::from_json(nlohmann::json::parse(j.dump()), "m.json");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  for (std::string_view d : docs) {
    std::vector<int32_t> a_ids, b_ids;
    std::vector<float> a_w, b_w;
    v->transform(d, &a_ids, &a_w);
    back->transform(d, &b_ids, &b_w);
    EXPECT_EQ(a_ids, b_ids);
    EXPECT_EQ(a_w, b_w);
  }
  nlohmann::json bad = j;
  bad["doc_freq"].push_back(1);
  EXPECT_TRUE(
      TextVectorizer::from_json(bad, "m.json").status().message().find("m.json: vocabulary: ") !=
      std::string::npos);
  bad = j;
  bad["words"][1] = bad["words"][0];
  EXPECT_EQ(TextVectorizer::from_json(bad, "m.json").status().message(),
            "m.json: vocabulary: 'words' holds a word twice");
  bad = j;
  bad["bigram_buckets"] = "16";
  EXPECT_EQ(TextVectorizer::from_json(bad, "m.json").status().message(),
            "m.json: vocabulary: field 'bigram_buckets' must be an integer");
}

TEST(TextData, FilesToCsrBatchesAndLabelErrors) {
  TempDir dir;
  const std::string train =
      dir.write("train.tsv",
                "text\tlabel\n\"Great <b>food</b>\"\tgreat\nawful food\tother\n"
                "\"great, great\"\tgreat\n\tother\n");
  const std::string test = dir.write("test.tsv", "label\ttext\ngreat\tgreat stuff\nmeh\tfood\n");
  Result<CsvTable> a = CsvTable::read(train);
  Result<CsvTable> b = CsvTable::read(test);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  TextOptions o;
  Result<TextData> bad = load_text(*a, nullptr, &b.value(), o);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message(),
            test +
                " line 3, column 'label': class 'meh' does not occur in the training data "
                "(classes: 'great', 'other')");

  Result<TextData> r = load_text(*a, nullptr, nullptr, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const Dataset& d = r->train;
  EXPECT_EQ(d.kind, FeatureKind::kSparse);
  EXPECT_EQ(d.n_rows, 4);
  EXPECT_EQ(d.n_features, 3);  // food, great, awful
  ASSERT_EQ(d.offsets.size(), 5u);
  EXPECT_EQ(d.offsets.back(), static_cast<int64_t>(d.ids.size()));
  EXPECT_EQ(d.row_ids(3), 0);  // an empty document is an empty bag
  EXPECT_EQ(d.labels, (std::vector<int32_t>{0, 1, 0, 1}));
  for (int64_t i = 0; i + 1 < 4; ++i) {
    double norm = 0;
    for (int64_t k = d.offsets[i]; k < d.offsets[i + 1]; ++k) {
      norm += static_cast<double>(d.weights[k]) * d.weights[k];
      if (k > d.offsets[i]) {
        EXPECT_LT(d.ids[k - 1], d.ids[k]);
      }
    }
    EXPECT_NEAR(norm, 1.0, 1e-6);
  }

  const CsvTable& t = *a;
  Result<Dataset> nolabel = encode_text(t, r->vectorizer, r->labels, LabelUse::kIgnore);
  ASSERT_TRUE(nolabel.is_ok());
  EXPECT_FALSE(nolabel->has_labels);
  EXPECT_EQ(nolabel->ids, d.ids);

  TextOptions wrong;
  wrong.text_column = "review";
  EXPECT_EQ(load_text(*a, nullptr, nullptr, wrong).status().message(),
            train + ": no text column 'review' (the columns are 'text', 'label')");
}

TEST(TextData, OneFileStratifiedSplitBuildsVocabularyOnTrainingOnly) {
  std::string bytes = "text,label\n";
  for (int i = 0; i < 40; ++i)
    bytes += "word" + std::to_string(i) + (i % 4 == 0 ? " bad,other\n" : " good,great\n");
  Result<CsvTable> t = CsvTable::parse(bytes, "reviews.csv", ',', CsvQuoting::kRfc4180);
  ASSERT_TRUE(t.is_ok());
  SplitOptions split;
  split.validation = 0.2;
  split.seed = 3;
  Result<TextData> r = load_text(*t, TextOptions{}, split);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  // 30 great and 10 other: 6 and 2 of them to validation.
  EXPECT_EQ(r->train.n_rows, 32);
  EXPECT_EQ(r->validation.n_rows, 8);
  EXPECT_EQ(std::count(r->validation.labels.begin(), r->validation.labels.end(), 1), 2);
  // Each "wordN" occurs once: those of validation rows are not in the vocabulary.
  EXPECT_EQ(r->vectorizer.n_words(), 32 + 2);
  for (int64_t line : r->validation.source_rows)
    EXPECT_EQ(r->vectorizer.word_id("word" + std::to_string(line - 2)), -1);
  EXPECT_EQ(r->vectorizer.n_train_docs(), 32);
}

}  // namespace
}  // namespace moe
