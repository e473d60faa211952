// Weight quantisation: fp32 matrices to int8 in blocks of 32 (the Q8_0 scheme of llama.cpp's GGUF
// format, with an fp32 scale) and back, and the batch-1 product over such a matrix.
//
// A matrix of `rows` rows of `cols` values (the last dimension of a tensor, contiguous) is cut
// into blocks of kQ8Block values along each row, the last block of a row shorter when cols is not
// a multiple of it. Block b of row r has the scale s = max |w| / 127 over its values and stores
// q = round(w / s) (to nearest, ties away from zero), an integer in [−127, 127]; a block of zeros
// has s = 0 and q = 0. Dequantising gives q · s, within s / 2 = max |w| / 254 of each value: a
// relative error of at most 1/254 of the block's largest magnitude.
//
// Dims: rows · cols values; scales [rows, q8_blocks(cols)].
#pragma once

#include <cstdint>

#include "moe/kernels/gemm.h"

namespace moe {

inline constexpr int64_t kQ8Block = 32;

// Blocks of kQ8Block in a row of `cols` values.
inline int64_t q8_blocks(int64_t cols) {
  return (cols + kQ8Block - 1) / kQ8Block;
}

// w (finite) → q, scales.
void quantize_q8(const float* w, int64_t rows, int64_t cols, int8_t* q, float* scales);
// q, scales → w.
void dequantize_q8(const int8_t* q, const float* scales, int64_t rows, int64_t cols, float* w);

// The batch-1 product over a Q8 matrix: c[n] = alpha · a[k] · B[n, k]ᵀ + beta · c, B the
// dequantised q [n, k] with scales [n, q8_blocks(k)]. Bit for bit gemv_bt (gemm.h) on
// dequantize_q8's matrix, thread count included, while reading a quarter of its bytes: what
// decoding a token costs is the bytes of its weights (src/kernels/cpu/gemv.cpp).
// gemv_q8_bt_ref: dequantise, then gemm_ref.
void gemv_q8_bt(int64_t n, int64_t k, GemmScale scale, const float* a, const int8_t* q,
                const float* scales, float* c);
void gemv_q8_bt_ref(int64_t n, int64_t k, GemmScale scale, const float* a, const int8_t* q,
                    const float* scales, float* c);

}  // namespace moe
