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
// primitive, A and B read in place through their strides (a transposed operand costs nothing).
// A primitive is compiled for one exact shape, so the dimension that follows the rows an expert
// receives is cut as in gemm_dnnl.cpp (blocks of kBlockRows, then a multiple of kRowQuantum, then
// the rest): m when A is not transposed (forward products and dx, whose m is the row count), and
// k when it is (the weight gradients dW += dYᵀ·X, whose k is the row count and whose m is a
// fixed width, run whole); the k blocks after the first accumulate
// (beta = 1). At most 48 primitives per (fixed dims, strides, alpha, beta) then exist, created on
// first use and cached per thread; the key records whether the call is inside a parallel region
// (see gemm_dnnl.cpp for why).
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n], rows stored with strides lda, ldb, ldc.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <dnnl.hpp>
#include <map>
#include <tuple>

#include "moe/kernels/bf16.h"

namespace moe {

namespace {

constexpr int64_t kBlockRows = 512;
constexpr int64_t kRowQuantum = 32;
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

GemmShape shape_of(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c) {
  MOE_CHECK(a.dtype() == DType::kBF16 && b.dtype() == DType::kBF16 && c.dtype() == DType::kF32,
            "gemm_bf16: A {} B {} C {} (want BF16, BF16, F32)", dtype_name(a.dtype()),
            dtype_name(b.dtype()), dtype_name(c.dtype()));
  GemmShape s;
  s.trans_a = trans_a;
  s.trans_b = trans_b;
  s.m = trans_a ? a.cols() : a.rows();
  s.k = trans_a ? a.rows() : a.cols();
  s.n = trans_b ? b.rows() : b.cols();
  const int64_t kb = trans_b ? b.cols() : b.rows();
  MOE_CHECK(kb == s.k && c.rows() == s.m && c.cols() == s.n, "gemm_bf16 shapes: A{} {} B{} {} C{}",
            a.shape().str(), trans_a ? "T" : "N", b.shape().str(), trans_b ? "T" : "N",
            c.shape().str());
  s.lda = a.cols();
  s.ldb = b.cols();
  s.ldc = c.cols();
  return s;
}

// Rows of the next block: kBlockRows, else a multiple of kRowQuantum, else what is left.
int64_t block_of(int64_t left) {
  return left >= kBlockRows    ? kBlockRows
         : left >= kRowQuantum ? left / kRowQuantum * kRowQuantum
                               : left;
}

// C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C for one (m, k) block.
class Bf16MatmulCache {
 public:
  static Bf16MatmulCache& this_thread() {
    thread_local Bf16MatmulCache cache;
    return cache;
  }

  void run(const GemmShape& s, GemmScale scale, const bf16* a, const bf16* b, float* c) {
    const Key key{s.m,
                  s.n,
                  s.k,
                  s.lda,
                  s.ldb,
                  s.ldc,
                  s.trans_a,
                  s.trans_b,
                  scale.alpha,
                  scale.beta,
                  omp_in_parallel() != 0};
    auto it = entries_.find(key);
    if (it == entries_.end()) it = entries_.emplace(key, create(s, scale)).first;
    Entry& e = it->second;
    e.a.set_data_handle(const_cast<bf16*>(a));
    e.b.set_data_handle(const_cast<bf16*>(b));
    e.c.set_data_handle(c);
    const dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, e.a.get()}, {DNNL_ARG_WEIGHTS, e.b.get()}, {DNNL_ARG_DST, e.c.get()}};
    const dnnl_status_t st = dnnl_primitive_execute(e.prim.get(), stream_.get(), 3, args);
    MOE_CHECK(st == dnnl_success, "oneDNN bf16 matmul failed with status {} (m={} n={} k={})",
              static_cast<int>(st), s.m, s.n, s.k);
    stream_.wait();
  }

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, float,
                         float, bool>;
  struct Entry {
    dnnl::matmul prim;
    dnnl::memory a, b, c;
  };

  Entry create(const GemmShape& s, GemmScale scale) {
    using dims = dnnl::memory::dims;
    constexpr auto bf = dnnl::memory::data_type::bf16;
    constexpr auto f32 = dnnl::memory::data_type::f32;
    try {
      // op(A) [m, k]: row-major [m, k] has strides (lda, 1); stored [k, m] it has (1, lda).
      const dnnl::memory::desc a_md(dims{s.m, s.k}, bf,
                                    s.trans_a ? dims{1, s.lda} : dims{s.lda, 1});
      const dnnl::memory::desc b_md(dims{s.k, s.n}, bf,
                                    s.trans_b ? dims{1, s.ldb} : dims{s.ldb, 1});
      const dnnl::memory::desc c_md(dims{s.m, s.n}, f32, dims{s.ldc, 1});
      dnnl::primitive_attr attr;
      if (scale.alpha != 1.0f) attr.set_output_scales(0, {scale.alpha});
      if (scale.beta != 0.0f) {
        dnnl::post_ops ops;
        ops.append_sum(scale.beta);
        attr.set_post_ops(ops);
      }
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine_);
      return Entry{dnnl::matmul(pd), dnnl::memory(a_md, engine_, DNNL_MEMORY_NONE),
                   dnnl::memory(b_md, engine_, DNNL_MEMORY_NONE),
                   dnnl::memory(c_md, engine_, DNNL_MEMORY_NONE)};
    } catch (const dnnl::error& e) {
      MOE_CHECK(false, "oneDNN bf16 matmul m={} n={} k={} {}{} lda={} ldb={} ldc={}: {}", s.m, s.n,
                s.k, s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.lda, s.ldb, s.ldc, e.what());
    }
    return {};
  }

  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  std::map<Key, Entry> entries_;
};

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

void gemm_bf16(const GemmShape& s, GemmScale scale, const bf16* a, const bf16* b, float* c) {
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {  // op(A)·op(B) is zero: C = beta · C
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t j = 0; j < s.n; ++j)
        c[i * s.ldc + j] = scale.beta == 0.0f ? 0.0f : scale.beta * c[i * s.ldc + j];
    return;
  }
  Bf16MatmulCache& cache = Bf16MatmulCache::this_thread();
  // k is cut only when A is transposed (k is then the row count of a weight gradient).
  for (int64_t k0 = 0; k0 < s.k;) {
    const int64_t kb = s.trans_a ? block_of(s.k - k0) : s.k;
    const GemmScale block_scale{scale.alpha, k0 == 0 ? scale.beta : 1.0f};
    const bf16* a_k = a + (s.trans_a ? k0 * s.lda : k0);
    const bf16* b_k = b + (s.trans_b ? k0 : k0 * s.ldb);
    for (int64_t m0 = 0; m0 < s.m;) {
      GemmShape blk = s;
      blk.m = s.trans_a ? s.m : block_of(s.m - m0);
      blk.k = kb;
      cache.run(blk, block_scale, a_k + (s.trans_a ? m0 : m0 * s.lda), b_k, c + m0 * s.ldc);
      m0 += blk.m;
    }
    k0 += kb;
  }
}

void gemm_bf16(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm_bf16(shape_of(a, trans_a, b, trans_b, c), scale, a.data<bf16>(), b.data<bf16>(), c.f32());
}

void gemm_bf16_ref(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm_bf16_ref(shape_of(a, trans_a, b, trans_b, c), scale, a.data<bf16>(), b.data<bf16>(),
                c.f32());
}

}  // namespace moe
