// Block int8 quantisation (moe/kernels/quantize.h): the error bound of every value, the scales,
// the range of q, blocks of zeros, a row whose length is not a multiple of the block, and values
// far from 1 in both directions; the batch-1 product over Q8 blocks against gemv_bt and the
// reference.
//
// Dims: rows · cols values; scales [rows, ceil(cols / 32)].
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "moe/core/rng.h"
#include "moe/kernels/gemm.h"
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

// The batch-1 product over Q8 blocks: for each size around the 16 lanes, the 32-value blocks and
// the four-row steps, and for alpha/beta, the bits of gemv_bt on the dequantised matrix, and the
// reference product within float rounding.
void check_gemv_q8(int64_t n, int64_t k, GemmScale scale) {
  SCOPED_TRACE(::testing::Message()
               << "n=" << n << " k=" << k << " alpha=" << scale.alpha << " beta=" << scale.beta);
  Rng rng(static_cast<uint64_t>(n * 7919 + k));
  std::vector<float> a(static_cast<size_t>(k)), w(static_cast<size_t>(n * k));
  for (float& v : a) v = rng.normal();
  for (float& v : w) v = rng.normal();
  const Quantized r = round_trip(w, n, k);
  std::vector<float> c0(static_cast<size_t>(n));
  for (float& v : c0) v = rng.normal();
  std::vector<float> fast = c0, same = c0, want = c0;
  gemv_q8_bt(n, k, scale, a.data(), r.q.data(), r.scales.data(), fast.data());
  gemv_bt(n, k, scale, a.data(), r.back.data(), k, same.data());
  gemv_q8_bt_ref(n, k, scale, a.data(), r.q.data(), r.scales.data(), want.data());
  for (size_t i = 0; i < fast.size(); ++i) {
    EXPECT_EQ(fast[i], same[i]) << "output " << i;
    EXPECT_NEAR(fast[i], want[i], 1e-5 * std::sqrt(double(k)) * (1 + std::abs(want[i])))
        << "output " << i;
  }
}

TEST(GemvQ8, IsGemvOnTheDequantisedMatrixBitForBit) {
  for (int64_t n : {1, 3, 4, 5, 8, 9, 63})
    for (int64_t k : {1, 15, 16, 17, 31, 32, 33, 64, 65, 515}) check_gemv_q8(n, k, {});
  check_gemv_q8(37, 70, {-0.5f, 1.0f});
  check_gemv_q8(37, 70, {2.0f, 0.25f});
}

TEST(GemvQ8, SharedOverThreadsGivesTheBitsOfOne) {
  const int64_t n = 2053, k = 515;  // n not a multiple of 4 or 2, k of 16 or 32
  Rng rng(4);
  std::vector<float> a(static_cast<size_t>(k)), w(static_cast<size_t>(n * k));
  for (float& v : a) v = 2 * rng.uniform() - 1;
  for (float& v : w) v = 2 * rng.uniform() - 1;
  const Quantized r = round_trip(w, n, k);
  std::vector<float> one(static_cast<size_t>(n)), two(static_cast<size_t>(n));
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  gemv_q8_bt(n, k, {}, a.data(), r.q.data(), r.scales.data(), one.data());
  omp_set_num_threads(2);
  gemv_q8_bt(n, k, {}, a.data(), r.q.data(), r.scales.data(), two.data());
  omp_set_num_threads(threads);
  EXPECT_EQ(one, two);
  check_gemv_q8(n, k, {});
}

}  // namespace
}  // namespace moe
