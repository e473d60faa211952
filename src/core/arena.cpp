#include "moe/core/arena.h"

#include <algorithm>
#include <cstring>

namespace moe {

namespace {
constexpr size_t kArenaAlign = 64;
size_t round_up(size_t n) {
  return (n + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
}
}  // namespace

Arena::~Arena() {
  for (void* p : overflow_) aligned_free(p);
  if (block_ != nullptr) aligned_free(block_);
}

void Arena::reserve(size_t bytes) {
  if (bytes <= capacity_) return;
  MOE_CHECK(used_ == 0 && overflow_.empty(), "Arena::reserve while {} bytes are in use", mark());
  if (block_ != nullptr) aligned_free(block_);
  capacity_ = round_up(bytes);
  block_ = static_cast<char*>(aligned_alloc_bytes(capacity_));
}

Tensor Arena::alloc(Shape shape, DType dtype) {
  const size_t bytes = round_up(static_cast<size_t>(shape.numel()) * dtype_size(dtype));
  void* p = nullptr;
  if (overflow_.empty() && used_ + bytes <= capacity_) {
    p = block_ + used_;
    used_ += bytes;
  } else {
    p = aligned_alloc_bytes(std::max<size_t>(bytes, kArenaAlign));
    overflow_.push_back(p);
    overflow_used_ += bytes;
    ++overflow_count_;
  }
  high_water_ = std::max(high_water_, used_ + overflow_used_);
  return Tensor(p, shape, dtype);
}

Tensor Arena::zeros(Shape shape, DType dtype) {
  Tensor t = alloc(shape, dtype);
  if (t.nbytes() > 0) std::memset(t.raw(), 0, t.nbytes());
  return t;
}

void Arena::release(size_t mark) {
  MOE_CHECK(mark <= this->mark(), "Arena::release to {} beyond current {}", mark, this->mark());
  // Overflow blocks are only folded in by reset(); releasing inside the main block is exact.
  if (overflow_.empty()) used_ = mark;
}

void Arena::reset() {
  for (void* p : overflow_) aligned_free(p);
  const bool grew = !overflow_.empty();
  overflow_.clear();
  overflow_used_ = 0;
  used_ = 0;
  if (grew) reserve(high_water_);
}

}  // namespace moe
