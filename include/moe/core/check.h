// MOE_CHECK: guards programmer errors. On in every build type, always with a message, and never
// triggered by user input (user input gets a Status; see status.h).
#pragma once

#include <fmt/format.h>

namespace moe::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond,
                               const std::string& msg);
}  // namespace moe::detail

#define MOE_CHECK(cond, ...)                                                              \
  do {                                                                                    \
    if (__builtin_expect(!(cond), 0))                                                     \
      ::moe::detail::check_failed(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__)); \
  } while (0)
