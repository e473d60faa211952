// mutate_json_input (see json_mutator.h).
#include "json_mutator.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace moe::fuzz {

namespace {

// A token of JSON text outside strings: a string (kind '"', quotes included), a number or a
// literal (kind 'n'), or one of the characters [ ] { } : , (kind = the character).
struct Token {
  size_t begin;
  size_t end;
  char kind;
};

std::vector<Token> scan(const std::string& t) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < t.size()) {
    const char c = t[i];
    if (c == '"') {
      size_t j = i + 1;
      while (j < t.size() && t[j] != '"') j += t[j] == '\\' ? 2 : 1;
      const size_t end = std::min(j + 1, t.size());
      out.push_back({i, end, '"'});
      i = end;
    } else if (std::strchr("[]{}:,", c) != nullptr && c != '\0') {
      out.push_back({i, i + 1, c});
      ++i;
    } else if (c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) {
      size_t j = i;
      while (j < t.size() && (std::strchr("+-.eE", t[j]) != nullptr ||
                              (t[j] >= '0' && t[j] <= '9') || (t[j] >= 'a' && t[j] <= 'z')))
        ++j;
      out.push_back({i, j, 'n'});
      i = j;
    } else {
      ++i;
    }
  }
  return out;
}

bool is_key(const std::vector<Token>& tokens, size_t k) {
  return tokens[k].kind == '"' && k + 1 < tokens.size() && tokens[k + 1].kind == ':';
}

bool starts_value(const std::vector<Token>& tokens, size_t k) {
  const char kind = tokens[k].kind;
  return (kind == '"' && !is_key(tokens, k)) || kind == 'n' || kind == '[' || kind == '{';
}

// The byte just past the value starting at token k (its closing bracket for an array or object).
size_t value_end(const std::string& t, const std::vector<Token>& tokens, size_t k) {
  if (tokens[k].kind != '[' && tokens[k].kind != '{') return tokens[k].end;
  int depth = 0;
  for (size_t j = k; j < tokens.size(); ++j) {
    const char kind = tokens[j].kind;
    if (kind == '[' || kind == '{') ++depth;
    if (kind == ']' || kind == '}') --depth;
    if (depth == 0) return tokens[j].end;
  }
  return t.size();
}

// Picks a random token index satisfying `keep`, or tokens.size() when none does.
template <typename Pred>
size_t pick(const std::vector<Token>& tokens, std::mt19937& rng, Pred keep) {
  std::vector<size_t> candidates;
  for (size_t k = 0; k < tokens.size(); ++k)
    if (keep(k)) candidates.push_back(k);
  if (candidates.empty()) return tokens.size();
  return candidates[std::uniform_int_distribution<size_t>(0, candidates.size() - 1)(rng)];
}

// One structural mutation of `t`; false when none applies.
bool mutate_text(std::string* t, size_t room, bool allow_nul, std::mt19937& rng) {
  const std::vector<Token> tokens = scan(*t);
  const auto roll = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  switch (roll(allow_nul ? 4 : 3)) {
    case 0: {  // a value nested deep: around the limit (64), or far beyond it
      const size_t k = pick(tokens, rng, [&](size_t i) { return starts_value(tokens, i); });
      if (k == tokens.size()) return false;
      static const size_t kDepths[] = {63, 64, 65, 1000, 100000};
      size_t depth = kDepths[roll(std::size(kDepths))];
      const bool arrays = roll(2) == 0;
      const size_t per_level = arrays ? 2 : 6;  // "[" "]", or "{"a":" "}"
      if (per_level * depth + 1 > room) depth = std::min<size_t>(65, room / per_level);
      const size_t end = value_end(*t, tokens, k);
      std::string deep;
      if (arrays) {
        deep = std::string(depth, '[') + std::string(depth, ']');
      } else {
        for (size_t i = 0; i < depth; ++i) deep += "{\"a\":";
        deep += "1" + std::string(depth, '}');
      }
      t->replace(tokens[k].begin, end - tokens[k].begin, deep);
      return true;
    }
    case 1: {  // a key twice in its object: `"k": v` repeated after itself
      const size_t k = pick(tokens, rng, [&](size_t i) { return is_key(tokens, i); });
      if (k == tokens.size() || k + 2 >= tokens.size()) return false;
      const size_t end = value_end(*t, tokens, k + 2);
      const std::string pair = t->substr(tokens[k].begin, end - tokens[k].begin);
      if (pair.size() + 1 > room) return false;
      t->insert(end, "," + pair);
      return true;
    }
    case 2: {  // a number beyond a float, a double, an int64 or a uint64
      static const char* kNumbers[] = {"1e308",
                                       "-1e308",
                                       "1.7976931348623157e308",
                                       "1e999",
                                       "3.5e38",
                                       "-3.5e38",
                                       "18446744073709551616",
                                       "9223372036854775808",
                                       "-9223372036854775809",
                                       "4294967296",
                                       "2147483648",
                                       "1e-400",
                                       "-0",
                                       "0.5"};
      const size_t k = pick(tokens, rng, [&](size_t i) {
        return tokens[i].kind == 'n' || (starts_value(tokens, i) && roll(4) == 0);
      });
      if (k == tokens.size()) return false;
      const size_t end = value_end(*t, tokens, k);
      t->replace(tokens[k].begin, end - tokens[k].begin, kNumbers[roll(std::size(kNumbers))]);
      return true;
    }
    default: {  // a NUL and garbage after it, at the end or anywhere
      static const char* kGarbage[] = {"garbage", "{\"x\": 1}", "\xff\xfe", ",", " "};
      const std::string tail = std::string(1, '\0') + kGarbage[roll(std::size(kGarbage))];
      if (tail.size() > room) return false;
      t->insert(roll(2) == 0 ? t->size() : roll(t->size() + 1), tail);
      return true;
    }
  }
}

}  // namespace

size_t mutate_json_input(uint8_t* data, size_t size, size_t max_size, unsigned int seed,
                         JsonPart part) {
  std::mt19937 rng(seed);
  if (std::uniform_int_distribution<int>(0, 1)(rng) == 0)
    return LLVMFuzzerMutate(data, size, max_size);
  const auto* bytes = reinterpret_cast<const char*>(data);
  size_t json_size = size;
  if (part == JsonPart::kBeforeFirstNul) {
    const void* nul = std::memchr(bytes, 0, size);
    if (nul != nullptr) json_size = static_cast<size_t>(static_cast<const char*>(nul) - bytes);
  }
  std::string text(bytes, json_size);
  const std::string rest(bytes + json_size, size - json_size);
  const size_t room = max_size > size ? max_size - size : 0;
  if (!mutate_text(&text, room, part == JsonPart::kWhole, rng) ||
      text.size() + rest.size() > max_size)
    return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, text.data(), text.size());
  std::memcpy(data + text.size(), rest.data(), rest.size());
  return text.size() + rest.size();
}

}  // namespace moe::fuzz
