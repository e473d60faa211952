// Typed fields of parsed JSON: the one way moe reads a value of a known type out of a JSON
// object (the data layer's saved statistics, checkpoints and the training state, the run
// config, a run's report files). A missing field or a wrong type is a Status, never a nlohmann
// exception. Internal to src/.
//
// Two levels: json_value_as says whether a value has a type and converts it (each reader words
// its own messages with json_type_name); json_field and json_require/json_expect read required
// fields with the messages
//   "<where>: missing field '<key>'"  and  "<where>: field '<key>' must be <what>".
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"

namespace moe {

template <typename T>
inline constexpr bool kIsJsonArrayType =
    std::is_same_v<T, std::vector<std::string>> || std::is_same_v<T, std::vector<int64_t>> ||
    std::is_same_v<T, std::vector<double>>;

// What json_value_as<T> accepts, for messages: "a string", "an integer", ...
template <typename T>
constexpr const char* json_type_name() {
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, double>) return "a finite number";
  if constexpr (std::is_same_v<T, std::vector<std::string>>) return "an array of strings";
  if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "an array of integers";
  if constexpr (std::is_same_v<T, std::vector<double>>) return "an array of finite numbers";
  return "a value";
}

// Converts v into *out when it has type T: a string; true or false; an integer that fits in
// int64_t (1.0 is not one); a finite number; or an array of those. False otherwise (*out is then
// unspecified for arrays, untouched for the rest).
template <typename T>
bool json_value_as(const nlohmann::json& v, T* out) {
  if constexpr (kIsJsonArrayType<T>) {
    if (!v.is_array()) return false;
    out->clear();
    out->reserve(v.size());
    for (const nlohmann::json& e : v) {
      typename T::value_type x{};
      if (!json_value_as(e, &x)) return false;
      out->push_back(std::move(x));
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return false;
    *out = v.get<std::string>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return false;
    *out = v.get<bool>();
  } else if constexpr (std::is_same_v<T, int64_t>) {
    if (!v.is_number_integer()) return false;
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      return false;
    *out = v.get<int64_t>();
  } else {
    static_assert(std::is_same_v<T, double>);
    if (!v.is_number()) return false;
    const double x = v.get<double>();
    if (!std::isfinite(x)) return false;
    *out = x;
  }
  return true;
}

// obj[key], or null when obj is not an object or has no such key.
inline const nlohmann::json* json_find(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

// obj[key], or null with *st set to "<where>: missing field '<key>'". Does nothing and returns
// null once *st holds an error, so a run of calls reports the first missing field.
inline const nlohmann::json* json_require(const nlohmann::json& obj, const char* key,
                                          const std::string& where, Status* st) {
  if (!st->is_ok()) return nullptr;
  const nlohmann::json* v = json_find(obj, key);
  if (v == nullptr) *st = Status::error("{}: missing field '{}'", where, key);
  return v;
}

// "<where>: field '<key>' must be <what>" unless ok.
inline Status json_expect(bool ok, const std::string& where, const char* key, const char* what) {
  return ok ? Status::ok() : Status::error("{}: field '{}' must be {}", where, key, what);
}

// Reads the required field obj[key] of type T into *out. `where` prefixes messages
// ("model.json: labels").
template <typename T>
Status json_field(const nlohmann::json& obj, const char* key, const std::string& where, T* out) {
  if (!obj.is_object()) return Status::error("{}: expected a JSON object", where);
  Status st;
  const nlohmann::json* v = json_require(obj, key, where, &st);
  if (v == nullptr) return st;
  return json_expect(json_value_as(*v, out), where, key, json_type_name<T>());
}

}  // namespace moe
