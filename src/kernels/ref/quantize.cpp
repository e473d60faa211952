// Block int8 quantisation (moe/kernels/quantize.h) and the reference of the product over it.
// Quantising is for storage: a checkpoint's weights are quantised once when it is written and
// dequantised once when it is loaded, so the plain loops are all the speed this needs.
#include "moe/kernels/quantize.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moe {

void quantize_q8(const float* w, int64_t rows, int64_t cols, int8_t* q, float* scales) {
  const int64_t nb = q8_blocks(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t begin = r * cols + b * kQ8Block;
      const int64_t n = std::min(kQ8Block, cols - b * kQ8Block);
      float amax = 0.0f;
      for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::abs(w[begin + i]));
      const float s = amax / 127.0f;
      scales[r * nb + b] = s;
      for (int64_t i = 0; i < n; ++i) {
        // w / s can exceed 127 by a rounding of s; the clamp keeps q in range.
        const float v = s > 0.0f ? std::round(w[begin + i] / s) : 0.0f;
        q[begin + i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
      }
    }
  }
}

void dequantize_q8(const int8_t* q, const float* scales, int64_t rows, int64_t cols, float* w) {
  const int64_t nb = q8_blocks(cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      w[r * cols + c] = static_cast<float>(q[r * cols + c]) * scales[r * nb + c / kQ8Block];
}

void gemv_q8_bt_ref(int64_t n, int64_t k, GemmScale scale, const float* a, const int8_t* q,
                    const float* scales, float* c) {
  std::vector<float> w(static_cast<size_t>(n * k));
  dequantize_q8(q, scales, n, k, w.data());
  const GemmShape s{
      .m = 1, .n = n, .k = k, .trans_a = false, .trans_b = true, .lda = k, .ldb = k, .ldc = n};
  gemm_ref(s, scale, a, w.data(), c);
}

}  // namespace moe
