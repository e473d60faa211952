// Fast GEMM on oneDNN, which dispatches to its AVX-512 JIT kernels at run time and threads with
// OpenMP (the runtime moe uses everywhere, so nothing oversubscribes the cores).
//
// Two oneDNN paths, chosen by layout and size from measurements on MoE shapes
// (docs/benchmarks.md, "GEMM"):
//   - C = A·Bᵀ with k ≥ 512 and n ≥ 64 (the forward product x·Wᵀ of an expert or a router),
//     when m < 1024 or n < k: oneDNN's matmul primitive (brgemm kernels), 1.1-3.6x faster than
//     dnnl_sgemm, whose transposed-B path is slow for long rows of B, most of all at the few
//     hundred rows an expert sees. With m ≥ 1024 and n ≥ k (an up projection of a large batch)
//     dnnl_sgemm is 5-15% faster again.
//   - everything else (the backward products dy·W and dyᵀ·x, small products): dnnl_sgemm, equal
//     or faster there, and with nothing to compile.
// A matmul primitive is compiled for one exact shape (~0.5-2 ms), and an expert's row count
// changes every step, so rows are cut into blocks of kBlockRows and one last block of the exact
// remaining count: at most kBlockRows distinct primitives per (n, k, strides, alpha, beta),
// created on first use and cached per thread (a primitive then always runs on the thread that
// created it, as oneDNN's shared scratchpad requires, and no lock is needed). Each call reads and
// repacks all of B, so the remainder is never split further: with many experts of a few dozen
// rows each (E = 256, K = 2, T = 8192: ~64 rows), a cut into a multiple of 32 and a tail (71 =
// 64 + 7) made a second pass over the expert's weights for a handful of rows, which cost the
// forward 13% on one thread (docs/benchmarks.md, "Cost per token as E grows"). Row counts of a
// steady routing repeat, so after the first steps every call finds its primitive. The key
// also records whether the call comes from inside a parallel region (the MoE layer running
// experts concurrently): oneDNN sizes a primitive's work split for the threads it sees when it is
// created, so one made for a team of threads is never run by a lone thread, nor the reverse.
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n], rows stored with strides lda, ldb, ldc.
#include <omp.h>
#include <dnnl.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <tuple>

#include "moe/kernels/gemm.h"

namespace moe {

namespace {

constexpr int64_t kBlockRows = 512;   // brgemm reaches its large-M speed at 512 rows
constexpr int64_t kMatmulMinK = 512;  // below it dnnl_sgemm's A·Bᵀ is as fast (measured)
constexpr int64_t kMatmulMinN = 64;
constexpr int64_t kMatmulMaxWideM = 1024;  // from here dnnl_sgemm wins when n ≥ k

bool use_matmul(const GemmShape& s) {
  return !s.trans_a && s.trans_b && s.k >= kMatmulMinK && s.n >= kMatmulMinN &&
         (s.m < kMatmulMaxWideM || s.n < s.k);
}

GemmShape shape_of(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c) {
  GemmShape s;
  s.trans_a = trans_a;
  s.trans_b = trans_b;
  s.m = trans_a ? a.cols() : a.rows();
  s.k = trans_a ? a.rows() : a.cols();
  s.n = trans_b ? b.rows() : b.cols();
  const int64_t kb = trans_b ? b.cols() : b.rows();
  MOE_CHECK(kb == s.k && c.rows() == s.m && c.cols() == s.n, "gemm shapes: A{} {} B{} {} C{}",
            a.shape().str(), trans_a ? "T" : "N", b.shape().str(), trans_b ? "T" : "N",
            c.shape().str());
  s.lda = a.cols();
  s.ldb = b.cols();
  s.ldc = c.cols();
  return s;
}

// C[rows, n] = alpha · A[rows, k] · B[n, k]ᵀ + beta · C through cached matmul primitives.
class MatmulCache {
 public:
  static MatmulCache& this_thread() {
    thread_local MatmulCache cache;
    return cache;
  }

  void run(int64_t rows, const GemmShape& s, GemmScale scale, const float* a, const float* b,
           float* c) {
    const Key key{
        rows, s.n, s.k, s.lda, s.ldb, s.ldc, scale.alpha, scale.beta, omp_in_parallel() != 0};
    auto it = entries_.find(key);
    if (it == entries_.end()) it = entries_.emplace(key, create(rows, s, scale)).first;
    Entry& e = it->second;
    // Pointing the cached memory objects at this call's buffers allocates nothing.
    e.a.set_data_handle(const_cast<float*>(a));
    e.b.set_data_handle(const_cast<float*>(b));
    e.c.set_data_handle(c);
    e.scratch.set_data_handle(scratch_.get());
    const dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, e.a.get()},
                                    {DNNL_ARG_WEIGHTS, e.b.get()},
                                    {DNNL_ARG_DST, e.c.get()},
                                    {DNNL_ARG_SCRATCHPAD, e.scratch.get()}};
    const dnnl_status_t st = dnnl_primitive_execute(e.prim.get(), stream_.get(), 4, args);
    MOE_CHECK(st == dnnl_success, "oneDNN matmul failed with status {} (m={} n={} k={})",
              static_cast<int>(st), rows, s.n, s.k);
    stream_.wait();
  }

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float, float, bool>;
  struct Entry {
    dnnl::matmul prim;
    dnnl::memory a, b, c, scratch;
  };
  struct FreeScratch {
    void operator()(void* p) const { aligned_free(p); }
  };

  Entry create(int64_t rows, const GemmShape& s, GemmScale scale) {
    using dims = dnnl::memory::dims;
    constexpr auto f32 = dnnl::memory::data_type::f32;
    try {
      // B [n, k] row-major read as [k, n] with strides (1, ldb): the transpose costs nothing.
      const dnnl::memory::desc a_md(dims{rows, s.k}, f32, dims{s.lda, 1});
      const dnnl::memory::desc b_md(dims{s.k, s.n}, f32, dims{1, s.ldb});
      const dnnl::memory::desc c_md(dims{rows, s.n}, f32, dims{s.ldc, 1});
      dnnl::primitive_attr attr;
      // The primitive's scratchpad (where it packs B, 4 MiB for an expert's weights) is this
      // thread's buffer, not a block oneDNN would allocate and free on every call: at a few dozen
      // rows a call, fresh pages from each free/allocate cycle cost page faults, and a training
      // step must not touch the heap.
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      if (scale.alpha != 1.0f) attr.set_output_scales(0, {scale.alpha});
      if (scale.beta != 0.0f) {
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
      MOE_CHECK(false, "oneDNN matmul m={} n={} k={} lda={} ldb={} ldc={}: {}", rows, s.n, s.k,
                s.lda, s.ldb, s.ldc, e.what());
    }
    return {};
  }

  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  std::map<Key, Entry> entries_;
  std::unique_ptr<void, FreeScratch> scratch_;  // [scratch_bytes_], shared by this thread's entries
  size_t scratch_bytes_ = 0;
};

void gemm_nt_matmul(const GemmShape& s, GemmScale scale, const float* a, const float* b, float* c) {
  MatmulCache& cache = MatmulCache::this_thread();
  for (int64_t row = 0; row < s.m;) {
    const int64_t rows = std::min(s.m - row, kBlockRows);
    cache.run(rows, s, scale, a + row * s.lda, b, c + row * s.ldc);
    row += rows;
  }
}

}  // namespace

void gemm(const GemmShape& s, GemmScale scale, const float* a, const float* b, float* c) {
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {  // op(A)·op(B) is zero: C = beta · C
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t j = 0; j < s.n; ++j)
        c[i * s.ldc + j] = scale.beta == 0.0f ? 0.0f : scale.beta * c[i * s.ldc + j];
    return;
  }
  if (use_matmul(s)) return gemm_nt_matmul(s, scale, a, b, c);
  const dnnl_status_t st = dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k,
                                      scale.alpha, a, s.lda, b, s.ldb, scale.beta, c, s.ldc);
  MOE_CHECK(st == dnnl_success, "dnnl_sgemm failed with status {} (m={} n={} k={})",
            static_cast<int>(st), s.m, s.n, s.k);
}

void gemm(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm(shape_of(a, trans_a, b, trans_b, c), scale, a.f32(), b.f32(), c.f32());
}

void gemm_ref(Tensor a, bool trans_a, Tensor b, bool trans_b, Tensor c, GemmScale scale) {
  gemm_ref(shape_of(a, trans_a, b, trans_b, c), scale, a.f32(), b.f32(), c.f32());
}

}  // namespace moe
