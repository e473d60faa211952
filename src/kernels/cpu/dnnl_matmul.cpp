// oneDNN matmul primitives for fp32 and bf16 sources, one cache per thread (dnnl_matmul.h).
//
// A primitive is created on first use of its exact shape and kept in the calling thread's cache,
// so it always runs on the thread that created it and no lock is needed. The key records whether
// the call comes from inside a parallel region (the MoE layer running experts concurrently):
// oneDNN sizes a primitive's work split for the threads it sees when it is created, so one made
// for a team of threads is never run by a lone thread, nor the reverse.
//
// Scratchpad (where the matmul packs B: 4 MiB for an expert's 2048 x 512 fp32 weights): every
// primitive runs with scratchpad_mode::user on one buffer per thread, which grows only while
// primitives are created, so the memory belongs to moe, stays mapped whichever primitive runs,
// and no execution can ask oneDNN for one. What an execution still allocates inside oneDNN 2.6
// is small (measured: its argument map, a 104-byte bucket array and a 32-byte node per argument,
// and a 32-byte closure for its parallel body); tests/moe/moe_alloc_test.cpp counts it.
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n], rows stored with strides lda, ldb, ldc.
#include "dnnl_matmul.h"

#include <omp.h>

#include <algorithm>
#include <dnnl.hpp>
#include <map>
#include <memory>
#include <tuple>
#include <type_traits>

#include "moe/kernels/bf16.h"

namespace moe {

GemmShape gemm_shape_of(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c,
                        const char* what) {
  GemmShape s;
  s.trans_a = trans_a;
  s.trans_b = trans_b;
  s.m = trans_a ? a.cols() : a.rows();
  s.k = trans_a ? a.rows() : a.cols();
  s.n = trans_b ? b.rows() : b.cols();
  const int64_t kb = trans_b ? b.cols() : b.rows();
  MOE_CHECK(kb == s.k && c.rows() == s.m && c.cols() == s.n, "{} shapes: A{} {} B{} {} C{}", what,
            a.shape().str(), trans_a ? "T" : "N", b.shape().str(), trans_b ? "T" : "N",
            c.shape().str());
  s.lda = a.cols();
  s.ldb = b.cols();
  s.ldc = c.cols();
  return s;
}

void scale_output(const GemmShape& s, float beta, float* c) {
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j)
      c[i * s.ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * s.ldc + j];
}

namespace {

class MatmulCache {
 public:
  static MatmulCache& this_thread() {
    thread_local MatmulCache cache;
    return cache;
  }

  void run(const GemmShape& s, GemmScale scale, DType src, const void* a, const void* b, float* c) {
    const Key key{s.m,         s.n,        s.k,
                  s.lda,       s.ldb,      s.ldc,
                  s.trans_a,   s.trans_b,  src == DType::kBF16,
                  scale.alpha, scale.beta, omp_in_parallel() != 0};
    auto it = entries_.find(key);
    if (it == entries_.end()) it = entries_.emplace(key, create(s, scale, src)).first;
    Entry& e = it->second;
    // Pointing the cached memory objects at this call's buffers allocates nothing.
    e.a.set_data_handle(const_cast<void*>(a));
    e.b.set_data_handle(const_cast<void*>(b));
    e.c.set_data_handle(c);
    e.scratch.set_data_handle(scratch_.get());
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, e.a.get()},
                                    {DNNL_ARG_WEIGHTS, e.b.get()},
                                    {DNNL_ARG_DST, e.c.get()},
                                    {DNNL_ARG_SCRATCHPAD, e.scratch.get()}};
    const dnnl_status_t st = dnnl_primitive_execute(e.prim.get(), stream_.get(), 4, args);
    MOE_CHECK(st == dnnl_success, "oneDNN {} matmul failed with status {} (m={} n={} k={})",
              dtype_name(src), static_cast<int>(st), s.m, s.n, s.k);
    stream_.wait();
  }

 private:
  // m, n, k, lda, ldb, ldc, trans_a, trans_b, bf16 source, alpha, beta, inside a parallel region.
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, bool,
                         float, float, bool>;
  struct Entry {
    dnnl::matmul prim;
    dnnl::memory a, b, c, scratch;
  };
  struct FreeScratch {
    void operator()(void* p) const { aligned_free(p); }
  };

  Entry create(const GemmShape& s, GemmScale scale, DType src) {
    using dims = dnnl::memory::dims;
    using dt = dnnl::memory::data_type;
    const dt src_type = src == DType::kBF16 ? dt::bf16 : dt::f32;
    try {
      // op(A) [m, k]: stored row-major [m, k] it has strides (lda, 1), stored [k, m] (1, lda);
      // likewise op(B). A transposed operand is read in place: the transpose costs nothing.
      const dnnl::memory::desc a_md(dims{s.m, s.k}, src_type,
                                    s.trans_a ? dims{1, s.lda} : dims{s.lda, 1});
      const dnnl::memory::desc b_md(dims{s.k, s.n}, src_type,
                                    s.trans_b ? dims{1, s.ldb} : dims{s.ldb, 1});
      const dnnl::memory::desc c_md(dims{s.m, s.n}, dt::f32, dims{s.ldc, 1});
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      if (scale.alpha != 1.0f) attr.set_output_scales(0, {scale.alpha});
      if (scale.beta != 0.0f) {  // C = alpha·A·B + beta·C: the sum post-op reads C first
        dnnl::post_ops ops;
        ops.append_sum(scale.beta);
        attr.set_post_ops(ops);
      }
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine_);
      const dnnl::memory::desc scratch_md = pd.scratchpad_desc();
      if (scratch_md.get_size() > scratch_bytes_) {  // grows only while primitives are created
        scratch_.reset(aligned_alloc_bytes(scratch_md.get_size()));
        scratch_bytes_ = scratch_md.get_size();
      }
      return Entry{dnnl::matmul(pd), dnnl::memory(a_md, engine_, DNNL_MEMORY_NONE),
                   dnnl::memory(b_md, engine_, DNNL_MEMORY_NONE),
                   dnnl::memory(c_md, engine_, DNNL_MEMORY_NONE),
                   dnnl::memory(scratch_md, engine_, DNNL_MEMORY_NONE)};
    } catch (const dnnl::error& e) {
      MOE_CHECK(false, "oneDNN {} matmul m={} n={} k={} {}{} lda={} ldb={} ldc={}: {}",
                dtype_name(src), s.m, s.n, s.k, s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.lda,
                s.ldb, s.ldc, e.what());
    }
    return {};
  }

  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  std::map<Key, Entry> entries_;
  std::unique_ptr<void, FreeScratch> scratch_;  // [scratch_bytes_], shared by this thread's entries
  size_t scratch_bytes_ = 0;
};

}  // namespace

void matmul_exact(const GemmShape& s, GemmScale scale, DType src, const void* a, const void* b,
                  float* c) {
  MOE_CHECK(src == DType::kF32 || src == DType::kBF16, "oneDNN matmul: source type {}",
            dtype_name(src));
  MatmulCache::this_thread().run(s, scale, src, a, b, c);
}

namespace {

// Rows of the next block out of `left`: a full block, else all that is left when a further block
// would re-read a large operand in full, else (a small operand) a multiple of kRowQuantum, then
// the tail.
int64_t next_block(int64_t left, bool exact_tail) {
  if (left >= kMatmulBlockRows) return kMatmulBlockRows;
  if (exact_tail || left < kRowQuantum) return left;
  return left / kRowQuantum * kRowQuantum;
}

}  // namespace

template <typename T>
void matmul_blocked(const GemmShape& s, GemmScale scale, const T* a, const T* b, float* c) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>);
  constexpr DType kSrc = std::is_same_v<T, float> ? DType::kF32 : DType::kBF16;
  // The row dimension is m (A not transposed) or k (A transposed); the other is run whole. Each
  // block re-reads B [k, n] in full when m is cut, C [m, n] (read and written) when k is.
  const int64_t rows = s.trans_a ? s.k : s.m;
  const bool exact_tail = (s.trans_a ? s.m : s.k) * s.n >= kExactTailMinElements;
  for (int64_t r0 = 0; r0 < rows;) {
    GemmShape blk = s;
    const int64_t r = next_block(rows - r0, exact_tail);
    if (s.trans_a) {  // A [k, m] and B's k rows (or columns) from r0; C accumulates after block 0
      blk.k = r;
      matmul_exact(blk, {scale.alpha, r0 == 0 ? scale.beta : 1.0f}, kSrc, a + r0 * s.lda,
                   b + (s.trans_b ? r0 : r0 * s.ldb), c);
    } else {  // rows r0.. of A and C
      blk.m = r;
      matmul_exact(blk, scale, kSrc, a + r0 * s.lda, b, c + r0 * s.ldc);
    }
    r0 += r;
  }
}

template void matmul_blocked<float>(const GemmShape&, GemmScale, const float*, const float*,
                                    float*);
template void matmul_blocked<bf16>(const GemmShape&, GemmScale, const bf16*, const bf16*, float*);

}  // namespace moe
