// sz(i): an int64_t index or count (the engine's shapes and loops) as the size_t a std::vector
// is indexed with. One definition for every file, so none keeps a copy of its own.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moe {

inline size_t sz(int64_t i) {
  return static_cast<size_t>(i);
}

}  // namespace moe
