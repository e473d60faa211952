// The golden driver: one test per registered op case that has a PyTorch fixture (label golden).
#include <gtest/gtest.h>

#include "op_cases.h"

namespace moe::testing {
namespace {

class OpGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(OpGolden, MatchesTorch) {
  run_golden(find_op_case(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Ops, OpGolden, ::testing::ValuesIn(op_cases_with_golden()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace moe::testing
