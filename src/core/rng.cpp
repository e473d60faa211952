#include "moe/core/rng.h"

#include <cmath>

namespace moe {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
    k[0] += kW0;
    k[1] += kW1;
  }
  return c;
}

std::array<uint32_t, 4> Rng::block(uint64_t counter) const {
  return philox4x32({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32),
                     static_cast<uint32_t>(stream_), static_cast<uint32_t>(stream_ >> 32)},
                    {static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32)});
}

Rng Rng::fork(uint64_t stream) const {
  // Mix the parent's stream into the child's so that forks of different parents differ.
  const auto b = block(~stream);
  return Rng(seed_, (static_cast<uint64_t>(b[0]) << 32 | b[1]) ^ stream);
}

uint32_t Rng::next_u32() {
  return block(offset_++)[0];
}

float Rng::uniform() {
  return static_cast<float>(next_u32() >> 8) * (1.0f / 16777216.0f);
}

float Rng::normal() {
  const auto b = block(offset_++);
  const float u1 = u32_to_open_unit(b[0]), u2 = u32_to_open_unit(b[1]);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795864f * u2);
}

uint64_t Rng::below(uint64_t n) {
  MOE_CHECK(n > 0, "Rng::below(0)");
  const auto b = block(offset_++);
  const uint64_t x = static_cast<uint64_t>(b[0]) << 32 | b[1];
  return x % n;  // bias below 2^-32 for any n a model uses
}

void Rng::fill_uniform(Tensor t, float lo, float hi) {
  float* p = t.f32();
  const int64_t n = t.numel();
  const uint64_t base = offset_;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t x = block(base + static_cast<uint64_t>(i))[0];
    p[i] = lo + (hi - lo) * (static_cast<float>(x >> 8) * (1.0f / 16777216.0f));
  }
  offset_ += static_cast<uint64_t>(n);
}

void Rng::fill_normal(Tensor t, float mean, float stddev) {
  float* p = t.f32();
  const int64_t n = t.numel();
  const uint64_t base = offset_;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const auto b = block(base + static_cast<uint64_t>(i));
    const float u1 = u32_to_open_unit(b[0]), u2 = u32_to_open_unit(b[1]);
    p[i] = mean + stddev * std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795864f * u2);
  }
  offset_ += static_cast<uint64_t>(n);
}

void Rng::fill_gumbel(Tensor t) {
  float* p = t.f32();
  const int64_t n = t.numel();
  const uint64_t base = offset_;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float u = u32_to_open_unit(block(base + static_cast<uint64_t>(i))[0]);
    p[i] = -std::log(-std::log(u));
  }
  offset_ += static_cast<uint64_t>(n);
}

}  // namespace moe
