// BLEU and chrF against hand-computed values (the definitions are sacreBLEU's, see
// translation_metrics.h); tests/train/translation_metrics_golden.cpp compares with NLTK.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "moe/train/translation_metrics.h"

namespace moe {
namespace {

TEST(Tokenize13a, SplitsPunctuationButKeepsNumbersTogether) {
  EXPECT_EQ(tokenize_13a("Hello, world!"), "Hello , world !");
  EXPECT_EQ(tokenize_13a("It costs $3.50, or 3,000-4,000."),
            "It costs $ 3.50 , or 3,000 - 4,000 .");
  EXPECT_EQ(tokenize_13a("don't stop—the well-known end"), "don't stop—the well-known end");
  EXPECT_EQ(tokenize_13a("a.b,c 1.5.6"), "a . b , c 1.5.6");
  EXPECT_EQ(tokenize_13a("path/to/file [x] {y} (z)"), "path / to / file [ x ] { y } ( z )");
}

TEST(Tokenize13a, DecodesEntitiesInSacreBleusOrder) {
  EXPECT_EQ(tokenize_13a("a &amp; b &quot;c&quot; &lt;d&gt;"), "a & b \" c \" < d >");
  // &amp; is decoded after &quot; and before &lt;, so "&amp;lt;" becomes "<".
  EXPECT_EQ(tokenize_13a("x &amp;lt; y &amp;quot;"), "x < y & quot ;");
}

TEST(Tokenize13a, SkippedMarkersLineBreaksAndUnicodeSpaces) {
  EXPECT_EQ(tokenize_13a("one<skipped> two"), "one two");
  EXPECT_EQ(tokenize_13a("well-\nknown\nend"), "wellknown end");
  EXPECT_EQ(tokenize_13a("  caf\u00e9\u00a0au\u3000lait\u2009ok \t"), "caf\u00e9 au lait ok");
  EXPECT_EQ(tokenize_13a(""), "");
  EXPECT_EQ(tokenize_13a(" \u00a0 "), "");
}

TEST(Bleu, TheCatSatOnTheMatByHand) {
  const BleuStats s = bleu_stats("the cat sat on the mat", "the cat is on the mat");
  EXPECT_EQ(s.hyp_len, 6);
  EXPECT_EQ(s.ref_len, 6);
  EXPECT_EQ(s.correct, (std::array<int64_t, 4>{5, 3, 1, 0}));
  EXPECT_EQ(s.total, (std::array<int64_t, 4>{6, 5, 4, 3}));
  const BleuScore b = bleu_score(s);
  // No 4-gram matches: the exp smoothing gives p4 = 100 / (2 · 3).
  EXPECT_DOUBLE_EQ(b.precision[3], 100.0 / 6.0);
  EXPECT_DOUBLE_EQ(b.brevity_penalty, 1.0);
  const double expected = std::pow(500.0 / 6.0 * 60.0 * 25.0 * (100.0 / 6.0), 0.25);
  EXPECT_NEAR(b.score, expected, 1e-9);
}

TEST(Bleu, SmoothingDoublesForEachOrderWithoutMatches) {
  // "a x b y c": unigrams match 3 of 5, no bigram matches (4 of them), no trigram (3), no 4-gram
  // (2).
  const BleuScore b = bleu_score(bleu_stats("a x b y c", "a b c"));
  EXPECT_DOUBLE_EQ(b.precision[0], 60.0);
  EXPECT_DOUBLE_EQ(b.precision[1], 100.0 / (2.0 * 4.0));
  EXPECT_DOUBLE_EQ(b.precision[2], 100.0 / (4.0 * 3.0));
  EXPECT_DOUBLE_EQ(b.precision[3], 100.0 / (8.0 * 2.0));
}

TEST(Bleu, BrevityPenaltyAndClipping) {
  const BleuScore short_hyp = bleu_score(bleu_stats("a b c d", "a b c d e f"));
  EXPECT_NEAR(short_hyp.brevity_penalty, std::exp(1.0 - 6.0 / 4.0), 1e-15);
  EXPECT_NEAR(short_hyp.score, 100.0 * std::exp(-0.5), 1e-9);
  // "the the the the" against "the cat": the is counted once in the reference, so 1 of 4.
  const BleuStats clipped = bleu_stats("the the the the", "the cat");
  EXPECT_EQ(clipped.correct[0], 1);
  EXPECT_EQ(clipped.total[0], 4);
}

TEST(Bleu, EdgeCasesScoreZeroAsSacreBleuDoes) {
  EXPECT_DOUBLE_EQ(bleu_score(bleu_stats("a b c d", "a b c d")).score, 100.0);
  // Three tokens have no 4-gram: sacreBLEU stops at the empty order and the score is 0.
  EXPECT_DOUBLE_EQ(bleu_score(bleu_stats("a b c", "a b c")).score, 0.0);
  const BleuScore empty = bleu_score(bleu_stats("", "some words here"));
  EXPECT_DOUBLE_EQ(empty.score, 0.0);
  EXPECT_DOUBLE_EQ(empty.brevity_penalty, 0.0);
  EXPECT_DOUBLE_EQ(bleu_score(bleu_stats("x y z w", "a b c d")).score, 0.0);
}

TEST(Bleu, CorpusSumsStatisticsRatherThanAveragingSentences) {
  const std::vector<std::string> hyps = {"the cat sat on the mat", "a b c", "one two three four"};
  const std::vector<std::string> refs = {"the cat is on the mat", "a b c", "one two three five"};
  BleuStats sum;
  for (size_t i = hyps.size(); i-- > 0;) sum.add(bleu_stats(hyps[i], refs[i]));
  const BleuScore corpus = corpus_bleu(hyps, refs);
  EXPECT_EQ(corpus.stats.correct, sum.correct);
  EXPECT_EQ(corpus.stats.total, sum.total);
  EXPECT_EQ(corpus.stats.hyp_len, 13);
  EXPECT_EQ(corpus.score, bleu_score(sum).score);
  // Sentence two alone scores 0, yet it adds matches to the corpus score.
  EXPECT_GT(corpus.score, 0.0);
}

TEST(Chrf, ByHand) {
  EXPECT_DOUBLE_EQ(
      corpus_chrf(std::vector<std::string>{"same words"}, std::vector<std::string>{"same words"}),
      100.0);
  // Whitespace is removed before counting.
  EXPECT_DOUBLE_EQ(chrf_score(chrf_stats("a b", "ab")), 100.0);
  // "ab" against "abc": orders 1 and 2 count (the hypothesis has no trigram), P = 1,
  // R = (2/3 + 1/2) / 2 = 7/12, chrF = 100 · 5 · P · R / (4 P + R) = 100 · 35/55.
  const ChrfStats s = chrf_stats("ab", "abc");
  EXPECT_EQ(s.hyp, (std::array<int64_t, 6>{2, 1, 0, 0, 0, 0}));
  EXPECT_EQ(s.ref, (std::array<int64_t, 6>{3, 2, 1, 0, 0, 0}));
  EXPECT_EQ(s.match, (std::array<int64_t, 6>{2, 1, 0, 0, 0, 0}));
  EXPECT_NEAR(chrf_score(s), 100.0 * 35.0 / 55.0, 1e-12);
  // "abcd" against "ab": the reference has no trigram, so the hypothesis' trigrams are not
  // counted; P = (2/4 + 1/3) / 2 = 5/12, R = 1, chrF = 100 · 5 · (5/12) / (4 · 5/12 + 1).
  const ChrfStats t = chrf_stats("abcd", "ab");
  EXPECT_EQ(t.hyp, (std::array<int64_t, 6>{4, 3, 0, 0, 0, 0}));
  EXPECT_NEAR(chrf_score(t), 78.125, 1e-12);
}

TEST(Chrf, CountsCodePointsNotBytes) {
  // "ña" against "ñb": unigrams match 1 of 2, bigrams 0 of 1 each way: P = R = 1/4.
  const ChrfStats s = chrf_stats("\u00f1a", "\u00f1b");
  EXPECT_EQ(s.hyp, (std::array<int64_t, 6>{2, 1, 0, 0, 0, 0}));
  EXPECT_NEAR(chrf_score(s), 25.0, 1e-12);
}

TEST(Chrf, CorpusSumsStatistics) {
  const std::vector<std::string> hyps = {"ab", "abcd"};
  const std::vector<std::string> refs = {"abc", "ab"};
  // Orders 1 and 2: hyp 6, 4; ref 5, 3; matches 4, 2. P = 7/12, R = 11/15.
  const double p = 7.0 / 12.0;
  const double r = 11.0 / 15.0;
  EXPECT_NEAR(corpus_chrf(hyps, refs), 100.0 * 5.0 * p * r / (4.0 * p + r), 1e-12);
  EXPECT_DOUBLE_EQ(corpus_chrf(std::vector<std::string>{""}, std::vector<std::string>{"abc"}), 0.0);
}

}  // namespace
}  // namespace moe
