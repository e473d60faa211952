// PyTorch fixtures: safetensors files written by tests/golden/make_golden.py, read with the same
// validating reader checkpoints use. expect_close prints a labelled max difference per tensor.
#pragma once

#include <cstdint>
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
  // A number from the metadata; fails the test and returns 0 if absent or not a number.
  double meta_double(const std::string& key) const;
  float meta_float(const std::string& key) const { return static_cast<float>(meta_double(key)); }
  int64_t meta_int(const std::string& key) const;
  bool contains(const std::string& name) const { return file_ && file_->contains(name); }
  const SafetensorsFile& file() const { return *file_; }

 private:
  std::optional<SafetensorsFile> file_;
  std::string path_;
};

// |actual − expected| ≤ atol + rtol·|expected| elementwise; prints "label: max abs diff ...".
void expect_close(const std::string& label, Tensor actual, Tensor expected, double rtol = 1e-5,
                  double atol = 1e-6);

}  // namespace moe::testing
