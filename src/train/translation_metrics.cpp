// Corpus BLEU and chrF as sacreBLEU computes them (see translation_metrics.h for the definitions).
//
// The 13a tokeniser is four regular-expression substitutions in sacreBLEU; here each is one scan
// over the bytes that does what Python's re.sub does with a two-character pattern: try a match at
// the current position, and after a match go on behind it. Every pattern but "not a digit" names
// ASCII bytes only, and a multi-byte character can stand for "not a digit" through its last byte
// (before a period or comma) or its first (after one) with the same output, so working on bytes
// gives the code-point result.
#include "moe/train/translation_metrics.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <vector>

#include "moe/core/check.h"

namespace moe {

namespace {

// Bytes of the UTF-8 character that starts at s[i]: 1 for ASCII and for a byte that does not
// start a complete sequence.
size_t char_length(std::string_view s, size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  const size_t n = lead < 0x80              ? 1
                   : (lead & 0xE0U) == 0xC0 ? 2
                   : (lead & 0xF0U) == 0xE0 ? 3
                   : (lead & 0xF8U) == 0xF0 ? 4
                                            : 1;
  if (n == 1 || i + n > s.size()) return 1;
  for (size_t j = 1; j < n; ++j) {
    if ((static_cast<unsigned char>(s[i + j]) & 0xC0U) != 0x80) return 1;
  }
  return n;
}

char32_t code_point(std::string_view s, size_t i, size_t n) {
  const auto lead = static_cast<unsigned char>(s[i]);
  if (n == 1) return lead;
  char32_t c = lead & (0x7FU >> n);
  for (size_t j = 1; j < n; ++j) c = (c << 6U) | (static_cast<unsigned char>(s[i + j]) & 0x3FU);
  return c;
}

// Python's str.isspace(), which str.split() splits on.
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// The characters of `s` as byte ranges, whitespace marked.
struct Char {
  size_t begin = 0;
  size_t end = 0;
  bool space = false;
};

std::vector<Char> characters(std::string_view s) {
  std::vector<Char> chars;
  for (size_t i = 0; i < s.size();) {
    const size_t n = char_length(s, i);
    chars.push_back({i, i + n, is_space(code_point(s, i, n))});
    i += n;
  }
  return chars;
}

// The words of `s` (maximal runs of non-whitespace characters), joined by single spaces.
std::string join_words(std::string_view s) {
  std::string out;
  bool gap = false;
  for (const Char& c : characters(s)) {
    if (c.space) {
      gap = true;
      continue;
    }
    if (gap && !out.empty()) out += ' ';
    gap = false;
    out.append(s.substr(c.begin, c.end - c.begin));
  }
  return out;
}

std::string_view rstrip(std::string_view s) {
  size_t end = 0;
  for (const Char& c : characters(s)) {
    if (!c.space) end = c.end;
  }
  return s.substr(0, end);
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t at = 0;
  for (size_t hit = s.find(from); hit != std::string::npos; hit = s.find(from, at)) {
    out.append(s.substr(at, hit - at));
    out.append(to);
    at = hit + from.size();
  }
  out.append(s.substr(at));
  return out;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_period_or_comma(char c) {
  return c == '.' || c == ',';
}

// The class [{-~[-` -&(-+:-@/] of 13a's first pattern: the space and the ASCII punctuation other
// than ' , - . (a space padded with spaces changes nothing once the words are rejoined).
bool splits_off(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
         (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

// One scan of a two-character pattern: where `matches(a, b)` holds for s[i], s[i + 1], `write`
// appends the replacement and the scan resumes at i + 2.
template <typename Matches, typename Write>
std::string substitute_pairs(const std::string& s, Matches matches, Write write) {
  std::string out;
  out.reserve(s.size() * 2);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && matches(s[i], s[i + 1])) {
      write(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

// The byte ranges of the words of a string whose words are joined by single spaces.
std::vector<std::string_view> split_joined(std::string_view joined) {
  std::vector<std::string_view> words;
  size_t at = 0;
  while (at < joined.size()) {
    size_t end = joined.find(' ', at);
    if (end == std::string_view::npos) end = joined.size();
    words.push_back(joined.substr(at, end - at));
    at = end + 1;
  }
  return words;
}

using Counts = std::unordered_map<std::string_view, int64_t>;

// The n-grams of `units` (consecutive byte ranges of one string `s`), each as the bytes it spans.
Counts ngrams(std::string_view s, const std::vector<std::string_view>& units, size_t n) {
  Counts counts;
  for (size_t i = 0; i + n <= units.size(); ++i) {
    const char* begin = units[i].data();
    const char* end = units[i + n - 1].data() + units[i + n - 1].size();
    ++counts[s.substr(static_cast<size_t>(begin - s.data()), static_cast<size_t>(end - begin))];
  }
  return counts;
}

int64_t total_count(const Counts& counts) {
  int64_t total = 0;
  for (const auto& [gram, count] : counts) total += count;
  return total;
}

int64_t clipped_matches(const Counts& hyp, const Counts& ref) {
  int64_t matches = 0;
  for (const auto& [gram, count] : hyp) {
    const auto it = ref.find(gram);
    if (it != ref.end()) matches += std::min(count, it->second);
  }
  return matches;
}

// The non-whitespace characters of `s`, concatenated, and their byte ranges in that string.
struct Letters {
  std::string text;
  std::vector<std::string_view> chars;
};

Letters letters(std::string_view s) {
  Letters out;
  std::vector<std::pair<size_t, size_t>> ranges;
  for (const Char& c : characters(s)) {
    if (c.space) continue;
    ranges.emplace_back(out.text.size(), c.end - c.begin);
    out.text.append(s.substr(c.begin, c.end - c.begin));
  }
  const std::string_view text = out.text;
  for (const auto& [at, size] : ranges) out.chars.push_back(text.substr(at, size));
  return out;
}

}  // namespace

std::string tokenize_13a(std::string_view line) {
  std::string s(rstrip(line));
  s = replace_all(s, "<skipped>", "");
  s = replace_all(s, "-\n", "");
  s = replace_all(s, "\n", " ");
  if (s.find('&') != std::string::npos) {
    s = replace_all(s, "&quot;", "\"");
    s = replace_all(s, "&amp;", "&");
    s = replace_all(s, "&lt;", "<");
    s = replace_all(s, "&gt;", ">");
  }
  std::string spaced = " ";
  for (const char c : s) {
    if (splits_off(c)) {
      spaced += ' ';
      spaced += c;
      spaced += ' ';
    } else {
      spaced += c;
    }
  }
  spaced += ' ';
  // A period or comma after a non-digit: "\1 \2 ".
  spaced = substitute_pairs(
      spaced, [](char a, char b) { return !is_digit(a) && is_period_or_comma(b); },
      [](std::string& out, char a, char b) {
        out.append({a, ' ', b, ' '});
      });
  // A period or comma before a non-digit: " \1 \2".
  spaced = substitute_pairs(
      spaced, [](char a, char b) { return is_period_or_comma(a) && !is_digit(b); },
      [](std::string& out, char a, char b) {
        out.append({' ', a, ' ', b});
      });
  // A dash after a digit: "\1 \2 ".
  spaced = substitute_pairs(
      spaced, [](char a, char b) { return is_digit(a) && b == '-'; },
      [](std::string& out, char a, char b) {
        out.append({a, ' ', b, ' '});
      });
  return join_words(spaced);
}

void BleuStats::add(const BleuStats& other) {
  hyp_len += other.hyp_len;
  ref_len += other.ref_len;
  for (int n = 0; n < kBleuOrder; ++n) {
    correct[n] += other.correct[n];
    total[n] += other.total[n];
  }
}

BleuStats bleu_stats(std::string_view hypothesis, std::string_view reference) {
  const std::string hyp = tokenize_13a(hypothesis);
  const std::string ref = tokenize_13a(reference);
  const std::vector<std::string_view> hyp_words = split_joined(hyp);
  const std::vector<std::string_view> ref_words = split_joined(ref);
  BleuStats stats;
  stats.hyp_len = static_cast<int64_t>(hyp_words.size());
  stats.ref_len = static_cast<int64_t>(ref_words.size());
  for (int n = 0; n < kBleuOrder; ++n) {
    const Counts hyp_grams = ngrams(hyp, hyp_words, static_cast<size_t>(n) + 1);
    const Counts ref_grams = ngrams(ref, ref_words, static_cast<size_t>(n) + 1);
    stats.total[n] = total_count(hyp_grams);
    stats.correct[n] = clipped_matches(hyp_grams, ref_grams);
  }
  return stats;
}

BleuScore bleu_score(const BleuStats& corpus) {
  BleuScore out;
  out.stats = corpus;
  out.brevity_penalty = 1.0;
  if (corpus.hyp_len < corpus.ref_len) {
    out.brevity_penalty = corpus.hyp_len > 0
                              ? std::exp(1.0 - static_cast<double>(corpus.ref_len) /
                                                   static_cast<double>(corpus.hyp_len))
                              : 0.0;
  }
  if (std::all_of(corpus.correct.begin(), corpus.correct.end(), [](int64_t c) { return c == 0; })) {
    return out;
  }
  double smoothing = 1.0;
  for (int n = 0; n < kBleuOrder; ++n) {
    const auto total = static_cast<double>(corpus.total[n]);
    if (corpus.total[n] == 0) break;
    if (corpus.correct[n] == 0) {
      smoothing *= 2.0;
      out.precision[n] = 100.0 / (smoothing * total);
    } else {
      out.precision[n] = 100.0 * static_cast<double>(corpus.correct[n]) / total;
    }
  }
  double log_sum = 0.0;
  for (const double p : out.precision) {
    if (p == 0.0) return out;  // sacreBLEU's floored log makes the score 0
    log_sum += std::log(p);
  }
  out.score = out.brevity_penalty * std::exp(log_sum / kBleuOrder);
  return out;
}

BleuScore corpus_bleu(std::span<const std::string> hypotheses,
                      std::span<const std::string> references) {
  MOE_CHECK(hypotheses.size() == references.size(), "corpus_bleu: {} hypotheses, {} references",
            hypotheses.size(), references.size());
  BleuStats corpus;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    corpus.add(bleu_stats(hypotheses[i], references[i]));
  }
  return bleu_score(corpus);
}

void ChrfStats::add(const ChrfStats& other) {
  for (int n = 0; n < kChrfOrder; ++n) {
    hyp[n] += other.hyp[n];
    ref[n] += other.ref[n];
    match[n] += other.match[n];
  }
}

ChrfStats chrf_stats(std::string_view hypothesis, std::string_view reference) {
  const Letters hyp = letters(hypothesis);
  const Letters ref = letters(reference);
  ChrfStats stats;
  for (int n = 0; n < kChrfOrder; ++n) {
    const Counts hyp_grams = ngrams(hyp.text, hyp.chars, static_cast<size_t>(n) + 1);
    const Counts ref_grams = ngrams(ref.text, ref.chars, static_cast<size_t>(n) + 1);
    // sacreBLEU counts no hypothesis n-grams of an order the reference is too short to have.
    stats.hyp[n] = ref_grams.empty() ? 0 : total_count(hyp_grams);
    stats.ref[n] = total_count(ref_grams);
    stats.match[n] = clipped_matches(hyp_grams, ref_grams);
  }
  return stats;
}

double chrf_score(const ChrfStats& corpus) {
  double precision = 0.0;
  double recall = 0.0;
  int orders = 0;
  for (int n = 0; n < kChrfOrder; ++n) {
    if (corpus.hyp[n] == 0 || corpus.ref[n] == 0) continue;
    precision += static_cast<double>(corpus.match[n]) / static_cast<double>(corpus.hyp[n]);
    recall += static_cast<double>(corpus.match[n]) / static_cast<double>(corpus.ref[n]);
    ++orders;
  }
  if (orders == 0) return 0.0;
  precision /= orders;
  recall /= orders;
  if (precision + recall == 0.0) return 0.0;
  const double beta2 = kChrfBeta * kChrfBeta;
  return 100.0 * (1.0 + beta2) * precision * recall / (beta2 * precision + recall);
}

double corpus_chrf(std::span<const std::string> hypotheses,
                   std::span<const std::string> references) {
  MOE_CHECK(hypotheses.size() == references.size(), "corpus_chrf: {} hypotheses, {} references",
            hypotheses.size(), references.size());
  ChrfStats corpus;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    corpus.add(chrf_stats(hypotheses[i], references[i]));
  }
  return chrf_score(corpus);
}

}  // namespace moe
