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
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

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

#if defined(__AVX512F__)
// f32_to_bf16 on 16 lanes, the lanes outside `mask` read as 0.0f (they give 0).
inline __m256i round16(const float* src, __mmask16 mask = kAll) {
  const __m512i u = _mm512_maskz_loadu_epi32(mask, src);
#if defined(__AVX512BF16__)
  // vcvtneps2bf16 rounds to nearest even and quiets NaN as f32_to_bf16 does, but reads denormal
  // inputs as zero: lanes holding one (exponent 0, not ±0) are redone in integer arithmetic.
  __m256i r = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_castsi512_ps(u)));
  const __mmask16 denormal =
      _mm512_mask_cmpneq_epi32_mask(_mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000)),
                                    _mm512_maskz_slli_epi32(kAll, u, 1), _mm512_setzero_si512());
  if (denormal != 0) r = _mm256_mask_blend_epi16(denormal, r, round_lanes(u));
  return r;
#else
  return round_lanes(u);
#endif
}

inline __mmask16 first_lanes(int64_t n) {  // the lowest min(n, 16) lanes (none if n ≤ 0)
  return n <= 0 ? 0 : n >= 16 ? kAll : static_cast<__mmask16>((1u << n) - 1u);
}
#endif

void convert_block(int64_t n, const float* src, bf16* dst) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), round16(src + i));
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

// Row counts block_of() hands the matmul: 1..31, the multiples of 32 below 512, and 512.
std::vector<int64_t> block_row_counts() {
  std::vector<int64_t> rows;
  for (int64_t m = 1; m < kRowQuantum; ++m) rows.push_back(m);
  for (int64_t m = kRowQuantum; m <= kBlockRows; m += kRowQuantum) rows.push_back(m);
  return rows;
}

// The layout oneDNN's bf16 matmul asks for (format_tag::any) for B [k, n] when A is plain
// row-major, if it is one and the same at every row count of block_row_counts(), with and
// without the beta sum; nullopt if not (the weight then stays plain). Computed once per (k, n)
// from primitive descriptors alone (no kernel is compiled).
std::optional<dnnl::memory::desc> packed_layout(int64_t k, int64_t n) {
  static std::mutex mutex;
  static std::map<std::pair<int64_t, int64_t>, std::optional<dnnl::memory::desc>> layouts;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto found = layouts.find({k, n});
  if (found != layouts.end()) return found->second;
  using dims = dnnl::memory::dims;
  constexpr auto bf = dnnl::memory::data_type::bf16;
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  std::optional<dnnl::memory::desc> layout;
  bool uniform = true;
  try {
    const dnnl::memory::desc b_any(dims{k, n}, bf, dnnl::memory::format_tag::any);
    for (const int64_t m : block_row_counts()) {
      for (const float beta : {0.0f, 1.0f}) {
        const dnnl::memory::desc a_md(dims{m, k}, bf, dims{k, 1});
        const dnnl::memory::desc c_md(dims{m, n}, dnnl::memory::data_type::f32, dims{n, 1});
        dnnl::primitive_attr attr;
        if (beta != 0.0f) {
          dnnl::post_ops ops;
          ops.append_sum(beta);
          attr.set_post_ops(ops);
        }
        const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_any, c_md), attr, engine);
        const dnnl::memory::desc chosen = pd.weights_desc();
        if (!layout) layout = chosen;
        uniform = uniform && chosen == *layout;
      }
    }
  } catch (const dnnl::error&) {
    uniform = false;
  }
  if (!uniform) layout.reset();
  layouts.emplace(std::make_pair(k, n), layout);
  return layout;
}

// C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C for one (m, k) block.
class Bf16MatmulCache {
 public:
  static Bf16MatmulCache& this_thread() {
    thread_local Bf16MatmulCache cache;
    return cache;
  }

  // packed_b: B is in packed_layout(s.k, s.n) (s.ldb and s.trans_b then unused).
  void run(const GemmShape& s, GemmScale scale, const bf16* a, const bf16* b, float* c,
           bool packed_b = false) {
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
                  omp_in_parallel() != 0,
                  packed_b};
    auto it = entries_.find(key);
    if (it == entries_.end()) it = entries_.emplace(key, create(s, scale, packed_b)).first;
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
                         float, bool, bool>;
  struct Entry {
    dnnl::matmul prim;
    dnnl::memory a, b, c;
  };

  Entry create(const GemmShape& s, GemmScale scale, bool packed_b) {
    using dims = dnnl::memory::dims;
    constexpr auto bf = dnnl::memory::data_type::bf16;
    constexpr auto f32 = dnnl::memory::data_type::f32;
    try {
      // op(A) [m, k]: row-major [m, k] has strides (lda, 1); stored [k, m] it has (1, lda).
      const dnnl::memory::desc a_md(dims{s.m, s.k}, bf,
                                    s.trans_a ? dims{1, s.lda} : dims{s.lda, 1});
      const dnnl::memory::desc b_md =
          packed_b
              ? *packed_layout(s.k, s.n)
              : dnnl::memory::desc(dims{s.k, s.n}, bf, s.trans_b ? dims{1, s.ldb} : dims{s.ldb, 1});
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

// W [rows, cols] row-major seen as B [k, n]: Wᵀ when transposed (strides 1, cols), else W.
dnnl::memory::desc plain_b_desc(int64_t rows, int64_t cols, bool transposed) {
  using dims = dnnl::memory::dims;
  return transposed
             ? dnnl::memory::desc(dims{cols, rows}, dnnl::memory::data_type::bf16, dims{1, cols})
             : dnnl::memory::desc(dims{rows, cols}, dnnl::memory::data_type::bf16, dims{cols, 1});
}

// oneDNN's layout for a bf16 B [k, n] on AVX512-BF16 (tag 16a64b2a): blocks of 32 k × 64 n,
// k-blocks 2048 values apart and n-blocks `n_block_stride` apart, each block 16 rows of 64 pairs
// (k even, k odd):
//   B[kk][nn] at (nn / 64)·n_block_stride + (kk / 32)·2048 + (kk % 32 / 2)·128 + (nn % 64)·2
//                + kk % 2,
// padding (k to a multiple of 32, n to 64) zero. Returns n_block_stride if `layout` is that one,
// else 0 (the weight is then laid out by a oneDNN reorder).
int64_t vnni_n_block_stride(const dnnl::memory::desc& layout) {
  const dnnl_memory_desc_t& d = layout.data;
  if (d.format_kind != dnnl_blocked || d.ndims != 2 || d.offset0 != 0) return 0;
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  const bool tag = b.inner_nblks == 3 && b.inner_blks[0] == 16 && b.inner_idxs[0] == 0 &&
                   b.inner_blks[1] == 64 && b.inner_idxs[1] == 1 && b.inner_blks[2] == 2 &&
                   b.inner_idxs[2] == 0;
  if (!tag || b.strides[0] != 2048 || d.padded_dims[0] % 32 != 0 || d.padded_dims[1] % 64 != 0 ||
      b.strides[1] < d.padded_dims[0] * 64)
    return 0;
#if defined(__AVX512F__)
  return b.strides[1];
#else
  return 0;
#endif
}

#if defined(__AVX512F__)
// W [rows, cols] fp32 -> B = W (k = rows, n = cols) in the layout above, rounded as
// f32_to_bf16: rows 2i and 2i + 1 interleave into one 128-value row of a block, 16 columns at a
// time (a missing odd row and the columns past `cols` give the padding's zeros).
void pack_rows(const float* w, int64_t rows, int64_t cols, int64_t n_block_stride, bf16* dst) {
  const int64_t pairs = (rows + 1) / 2;
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && \
                                              rows * cols >= 2 * kConvertBlock)
  for (int64_t i = 0; i < pairs; ++i) {
    const int64_t r = 2 * i;
    const float* even = w + r * cols;
    const float* odd = even + cols;
    bf16* row = dst + (r / 32) * 2048 + (r % 32 / 2) * 128;
    for (int64_t c = 0; c < cols; c += 16) {
      const __mmask16 m = first_lanes(cols - c), m_odd = r + 1 < rows ? m : 0;
      const __m512i lo = _mm512_maskz_cvtepu16_epi32(kAll, round16(even + c, m));
      const __m512i hi = _mm512_maskz_slli_epi32(
          kAll, _mm512_maskz_cvtepu16_epi32(kAll, round16(odd + c, m_odd)), 16);
      _mm512_storeu_si512(row + (c / 64) * n_block_stride + (c % 64) * 2, _mm512_or_si512(lo, hi));
    }
  }
}

// W [rows, cols] fp32 -> B = Wᵀ (k = cols, n = rows) in the layout above: 32 values of a row of
// W are 16 (even, odd) pairs of one column of B, which go 64 pairs apart (a scatter).
void pack_cols(const float* w, int64_t rows, int64_t cols, int64_t n_block_stride, bf16* dst) {
  const __m512i pair_offsets =
      _mm512_set_epi32(960, 896, 832, 768, 704, 640, 576, 512, 448, 384, 320, 256, 192, 128, 64, 0);
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && \
                                              rows * cols >= 2 * kConvertBlock)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    auto* col = reinterpret_cast<int32_t*>(dst + (r / 64) * n_block_stride + (r % 64) * 2);
    for (int64_t c = 0; c < cols; c += 32) {
      const __m256i first = round16(row + c, first_lanes(cols - c));
      const __m256i second = round16(row + c + 16, first_lanes(cols - c - 16));
      const __m512i pairs =
          _mm512_maskz_inserti64x4(0xff, _mm512_zextsi256_si512(first), second, 1);
      _mm512_i32scatter_epi32(col + (c / 32) * 1024, pair_offsets, pairs, 4);
    }
  }
}
#endif

// Reorders between a weight's plain bf16 form and its packed layout, cached per thread like the
// matmul primitives.
class Bf16ReorderCache {
 public:
  static Bf16ReorderCache& this_thread() {
    thread_local Bf16ReorderCache cache;
    return cache;
  }

  // W [rows, cols] plain bf16 -> packed (to_packed) or back.
  void run(int64_t rows, int64_t cols, bool transposed, bool to_packed, const void* src,
           void* dst) {
    const Key key{rows, cols, transposed, to_packed, omp_in_parallel() != 0};
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      const int64_t k = transposed ? cols : rows, n = transposed ? rows : cols;
      Entry e{dnnl::memory(plain_b_desc(rows, cols, transposed), engine_, DNNL_MEMORY_NONE),
              dnnl::memory(*packed_layout(k, n), engine_, DNNL_MEMORY_NONE),
              {}};
      e.prim = to_packed ? dnnl::reorder(e.plain, e.packed) : dnnl::reorder(e.packed, e.plain);
      it = entries_.emplace(key, std::move(e)).first;
    }
    Entry& e = it->second;
    dnnl::memory& from = to_packed ? e.plain : e.packed;
    dnnl::memory& to = to_packed ? e.packed : e.plain;
    from.set_data_handle(const_cast<void*>(src));
    to.set_data_handle(dst);
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, from.get()}, {DNNL_ARG_TO, to.get()}};
    const dnnl_status_t st = dnnl_primitive_execute(e.prim.get(), stream_.get(), 2, args);
    MOE_CHECK(st == dnnl_success, "oneDNN bf16 weight reorder failed with status {}",
              static_cast<int>(st));
    stream_.wait();
  }

  // A plain [rows, cols] bf16 buffer of this thread's, for the rounding before the reorder.
  bf16* scratch(int64_t n) {
    if (scratch_.numel() < n) scratch_ = TensorBuffer(Shape{n}, DType::kBF16);
    return scratch_.view().data<bf16>();
  }

 private:
  using Key = std::tuple<int64_t, int64_t, bool, bool, bool>;
  struct Entry {
    dnnl::memory plain, packed;
    dnnl::reorder prim;
  };

  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  std::map<Key, Entry> entries_;
  TensorBuffer scratch_;  // [rows · cols] of the largest weight seen
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

Bf16Weight::Bf16Weight(int64_t rows, int64_t cols, bool transposed)
    : rows_(rows), cols_(cols), transposed_(transposed) {
  MOE_CHECK(rows > 0 && cols > 0, "Bf16Weight of [{}, {}]", rows, cols);
  const int64_t k = transposed ? cols : rows, n = transposed ? rows : cols;
  const std::optional<dnnl::memory::desc> layout = packed_layout(k, n);
  packed_ = layout.has_value();
  n_block_stride_ = packed_ ? vnni_n_block_stride(*layout) : 0;
  const auto size = packed_ ? static_cast<int64_t>(layout->get_size()) : rows * cols * 2;
  data_ = TensorBuffer(Shape{(size + 1) / 2}, DType::kBF16);  // [bytes / 2]
}

int64_t Bf16Weight::bytes() const {
  return static_cast<int64_t>(data_.view().nbytes());
}

void Bf16Weight::round_from(Tensor w) {
  MOE_CHECK(w.dtype() == DType::kF32 && w.rows() == rows_ && w.cols() == cols_,
            "Bf16Weight [{}, {}]: rounding from {} {}", rows_, cols_, w.shape().str(),
            dtype_name(w.dtype()));
  auto* dst = data_.view().data<bf16>();
  if (!packed_) return convert_to_bf16(rows_ * cols_, w.f32(), dst);
#if defined(__AVX512F__)
  if (n_block_stride_ > 0) {  // the known layout: rounded and placed in one pass
    if (transposed_)
      pack_cols(w.f32(), rows_, cols_, n_block_stride_, dst);
    else
      pack_rows(w.f32(), rows_, cols_, n_block_stride_, dst);
    return;
  }
#endif
  // Another layout: round first (f32_to_bf16, the same bits as the plain path), then a reorder that
  // only moves values: oneDNN's own f32 -> bf16 reorder would read denormals as zero.
  Bf16ReorderCache& cache = Bf16ReorderCache::this_thread();
  bf16* plain = cache.scratch(rows_ * cols_);  // [rows, cols]
  convert_to_bf16(rows_ * cols_, w.f32(), plain);
  cache.run(rows_, cols_, transposed_, /*to_packed=*/true, plain, dst);
}

void Bf16Weight::unpack(Tensor w16) const {
  MOE_CHECK(w16.dtype() == DType::kBF16 && w16.rows() == rows_ && w16.cols() == cols_,
            "Bf16Weight [{}, {}]: unpacking into {}", rows_, cols_, w16.shape().str());
  const bf16* src = data_.view().data<bf16>();
  if (!packed_) {
    std::memcpy(w16.raw(), src, static_cast<size_t>(rows_ * cols_) * sizeof(bf16));
    return;
  }
  Bf16ReorderCache::this_thread().run(rows_, cols_, transposed_, /*to_packed=*/false, src,
                                      w16.raw());
}

void Bf16Weight::gemm(Tensor a, Tensor c, GemmScale scale) const {
  const int64_t k = transposed_ ? cols_ : rows_, n = transposed_ ? rows_ : cols_;
  MOE_CHECK(a.dtype() == DType::kBF16 && c.dtype() == DType::kF32 && a.cols() == k &&
                c.rows() == a.rows() && c.cols() == n,
            "Bf16Weight [{}, {}]{} gemm: A {} C {}", rows_, cols_, transposed_ ? "ᵀ" : "",
            a.shape().str(), c.shape().str());
  const bf16* b = data_.view().data<bf16>();
  GemmShape s;
  s.m = a.rows();
  s.k = k;
  s.n = n;
  s.trans_b = transposed_;
  s.lda = a.cols();
  s.ldb = cols_;
  s.ldc = c.cols();
  if (!packed_) return gemm_bf16(s, scale, a.data<bf16>(), b, c.f32());
  if (s.m == 0) return;
  Bf16MatmulCache& cache = Bf16MatmulCache::this_thread();
  for (int64_t m0 = 0; m0 < s.m;) {
    GemmShape blk = s;
    blk.m = block_of(s.m - m0);
    cache.run(blk, scale, a.data<bf16>() + m0 * s.lda, b, c.f32() + m0 * s.ldc, true);
    m0 += blk.m;
  }
}

}  // namespace moe
