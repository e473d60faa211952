#include "moe/layers/rope.h"

#include <cmath>

namespace moe {

namespace {

// Elements below which threading costs more than it saves.
constexpr int64_t kRopeParallelMin = int64_t{1} << 15;

void check_rope(const RopeTable& t, int64_t batch, int64_t seq, int64_t n_heads, int64_t pos0,
                Tensor x, const char* op) {
  MOE_CHECK(batch >= 0 && seq >= 0 && n_heads > 0 && pos0 >= 0, "{}: B {} S {} H {} pos0 {}", op,
            batch, seq, n_heads, pos0);
  MOE_CHECK(x.rows() == batch * seq && x.cols() == n_heads * t.head_dim,
            "{}: x {} for B {} S {} H {} Dh {} (expected [{}, {}])", op, x.shape().str(), batch,
            seq, n_heads, t.head_dim, batch * seq, n_heads * t.head_dim);
  MOE_CHECK(pos0 + seq <= t.max_positions, "{}: positions {}..{} past the table's {} rows", op,
            pos0, pos0 + seq - 1, t.max_positions);
}

// Rotates every pair of every head by +angle (sign 1) or −angle (sign −1).
void rotate(const RopeTable& t, int64_t batch, int64_t seq, int64_t n_heads, int64_t pos0, Tensor x,
            float sign) {
  const int64_t half = t.head_dim / 2, cols = x.cols(), rows = batch * seq;
  float* xp = x.f32();
  const float* cos_table = t.cos.f32();
  const float* sin_table = t.sin.f32();
#pragma omp parallel for schedule(static) if (rows * cols >= kRopeParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t pos = pos0 + r % seq;
    const float* c = cos_table + pos * half;  // [Dh/2]
    const float* s = sin_table + pos * half;  // [Dh/2]
    for (int64_t h = 0; h < n_heads; ++h) {
      float* xh = xp + r * cols + h * t.head_dim;  // [Dh]
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        const float x0 = xh[2 * i], x1 = xh[2 * i + 1], si = sign * s[i];
        xh[2 * i] = x0 * c[i] - x1 * si;
        xh[2 * i + 1] = x0 * si + x1 * c[i];
      }
    }
  }
}

}  // namespace

RopeTable RopeTable::build(int64_t max_positions, int64_t head_dim, double theta) {
  MOE_CHECK(max_positions >= 0 && head_dim > 0 && head_dim % 2 == 0 && theta > 0.0,
            "rope table: {} positions, head width {} (even, > 0), theta {}", max_positions,
            head_dim, theta);
  RopeTable t;
  t.max_positions = max_positions;
  t.head_dim = head_dim;
  const int64_t half = head_dim / 2;
  t.cos = TensorBuffer(Shape{max_positions, half});
  t.sin = TensorBuffer(Shape{max_positions, half});
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq =
        std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    for (int64_t p = 0; p < max_positions; ++p) {
      const double angle = static_cast<double>(p) * inv_freq;
      t.cos.f32()[p * half + i] = static_cast<float>(std::cos(angle));
      t.sin.f32()[p * half + i] = static_cast<float>(std::sin(angle));
    }
  }
  return t;
}

void rope_forward(const RopeTable& t, int64_t batch, int64_t seq, int64_t n_heads, int64_t pos0,
                  Tensor x) {
  check_rope(t, batch, seq, n_heads, pos0, x, "rope");
  rotate(t, batch, seq, n_heads, pos0, x, 1.0f);
}

void rope_backward(const RopeTable& t, int64_t batch, int64_t seq, int64_t n_heads, int64_t pos0,
                   Tensor dx) {
  check_rope(t, batch, seq, n_heads, pos0, dx, "rope backward");
  rotate(t, batch, seq, n_heads, pos0, dx, -1.0f);
}

}  // namespace moe
