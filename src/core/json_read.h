// The one way moe reads JSON from outside: the config, model.json, train_state.json, a
// safetensors header, a run's report files and metrics.jsonl all go through parse_json, so
// every one of them gets the same limits and the same messages. Internal to src/.
//
// nlohmann's parser is iterative, but dumping, copying and comparing a value recurse once per
// nesting level: a value nested 100,000 deep parses fine and then overflows the stack the
// first time a message prints it. So the nesting depth is bounded where the text is read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"

namespace moe {

// Deeper than any file moe writes (a config is 4 levels, model.json 6).
inline constexpr int kMaxJsonDepth = 64;

struct JsonReadOptions {
  // The line `text` starts on in its file, for JSON Lines: messages count from it.
  int64_t first_line = 1;
};

// Parses `text` as one JSON document. Refused, with a message that starts with `source` and
// gives the line and column where it can:
//   - syntax errors, and numbers beyond a double (1e999);
//   - nesting deeper than kMaxJsonDepth arrays and objects;
//   - a NUL byte anywhere (nlohmann would stop reading there and ignore the rest);
//   - a key that appears twice in one object (nlohmann would keep the last one silently).
// Strings come out valid UTF-8 (nlohmann's lexer refuses anything else as a syntax error).
Result<nlohmann::json> parse_json(std::string_view text, const std::string& source,
                                  JsonReadOptions options = {});
// The same, keeping the keys in file order (the safetensors header lists tensors in order).
Result<nlohmann::ordered_json> parse_ordered_json(std::string_view text, const std::string& source,
                                                  JsonReadOptions options = {});

// A value for a message: compact JSON, invalid UTF-8 shown as U+FFFD, cut to max_chars with
// "..." when longer. Never throws; values nested deeper than kMaxJsonDepth are not dumped.
std::string json_excerpt(const nlohmann::json& v, size_t max_chars = 60);
std::string json_excerpt(const nlohmann::ordered_json& v, size_t max_chars = 60);

}  // namespace moe
