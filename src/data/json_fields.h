// Typed field access for the JSON the data layer saves (feature statistics, label specs,
// vocabularies): a missing field or a wrong type is a Status naming where and what was
// expected, never a nlohmann exception. Internal to src/data.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"

namespace moe::data_detail {

using json = nlohmann::json;

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

template <typename T>
bool json_scalar_as(const json& v, T* out) {
  if constexpr (std::is_same_v<T, std::string>) {
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
    *out = v.get<double>();
    if (!std::isfinite(*out)) return false;
  }
  return true;
}

// Reads obj[key] into *out. `where` prefixes messages ("model.json: labels").
template <typename T>
Status json_field(const json& obj, const char* key, const std::string& where, T* out) {
  if (!obj.is_object()) return Status::error("{}: expected a JSON object", where);
  const auto it = obj.find(key);
  if (it == obj.end()) return Status::error("{}: missing field '{}'", where, key);
  const json& v = *it;
  bool ok = true;
  if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>>) {
    ok = v.is_array();
    if (ok) {
      out->clear();
      out->reserve(v.size());
      for (const json& e : v) {
        typename T::value_type x{};
        if (!json_scalar_as(e, &x)) {
          ok = false;
          break;
        }
        out->push_back(std::move(x));
      }
    }
  } else {
    ok = json_scalar_as(v, out);
  }
  if (!ok) return Status::error("{}: field '{}' must be {}", where, key, json_type_name<T>());
  return Status::ok();
}

}  // namespace moe::data_detail
