// Status and Result<T>: how failures caused by external input travel.
//
// Anything a user can get wrong (a file, a flag, a config key, a request) returns a Status or a
// Result<T> carrying one clear message that names where the problem is. Programmer errors use
// MOE_CHECK (check.h) instead. Exceptions never cross the public API.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace moe {

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  static Status ok() { return Status(); }
  template <typename... Args>
  static Status error(fmt::format_string<Args...> f, Args&&... args) {
    Status s;
    s.message_ = fmt::format(f, std::forward<Args>(args)...);
    s.failed_ = true;
    return s;
  }
  bool is_ok() const { return !failed_; }
  explicit operator bool() const { return !failed_; }
  const std::string& message() const { return message_; }
  // Prefixes context ("reading model.safetensors: ") to an error; ok stays ok.
  Status with_context(const std::string& context) const {
    if (!failed_) return *this;
    Status s = *this;
    s.message_ = context + ": " + message_;
    return s;
  }

 private:
  std::string message_;
  bool failed_ = false;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (status_.is_ok()) status_ = Status::error("internal: Result built from an ok Status");
  }
  bool is_ok() const { return value_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace moe

// Returns the Status from the enclosing function when expr fails.
#define MOE_TRY(expr)                                     \
  do {                                                    \
    ::moe::Status moe_try_status_ = (expr);               \
    if (!moe_try_status_.is_ok()) return moe_try_status_; \
  } while (0)

#define MOE_CONCAT_INNER_(a, b) a##b
#define MOE_CONCAT_(a, b) MOE_CONCAT_INNER_(a, b)
// `MOE_ASSIGN_OR_RETURN(auto x, make_x());` unwraps a Result or returns its Status. lhs is a
// declaration, so it cannot be put in parentheses.
#define MOE_ASSIGN_OR_RETURN(lhs, expr)                 \
  auto MOE_CONCAT_(moe_result_, __LINE__) = (expr);     \
  if (!MOE_CONCAT_(moe_result_, __LINE__).is_ok())      \
    return MOE_CONCAT_(moe_result_, __LINE__).status(); \
  lhs = std::move(MOE_CONCAT_(moe_result_, __LINE__)).value()  // NOLINT(bugprone-macro-parentheses)
