// Attention in blocks of queries and keys (FlashAttention, Dao 2022; the backward of
// FlashAttention-2, Dao 2023), on the project's gemm, with the naive reference below it.
//
// Dims: B sequences · S positions · H query heads · G kv heads · Dh head width · Sq new queries
// and M cached positions (decode) · Bq queries and Bk keys per block.
#include "moe/layers/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/vec_math.h"
#include "moe/kernels/gemm.h"

namespace moe {

namespace {

// A block of Bq queries against Bk keys: [64, 256] scores stay in L2 with their gradient, and each
// gemm is large enough (64·256·Dh multiply-adds) that its call costs little. Causal blocks end at
// the block's last query, so only the diagonal's triangle of a block is computed and discarded.
constexpr int64_t kQueryBlock = 64;
constexpr int64_t kKeyBlock = 256;
constexpr int64_t kAlignFloats = 16;  // each thread's scratch starts on its own 64-byte line
// Multiply-adds below which one thread runs every task: a parallel region costs microseconds on
// free cores and far more on a loaded machine, more than a decode step's few heads take.
constexpr int64_t kParallelMinWork = int64_t{1} << 18;

// Per thread: the scores P [Bq, Bk], their gradient dP [Bq, Bk] (backward), and two per-query
// rows: running max and sum (forward, decode) or D_i = rowsum(dO ∘ O) (backward).
constexpr int64_t kScratchFloats =
    (2 * kQueryBlock * kKeyBlock + 2 * kQueryBlock + kAlignFloats - 1) / kAlignFloats *
    kAlignFloats;

// One (sequence, query head) pair's slices, read in place through their row strides. Query i of
// the slice is at position first_pos + i among the keys 0 .. n_keys − 1.
struct HeadSlices {
  const float* q;  // [Sq, Dh], row stride ld_q
  float* o;        // [Sq, Dh], row stride ld_q
  const float* k;  // [n_keys, Dh], row stride ld_kv
  const float* v;  // [n_keys, Dh], row stride ld_kv
  int64_t ld_q = 0, ld_kv = 0;
  int64_t n_queries = 0, n_keys = 0, first_pos = 0;
};

// The gradients of one (sequence, query head) pair; dk, dv are its kv head's, accumulated.
struct HeadGrads {
  const float* dout;  // [Sq, Dh], row stride ld_q
  float* dq;          // [Sq, Dh], row stride ld_q
  float* dk;          // [n_keys, Dh], row stride ld_kv
  float* dv;          // [n_keys, Dh], row stride ld_kv
};

// x[j] = exp(x[j] − m) for j < n (exp_diff carries the difference exactly, vec_math.h); returns
// their sum.
float exp_shifted(float* x, int64_t n, float m) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    const float e = vec::exp_diff(x[j], m);
    x[j] = e;
    sum += e;
  }
  return sum;
}

// Keys k0 .. k0 + nk − 1 of a block that the query at position pos sees: those at or before it
// when causal (a prefix of the block, possibly empty), all of them otherwise.
int64_t visible_keys(int64_t pos, int64_t k0, int64_t nk, bool causal) {
  if (!causal) return nk;
  return std::clamp<int64_t>(pos - k0 + 1, 0, nk);
}

// The keys a block of queries [qpos0, qpos0 + nq) reads: up to its last query when causal.
int64_t block_key_end(const HeadSlices& hs, int64_t qpos0, int64_t nq, bool causal) {
  return causal ? std::min(qpos0 + nq, hs.n_keys) : hs.n_keys;
}

// s [nq, nk] = scale · q [nq, Dh] · k[k0 .. k0 + nk)ᵀ, in place through the strides.
void block_scores(const HeadSlices& hs, int64_t i0, int64_t nq, int64_t k0, int64_t nk, int64_t dh,
                  float scale, float* s) {
  const GemmShape shape{.m = nq,
                        .n = nk,
                        .k = dh,
                        .trans_a = false,
                        .trans_b = true,
                        .lda = hs.ld_q,
                        .ldb = hs.ld_kv,
                        .ldc = nk};
  gemm(shape, GemmScale{scale, 0.0f}, hs.q + i0 * hs.ld_q, hs.k + k0 * hs.ld_kv, s);
}

// Forward of one head, queries in blocks of Bq, keys in blocks of Bk with the online softmax
// (Milakov & Gimelshein 2018): per query a running max m and sum l of exp(s − m); the output rows
// accumulate P·V unnormalised, rescaled by exp(m_old − m_new) when the max grows, and are divided
// by l at the end. lse [Sq] (may be null) receives m + log l.
void forward_head(const HeadSlices& hs, int64_t dh, bool causal, float scale, float* lse,
                  float* scratch) {
  float* s = scratch;                                // [Bq, Bk] scores, then probabilities
  float* row_max = s + 2 * kQueryBlock * kKeyBlock;  // [Bq]
  float* row_sum = row_max + kQueryBlock;            // [Bq]
  for (int64_t i0 = 0; i0 < hs.n_queries; i0 += kQueryBlock) {
    const int64_t nq = std::min(kQueryBlock, hs.n_queries - i0), qpos0 = hs.first_pos + i0;
    const int64_t key_end = block_key_end(hs, qpos0, nq, causal);
    float* o_block = hs.o + i0 * hs.ld_q;  // [nq, Dh]
    for (int64_t k0 = 0; k0 < key_end; k0 += kKeyBlock) {
      const int64_t nk = std::min(kKeyBlock, key_end - k0);
      block_scores(hs, i0, nq, k0, nk, dh, scale, s);
      for (int64_t r = 0; r < nq; ++r) {
        float* sr = s + r * nk;
        const int64_t n_vis = visible_keys(qpos0 + r, k0, nk, causal);
        // The first block holds key 0, which every query sees, so its max is finite.
        float mx = k0 == 0 ? sr[0] : row_max[r];
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < n_vis; ++j) mx = std::max(mx, sr[j]);
        const float sum = exp_shifted(sr, n_vis, mx);
        std::fill(sr + n_vis, sr + nk, 0.0f);
        if (k0 == 0) {
          row_sum[r] = sum;
        } else {
          const float correction = vec::exp_diff(row_max[r], mx);
          row_sum[r] = row_sum[r] * correction + sum;
          if (correction != 1.0f) {
            float* orow = o_block + r * hs.ld_q;
#pragma omp simd
            for (int64_t c = 0; c < dh; ++c) orow[c] *= correction;
          }
        }
        row_max[r] = mx;
      }
      // o [nq, Dh] (+)= P [nq, nk] · v[k0 .. k0 + nk) [nk, Dh]
      const GemmShape pv{.m = nq,
                         .n = dh,
                         .k = nk,
                         .trans_a = false,
                         .trans_b = false,
                         .lda = nk,
                         .ldb = hs.ld_kv,
                         .ldc = hs.ld_q};
      gemm(pv, GemmScale{1.0f, k0 == 0 ? 0.0f : 1.0f}, s, hs.v + k0 * hs.ld_kv, o_block);
    }
    for (int64_t r = 0; r < nq; ++r) {
      float* orow = o_block + r * hs.ld_q;
      const float inv = 1.0f / row_sum[r];
#pragma omp simd
      for (int64_t c = 0; c < dh; ++c) orow[c] *= inv;
      if (lse != nullptr) lse[i0 + r] = row_max[r] + std::log(row_sum[r]);
    }
  }
}

// Backward of one head (FlashAttention-2): per block, P = exp(s − lse) recomputed, then
//   dV += Pᵀ dO,  dP = dO Vᵀ,  dS = P ∘ (dP − D) / √Dh,  dQ (+)= dS K,  dK += dSᵀ Q,
// with D_i = rowsum(dO ∘ O)_i = Σ_j P_ij dP_ij. dq is written; dk, dv accumulate (the caller
// zeroes them once per kv head).
void backward_head(const HeadSlices& hs, const HeadGrads& g, const float* lse, int64_t dh,
                   bool causal, float scale, float* scratch) {
  float* p = scratch;                           // [Bq, Bk] probabilities, then dS
  float* dp = p + kQueryBlock * kKeyBlock;      // [Bq, Bk]
  float* delta = dp + kQueryBlock * kKeyBlock;  // [Bq] D_i
  for (int64_t i0 = 0; i0 < hs.n_queries; i0 += kQueryBlock) {
    const int64_t nq = std::min(kQueryBlock, hs.n_queries - i0), qpos0 = hs.first_pos + i0;
    const int64_t key_end = block_key_end(hs, qpos0, nq, causal);
    const float* q_block = hs.q + i0 * hs.ld_q;     // [nq, Dh]
    const float* do_block = g.dout + i0 * hs.ld_q;  // [nq, Dh]
    float* dq_block = g.dq + i0 * hs.ld_q;          // [nq, Dh]
    for (int64_t r = 0; r < nq; ++r) {
      const float* dor = do_block + r * hs.ld_q;
      const float* orow = hs.o + (i0 + r) * hs.ld_q;
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < dh; ++c) sum += static_cast<double>(dor[c]) * orow[c];
      delta[r] = static_cast<float>(sum);
    }
    for (int64_t k0 = 0; k0 < key_end; k0 += kKeyBlock) {
      const int64_t nk = std::min(kKeyBlock, key_end - k0);
      const float* k_block = hs.k + k0 * hs.ld_kv;  // [nk, Dh]
      const float* v_block = hs.v + k0 * hs.ld_kv;  // [nk, Dh]
      block_scores(hs, i0, nq, k0, nk, dh, scale, p);
      for (int64_t r = 0; r < nq; ++r) {
        float* pr = p + r * nk;
        const int64_t n_vis = visible_keys(qpos0 + r, k0, nk, causal);
        exp_shifted(pr, n_vis, lse[i0 + r]);
        std::fill(pr + n_vis, pr + nk, 0.0f);
      }
      // dv[k0 ..] [nk, Dh] += Pᵀ [nk, nq] · dO [nq, Dh]
      const GemmShape dv_shape{.m = nk,
                               .n = dh,
                               .k = nq,
                               .trans_a = true,
                               .trans_b = false,
                               .lda = nk,
                               .ldb = hs.ld_q,
                               .ldc = hs.ld_kv};
      gemm(dv_shape, GemmScale{1.0f, 1.0f}, p, do_block, g.dv + k0 * hs.ld_kv);
      // dP [nq, nk] = dO [nq, Dh] · v[k0 ..]ᵀ
      const GemmShape dp_shape{.m = nq,
                               .n = nk,
                               .k = dh,
                               .trans_a = false,
                               .trans_b = true,
                               .lda = hs.ld_q,
                               .ldb = hs.ld_kv,
                               .ldc = nk};
      gemm(dp_shape, GemmScale{1.0f, 0.0f}, do_block, v_block, dp);
      // dS = P ∘ (dP − D) · scale, over P (zero where masked, so dS is too)
      for (int64_t r = 0; r < nq; ++r) {
        float* pr = p + r * nk;
        const float* dpr = dp + r * nk;
        const float d = delta[r];
#pragma omp simd
        for (int64_t j = 0; j < nk; ++j) pr[j] = pr[j] * (dpr[j] - d) * scale;
      }
      // dq [nq, Dh] (+)= dS [nq, nk] · k[k0 ..] [nk, Dh]
      const GemmShape dq_shape{.m = nq,
                               .n = dh,
                               .k = nk,
                               .trans_a = false,
                               .trans_b = false,
                               .lda = nk,
                               .ldb = hs.ld_kv,
                               .ldc = hs.ld_q};
      gemm(dq_shape, GemmScale{1.0f, k0 == 0 ? 0.0f : 1.0f}, p, k_block, dq_block);
      // dk[k0 ..] [nk, Dh] += dSᵀ [nk, nq] · q [nq, Dh]
      const GemmShape dk_shape{.m = nk,
                               .n = dh,
                               .k = nq,
                               .trans_a = true,
                               .trans_b = false,
                               .lda = nk,
                               .ldb = hs.ld_q,
                               .ldc = hs.ld_kv};
      gemm(dk_shape, GemmScale{1.0f, 1.0f}, p, q_block, g.dk + k0 * hs.ld_kv);
    }
  }
}

// Runs task(i, scratch) for i in [0, n_tasks), each task on one thread with that thread's slice
// of the workspace, on as many threads as the workspace has slices for (one when the tasks'
// multiply-adds, `work`, are few). Tasks own their outputs, and a task's gemm runs single-threaded
// (oneDNN inside a parallel region, or the caller's thread count set to one), so the bits of the
// result do not depend on the thread count.
template <typename Task>
void run_tasks(int64_t n_tasks, int64_t work, Tensor workspace, const char* op, Task task) {
  if (n_tasks == 0) return;
  const int64_t slices = workspace.numel() / kScratchFloats;
  MOE_CHECK(!workspace.empty() && slices >= 1,
            "{}: workspace of {} floats, at least {} needed (attention_workspace_floats)", op,
            workspace.numel(), kScratchFloats);
  float* base = workspace.f32();
  const bool serial = omp_in_parallel() || work < kParallelMinWork;
  const int threads = static_cast<int>(std::min<int64_t>(
      {static_cast<int64_t>(serial ? 1 : omp_get_max_threads()), slices, n_tasks}));
  if (threads == 1) {
    const int saved = omp_get_max_threads();
    if (saved > 1) omp_set_num_threads(1);
    for (int64_t i = 0; i < n_tasks; ++i) task(i, base);
    if (saved > 1) omp_set_num_threads(saved);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    float* scratch = base + omp_get_thread_num() * kScratchFloats;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n_tasks; ++i) task(i, scratch);
  }
}

void check_dims(const AttentionDims& d, const char* op) {
  MOE_CHECK(d.batch >= 0 && d.seq >= 0 && d.n_heads > 0 && d.n_kv_heads > 0 && d.head_dim > 0 &&
                d.n_heads % d.n_kv_heads == 0,
            "{}: B {} S {} H {} G {} Dh {} (H a multiple of G, all > 0)", op, d.batch, d.seq,
            d.n_heads, d.n_kv_heads, d.head_dim);
}

// The starts of packed sequences: B + 1 of them from 0, non-decreasing; with `causal` as many
// queries as keys in every sequence, and a key wherever there is a query.
void check_packed_dims(const PackedAttentionDims& d, const char* op) {
  MOE_CHECK(d.n_heads > 0 && d.n_kv_heads > 0 && d.head_dim > 0 && d.n_heads % d.n_kv_heads == 0,
            "{}: H {} G {} Dh {} (H a multiple of G, all > 0)", op, d.n_heads, d.n_kv_heads,
            d.head_dim);
  MOE_CHECK(!d.q_starts.empty() && d.k_starts.size() == d.q_starts.size() && d.q_starts[0] == 0 &&
                d.k_starts[0] == 0,
            "{}: {} query starts and {} key starts (B + 1 each, from 0)", op, d.q_starts.size(),
            d.k_starts.size());
  for (int64_t b = 0; b < d.batch(); ++b) {
    const auto i = static_cast<size_t>(b);
    const int64_t nq = d.q_starts[i + 1] - d.q_starts[i], nk = d.k_starts[i + 1] - d.k_starts[i];
    MOE_CHECK(nq >= 0 && nk >= 0 && (nq == 0 || nk > 0) && (!d.causal || nq == nk),
              "{}: sequence {} has {} queries and {} keys{}", op, b, nq, nk,
              d.causal ? " (causal: as many of each)" : " (a query needs a key)");
  }
}

// A [rows, cols] matrix (any rank seen as one); an empty view stands for a matrix with no rows.
void check_matrix(Tensor t, int64_t rows, int64_t cols, const char* op, const char* name) {
  const bool matches = t.empty() ? rows * cols == 0 : t.rows() == rows && t.cols() == cols;
  MOE_CHECK(matches && t.dtype() == DType::kF32, "{}: {} is {} {}, expected F32 [{}, {}]", op, name,
            dtype_name(t.dtype()), t.shape().str(), rows, cols);
}

void check_self_attention(const AttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                          const AttentionCache& cache, const char* op) {
  check_dims(d, op);
  const int64_t tokens = d.batch * d.seq;
  check_matrix(q, tokens, d.n_heads * d.head_dim, op, "q");
  check_matrix(k, tokens, d.n_kv_heads * d.head_dim, op, "k");
  check_matrix(v, tokens, d.n_kv_heads * d.head_dim, op, "v");
  check_matrix(o, tokens, d.n_heads * d.head_dim, op, "o");
  MOE_CHECK((cache.lse.empty() ? 0 : cache.lse.numel()) == d.batch * d.n_heads * d.seq,
            "{}: lse {}, expected [{}, {}, {}]", op, cache.lse.shape().str(), d.batch, d.n_heads,
            d.seq);
}

// Multiply-adds of n_tasks heads of n_queries queries over n_keys keys (an upper bound when
// causal): QKᵀ and PV, Dh each per score.
int64_t attention_work(int64_t n_tasks, int64_t n_queries, int64_t n_keys, int64_t head_dim) {
  return 2 * n_tasks * n_queries * n_keys * head_dim;
}

float score_scale(int64_t head_dim) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

// Sequence b, query head h of self-attention over q, k, v, o (keys are the sequence's own rows).
HeadSlices self_head(const AttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o, int64_t b,
                     int64_t h) {
  const int64_t g = h / (d.n_heads / d.n_kv_heads);
  const int64_t ld_q = d.n_heads * d.head_dim, ld_kv = d.n_kv_heads * d.head_dim;
  const int64_t row0 = b * d.seq;
  return HeadSlices{.q = q.f32() + row0 * ld_q + h * d.head_dim,
                    .o = o.f32() + row0 * ld_q + h * d.head_dim,
                    .k = k.f32() + row0 * ld_kv + g * d.head_dim,
                    .v = v.f32() + row0 * ld_kv + g * d.head_dim,
                    .ld_q = ld_q,
                    .ld_kv = ld_kv,
                    .n_queries = d.seq,
                    .n_keys = d.seq,
                    .first_pos = 0};
}

void check_packed(const PackedAttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                  const AttentionCache& cache, const char* op) {
  check_packed_dims(d, op);
  check_matrix(q, d.query_rows(), d.n_heads * d.head_dim, op, "q");
  check_matrix(k, d.key_rows(), d.n_kv_heads * d.head_dim, op, "k");
  check_matrix(v, d.key_rows(), d.n_kv_heads * d.head_dim, op, "v");
  check_matrix(o, d.query_rows(), d.n_heads * d.head_dim, op, "o");
  MOE_CHECK(cache.lse.empty() || cache.lse.numel() == d.n_heads * d.query_rows(),
            "{}: lse {}, expected [{}, {}] or none", op, cache.lse.shape().str(), d.n_heads,
            d.query_rows());
}

// Multiply-adds of every (sequence, query head) pair, as attention_work counts them.
int64_t packed_work(const PackedAttentionDims& d) {
  int64_t work = 0;
  for (int64_t b = 0; b < d.batch(); ++b) {
    const auto i = static_cast<size_t>(b);
    work += attention_work(d.n_heads, d.q_starts[i + 1] - d.q_starts[i],
                           d.k_starts[i + 1] - d.k_starts[i], d.head_dim);
  }
  return work;
}

// Sequence b, query head h of packed q, k, v, o.
HeadSlices packed_head(const PackedAttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                       int64_t b, int64_t h) {
  const int64_t g = h / (d.n_heads / d.n_kv_heads);
  const int64_t ld_q = d.n_heads * d.head_dim, ld_kv = d.n_kv_heads * d.head_dim;
  const auto i = static_cast<size_t>(b);
  const int64_t q0 = d.q_starts[i], k0 = d.k_starts[i];
  return HeadSlices{.q = q.f32() + q0 * ld_q + h * d.head_dim,
                    .o = o.f32() + q0 * ld_q + h * d.head_dim,
                    .k = k.f32() + k0 * ld_kv + g * d.head_dim,
                    .v = v.f32() + k0 * ld_kv + g * d.head_dim,
                    .ld_q = ld_q,
                    .ld_kv = ld_kv,
                    .n_queries = d.q_starts[i + 1] - q0,
                    .n_keys = d.k_starts[i + 1] - k0,
                    .first_pos = 0};
}

}  // namespace

int64_t attention_workspace_floats(const AttentionDims& d, int n_threads) {
  check_dims(d, "attention workspace");
  MOE_CHECK(n_threads >= 1, "attention workspace: {} threads", n_threads);
  return static_cast<int64_t>(n_threads) * kScratchFloats;
}

void attention_forward(const AttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                       const AttentionCache& cache, Tensor workspace) {
  check_self_attention(d, q, k, v, o, cache, "attention");
  if (d.batch * d.seq == 0) return;
  const float scale = score_scale(d.head_dim);
  float* lse = cache.lse.f32();  // [B, H, S]
  const int64_t n_tasks = d.batch * d.n_heads;
  run_tasks(n_tasks, attention_work(n_tasks, d.seq, d.seq, d.head_dim), workspace, "attention",
            [&](int64_t task, float* scratch) {
              const int64_t b = task / d.n_heads, h = task % d.n_heads;
              forward_head(self_head(d, q, k, v, o, b, h), d.head_dim, d.causal, scale,
                           lse + task * d.seq, scratch);
            });
}

void attention_backward(const AttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                        const AttentionCache& cache, Tensor dout, Tensor dq, Tensor dk, Tensor dv,
                        Tensor workspace) {
  const char* op = "attention backward";
  check_self_attention(d, q, k, v, o, cache, op);
  check_matrix(dout, q.rows(), q.cols(), op, "dout");
  check_matrix(dq, q.rows(), q.cols(), op, "dq");
  check_matrix(dk, k.rows(), k.cols(), op, "dk");
  check_matrix(dv, v.rows(), v.cols(), op, "dv");
  if (d.batch * d.seq == 0) return;
  const float scale = score_scale(d.head_dim);
  const int64_t per_group = d.n_heads / d.n_kv_heads, dh = d.head_dim;
  const float* lse = cache.lse.f32();  // [B, H, S]
  // One task per (sequence, kv head): its query heads in order, so dk and dv sum them the same
  // way on any number of threads.
  const int64_t n_tasks = d.batch * d.n_kv_heads;
  // The backward's five products per score against the forward's two.
  const int64_t work = attention_work(d.batch * d.n_heads, d.seq, d.seq, dh) * 5 / 2;
  run_tasks(n_tasks, work, workspace, op, [&](int64_t task, float* scratch) {
    const int64_t b = task / d.n_kv_heads, g = task % d.n_kv_heads;
    const int64_t ld_kv = d.n_kv_heads * dh, row0 = b * d.seq;
    float* dk_head = dk.f32() + row0 * ld_kv + g * dh;  // [S, Dh], stride ld_kv
    float* dv_head = dv.f32() + row0 * ld_kv + g * dh;  // [S, Dh], stride ld_kv
    for (int64_t s = 0; s < d.seq; ++s) {
      std::fill(dk_head + s * ld_kv, dk_head + s * ld_kv + dh, 0.0f);
      std::fill(dv_head + s * ld_kv, dv_head + s * ld_kv + dh, 0.0f);
    }
    for (int64_t h = g * per_group; h < (g + 1) * per_group; ++h) {
      const HeadSlices hs = self_head(d, q, k, v, o, b, h);
      const int64_t offset = row0 * hs.ld_q + h * dh;
      const HeadGrads grads{
          .dout = dout.f32() + offset, .dq = dq.f32() + offset, .dk = dk_head, .dv = dv_head};
      backward_head(hs, grads, lse + (b * d.n_heads + h) * d.seq, dh, d.causal, scale, scratch);
    }
  });
}

void attention_decode(const AttentionDims& d, int64_t past, int64_t max_seq, Tensor q,
                      Tensor k_cache, Tensor v_cache, Tensor o, Tensor workspace) {
  const char* op = "attention decode";
  check_dims(d, op);
  MOE_CHECK(past >= 0 && past + d.seq <= max_seq,
            "{}: {} new positions after {} past the cache's {} positions", op, d.seq, past,
            max_seq);
  const int64_t ld_q = d.n_heads * d.head_dim, ld_kv = d.n_kv_heads * d.head_dim;
  check_matrix(q, d.batch * d.seq, ld_q, op, "q");
  check_matrix(o, d.batch * d.seq, ld_q, op, "o");
  check_matrix(k_cache, d.batch * max_seq, ld_kv, op, "k_cache");
  check_matrix(v_cache, d.batch * max_seq, ld_kv, op, "v_cache");
  if (d.batch * d.seq == 0) return;
  const float scale = score_scale(d.head_dim);
  const int64_t per_group = d.n_heads / d.n_kv_heads;
  const int64_t n_tasks = d.batch * d.n_heads;
  run_tasks(n_tasks, attention_work(n_tasks, d.seq, past + d.seq, d.head_dim), workspace, op,
            [&](int64_t task, float* scratch) {
              const int64_t b = task / d.n_heads, h = task % d.n_heads, g = h / per_group;
              const int64_t q_offset = b * d.seq * ld_q + h * d.head_dim;
              const int64_t kv_offset = b * max_seq * ld_kv + g * d.head_dim;
              const HeadSlices hs{.q = q.f32() + q_offset,
                                  .o = o.f32() + q_offset,
                                  .k = k_cache.f32() + kv_offset,
                                  .v = v_cache.f32() + kv_offset,
                                  .ld_q = ld_q,
                                  .ld_kv = ld_kv,
                                  .n_queries = d.seq,
                                  .n_keys = past + d.seq,
                                  .first_pos = past};
              forward_head(hs, d.head_dim, d.causal, scale, nullptr, scratch);
            });
}

int64_t attention_workspace_floats(const PackedAttentionDims& d, int n_threads) {
  check_packed_dims(d, "attention workspace");
  MOE_CHECK(n_threads >= 1, "attention workspace: {} threads", n_threads);
  return static_cast<int64_t>(n_threads) * kScratchFloats;
}

void attention_forward(const PackedAttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                       const AttentionCache& cache, Tensor workspace) {
  check_packed(d, q, k, v, o, cache, "attention");
  if (d.query_rows() == 0) return;
  const float scale = score_scale(d.head_dim);
  float* lse = cache.lse.empty() ? nullptr : cache.lse.f32();  // [H, Tq]
  const int64_t n_tasks = d.batch() * d.n_heads;
  run_tasks(n_tasks, packed_work(d), workspace, "attention", [&](int64_t task, float* scratch) {
    const int64_t b = task / d.n_heads, h = task % d.n_heads;
    const HeadSlices hs = packed_head(d, q, k, v, o, b, h);
    if (hs.n_queries == 0) return;
    float* head_lse =
        lse == nullptr ? nullptr : lse + h * d.query_rows() + d.q_starts[static_cast<size_t>(b)];
    forward_head(hs, d.head_dim, d.causal, scale, head_lse, scratch);
  });
}

void attention_backward(const PackedAttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                        const AttentionCache& cache, Tensor dout, Tensor dq, Tensor dk, Tensor dv,
                        Tensor workspace) {
  const char* op = "attention backward";
  check_packed(d, q, k, v, o, cache, op);
  MOE_CHECK(!cache.lse.empty() || d.query_rows() == 0, "{}: no lse from the forward", op);
  check_matrix(dout, q.rows(), q.cols(), op, "dout");
  check_matrix(dq, q.rows(), q.cols(), op, "dq");
  check_matrix(dk, k.rows(), k.cols(), op, "dk");
  check_matrix(dv, v.rows(), v.cols(), op, "dv");
  if (d.key_rows() == 0) return;
  const float scale = score_scale(d.head_dim);
  const int64_t per_group = d.n_heads / d.n_kv_heads, dh = d.head_dim;
  const int64_t ld_q = d.n_heads * dh, ld_kv = d.n_kv_heads * dh;
  // One task per (sequence, kv head), as in the batched backward; it zeroes its keys' rows first,
  // so a sequence without queries gets zero key gradients.
  const int64_t n_tasks = d.batch() * d.n_kv_heads;
  run_tasks(n_tasks, packed_work(d) * 5 / 2, workspace, op, [&](int64_t task, float* scratch) {
    const int64_t b = task / d.n_kv_heads, g = task % d.n_kv_heads;
    const auto i = static_cast<size_t>(b);
    const int64_t q0 = d.q_starts[i], k0 = d.k_starts[i];
    float* dk_head = dk.f32() + k0 * ld_kv + g * dh;  // [nk, Dh], stride ld_kv
    float* dv_head = dv.f32() + k0 * ld_kv + g * dh;  // [nk, Dh], stride ld_kv
    for (int64_t s = 0; s < d.k_starts[i + 1] - k0; ++s) {
      std::fill(dk_head + s * ld_kv, dk_head + s * ld_kv + dh, 0.0f);
      std::fill(dv_head + s * ld_kv, dv_head + s * ld_kv + dh, 0.0f);
    }
    if (d.q_starts[i + 1] == q0) return;
    for (int64_t h = g * per_group; h < (g + 1) * per_group; ++h) {
      const HeadSlices hs = packed_head(d, q, k, v, o, b, h);
      const int64_t offset = q0 * ld_q + h * dh;
      const HeadGrads grads{
          .dout = dout.f32() + offset, .dq = dq.f32() + offset, .dk = dk_head, .dv = dv_head};
      backward_head(hs, grads, cache.lse.f32() + h * d.query_rows() + q0, dh, d.causal, scale,
                    scratch);
    }
  });
}

// ---- the naive reference ------------------------------------------------------------------------

namespace ref {

namespace {

// One head's rows of a [B·S, heads·Dh] tensor: row i of sequence b is at(b, i)[0 .. Dh).
struct HeadRows {
  const float* base;
  int64_t ld, seq;
  const float* at(int64_t b, int64_t i) const { return base + (b * seq + i) * ld; }
};

HeadRows head_rows(Tensor t, const AttentionDims& d, int64_t head) {
  return HeadRows{t.f32() + head * d.head_dim, t.cols(), d.seq};
}

// The probabilities P [S, S] of sequence b, head h in double, and the log-sum-exp of each row.
void head_probabilities(const AttentionDims& d, Tensor q, Tensor k, int64_t b, int64_t h,
                        std::vector<double>& p, std::vector<double>& lse) {
  const int64_t s_len = d.seq, dh = d.head_dim, g = h / (d.n_heads / d.n_kv_heads);
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  const HeadRows qh = head_rows(q, d, h), kh = head_rows(k, d, g);
  p.assign(static_cast<size_t>(s_len * s_len), 0.0);
  lse.assign(static_cast<size_t>(s_len), 0.0);
  for (int64_t i = 0; i < s_len; ++i) {
    const float* qi = qh.at(b, i);
    const int64_t n_vis = d.causal ? i + 1 : s_len;
    double* pi = p.data() + i * s_len;
    double mx = -INFINITY;
    for (int64_t j = 0; j < n_vis; ++j) {
      const float* kj = kh.at(b, j);
      double dot = 0.0;
      for (int64_t c = 0; c < dh; ++c) dot += static_cast<double>(qi[c]) * kj[c];
      pi[j] = dot * scale;
      mx = std::max(mx, pi[j]);
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n_vis; ++j) sum += std::exp(pi[j] - mx);
    for (int64_t j = 0; j < n_vis; ++j) pi[j] = std::exp(pi[j] - mx) / sum;
    lse[static_cast<size_t>(i)] = mx + std::log(sum);
  }
}

}  // namespace

void attention_forward(const AttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                       const AttentionCache& cache) {
  check_self_attention(d, q, k, v, o, cache, "reference attention");
  const int64_t s_len = d.seq, dh = d.head_dim, per_group = d.n_heads / d.n_kv_heads;
  std::vector<double> p, lse, acc(static_cast<size_t>(dh));
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t h = 0; h < d.n_heads; ++h) {
      head_probabilities(d, q, k, b, h, p, lse);
      const HeadRows vh = head_rows(v, d, h / per_group);
      for (int64_t i = 0; i < s_len; ++i) {
        cache.lse.f32()[(b * d.n_heads + h) * s_len + i] =
            static_cast<float>(lse[static_cast<size_t>(i)]);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < s_len; ++j) {
          const double pij = p[static_cast<size_t>(i * s_len + j)];
          const float* vj = vh.at(b, j);
          for (int64_t c = 0; c < dh; ++c) acc[static_cast<size_t>(c)] += pij * vj[c];
        }
        float* oi = o.f32() + (b * s_len + i) * o.cols() + h * dh;
        for (int64_t c = 0; c < dh; ++c) oi[c] = static_cast<float>(acc[static_cast<size_t>(c)]);
      }
    }
}

// With P the probabilities: dP = dO Vᵀ, dS = P ∘ (dP − rowsum(P ∘ dP)) / √Dh, dQ = dS K,
// dK = Σ_heads dSᵀ Q, dV = Σ_heads Pᵀ dO, every sum in double.
void attention_backward(const AttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor dout,
                        Tensor dq, Tensor dk, Tensor dv) {
  const char* op = "reference attention backward";
  check_dims(d, op);
  const int64_t tokens = d.batch * d.seq;
  check_matrix(q, tokens, d.n_heads * d.head_dim, op, "q");
  check_matrix(k, tokens, d.n_kv_heads * d.head_dim, op, "k");
  check_matrix(v, tokens, d.n_kv_heads * d.head_dim, op, "v");
  check_matrix(dout, tokens, d.n_heads * d.head_dim, op, "dout");
  check_matrix(dq, tokens, d.n_heads * d.head_dim, op, "dq");
  check_matrix(dk, tokens, d.n_kv_heads * d.head_dim, op, "dk");
  check_matrix(dv, tokens, d.n_kv_heads * d.head_dim, op, "dv");
  const int64_t s_len = d.seq, dh = d.head_dim, per_group = d.n_heads / d.n_kv_heads;
  const int64_t ld_kv = d.n_kv_heads * dh;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  std::vector<double> dk_acc(static_cast<size_t>(tokens * ld_kv), 0.0);  // [B·S, G·Dh]
  std::vector<double> dv_acc(static_cast<size_t>(tokens * ld_kv), 0.0);  // [B·S, G·Dh]
  std::vector<double> p, lse, ds(static_cast<size_t>(s_len));            // ds: one row of dS
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t h = 0; h < d.n_heads; ++h) {
      head_probabilities(d, q, k, b, h, p, lse);
      const int64_t g = h / per_group;
      const HeadRows qh = head_rows(q, d, h), kh = head_rows(k, d, g), vh = head_rows(v, d, g),
                     doh = head_rows(dout, d, h);
      for (int64_t i = 0; i < s_len; ++i) {
        const double* pi = p.data() + i * s_len;
        const float* doi = doh.at(b, i);
        const float* qi = qh.at(b, i);
        double row_dot = 0.0;
        for (int64_t j = 0; j < s_len; ++j) {
          const float* vj = vh.at(b, j);
          double dp = 0.0;
          for (int64_t c = 0; c < dh; ++c) dp += static_cast<double>(doi[c]) * vj[c];
          ds[static_cast<size_t>(j)] = dp;
          row_dot += dp * pi[j];
        }
        float* dqi = dq.f32() + (b * s_len + i) * dq.cols() + h * dh;
        std::fill(dqi, dqi + dh, 0.0f);
        for (int64_t j = 0; j < s_len; ++j) {
          const double dsij = pi[j] * (ds[static_cast<size_t>(j)] - row_dot) * scale;
          ds[static_cast<size_t>(j)] = dsij;
          double* dvj = dv_acc.data() + (b * s_len + j) * ld_kv + g * dh;
          double* dkj = dk_acc.data() + (b * s_len + j) * ld_kv + g * dh;
          for (int64_t c = 0; c < dh; ++c) {
            dvj[c] += pi[j] * doi[c];
            dkj[c] += dsij * qi[c];
          }
        }
        for (int64_t c = 0; c < dh; ++c) {
          double acc = 0.0;
          for (int64_t j = 0; j < s_len; ++j) acc += ds[static_cast<size_t>(j)] * kh.at(b, j)[c];
          dqi[c] = static_cast<float>(acc);
        }
      }
    }
  for (int64_t i = 0; i < tokens * ld_kv; ++i) {
    dk.f32()[i] = static_cast<float>(dk_acc[static_cast<size_t>(i)]);
    dv.f32()[i] = static_cast<float>(dv_acc[static_cast<size_t>(i)]);
  }
}

namespace {

// Rows i of a [rows, heads·Dh] tensor, head `head`'s slice.
const float* head_row(Tensor t, int64_t row, int64_t head, int64_t head_dim) {
  return t.f32() + row * t.cols() + head * head_dim;
}

// The probabilities P [nq, nk] of packed sequence b, head h in double, and each row's
// log-sum-exp.
void packed_probabilities(const PackedAttentionDims& d, Tensor q, Tensor k, int64_t b, int64_t h,
                          std::vector<double>& p, std::vector<double>& lse) {
  const auto ib = static_cast<size_t>(b);
  const int64_t q0 = d.q_starts[ib], nq = d.q_starts[ib + 1] - q0;
  const int64_t k0 = d.k_starts[ib], nk = d.k_starts[ib + 1] - k0;
  const int64_t dh = d.head_dim, g = h / (d.n_heads / d.n_kv_heads);
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  p.assign(static_cast<size_t>(nq * nk), 0.0);
  lse.assign(static_cast<size_t>(nq), 0.0);
  for (int64_t i = 0; i < nq; ++i) {
    const float* qi = head_row(q, q0 + i, h, dh);
    const int64_t n_vis = d.causal ? i + 1 : nk;
    double* pi = p.data() + i * nk;
    double mx = -INFINITY;
    for (int64_t j = 0; j < n_vis; ++j) {
      const float* kj = head_row(k, k0 + j, g, dh);
      double dot = 0.0;
      for (int64_t c = 0; c < dh; ++c) dot += static_cast<double>(qi[c]) * kj[c];
      pi[j] = dot * scale;
      mx = std::max(mx, pi[j]);
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n_vis; ++j) sum += std::exp(pi[j] - mx);
    for (int64_t j = 0; j < n_vis; ++j) pi[j] = std::exp(pi[j] - mx) / sum;
    lse[static_cast<size_t>(i)] = mx + std::log(sum);
  }
}

}  // namespace

void attention_forward(const PackedAttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                       const AttentionCache& cache) {
  check_packed(d, q, k, v, o, cache, "reference attention");
  const int64_t dh = d.head_dim, per_group = d.n_heads / d.n_kv_heads;
  std::vector<double> p, lse, acc(static_cast<size_t>(dh));
  for (int64_t b = 0; b < d.batch(); ++b) {
    const auto ib = static_cast<size_t>(b);
    const int64_t q0 = d.q_starts[ib], nq = d.q_starts[ib + 1] - q0;
    const int64_t k0 = d.k_starts[ib], nk = d.k_starts[ib + 1] - k0;
    for (int64_t h = 0; h < d.n_heads; ++h) {
      packed_probabilities(d, q, k, b, h, p, lse);
      for (int64_t i = 0; i < nq; ++i) {
        if (!cache.lse.empty()) {
          cache.lse.f32()[h * d.query_rows() + q0 + i] =
              static_cast<float>(lse[static_cast<size_t>(i)]);
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < nk; ++j) {
          const double pij = p[static_cast<size_t>(i * nk + j)];
          const float* vj = head_row(v, k0 + j, h / per_group, dh);
          for (int64_t c = 0; c < dh; ++c) acc[static_cast<size_t>(c)] += pij * vj[c];
        }
        float* oi = o.f32() + (q0 + i) * o.cols() + h * dh;
        for (int64_t c = 0; c < dh; ++c) oi[c] = static_cast<float>(acc[static_cast<size_t>(c)]);
      }
    }
  }
}

// As the batched reference backward, per packed sequence.
void attention_backward(const PackedAttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor dout,
                        Tensor dq, Tensor dk, Tensor dv) {
  const char* op = "reference attention backward";
  check_packed(d, q, k, v, dout, AttentionCache{}, op);
  check_matrix(dq, q.rows(), q.cols(), op, "dq");
  check_matrix(dk, k.rows(), k.cols(), op, "dk");
  check_matrix(dv, v.rows(), v.cols(), op, "dv");
  const int64_t dh = d.head_dim, per_group = d.n_heads / d.n_kv_heads;
  const int64_t ld_kv = d.n_kv_heads * dh;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  std::vector<double> dk_acc(static_cast<size_t>(d.key_rows() * ld_kv), 0.0);  // [Tk, G·Dh]
  std::vector<double> dv_acc(static_cast<size_t>(d.key_rows() * ld_kv), 0.0);  // [Tk, G·Dh]
  std::vector<double> p, lse, ds;
  for (int64_t b = 0; b < d.batch(); ++b) {
    const auto ib = static_cast<size_t>(b);
    const int64_t q0 = d.q_starts[ib], nq = d.q_starts[ib + 1] - q0;
    const int64_t k0 = d.k_starts[ib], nk = d.k_starts[ib + 1] - k0;
    ds.assign(static_cast<size_t>(nk), 0.0);
    for (int64_t h = 0; h < d.n_heads; ++h) {
      packed_probabilities(d, q, k, b, h, p, lse);
      const int64_t g = h / per_group;
      for (int64_t i = 0; i < nq; ++i) {
        const double* pi = p.data() + i * nk;
        const float* doi = head_row(dout, q0 + i, h, dh);
        const float* qi = head_row(q, q0 + i, h, dh);
        double row_dot = 0.0;
        for (int64_t j = 0; j < nk; ++j) {
          const float* vj = head_row(v, k0 + j, g, dh);
          double dp = 0.0;
          for (int64_t c = 0; c < dh; ++c) dp += static_cast<double>(doi[c]) * vj[c];
          ds[static_cast<size_t>(j)] = dp;
          row_dot += dp * pi[j];
        }
        float* dqi = dq.f32() + (q0 + i) * dq.cols() + h * dh;
        for (int64_t j = 0; j < nk; ++j) {
          const double dsij = pi[j] * (ds[static_cast<size_t>(j)] - row_dot) * scale;
          ds[static_cast<size_t>(j)] = dsij;
          double* dvj = dv_acc.data() + (k0 + j) * ld_kv + g * dh;
          double* dkj = dk_acc.data() + (k0 + j) * ld_kv + g * dh;
          for (int64_t c = 0; c < dh; ++c) {
            dvj[c] += pi[j] * doi[c];
            dkj[c] += dsij * qi[c];
          }
        }
        for (int64_t c = 0; c < dh; ++c) {
          double acc = 0.0;
          for (int64_t j = 0; j < nk; ++j) {
            acc += ds[static_cast<size_t>(j)] * head_row(k, k0 + j, g, dh)[c];
          }
          dqi[c] = static_cast<float>(acc);
        }
      }
    }
  }
  for (int64_t i = 0; i < d.key_rows() * ld_kv; ++i) {
    dk.f32()[i] = static_cast<float>(dk_acc[static_cast<size_t>(i)]);
    dv.f32()[i] = static_cast<float>(dv_acc[static_cast<size_t>(i)]);
  }
}

}  // namespace ref

}  // namespace moe
