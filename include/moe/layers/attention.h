// Causal multi-head self-attention with grouped-query heads (Vaswani et al. 2017; GQA, Ainslie et
// al. 2023, as in Mixtral), forward, exact backward and generation over a KV cache:
//
//   o_h = softmax(q_h k_gᵀ / √Dh + mask) v_g,   g = h / (H/G)   (query head h reads kv head g)
//
// mask is −∞ above the diagonal when causal. The softmax runs in fp32 with its row maximum
// subtracted. The fast path works per (sequence, head) in blocks of queries and keys (the
// FlashAttention tiling, Dao 2022 and 2023): scores of one block of queries against one block of
// keys at a time, QKᵀ and PV on the project's gemm reading q, k, v, o in place through their row
// strides, blocks wholly above the diagonal skipped, an online softmax across key blocks. The
// forward keeps only the log-sum-exp of each query's scaled scores; the backward recomputes the
// probabilities from it (FlashAttention-2), with D_i = rowsum(dO ∘ O).
//
// Threads: the forward and decode split (sequence, query head) pairs, the backward (sequence, kv
// head) pairs, so dk and dv of a kv head sum their query heads in one thread in a fixed order. No
// atomics; the result is the same bits for any thread count. Scratch comes from the caller's
// workspace (attention_workspace_floats): a [Bq, Bk] score block and its gradient per thread,
// never a [B, H, S, S] tensor; nothing is allocated in forward, backward or decode.
//
// Dims: B sequences · S positions per sequence · H query heads · G kv heads (H % G == 0; G == H is
// plain multi-head attention) · Dh head width. Rows of q, k, v, o are tokens b·S + s; head h's
// slice is columns h·Dh .. h·Dh + Dh − 1.
#pragma once

#include <cstdint>
#include <span>

#include "moe/core/tensor.h"

namespace moe {

struct AttentionDims {
  int64_t batch = 1;       // B sequences
  int64_t seq = 0;         // S positions per sequence (queries and keys)
  int64_t n_heads = 1;     // H query heads
  int64_t n_kv_heads = 1;  // G key/value heads, H % G == 0 (grouped-query attention; G == H: MHA)
  int64_t head_dim = 0;    // Dh; scores are scaled by 1/√Dh
  bool causal = true;
};

struct AttentionCache {
  Tensor lse;  // [B, H, S] log-sum-exp of each query's scaled scores
};

// Floats of workspace for forward, backward and decode on n_threads threads (any dims: the
// per-thread scratch is a fixed-size block, so this also covers decode with seq = Sq).
int64_t attention_workspace_floats(const AttentionDims& d, int n_threads);

// q [B·S, H·Dh], k, v [B·S, G·Dh] -> o [B·S, H·Dh]; fills cache.lse [B, H, S].
void attention_forward(const AttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                       const AttentionCache& cache, Tensor workspace);
// dout [B·S, H·Dh] -> dq [B·S, H·Dh], dk, dv [B·S, G·Dh] (written, =), recomputing the
// probabilities from q, k and cache.lse; o is the forward's output.
void attention_backward(const AttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                        const AttentionCache& cache, Tensor dout, Tensor dq, Tensor dk, Tensor dv,
                        Tensor workspace);
// Generation with a KV cache: Sq = d.seq new queries per sequence at positions past .. past+Sq−1
// attend (causally if d.causal) over keys and values 0 .. past+Sq−1 held in k_cache, v_cache
// [B, max_seq, G·Dh] (the caller has already written the new keys and values there).
// q [B·Sq, H·Dh] -> o [B·Sq, H·Dh].
void attention_decode(const AttentionDims& d, int64_t past, int64_t max_seq, Tensor q,
                      Tensor k_cache, Tensor v_cache, Tensor o, Tensor workspace);

// Packed sequences of different lengths (the "varlen" layout of FlashAttention): sequence b's
// queries are rows q_starts[b] .. q_starts[b+1] − 1 of q and o, its keys rows k_starts[b] ..
// k_starts[b+1] − 1 of k and v, and no row is padding. Self-attention passes the same starts
// twice (an encoder with causal = false, a decoder with causal = true); cross-attention passes the
// decoder's starts for the queries and the encoder's for the keys. Causal needs every sequence to
// have as many queries as keys (query i sees keys 0 .. i); a sequence with queries needs a key.
// The same kernels as above (blocks, online softmax, threads over (sequence, head) pairs, the
// same bits on any thread count); with equal lengths S the result is the batched one's.
//
// Dims: Tq query rows, Tk key rows over all B sequences.
struct PackedAttentionDims {
  std::span<const int64_t> q_starts;  // [B + 1]: 0, ..., Tq, non-decreasing
  std::span<const int64_t> k_starts;  // [B + 1]: 0, ..., Tk, non-decreasing
  int64_t n_heads = 1;                // H
  int64_t n_kv_heads = 1;             // G, H % G == 0
  int64_t head_dim = 0;               // Dh
  bool causal = false;

  int64_t batch() const { return static_cast<int64_t>(q_starts.size()) - 1; }
  int64_t query_rows() const { return q_starts.back(); }
  int64_t key_rows() const { return k_starts.back(); }
};

int64_t attention_workspace_floats(const PackedAttentionDims& d, int n_threads);

// q [Tq, H·Dh], k, v [Tk, G·Dh] -> o [Tq, H·Dh]; fills cache.lse [H, Tq] unless it is empty (a
// forward that no backward follows, e.g. cross-attention while decoding).
void attention_forward(const PackedAttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                       const AttentionCache& cache, Tensor workspace);
// dout [Tq, H·Dh] -> dq [Tq, H·Dh], dk, dv [Tk, G·Dh] (written, =); o and cache.lse from the
// forward.
void attention_backward(const PackedAttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                        const AttentionCache& cache, Tensor dout, Tensor dq, Tensor dk, Tensor dv,
                        Tensor workspace);

// The specification: plain loops over the definition, double accumulation, the full [S, S]
// probabilities of one head at a time. Same tensors as above; no workspace, allocates.
namespace ref {
void attention_forward(const AttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                       const AttentionCache& cache);
void attention_backward(const AttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor dout,
                        Tensor dq, Tensor dk, Tensor dv);
void attention_forward(const PackedAttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor o,
                       const AttentionCache& cache);
void attention_backward(const PackedAttentionDims& d, Tensor q, Tensor k, Tensor v, Tensor dout,
                        Tensor dq, Tensor dk, Tensor dv);
}  // namespace ref

}  // namespace moe
