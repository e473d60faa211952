// parse_json and json_excerpt (see json_read.h).
#include "core/json_read.h"

#include <unordered_set>
#include <utility>
#include <vector>

namespace moe {

namespace {

struct TextPosition {
  int64_t line;
  int64_t column;
};

// Line and column (both from 1) of byte `at`, the first line being `first_line`.
TextPosition position_of(std::string_view text, size_t at, int64_t first_line) {
  TextPosition p{first_line, 1};
  for (size_t i = 0; i < at && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++p.line;
      p.column = 1;
    } else {
      ++p.column;
    }
  }
  return p;
}

Status error_at(std::string_view text, size_t at, const std::string& source,
                const JsonReadOptions& options, const std::string& what) {
  const TextPosition p = position_of(text, at, options.first_line);
  return Status::error("{} line {} column {}: {}", source, p.line, p.column, what);
}

// One pass over the raw text before nlohmann sees it: the nesting depth of brackets outside
// strings, and NUL bytes (never valid in JSON text, and where nlohmann stops reading).
Status scan_structure(std::string_view text, const std::string& source,
                      const JsonReadOptions& options) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\0')
      return error_at(text, i, source, options,
                      "a NUL byte, which JSON text may not hold (not even as padding)");
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth)
        return error_at(text, i, source, options,
                        fmt::format("arrays and objects nested more than {} deep", kMaxJsonDepth));
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return Status::ok();
}

template <typename J>
Result<J> parse_checked(std::string_view text, const std::string& source,
                        const JsonReadOptions& options) {
  MOE_TRY(scan_structure(text, source, options));
  // The keys seen so far in the open object at each depth: nlohmann keeps the last of two equal
  // keys, and a repeated key is a mistake worth naming.
  std::vector<std::unordered_set<std::string>> keys_at_depth;
  std::string repeated;
  bool has_repeated = false;
  const typename J::parser_callback_t check_repeated_keys =
      [&](int depth, typename J::parse_event_t event, J& parsed) {
        const auto d = static_cast<size_t>(depth);
        if (event == J::parse_event_t::object_start) {
          if (keys_at_depth.size() <= d) keys_at_depth.resize(d + 1);
          keys_at_depth[d].clear();
        } else if (event == J::parse_event_t::key && d >= 1 && keys_at_depth.size() >= d) {
          std::string key = parsed.template get<std::string>();
          if (!keys_at_depth[d - 1].insert(key).second && !has_repeated) {
            has_repeated = true;
            repeated = std::move(key);
          }
        }
        return true;
      };
  try {
    J j = J::parse(text.begin(), text.end(), check_repeated_keys);
    if (has_repeated)
      return Status::error("{}: the key {} appears twice in one object", source,
                           json_excerpt(J(repeated)));
    return j;
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    const size_t syntax = what.find("syntax error");
    if (syntax != std::string::npos) what = what.substr(syntax);
    return error_at(text, e.byte > 0 ? e.byte - 1 : 0, source, options,
                    "invalid JSON (" + what + ")");
  } catch (const nlohmann::json::exception& e) {
    // Not a syntax error but still unreadable, e.g. a number too large for a double (1e999:
    // nlohmann's out_of_range 406), which the parser reports with its own exception type.
    return Status::error("{}: invalid JSON ({})", source, e.what());
  }
}

template <typename J>
void append_excerpt(const J& v, size_t max_chars, int depth, std::string* out) {
  if (out->size() > max_chars) return;
  if (depth > kMaxJsonDepth) {
    *out += "...";
    return;
  }
  const auto dump = [](const J& x) { return x.dump(-1, ' ', false, J::error_handler_t::replace); };
  if (v.is_object()) {
    *out += '{';
    bool first = true;
    for (auto it = v.begin(); it != v.end() && out->size() <= max_chars; ++it) {
      if (!first) *out += ',';
      first = false;
      *out += dump(J(it.key().substr(0, max_chars))) + ':';
      append_excerpt(it.value(), max_chars, depth + 1, out);
    }
    *out += '}';
  } else if (v.is_array()) {
    *out += '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end() && out->size() <= max_chars; ++it) {
      if (!first) *out += ',';
      first = false;
      append_excerpt(*it, max_chars, depth + 1, out);
    }
    *out += ']';
  } else if (v.is_string()) {
    // A long string is cut before it is dumped: only its start can be shown.
    *out += dump(J(v.template get_ref<const std::string&>().substr(0, max_chars)));
  } else {
    *out += dump(v);
  }
}

template <typename J>
std::string excerpt(const J& v, size_t max_chars) {
  std::string s;
  append_excerpt(v, max_chars, 1, &s);
  if (s.size() > max_chars) {
    // Cut on a UTF-8 character boundary (never inside a multi-byte sequence).
    size_t cut = max_chars > 3 ? max_chars - 3 : 0;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    s = s.substr(0, cut) + "...";
  }
  return s;
}

}  // namespace

Result<nlohmann::json> parse_json(std::string_view text, const std::string& source,
                                  JsonReadOptions options) {
  return parse_checked<nlohmann::json>(text, source, options);
}

Result<nlohmann::ordered_json> parse_ordered_json(std::string_view text, const std::string& source,
                                                  JsonReadOptions options) {
  return parse_checked<nlohmann::ordered_json>(text, source, options);
}

std::string json_excerpt(const nlohmann::json& v, size_t max_chars) {
  return excerpt(v, max_chars);
}

std::string json_excerpt(const nlohmann::ordered_json& v, size_t max_chars) {
  return excerpt(v, max_chars);
}

}  // namespace moe
