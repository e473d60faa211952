#include "op_cases.h"

#include <gtest/gtest.h>

#include <cctype>
#include <set>

#include "moe/core/check.h"

namespace moe::testing {

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> all;
    for (auto family :
         {layer_op_cases, loss_op_cases, gate_op_cases, moe_layer_op_cases, attention_op_cases})
      for (OpCase& c : family()) all.push_back(std::move(c));
    return all;
  }();
  return cases;
}

const OpCase& find_op_case(const std::string& name) {
  for (const OpCase& c : op_cases())
    if (c.name == name) return c;
  MOE_CHECK(false, "no op case '{}'", name);
  return op_cases().front();
}

namespace {

// Fails loudly at start-up on a name GoogleTest cannot use or one registered twice.
void check_names(const std::vector<OpCase>& cases) {
  std::set<std::string> seen;
  for (const OpCase& c : cases) {
    MOE_CHECK(!c.name.empty(), "an op case has no name");
    for (char ch : c.name)
      MOE_CHECK(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_',
                "op case name '{}': letters, digits and '_' only", c.name);
    MOE_CHECK(seen.insert(c.name).second, "op case '{}' registered twice", c.name);
  }
}

template <typename Has>
std::vector<std::string> names_where(Has has) {
  check_names(op_cases());
  std::vector<std::string> out;
  for (const OpCase& c : op_cases())
    if (has(c)) out.push_back(c.name);
  return out;
}

}  // namespace

std::vector<std::string> op_cases_with_gradcheck() {
  return names_where([](const OpCase& c) { return c.gradcheck.has_value(); });
}

std::vector<std::string> op_cases_with_golden() {
  return names_where([](const OpCase& c) { return c.golden.has_value(); });
}

}  // namespace moe::testing
