// bf16 kernels on the CPU: the fp32 -> bf16 conversion in AVX-512 integer arithmetic and the
// bf16 GEMM on oneDNN's matmul primitive (bf16 source and weights, fp32 destination; on
// AVX512-BF16 machines its brgemm kernels run vdpbf16ps, two bf16 products per fp32 lane).
//
// Conversion: the same result as f32_to_bf16 bit for bit, 16 lanes at a time. With AVX512-BF16,
// vcvtneps2bf16 (round to nearest even, NaN quieted) with the rare denormal lanes redone in
// integer arithmetic, since the instruction reads them as zero; measured here 1.3-2x faster than
// the integer rounding on every lane (0.8 against 1.1 µs for 16 Ki values in cache; beyond the
// cache both are bound by memory and the machine's load). Without it, the integer rounding in
// AVX-512. Large conversions are split over the threads in fixed blocks (a pure map, so the
// split cannot change a bit).
//
// GEMM: oneDNN 2.6 has no public bf16 gemm call, so every layout goes through the matmul
// primitive (dnnl_matmul.cpp, the cache and row blocking shared with the fp32 gemm), A and B read
// in place through their strides (a transposed operand costs nothing). The rows an expert
// receives are m when A is not transposed (forward products and dx) and k when it is (the weight
// gradients dW += dYᵀ·X): that dimension is cut into blocks of 512 rows and the rest, in one
// block of the exact count when the operand each block re-reads is large (dnnl_matmul.h).
//
// Without bf16 matrix instructions (no AVX512-BF16 or AMX, e.g. AVX2-only CPUs, where oneDNN 2.6
// creates no bf16 matmul at all) gemm_bf16 widens op(A) and op(B) to fp32 in per-thread buffers
// that only grow, then runs the fp32 gemm(). Widening is exact and a product of two bf16 values
// is exact in fp32 (8 + 8 significant bits ≤ 24), so this is the same arithmetic as the bf16
// matmul, exact products summed in fp32, in another order; it costs the fp32 GEMM plus one pass
// over both operands. The choice is made once per process (bf16_is_native).
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n], rows stored with strides lda, ldb, ldc.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <dnnl.hpp>
#include <memory>

#include "dnnl_matmul.h"
#include "moe/kernels/bf16.h"

namespace moe {

namespace {

constexpr int64_t kConvertBlock = 1 << 16;  // elements per thread task; below it one thread

#if defined(__AVX512F__)
// Masked forms with every lane set: the unmasked intrinsics pass GCC 12 an "undefined" source
// that its -Wmaybe-uninitialized reports.
constexpr __mmask16 kAll = 0xffff;

// f32_to_bf16 on 16 lanes in integer arithmetic.
inline __m256i round_lanes(__m512i u) {
  const __m512i hi = _mm512_maskz_srli_epi32(kAll, u, 16);
  __m512i r = _mm512_add_epi32(
      u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1))));
  r = _mm512_maskz_srli_epi32(kAll, r, 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x0040));
  return _mm512_maskz_cvtepi32_epi16(kAll, r);  // keeps the low 16 bits of each lane
}
#endif

void convert_block(int64_t n, const float* src, bf16* dst) {
  int64_t i = 0;
#if defined(__AVX512BF16__)
  // vcvtneps2bf16 rounds to nearest even and quiets NaN as f32_to_bf16 does, but reads denormal
  // inputs as zero: lanes holding one (exponent 0, not ±0) are redone in integer arithmetic.
  const __m512i exp_mask = _mm512_set1_epi32(0x7f800000);
  for (; i + 16 <= n; i += 16) {
    const __m512i u = _mm512_loadu_si512(src + i);
    __m256i r = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_castsi512_ps(u)));
    const __mmask16 denormal =
        _mm512_mask_cmpneq_epi32_mask(_mm512_testn_epi32_mask(u, exp_mask),
                                      _mm512_maskz_slli_epi32(kAll, u, 1), _mm512_setzero_si512());
    if (denormal != 0) r = _mm256_mask_blend_epi16(denormal, r, round_lanes(u));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), r);
  }
#elif defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        round_lanes(_mm512_loadu_si512(src + i)));
#endif
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

// True when this CPU has bf16 dot-product instructions (oneDNN's ISA avx512_core_bf16 and every
// level above it, AMX included, carry all of its bits) and oneDNN creates a bf16 matmul for it.
bool probe_native_bf16() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16_isa = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  if ((isa & bf16_isa) != bf16_isa) return false;
  try {
    using dims = dnnl::memory::dims;
    using dt = dnnl::memory::data_type;
    const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    const dnnl::memory::desc a(dims{16, 32}, dt::bf16, dims{32, 1});
    const dnnl::memory::desc b(dims{32, 16}, dt::bf16, dims{16, 1});
    const dnnl::memory::desc c(dims{16, 16}, dt::f32, dims{16, 1});
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), engine);
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

std::atomic<bool> g_force_widened{false};

struct FreeFloats {
  void operator()(float* p) const { aligned_free(p); }
};

// A thread's fp32 copy of one operand: grows to the largest size asked for and is kept, so a
// steady-state step allocates nothing.
class WidenedOperand {
 public:
  float* reserve(int64_t n) {
    if (n > capacity_) {
      data_.reset(static_cast<float*>(aligned_alloc_bytes(static_cast<size_t>(n) * sizeof(float))));
      capacity_ = n;
    }
    return data_.get();
  }

 private:
  std::unique_ptr<float, FreeFloats> data_;
  int64_t capacity_ = 0;
};

// The stored matrix [rows, cols] of row stride ld, widened into dst [rows, cols] (stride cols).
void widen(int64_t rows, int64_t cols, int64_t ld, const bf16* src, float* dst) {
  const bool split = rows * cols >= 2 * kConvertBlock && rows > 1 && !omp_in_parallel();
#pragma omp parallel for schedule(static) if (split)
  for (int64_t i = 0; i < rows; ++i) convert_to_f32(cols, src + i * ld, dst + i * cols);
}

// gemm_bf16 without bf16 instructions: both operands widened (exactly), then the fp32 product.
// Operands keep their stored layout; only the strides become dense. C is cut into fixed blocks
// of kFixedBlock columns or rows, each computed by one single-threaded sgemm: oneDNN's threaded
// sgemm on AVX2 splits the k sum over threads, which would make the bits depend on the thread
// count and on whether the experts run concurrently; fixed blocks give the same bits however
// the blocks are shared out.
void gemm_widened(const GemmShape& s, GemmScale scale, const bf16* a, const bf16* b, float* c) {
  thread_local WidenedOperand a32, b32;
  const int64_t a_rows = s.trans_a ? s.k : s.m, a_cols = s.trans_a ? s.m : s.k;
  const int64_t b_rows = s.trans_b ? s.n : s.k, b_cols = s.trans_b ? s.k : s.n;
  float* wa = a32.reserve(a_rows * a_cols);  // op(A)'s storage [a_rows, a_cols]
  float* wb = b32.reserve(b_rows * b_cols);  // op(B)'s storage [b_rows, b_cols]
  widen(a_rows, a_cols, s.lda, a, wa);
  widen(b_rows, b_cols, s.ldb, b, wb);
  GemmShape w = s;
  w.lda = a_cols;
  w.ldb = b_cols;
  sgemm_fixed_blocks(w, scale, wa, wb, c);
}

GemmShape shape_of(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c) {
  MOE_CHECK(a.dtype() == DType::kBF16 && b.dtype() == DType::kBF16 && c.dtype() == DType::kF32,
            "gemm_bf16: A {} B {} C {} (want BF16, BF16, F32)", dtype_name(a.dtype()),
            dtype_name(b.dtype()), dtype_name(c.dtype()));
  return gemm_shape_of(a, trans_a, b, trans_b, c, "gemm_bf16");
}

}  // namespace

void convert_to_bf16(int64_t n, const float* src, bf16* dst) {
  if (n >= 2 * kConvertBlock && !omp_in_parallel()) {
    const int64_t blocks = (n + kConvertBlock - 1) / kConvertBlock;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t begin = i * kConvertBlock;
      convert_block(std::min(kConvertBlock, n - begin), src + begin, dst + begin);
    }
    return;
  }
  convert_block(n, src, dst);
}

void convert_to_f32(int64_t n, const bf16* src, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

void convert_to_bf16(Tensor src, Tensor dst) {
  MOE_CHECK(src.numel() == dst.numel(), "convert_to_bf16: {} -> {}", src.shape().str(),
            dst.shape().str());
  convert_to_bf16(src.numel(), src.f32(), dst.data<bf16>());
}

void convert_to_f32(Tensor src, Tensor dst) {
  MOE_CHECK(src.numel() == dst.numel(), "convert_to_f32: {} -> {}", src.shape().str(),
            dst.shape().str());
  convert_to_f32(src.numel(), src.data<bf16>(), dst.f32());
}

bool bf16_is_native() {
  static const bool native = probe_native_bf16();
  return native;
}

void force_bf16_widened_for_testing(bool on) {
  g_force_widened = on;
}

bool bf16_gemm_widens() {
  return g_force_widened.load(std::memory_order_relaxed) || !bf16_is_native();
}

void gemm_bf16(const GemmShape& s, GemmScale scale, const bf16* a, const bf16* b, float* c) {
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) return scale_output(s, scale.beta, c);
  if (bf16_gemm_widens()) return gemm_widened(s, scale, a, b, c);
  matmul_blocked(s, scale, a, b, c);
}

void gemm_bf16(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm_bf16(shape_of(a, trans_a, b, trans_b, c), scale, a.data<bf16>(), b.data<bf16>(), c.f32());
}

void gemm_bf16_ref(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm_bf16_ref(shape_of(a, trans_a, b, trans_b, c), scale, a.data<bf16>(), b.data<bf16>(),
                c.f32());
}

}  // namespace moe
