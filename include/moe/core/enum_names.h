// One table of names per enum: the value and the name users write in configs, checkpoints and
// messages. The floor that defines an enum defines its table next to it; every reader and writer
// above looks names up there, so two spellings of one enum cannot drift apart.
//
//   inline constexpr EnumName<OptimizerKind> kOptimizerKindNames[] = {{"sgd", OptimizerKind::kSgd},
//                                                                     ...};
//
// A value may have several names (an alias after the canonical one): enum_name gives the first.
#pragma once

#include <cstddef>
#include <string_view>

namespace moe {

template <typename E>
struct EnumName {
  const char* name;
  E value;
};

// The first name of v in the table, or "unknown" when it has none.
template <typename E, size_t N>
constexpr const char* enum_name(const EnumName<E> (&table)[N], E v) {
  for (const EnumName<E>& e : table)
    if (e.value == v) return e.name;
  return "unknown";
}

// The value named s; false, and *out untouched, when no entry has that name.
template <typename E, size_t N>
constexpr bool parse_enum_name(const EnumName<E> (&table)[N], std::string_view s, E* out) {
  for (const EnumName<E>& e : table) {
    if (s == e.name) {
      *out = e.value;
      return true;
    }
  }
  return false;
}

}  // namespace moe
