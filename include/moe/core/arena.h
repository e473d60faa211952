// Arena: scratch memory for a forward/backward step, handed out by bumping an offset.
//
// The first steps discover how much a step needs: when a request does not fit, the arena serves
// it from an overflow block and remembers the high-water mark; the next reset() replaces
// everything with one block of that size. From then on a step allocates nothing, and the block
// stays alive (and huge-page backed) across steps.
#pragma once

#include <cstddef>
#include <vector>

#include "moe/core/tensor.h"

namespace moe {

class Arena {
 public:
  Arena() = default;
  explicit Arena(size_t bytes) { reserve(bytes); }
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  void reserve(size_t bytes);                            // grow the main block to at least bytes
  Tensor alloc(Shape shape, DType dtype = DType::kF32);  // uninitialised, 64-byte aligned
  Tensor zeros(Shape shape, DType dtype = DType::kF32);
  template <typename T>
  T* alloc_array(int64_t n) {
    return alloc(Shape{n}, dtype_of<T>()).template data<T>();
  }

  // Frees everything handed out since the matching mark (stack discipline).
  size_t mark() const { return used_ + overflow_used_; }
  void release(size_t mark);
  // Frees everything; folds overflow into one main block sized to the high-water mark.
  void reset();

  size_t capacity() const { return capacity_; }
  size_t high_water() const { return high_water_; }
  int overflow_allocations() const { return overflow_count_; }  // since construction

 private:
  char* block_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
  std::vector<void*> overflow_;
  size_t overflow_used_ = 0;
  size_t high_water_ = 0;
  int overflow_count_ = 0;
};

}  // namespace moe
