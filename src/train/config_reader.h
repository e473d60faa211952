// Reading the run configuration's JSON: the Section helper that registers every key it reads
// (so unknown ones can be named), typed getters with messages naming the key path, and the
// tables of names for every enumerated value. Internal to src/train.
//
// Dims: none (configuration values only).
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_fields.h"
#include "core/json_read.h"
#include "moe/core/enum_names.h"
#include "moe/train/config.h"

namespace moe::config_detail {

using json = nlohmann::json;

inline constexpr int64_t kMaxWidth = int64_t{1} << 20;  // widths, counts: far beyond any CPU model

// A float config value as the shortest decimal that reads back as the same float (0.01, not
// 0.009999999776482582), so the resolved config is readable and still exact.
inline json real(float v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
}

// A JSON value for a message, cut short when long (core/json_read.h).
inline std::string show(const json& v) {
  return json_excerpt(v, 60);
}

inline std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// `one of "a", "b"`, the names of the table but `except`, for messages.
template <typename E, size_t N>
std::string choice_list(const EnumName<E> (&options)[N], const E* except = nullptr) {
  std::string s = "one of";
  bool first = true;
  for (const EnumName<E>& c : options) {
    if (except != nullptr && c.value == *except) continue;
    s += fmt::format("{} \"{}\"", first ? "" : ",", c.name);
    first = false;
  }
  return s;
}

// The tables of the enums this floor defines. Enums from the floors below have theirs beside
// them (kTaskKindNames in data/dataset.h, kActivationNames in kernels/ops.h, kGateKindNames in
// moe/gate.h, kOptimizerKindNames and kScheduleKindNames in optim/). ExpertKind and Precision
// belong to moe/experts.h, whose expert_kind_name and precision_name still spell them a second
// time; their tables are here until they move there.
inline constexpr EnumName<DataFormat> kFormats[] = {
    {"csv", DataFormat::kCsv}, {"tsv", DataFormat::kTsv},       {"text", DataFormat::kText},
    {"idx", DataFormat::kIdx}, {"corpus", DataFormat::kCorpus}, {"pairs", DataFormat::kPairs}};
inline constexpr EnumName<MoeLayers> kMoeLayers[] = {
    {"all", MoeLayers::kAll}, {"every_other", MoeLayers::kEveryOther}, {"none", MoeLayers::kNone}};
inline constexpr EnumName<MissingPolicy> kMissing[] = {{"error", MissingPolicy::kError},
                                                       {"impute", MissingPolicy::kImpute}};
inline constexpr EnumName<NormChoice> kNorms[] = {
    {"rms", NormChoice::kRms}, {"layer", NormChoice::kLayer}, {"none", NormChoice::kNone}};
inline constexpr EnumName<InputBag> kBags[] = {
    {"weighted_sum", InputBag::kWeightedSum}, {"sum", InputBag::kSum}, {"mean", InputBag::kMean}};
// Activations a config may name: kActivationNames but "identity" (an expert or trunk needs a
// nonlinearity).
inline constexpr Activation kNoActivation = Activation::kIdentity;
// "roc_auc" is the canonical name (the one every report uses, so a name copied from a report
// works); "auc" is accepted as an alias. enum_name gives the first entry for a value.
inline constexpr EnumName<MetricKind> kMetrics[] = {
    {"loss", MetricKind::kLoss},  {"accuracy", MetricKind::kAccuracy},
    {"f1", MetricKind::kF1},      {"roc_auc", MetricKind::kRocAuc},
    {"auc", MetricKind::kRocAuc}, {"mse", MetricKind::kMse},
    {"mae", MetricKind::kMae},    {"r2", MetricKind::kR2}};
inline constexpr EnumName<ClassWeights> kClassWeights[] = {{"none", ClassWeights::kNone},
                                                           {"balanced", ClassWeights::kBalanced}};
inline constexpr EnumName<RegressionLoss> kLosses[] = {{"mse", RegressionLoss::kMse},
                                                       {"huber", RegressionLoss::kHuber}};

// One JSON object of the configuration at `path`. Every getter registers its key (so finish()
// can name unknown ones) and leaves the default in place when the key is absent. The first
// error is kept in *status; later calls do nothing.
class Section {
 public:
  Section(const json* j, std::string path, Status* status)
      : j_(j), path_(std::move(path)), status_(status) {
    if (j_ != nullptr && !j_->is_object() && status_->is_ok())
      *status_ = Status::error("{}: expected an object, got {}", path_, show(*j_));
  }

  bool ok() const { return status_->is_ok(); }
  Status* status() const { return status_; }
  const std::string& path() const { return path_; }
  std::string at(const std::string& key) const { return join_path(path_, key); }
  bool has(const char* key) {
    know(key);
    return j_ != nullptr && j_->is_object() && j_->contains(key);
  }

  // The value of `key`, or null when absent or after an error.
  const json* take(const char* key) {
    know(key);
    if (!ok() || j_ == nullptr) return nullptr;
    return json_find(*j_, key);
  }

  void fail(const char* key, const std::string& expected, const json& got) {
    if (ok()) *status_ = Status::error("{}: expected {}, got {}", at(key), expected, show(got));
  }
  void fail_msg(const std::string& key_path, const std::string& message) {
    if (ok()) *status_ = Status::error("{}: {}", key_path, message);
  }

  void integer(const char* key, int64_t* out, int64_t lo, int64_t hi, const char* expected) {
    const json* v = take(key);
    if (v == nullptr) return;
    int64_t x = 0;
    bool good = json_value_as(*v, &x);
    if (!good && v->is_number_float()) {  // 1e5 is a float in JSON; accept it when integral
      const double d = v->get<double>();
      good = std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15;
      x = good ? static_cast<int64_t>(d) : 0;
    }
    if (!good || x < lo || x > hi) return fail(key, expected, *v);
    *out = x;
  }
  void integer(const char* key, int* out, int lo, int hi, const char* expected) {
    int64_t x = *out;
    integer(key, &x, lo, hi, expected);
    *out = static_cast<int>(x);
  }
  void seed(const char* key, uint64_t* out) {
    const json* v = take(key);
    if (v == nullptr) return;
    if (v->is_number_unsigned()) {
      *out = v->get<uint64_t>();
    } else if (v->is_number_integer() && v->get<int64_t>() >= 0) {
      *out = static_cast<uint64_t>(v->get<int64_t>());
    } else {
      fail(key, "an integer ≥ 0", *v);
    }
  }
  // A finite number in the range [lo, hi], or (lo, hi] when lo_open, [lo, hi) when hi_open.
  void number(const char* key, double* out, double lo, double hi, bool lo_open, bool hi_open,
              const char* expected) {
    const json* v = take(key);
    if (v == nullptr) return;
    double x = 0.0;
    const bool good =
        json_value_as(*v, &x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    if (!good) return fail(key, expected, *v);
    *out = x;
  }
  void number(const char* key, float* out, double lo, double hi, bool lo_open, bool hi_open,
              const char* expected) {
    double x = *out;
    number(key, &x, lo, hi, lo_open, hi_open, expected);
    *out = static_cast<float>(x);
  }
  void boolean(const char* key, bool* out) {
    const json* v = take(key);
    if (v == nullptr) return;
    if (!json_value_as(*v, out)) return fail(key, json_type_name<bool>(), *v);
  }
  void string(const char* key, std::string* out) {
    const json* v = take(key);
    if (v == nullptr) return;
    if (!json_value_as(*v, out)) return fail(key, json_type_name<std::string>(), *v);
  }
  // A string, or an array of strings.
  void strings(const char* key, std::vector<std::string>* out, bool allow_single) {
    const json* v = take(key);
    if (v == nullptr) return;
    const char* expected = allow_single ? "a string or an array of strings" : "an array of strings";
    if (std::string one; allow_single && json_value_as(*v, &one)) {
      *out = {std::move(one)};
      return;
    }
    if (!v->is_array()) return fail(key, expected, *v);
    std::vector<std::string> r(v->size());
    for (size_t i = 0; i < v->size(); ++i) {
      if (!json_value_as((*v)[i], &r[i]))
        return fail_msg(
            at(key) + "." + std::to_string(i),
            fmt::format("expected {}, got {}", json_type_name<std::string>(), show((*v)[i])));
    }
    *out = std::move(r);
  }
  // One of the table's names; `except`, when given, is a value the table names but this key
  // does not take.
  template <typename E, size_t N>
  void choice(const char* key, E* out, const EnumName<E> (&options)[N], const E* except = nullptr) {
    const json* v = take(key);
    if (v == nullptr) return;
    if (std::string name; json_value_as(*v, &name)) {
      for (const EnumName<E>& c : options) {
        if (except != nullptr && c.value == *except) continue;
        if (name == c.name) {
          *out = c.value;
          return;
        }
      }
    }
    fail(key, choice_list(options, except), *v);
  }
  Section object(const char* key) { return Section(take(key), at(key), status_); }

  // Unknown keys are errors naming the key and the ones this object knows.
  void finish() {
    if (!ok() || j_ == nullptr || !j_->is_object()) return;
    for (const auto& [k, v] : j_->items()) {
      if (std::find(known_.begin(), known_.end(), k) != known_.end()) continue;
      std::string list;
      for (size_t i = 0; i < known_.size(); ++i) list += (i ? ", " : "") + known_[i];
      fail_msg(at(k), fmt::format("unknown key (expected one of: {})", list));
      return;
    }
  }

 private:
  void know(const char* key) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
  }

  const json* j_;
  std::string path_;
  Status* status_;
  std::vector<std::string> known_;
};

}  // namespace moe::config_detail
