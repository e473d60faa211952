// PyTorch fixtures: safetensors files written by tests/golden/make_golden.py, read with the same
// validating reader checkpoints use. expect_close prints a labelled max difference per tensor.
#pragma once

#include <optional>
#include <string>

#include "moe/core/tensor.h"
#include "moe/io/safetensors.h"

namespace moe::testing {

class Fixture {
 public:
  // Loads tests/golden/fixtures/<name>.safetensors; fails the test if it cannot.
  explicit Fixture(const std::string& name);
  bool ok() const { return file_.has_value(); }
  // A copy of tensor `name` (float32); fails the test and returns an empty buffer if absent.
  TensorBuffer get(const std::string& name) const;
  std::string meta(const std::string& key) const;  // "" if absent
  const SafetensorsFile& file() const { return *file_; }

 private:
  std::optional<SafetensorsFile> file_;
  std::string path_;
};

// |actual − expected| ≤ atol + rtol·|expected| elementwise; prints "label: max abs diff ...".
void expect_close(const std::string& label, Tensor actual, Tensor expected, double rtol = 1e-5,
                  double atol = 1e-6);

}  // namespace moe::testing
