// Block int8 quantisation (moe/kernels/quantize.h): the error bound of every value, the scales,
// the range of q, blocks of zeros, a row whose length is not a multiple of the block, and values
// far from 1 in both directions.
//
// Dims: rows · cols values; scales [rows, ceil(cols / 32)].
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "moe/core/rng.h"
#include "moe/kernels/quantize.h"

namespace moe {
namespace {

struct Quantized {
  std::vector<int8_t> q;
  std::vector<float> scales, back;
};

Quantized round_trip(const std::vector<float>& w, int64_t rows, int64_t cols) {
  Quantized r;
  r.q.assign(w.size(), 0);
  r.scales.assign(static_cast<size_t>(rows * q8_blocks(cols)), -1.0f);
  r.back.assign(w.size(), 0.0f);
  quantize_q8(w.data(), rows, cols, r.q.data(), r.scales.data());
  dequantize_q8(r.q.data(), r.scales.data(), rows, cols, r.back.data());
  return r;
}

// Each block's scale is its largest magnitude / 127, and every value comes back within half a
// step of it.
void expect_within_bound(const std::vector<float>& w, const Quantized& r, int64_t rows,
                         int64_t cols) {
  const int64_t nb = q8_blocks(cols);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t b = 0; b < nb; ++b) {
      float amax = 0.0f;
      for (int64_t c = b * kQ8Block; c < std::min(cols, (b + 1) * kQ8Block); ++c)
        amax = std::max(amax, std::abs(w[static_cast<size_t>(i * cols + c)]));
      const float s = r.scales[static_cast<size_t>(i * nb + b)];
      EXPECT_FLOAT_EQ(s, amax / 127.0f) << "row " << i << " block " << b;
      for (int64_t c = b * kQ8Block; c < std::min(cols, (b + 1) * kQ8Block); ++c) {
        const auto at = static_cast<size_t>(i * cols + c);
        EXPECT_GE(r.q[at], -127);
        EXPECT_LE(std::abs(r.back[at] - w[at]), 0.5f * s * (1.0f + 1e-5f) + 1e-30f)
            << "row " << i << " col " << c;
      }
    }
  }
}

TEST(Quantize, RandomMatricesComeBackWithinHalfAStep) {
  Rng rng(5);
  for (const auto& [rows, cols] :
       {std::pair<int64_t, int64_t>{1, 1}, {3, 31}, {4, 32}, {5, 33}, {2, 95}, {7, 64}, {1, 200}}) {
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (float& v : w) v = rng.normal() * 0.3f;
    const Quantized r = round_trip(w, rows, cols);
    expect_within_bound(w, r, rows, cols);
  }
}

TEST(Quantize, TheLargestMagnitudeOfABlockIsExact) {
  std::vector<float> w(40, 0.25f);
  w[3] = -2.0f;  // block 0's largest
  w[35] = 1.5f;  // block 1 (8 values)'s largest
  const Quantized r = round_trip(w, 1, 40);
  EXPECT_EQ(r.q[3], -127);
  EXPECT_EQ(r.q[35], 127);
  EXPECT_FLOAT_EQ(r.back[3], -2.0f);
  EXPECT_FLOAT_EQ(r.back[35], 1.5f);
  EXPECT_EQ(r.q[0], static_cast<int8_t>(std::round(0.25f / (2.0f / 127.0f))));
}

TEST(Quantize, ABlockOfZerosHasScaleZero) {
  std::vector<float> w(64, 0.0f);
  for (int i = 32; i < 64; ++i) w[static_cast<size_t>(i)] = static_cast<float>(i - 48);
  const Quantized r = round_trip(w, 1, 64);
  EXPECT_EQ(r.scales[0], 0.0f);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(r.q[static_cast<size_t>(i)], 0);
    EXPECT_EQ(r.back[static_cast<size_t>(i)], 0.0f);
  }
  expect_within_bound(w, r, 1, 64);
}

TEST(Quantize, TinyAndHugeMagnitudesKeepTheirRelativeError) {
  for (const float scale : {1e-30f, 1e-6f, 1e6f, 1e30f}) {
    Rng rng(9);
    std::vector<float> w(96);
    for (float& v : w) v = rng.normal() * scale;
    const Quantized r = round_trip(w, 3, 32);
    expect_within_bound(w, r, 3, 32);
    for (size_t i = 0; i < w.size(); ++i) EXPECT_TRUE(std::isfinite(r.back[i]));
  }
}

}  // namespace
}  // namespace moe
