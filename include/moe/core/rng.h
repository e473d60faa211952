// Deterministic random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011), a counter-based generator. Element i of a draw is a pure function of
// (seed, stream, i), so results do not depend on thread count or on the order threads run in.
#pragma once

#include <array>
#include <cstdint>

#include "moe/core/tensor.h"

namespace moe {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class Rng {
 public:
  explicit Rng(uint64_t seed = 0, uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  // A child generator for a named purpose (a layer's init, dropout in step s, ...).
  Rng fork(uint64_t stream) const;
  uint64_t seed() const { return seed_; }
  uint64_t stream() const { return stream_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }  // restore from a checkpoint

  // Sequential draws advance the offset by one block each.
  uint32_t next_u32();
  float uniform();             // [0, 1)
  float normal();              // N(0, 1)
  uint64_t below(uint64_t n);  // uniform integer in [0, n)

  // Bulk draws: element i uses counter (offset + i); the offset then advances by n.
  void fill_uniform(Tensor t, float lo, float hi);
  void fill_normal(Tensor t, float mean, float stddev);
  void fill_gumbel(Tensor t);  // -log(-log(u)), u in (0, 1)

 private:
  std::array<uint32_t, 4> block(uint64_t counter) const;
  uint64_t seed_;
  uint64_t stream_;
  uint64_t offset_ = 0;
};

// Uniform in (0, 1) from 32 random bits, never exactly 0 or 1.
inline float u32_to_open_unit(uint32_t x) {
  return (static_cast<float>(x >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

}  // namespace moe
