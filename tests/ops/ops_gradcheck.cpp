// The gradient-check driver: one test per registered op case that has a gradient check
// (label gradcheck; ctest -R 'OpGradcheck.*linear' picks one).
#include <gtest/gtest.h>

#include "op_cases.h"

namespace moe::testing {
namespace {

class OpGradcheck : public ::testing::TestWithParam<std::string> {};

TEST_P(OpGradcheck, MatchesCentralDifferences) {
  run_gradcheck(find_op_case(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Ops, OpGradcheck, ::testing::ValuesIn(op_cases_with_gradcheck()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace moe::testing
