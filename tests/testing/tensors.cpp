#include "testing/tensors.h"

#include <algorithm>

#include "moe/core/check.h"

namespace moe::testing {

TensorBuffer random_uniform(Shape shape, Rng& rng, float lo, float hi) {
  TensorBuffer t(shape);
  rng.fill_uniform(t, lo, hi);
  return t;
}

TensorBuffer random_uniform(Shape shape, uint64_t seed, float lo, float hi) {
  Rng rng(seed);
  return random_uniform(shape, rng, lo, hi);
}

TensorBuffer random_normal(Shape shape, Rng& rng, float mean, float stddev) {
  TensorBuffer t(shape);
  rng.fill_normal(t, mean, stddev);
  return t;
}

TensorBuffer random_normal(Shape shape, uint64_t seed, float mean, float stddev) {
  Rng rng(seed);
  return random_normal(shape, rng, mean, stddev);
}

TensorBuffer f32_tensor(Shape shape, const std::vector<float>& values) {
  TensorBuffer t(shape);
  MOE_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "f32_tensor: {} values for {}",
            values.size(), shape.str());
  std::copy(values.begin(), values.end(), t.f32());
  return t;
}

TensorBuffer i32_tensor(const std::vector<int32_t>& values) {
  TensorBuffer t(Shape{static_cast<int64_t>(values.size())}, DType::kI32);
  std::copy(values.begin(), values.end(), t.view().data<int32_t>());
  return t;
}

TensorBuffer i64_tensor(const std::vector<int64_t>& values) {
  TensorBuffer t(Shape{static_cast<int64_t>(values.size())}, DType::kI64);
  std::copy(values.begin(), values.end(), t.view().data<int64_t>());
  return t;
}

TensorBuffer zeros_like(Tensor t) {
  return TensorBuffer(t.shape(), t.dtype());
}

TensorBuffer clone(Tensor t) {
  TensorBuffer c(t.shape(), t.dtype());
  copy(c, t);
  return c;
}

}  // namespace moe::testing
