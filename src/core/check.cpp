#include "moe/core/check.h"

#include <cstdio>
#include <cstdlib>

namespace moe::detail {

void check_failed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "moe: internal check failed at %s:%d: %s\n  %s\n", file, line, cond,
               msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace moe::detail
