#include "moe/core/tensor.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include <fmt/format.h>

namespace moe {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kBF16:
      return 2;
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kI32:
      return 4;
    case DType::kI8:
    case DType::kU8:
      return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kBF16:
      return "BF16";
    case DType::kF64:
      return "F64";
    case DType::kI64:
      return "I64";
    case DType::kI32:
      return "I32";
    case DType::kI8:
      return "I8";
    case DType::kU8:
      return "U8";
  }
  return "?";
}

Shape::Shape(std::initializer_list<int64_t> d) {
  MOE_CHECK(d.size() <= kMaxRank, "rank {} exceeds the maximum {}", d.size(), kMaxRank);
  for (int64_t v : d) {
    MOE_CHECK(v >= 0, "negative dimension {}", v);
    dims[static_cast<size_t>(rank++)] = v;
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= dims[static_cast<size_t>(i)];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank != o.rank) return false;
  for (int i = 0; i < rank; ++i)
    if (dims[static_cast<size_t>(i)] != o.dims[static_cast<size_t>(i)]) return false;
  return true;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank; ++i)
    s += fmt::format("{}{}", i ? ", " : "", dims[static_cast<size_t>(i)]);
  return s + "]";
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  MOE_CHECK(shape_.rank >= 1 && begin >= 0 && begin <= end && end <= shape_[0],
            "slice [{}, {}) of {}", begin, end, shape_.str());
  Shape s = shape_;
  s.dims[0] = end - begin;
  const int64_t row = shape_[0] == 0 ? 0 : numel() / shape_[0];
  return Tensor(static_cast<char*>(data_) + begin * row * static_cast<int64_t>(dtype_size(dtype_)),
                s, dtype_);
}

Tensor Tensor::reshape(Shape s) const {
  MOE_CHECK(s.numel() == numel(), "reshape {} to {}", shape_.str(), s.str());
  return Tensor(data_, s, dtype_);
}

Tensor Tensor::operator[](int64_t i) const {
  MOE_CHECK(shape_.rank >= 1 && i >= 0 && i < shape_[0], "index {} of {}", i, shape_.str());
  Shape s;
  s.rank = shape_.rank - 1;
  for (int d = 1; d < shape_.rank; ++d) s.dims[static_cast<size_t>(d - 1)] = shape_[d];
  return Tensor(
      static_cast<char*>(data_) + i * s.numel() * static_cast<int64_t>(dtype_size(dtype_)), s,
      dtype_);
}

namespace {
constexpr size_t kAlign = 64;
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

void* aligned_alloc_bytes(size_t bytes) {
  const size_t align = bytes >= kHugePage ? kHugePage : kAlign;
  size_t rounded = (bytes + align - 1) / align * align;
  if (rounded == 0) rounded = align;
  void* p = std::aligned_alloc(align, rounded);
  if (p == nullptr) throw std::bad_alloc();
  if (bytes >= kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

void aligned_free(void* p) {
  std::free(p);
}

void TensorBuffer::Free::operator()(void* p) const {
  aligned_free(p);
}

TensorBuffer::TensorBuffer(Shape shape, DType dtype) {
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  memory_.reset(aligned_alloc_bytes(bytes));
  std::memset(memory_.get(), 0, bytes);
  view_ = Tensor(memory_.get(), shape, dtype);
}

void fill(Tensor t, float value) {
  float* p = t.f32();
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

void copy(Tensor dst, Tensor src) {
  MOE_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype(), "copy {} {} <- {} {}",
            dst.shape().str(), dtype_name(dst.dtype()), src.shape().str(), dtype_name(src.dtype()));
  if (dst.raw() != src.raw() && src.nbytes() > 0) std::memcpy(dst.raw(), src.raw(), src.nbytes());
}

}  // namespace moe
