// The registered op cases, one function per family of ops (one file each in tests/ops/); a new
// op joins by adding an OpCase to its family's list, a new family by one line in op_cases.cpp.
#pragma once

#include <string>
#include <vector>

#include "testing/op_harness.h"

namespace moe::testing {

std::vector<OpCase> layer_op_cases();      // layer_ops.cpp
std::vector<OpCase> loss_op_cases();       // loss_ops.cpp
std::vector<OpCase> gate_op_cases();       // gate_ops.cpp
std::vector<OpCase> moe_layer_op_cases();  // moe_layer_ops.cpp
std::vector<OpCase> attention_op_cases();  // attention_ops.cpp

// Every registered case (tests/ops/op_cases.cpp), in registration order; names are unique.
const std::vector<OpCase>& op_cases();
const OpCase& find_op_case(const std::string& name);
// The names of the cases that have a gradient check / a golden, for the drivers' parameters.
std::vector<std::string> op_cases_with_gradcheck();
std::vector<std::string> op_cases_with_golden();

}  // namespace moe::testing
