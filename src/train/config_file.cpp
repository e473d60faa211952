// The run configuration as a file: reading JSON (core/json_read.h: line and column of syntax
// errors, duplicate keys, nesting depth), `--set key=value` overrides, and load_config tying
// them together.
// See include/moe/train/config.h.
//
// Dims: none (configuration values only).
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "core/json_read.h"
#include "moe/train/config.h"
#include "train/config_reader.h"

namespace moe {

namespace {

using namespace config_detail;  // NOLINT(google-build-using-namespace): this file's own helpers

constexpr uint64_t kMaxConfigBytes = uint64_t{16} << 20;

// Splits "a.b.0.c" at the dots.
std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

bool parse_index(const std::string& s, size_t* out) {
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), ::isdigit)) return false;
  *out = static_cast<size_t>(std::stoul(s));
  return true;
}

}  // namespace

Result<json> read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("{}: cannot open the file", path);
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) return Status::error("{}: cannot read the file", path);
  if (static_cast<uint64_t>(size) > kMaxConfigBytes)
    return Status::error("{}: {} bytes, more than a configuration may have ({})", path, size,
                         kMaxConfigBytes);
  in.seekg(0);
  std::string text(static_cast<size_t>(size), '\0');
  if (!in.read(text.data(), size)) return Status::error("{}: cannot read the file", path);

  return parse_json(text, path);
}

Status apply_override(json* j, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    return Status::error("--set {}: expected key=value (for example model.moe.k=2)", assignment);
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  json value;
  Result<json> parsed = parse_json(text, "--set " + key);
  if (parsed.is_ok()) {
    value = std::move(parsed.value());
  } else if (const size_t first = text.find_first_not_of(" \t\r\n");
             first != std::string::npos && (text[first] == '{' || text[first] == '[')) {
    // Meant as an array or object: the reason it does not parse is the message.
    return parsed.status();
  } else {
    // Taken as a string, it must be UTF-8 like every JSON string: the configuration is written
    // back out as JSON (config.json, checkpoints), and a message may quote the value.
    value = text;
    try {
      (void)value.dump();
    } catch (const json::type_error&) {
      return Status::error("--set {}: the value is not valid UTF-8", key);
    }
  }

  // The key must exist in the resolved configuration: every key has a value there.
  Result<Config> current = parse_config(*j, "the configuration");
  if (!current.is_ok()) return current.status();
  const json resolved = config_to_json(*current);
  const std::vector<std::string> parts = split_key(key);
  const json* r = &resolved;
  std::string walked;
  for (const std::string& p : parts) {
    walked = join_path(walked, p);
    size_t index = 0;
    if (r->is_object() && r->contains(p)) {
      r = &(*r)[p];
    } else if (r->is_array() && parse_index(p, &index) && index < r->size()) {
      r = &(*r)[index];
    } else {
      return Status::error("--set {}: no configuration key {}", assignment, walked);
    }
  }

  // Write into the configuration as written, creating the objects on the way.
  json* w = j;
  walked.clear();
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const std::string parent = walked;
    walked = join_path(walked, p);
    const bool last = i + 1 == parts.size();
    size_t index = 0;
    if (w->is_array() && parse_index(p, &index) && index < w->size()) {
      w = &(*w)[index];
    } else {
      if (w->is_null()) *w = json::object();
      if (!w->is_object())
        return Status::error("--set {}: {} is not an object in the configuration", assignment,
                             parent);
      if (!last && !w->contains(p)) (*w)[p] = json::object();
      w = &(*w)[p];
    }
  }
  *w = value;
  return Status::ok();
}

Result<Config> load_config(const std::string& path, const std::vector<std::string>& overrides,
                           ExplicitKeys* explicit_keys) {
  MOE_ASSIGN_OR_RETURN(json j, read_json_file(path));
  {
    Result<Config> check = parse_config(j, path);  // errors in the file itself come first
    if (!check.is_ok()) return check.status();
  }
  if (explicit_keys != nullptr) {
    explicit_keys->file = config_keys_set(j);
    explicit_keys->overrides.clear();
    for (const std::string& o : overrides) {  // the value as apply_override reads it
      const size_t eq = o.find('=');
      if (eq == std::string::npos) continue;  // apply_override refuses it below
      const json value = json::parse(o.substr(eq + 1), nullptr, /*allow_exceptions=*/false);
      const std::string key = o.substr(0, eq);
      if (value.is_discarded()) {
        explicit_keys->overrides.push_back(key);
      } else {
        for (std::string& k : config_keys_set(value, key))
          explicit_keys->overrides.push_back(std::move(k));
      }
    }
  }
  for (const std::string& o : overrides) {
    const Status st = apply_override(&j, o);
    if (!st.is_ok()) return st.with_context(path);
  }
  Result<Config> c = parse_config(j, path);
  if (!c.is_ok() && !overrides.empty()) return c.status().with_context("after the --set overrides");
  return c;
}

}  // namespace moe
