// Text normalisation, tokens, hashed bigrams and stop words; the rules are in text.h.
#include <algorithm>
#include <cstring>
#include <optional>

#include "data/cells.h"
#include "data/file_bytes.h"
#include "moe/data/text.h"

namespace moe {

namespace {

bool is_ascii_letter(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_ascii_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}

// Appends code point `cp` as UTF-8; false (nothing appended) for NUL, surrogates and values
// beyond U+10FFFF, which an entity may not name.
bool append_utf8(uint32_t cp, std::string* out) {
  if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return true;
}

// Decodes the entity at the start of `s` (which begins with '&') into *out and returns the
// bytes it spans, or 0 when `s` does not start with an entity this reader knows.
size_t decode_entity(std::string_view s, std::string* out) {
  const size_t semi = s.substr(0, 12).find(';');
  if (semi == std::string_view::npos || semi < 2) return 0;
  const std::string_view name = s.substr(1, semi - 1);
  struct Named {
    std::string_view name;
    char value;
  };
  static constexpr Named kNamed[] = {{"amp", '&'},  {"lt", '<'},    {"gt", '>'},
                                     {"quot", '"'}, {"apos", '\''}, {"nbsp", ' '}};
  for (const Named& e : kNamed)
    if (name == e.name) {
      out->push_back(e.value);
      return semi + 1;
    }
  if (name[0] != '#') return 0;
  const bool hex = name.size() > 1 && (name[1] == 'x' || name[1] == 'X');
  const std::string_view digits = name.substr(hex ? 2 : 1);
  if (digits.empty() || digits.size() > 7) return 0;
  uint32_t cp = 0;
  for (char ch : digits) {
    const auto c = static_cast<unsigned char>(ch);
    uint32_t d;
    if (is_ascii_digit(c)) {
      d = c - '0';
    } else if (hex && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (hex && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return 0;
    }
    cp = cp * (hex ? 16 : 10) + d;
  }
  return append_utf8(cp, out) ? semi + 1 : 0;
}

// Tags become spaces, entities are decoded.
std::string strip_html(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '<' && i + 1 < s.size()) {
      const auto n = static_cast<unsigned char>(s[i + 1]);
      if (is_ascii_letter(n) || n == '/' || n == '!' || n == '?') {
        const size_t close = s.find('>', i + 1);
        if (close != std::string_view::npos) {
          out.push_back(' ');
          i = close + 1;
          continue;
        }
      }
    } else if (c == '&') {
      const size_t used = decode_entity(s.substr(i), &out);
      if (used > 0) {
        i += used;
        continue;
      }
    }
    out.push_back(c);
    ++i;
  }
  return out;
}

bool is_token_byte(unsigned char c) {
  return is_ascii_letter(c) || is_ascii_digit(c) || c == '\'' || c >= 0x80;
}

// Function words of English, written for this project. Negations and intensifiers (not, no,
// nor, never, very, too, more, most, only) are left out on purpose: they carry sentiment.
constexpr const char* kEnglishStopWords[] = {
    "a",       "about",     "above",      "after",    "again",      "all",     "am",      "an",
    "and",     "any",       "are",        "as",       "at",         "be",      "because", "been",
    "before",  "being",     "below",      "between",  "both",       "but",     "by",      "can",
    "could",   "did",       "do",         "does",     "doing",      "down",    "during",  "each",
    "for",     "from",      "further",    "had",      "has",        "have",    "having",  "he",
    "her",     "here",      "hers",       "herself",  "him",        "himself", "his",     "how",
    "i",       "i'd",       "i'll",       "i'm",      "i've",       "if",      "in",      "into",
    "is",      "it",        "it's",       "its",      "itself",     "just",    "me",      "my",
    "myself",  "of",        "off",        "on",       "once",       "or",      "other",   "our",
    "ours",    "ourselves", "out",        "over",     "own",        "same",    "she",     "should",
    "so",      "some",      "such",       "than",     "that",       "that's",  "the",     "their",
    "theirs",  "them",      "themselves", "then",     "there",      "there's", "these",   "they",
    "they're", "this",      "those",      "through",  "to",         "under",   "until",   "up",
    "was",     "we",        "we're",      "were",     "what",       "when",    "where",   "which",
    "while",   "who",       "whom",       "why",      "will",       "with",    "would",   "you",
    "you're",  "your",      "yours",      "yourself", "yourselves",
};

}  // namespace

std::string normalize_text(std::string_view text, const TokenizerOptions& options) {
  std::string decoded;
  if (options.strip_html) {
    decoded = strip_html(text);
    text = decoded;
  }
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(text[i + 2]) & 0xC0) == 0x80) {
      // U+2000–U+203F, General Punctuation: U+2018/U+2019 are apostrophes, the rest spaces.
      const auto last = static_cast<unsigned char>(text[i + 2]);
      out.push_back(last == 0x98 || last == 0x99 ? '\'' : ' ');
      i += 3;
    } else if (c == 0xC2 && i + 1 < text.size() &&
               (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80) {
      out.push_back(' ');  // U+0080–U+00BF: Latin-1 controls, punctuation, symbols
      i += 2;
    } else {
      out.push_back(options.lowercase && c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32)
                                                              : static_cast<char>(c));
      ++i;
    }
  }
  return out;
}

void tokenize(std::string_view text, const TokenizerOptions& options, std::string* normalized,
              std::vector<std::string_view>* tokens) {
  *normalized = normalize_text(text, options);
  tokens->clear();
  const std::string_view s = *normalized;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && !is_token_byte(static_cast<unsigned char>(s[i]))) ++i;
    size_t begin = i;
    while (i < s.size() && is_token_byte(static_cast<unsigned char>(s[i]))) ++i;
    size_t end = i;
    while (begin < end && s[begin] == '\'') ++begin;
    while (end > begin && s[end - 1] == '\'') --end;
    if (end > begin) tokens->push_back(s.substr(begin, end - begin));
  }
}

std::vector<std::string> tokenize(std::string_view text, const TokenizerOptions& options) {
  std::string normalized;
  std::vector<std::string_view> views;
  tokenize(text, options, &normalized, &views);
  return std::vector<std::string>(views.begin(), views.end());
}

uint32_t bigram_bucket(std::string_view a, std::string_view b, uint32_t n_buckets) {
  MOE_CHECK(n_buckets > 0, "bigram_bucket with no buckets");
  // FNV-1a, 64 bits, over "a b".
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](std::string_view s) {
    for (char c : s) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ull;
    }
  };
  mix(a);
  mix(" ");
  mix(b);
  return static_cast<uint32_t>(h % n_buckets);
}

const std::vector<std::string>& builtin_english_stop_words() {
  static const std::vector<std::string> words = [] {
    std::vector<std::string> w(std::begin(kEnglishStopWords), std::end(kEnglishStopWords));
    std::sort(w.begin(), w.end());
    return w;
  }();
  return words;
}

Result<std::vector<std::string>> read_stop_words(const std::string& path, bool lowercase) {
  MOE_ASSIGN_OR_RETURN(std::string bytes, data_detail::read_data_file(path, uint64_t{64} << 20));
  std::vector<std::string> words;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < bytes.size()) {
    ++line_no;
    size_t end = bytes.find('\n', pos);
    if (end == std::string::npos) end = bytes.size();
    std::string_view line(bytes.data() + pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    line = data_detail::trim_blanks(line);
    if (line.empty() || line.front() == '#') continue;
    if (const size_t bad = data_detail::invalid_utf8_at(line); bad != std::string_view::npos)
      return Status::error("{} line {}: not valid UTF-8 (byte 0x{:02x} at byte {} of the word)",
                           path, line_no, static_cast<unsigned char>(line[bad]), bad + 1);
    std::string w(line);
    if (lowercase)
      for (char& c : w)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    words.push_back(std::move(w));
  }
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  return words;
}

}  // namespace moe
