// Tensor: a typed, contiguous, row-major view of up to 4 dimensions. It never owns memory;
// TensorBuffer (below) and Arena (arena.h) do. Views are cheap to copy and slice.
//
// Notation used across moe: T rows/tokens · D model width · F expert hidden width · E experts ·
// K experts per token · C capacity per expert · V vocabulary · L layers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "moe/core/check.h"

namespace moe {

enum class DType : uint8_t { kF32, kBF16, kF64, kI64, kI32, kI8, kU8 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // safetensors spelling: "F32", "BF16", ...

inline constexpr int kMaxRank = 4;

struct Shape {
  std::array<int64_t, kMaxRank> dims{};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  int64_t operator[](int i) const { return dims[static_cast<size_t>(i)]; }
  int64_t numel() const;
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[3, 4]"
};

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::kF32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::kF64;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::kI64;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::kI32;
}
template <>
constexpr DType dtype_of<int8_t>() {
  return DType::kI8;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::kU8;
}
template <>
constexpr DType dtype_of<uint16_t>() {
  return DType::kBF16;
}

class Tensor {
 public:
  Tensor() = default;
  Tensor(float* data, Shape shape) : data_(data), shape_(shape), dtype_(DType::kF32) {}
  Tensor(void* data, Shape shape, DType dtype) : data_(data), shape_(shape), dtype_(dtype) {}

  bool empty() const { return data_ == nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank; }
  int64_t dim(int i) const {
    MOE_CHECK(i >= 0 && i < shape_.rank, "dim {} of a rank-{} tensor", i, shape_.rank);
    return shape_[i];
  }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  // Rows and columns of the tensor seen as a matrix [dim0 * ... * dim(r-2), dim(r-1)].
  int64_t rows() const {
    int64_t r = 1;
    for (int i = 0; i + 1 < shape_.rank; ++i) r *= shape_[i];
    return r;
  }
  int64_t cols() const { return shape_.rank == 0 ? 1 : shape_[shape_.rank - 1]; }

  void* raw() const { return data_; }
  template <typename T>
  T* data() const {
    MOE_CHECK(dtype_ == dtype_of<T>(), "tensor {} is {}, accessed as {}", shape_.str(),
              dtype_name(dtype_), dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_);
  }
  float* f32() const { return data<float>(); }

  // Rows [begin, end) along dimension 0.
  Tensor slice(int64_t begin, int64_t end) const;
  // The same memory with another shape of the same element count.
  Tensor reshape(Shape s) const;
  // Row i along dimension 0, one rank lower.
  Tensor operator[](int64_t i) const;

  float& at(int64_t i) const { return f32()[i]; }
  float& at(int64_t i, int64_t j) const { return f32()[i * shape_[1] + j]; }

 private:
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::kF32;
};

// Owns 64-byte aligned memory and hands out a Tensor view of it. Large buffers are backed by
// transparent huge pages: a first touch costs ~11 us per 4 KiB page on this machine otherwise.
class TensorBuffer {
 public:
  TensorBuffer() = default;
  explicit TensorBuffer(Shape shape, DType dtype = DType::kF32);  // zero-filled
  TensorBuffer(const TensorBuffer&) = delete;
  TensorBuffer& operator=(const TensorBuffer&) = delete;
  TensorBuffer(TensorBuffer&&) noexcept = default;
  TensorBuffer& operator=(TensorBuffer&&) noexcept = default;

  const Tensor& view() const { return view_; }
  operator Tensor() const { return view_; }  // NOLINT(google-explicit-constructor)
  float* f32() const { return view_.f32(); }
  const Shape& shape() const { return view_.shape(); }
  int64_t numel() const { return view_.numel(); }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> memory_;
  Tensor view_;
};

// Allocates `bytes` (rounded up) with 64-byte alignment; huge-page advice above 2 MiB.
void* aligned_alloc_bytes(size_t bytes);
void aligned_free(void* p);

// Fills and copies, the small helpers every layer and test needs.
void fill(Tensor t, float value);
void copy(Tensor dst, Tensor src);  // same shape and dtype

// A tensor with the name it is saved and loaded under (a parameter, an optimizer moment).
struct NamedTensor {
  std::string name;
  Tensor tensor;
};

}  // namespace moe
