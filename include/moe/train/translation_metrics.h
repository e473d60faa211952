// Translation metrics: corpus BLEU and chrF, computed the way sacreBLEU (2.x) computes them with
// its defaults, so a figure printed here can be checked with `sacrebleu -m bleu chrf` on the same
// hypotheses and references (one reference per sentence).
//
// BLEU (Papineni et al. 2002) with sacreBLEU's defaults: signature
// "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp".
//   - Each sentence is right-stripped and tokenised as mteval-v13a does (tokenize_13a below).
//   - Per sentence and order n = 1..4: total_n = the hypothesis' n-grams, correct_n = those found
//     in the reference, each n-gram counted at most as often as the reference has it (clipping).
//     hyp_len and ref_len are the two token counts. All of these are summed over the corpus
//     (corpus BLEU is not a mean of sentence scores).
//   - p_n = 100 · correct_n / total_n; an order with correct_n = 0 gets the "exp" smoothing of
//     mteval (NIST): p_n = 100 / (2^j · total_n) for the j-th such order; from the first order
//     with total_n = 0 on, p_n = 0. No match at all (every correct_n = 0) scores 0.
//   - brevity penalty BP = 1 if hyp_len ≥ ref_len, else exp(1 − ref_len / hyp_len) (0 when
//     hyp_len = 0); BLEU = BP · exp(Σ_n ln p_n / 4), a p_n of 0 making it 0.
//
// chrF (Popović 2015) with sacreBLEU's defaults: character n-grams of orders 1..6, β = 2, case
// kept, whitespace removed before counting ("nc:6|nw:0|space:no|eff:yes"):
//   - Per sentence and order n: the hypothesis' and the reference's n-grams of Unicode code points
//     (after deleting every whitespace character) and their clipped matches; a hypothesis n-gram
//     count is recorded as 0 when the reference has no n-gram of that order. Summed over the
//     corpus.
//   - precision_n = matches / hypothesis n-grams, recall_n = matches / reference n-grams, both
//     averaged over the orders where both counts are positive (the "effective order");
//     chrF = 100 · (1 + β²) P R / (β² P + R), 0 when P + R = 0.
//
// "Whitespace" is what Python's str.split() splits on (ASCII \t \n \v \f \r, space, U+001C–U+001F,
// U+0085, U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000), since that is
// what sacreBLEU uses. Text is UTF-8; a byte that is not part of a valid sequence counts as one
// character of its own (callers validate text when they read it).
//
// Both scores accumulate from per-sentence statistics, so a translator can add sentences as they
// are decoded and score at the end; the same sentences give the same bits in any grouping.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace moe {

inline constexpr int kBleuOrder = 4;
inline constexpr int kChrfOrder = 6;
inline constexpr double kChrfBeta = 2.0;

// mteval-v13a's tokenisation as sacreBLEU writes it: "<skipped>" and "-\n" deleted, newlines to
// spaces, the entities &quot; &amp; &lt; &gt; decoded, ASCII punctuation other than . , ' and -
// split off as tokens, a period or comma split off unless it sits between digits, a dash split off
// after a digit; tokens joined by single spaces.
std::string tokenize_13a(std::string_view line);

struct BleuStats {
  int64_t hyp_len = 0;  // tokens
  int64_t ref_len = 0;
  std::array<int64_t, kBleuOrder> correct{};  // clipped matches of order n + 1
  std::array<int64_t, kBleuOrder> total{};    // hypothesis n-grams of order n + 1

  void add(const BleuStats& other);
};

struct BleuScore {
  double score = 0.0;                          // 0..100
  std::array<double, kBleuOrder> precision{};  // p_n in percent, after smoothing
  double brevity_penalty = 0.0;
  BleuStats stats;
};

// One sentence's statistics (both sides tokenised with tokenize_13a here).
BleuStats bleu_stats(std::string_view hypothesis, std::string_view reference);
BleuScore bleu_score(const BleuStats& corpus);
// hypotheses[i] against references[i]; the spans must be of equal length (MOE_CHECK).
BleuScore corpus_bleu(std::span<const std::string> hypotheses,
                      std::span<const std::string> references);

struct ChrfStats {
  std::array<int64_t, kChrfOrder> hyp{};    // hypothesis character n-grams of order n + 1
  std::array<int64_t, kChrfOrder> ref{};    // reference character n-grams
  std::array<int64_t, kChrfOrder> match{};  // clipped matches

  void add(const ChrfStats& other);
};

ChrfStats chrf_stats(std::string_view hypothesis, std::string_view reference);
double chrf_score(const ChrfStats& corpus);  // 0..100
double corpus_chrf(std::span<const std::string> hypotheses,
                   std::span<const std::string> references);

}  // namespace moe
