// Unit tests for attention and RoPE: the blocked attention against the naive reference at sizes
// around the blocks (S = 1, 7, 64, 65, 130, 300 over blocks of 64 queries and 256 keys), the same
// bits on one thread and two, generation over a KV cache against the full forward for every
// prefix, RoPE's inverse and positions, and programmer errors caught by MOE_CHECK.
//
// Dims: B sequences · S positions · H query heads · G kv heads · Dh head width · Sq new queries ·
// M cache positions; rows of q, k, v, o are tokens b·S + s.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "moe/core/rng.h"
#include "moe/layers/attention.h"
#include "moe/layers/rope.h"
#include "testing/fixtures.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using testing::expect_close;
using testing::random_uniform;

bool bitwise_equal(Tensor a, Tensor b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

template <typename F>
void with_threads(int n, F body) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(n);
  body();
  omp_set_num_threads(saved);
}

std::string describe(const AttentionDims& d) {
  return fmt::format("B{} S{} H{} G{} Dh{} {}", d.batch, d.seq, d.n_heads, d.n_kv_heads, d.head_dim,
                     d.causal ? "causal" : "full");
}

// Inputs, outputs, gradients and scratch of one attention problem.
struct AttentionProblem {
  AttentionDims d;
  TensorBuffer q, k, v, dout;  // [B·S, H·Dh], [B·S, G·Dh] ×2, [B·S, H·Dh]
  TensorBuffer o, lse;         // [B·S, H·Dh], [B, H, S]
  TensorBuffer dq, dk, dv;
  TensorBuffer workspace;

  AttentionProblem(const AttentionDims& dims, uint64_t seed, int threads = 2) : d(dims) {
    Rng rng(seed);
    const int64_t tokens = d.batch * d.seq;
    q = random_uniform({tokens, d.n_heads * d.head_dim}, rng, -2.0f, 2.0f);
    k = random_uniform({tokens, d.n_kv_heads * d.head_dim}, rng, -2.0f, 2.0f);
    v = random_uniform({tokens, d.n_kv_heads * d.head_dim}, rng);
    dout = random_uniform({tokens, d.n_heads * d.head_dim}, rng);
    o = TensorBuffer(q.shape());
    lse = TensorBuffer(Shape{d.batch, d.n_heads, d.seq});
    dq = TensorBuffer(q.shape());
    dk = TensorBuffer(k.shape());
    dv = TensorBuffer(v.shape());
    workspace = TensorBuffer(Shape{attention_workspace_floats(d, threads)});
  }

  void forward() { attention_forward(d, q, k, v, o, AttentionCache{lse}, workspace); }
  void backward() {
    attention_backward(d, q, k, v, o, AttentionCache{lse}, dout, dq, dk, dv, workspace);
  }
};

// ---------------------------------------------------------------------------------------------
// The blocked attention against the naive reference

void expect_matches_reference(const AttentionDims& d) {
  SCOPED_TRACE(describe(d));
  AttentionProblem p(d, 100 + static_cast<uint64_t>(d.seq * 7 + d.head_dim));
  // Garbage in the outputs: forward and backward must write every element (=).
  fill(p.o, std::numeric_limits<float>::quiet_NaN());
  fill(p.dq, std::numeric_limits<float>::quiet_NaN());
  fill(p.dk, std::numeric_limits<float>::quiet_NaN());
  fill(p.dv, std::numeric_limits<float>::quiet_NaN());
  p.forward();
  p.backward();
  TensorBuffer o(p.o.shape()), lse(p.lse.shape()), dq(p.dq.shape()), dk(p.dk.shape()),
      dv(p.dv.shape());
  ref::attention_forward(d, p.q, p.k, p.v, o, AttentionCache{lse});
  ref::attention_backward(d, p.q, p.k, p.v, p.dout, dq, dk, dv);
  expect_close("o", p.o, o, 1e-4, 2e-5);
  expect_close("lse", p.lse, lse, 1e-5, 2e-5);
  expect_close("dq", p.dq, dq, 2e-4, 2e-5);
  expect_close("dk", p.dk, dk, 2e-4, 2e-5);
  expect_close("dv", p.dv, dv, 2e-4, 2e-5);
}

TEST(Attention, BlockedMatchesReferenceAroundTheBlocks) {
  for (int64_t seq : {1, 7, 64, 65, 130})
    for (int64_t head_dim : {8, 16, 64})
      for (int64_t n_kv_heads : {2, 4})
        for (bool causal : {true, false})
          expect_matches_reference(AttentionDims{.batch = causal ? 3 : 1,
                                                 .seq = seq,
                                                 .n_heads = 4,
                                                 .n_kv_heads = n_kv_heads,
                                                 .head_dim = head_dim,
                                                 .causal = causal});
}

TEST(Attention, BlockedMatchesReferenceAcrossKeyBlocks) {
  // 300 keys: two blocks of keys, so the online softmax rescales the rows it has accumulated.
  for (bool causal : {true, false})
    expect_matches_reference(AttentionDims{
        .batch = 1, .seq = 300, .n_heads = 2, .n_kv_heads = 1, .head_dim = 16, .causal = causal});
}

TEST(Attention, LargeScoresStayFinite) {
  // Scores of several hundred: without the max subtracted exp would overflow.
  const AttentionDims d{.batch = 2, .seq = 33, .n_heads = 2, .n_kv_heads = 2, .head_dim = 16};
  AttentionProblem p(d, 7);
  for (int64_t i = 0; i < p.q.numel(); ++i) p.q.f32()[i] *= 60.0f;
  p.forward();
  p.backward();
  TensorBuffer o(p.o.shape()), lse(p.lse.shape());
  ref::attention_forward(d, p.q, p.k, p.v, o, AttentionCache{lse});
  expect_close("o", p.o, o, 1e-4, 2e-5);
  for (Tensor t : {p.dq.view(), p.dk.view(), p.dv.view()})
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_TRUE(std::isfinite(t.f32()[i]));
}

TEST(Attention, EmptyBatchIsANoOp) {
  const AttentionDims d{.batch = 0, .seq = 5, .n_heads = 2, .n_kv_heads = 1, .head_dim = 4};
  AttentionProblem p(d, 1);
  p.forward();
  p.backward();
}

// ---------------------------------------------------------------------------------------------
// Thread counts

TEST(Attention, SameBitsOnOneThreadAndTwo) {
  for (int64_t n_kv_heads : {1, 2}) {
    const AttentionDims d{
        .batch = 2, .seq = 300, .n_heads = 4, .n_kv_heads = n_kv_heads, .head_dim = 16};
    AttentionProblem one(d, 11), two(d, 11);
    with_threads(1, [&] {
      one.forward();
      one.backward();
    });
    with_threads(2, [&] {
      two.forward();
      two.backward();
    });
    EXPECT_TRUE(bitwise_equal(one.o, two.o)) << describe(d);
    EXPECT_TRUE(bitwise_equal(one.lse, two.lse)) << describe(d);
    EXPECT_TRUE(bitwise_equal(one.dq, two.dq)) << describe(d);
    EXPECT_TRUE(bitwise_equal(one.dk, two.dk)) << describe(d);
    EXPECT_TRUE(bitwise_equal(one.dv, two.dv)) << describe(d);
  }
}

TEST(Attention, WorkspaceForOneThreadServesAnyTeam) {
  const AttentionDims d{.batch = 2, .seq = 64, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16};
  AttentionProblem small(d, 12, /*threads=*/1), large(d, 12, /*threads=*/2);
  with_threads(2, [&] {
    small.forward();
    small.backward();
    large.forward();
    large.backward();
  });
  EXPECT_TRUE(bitwise_equal(small.o, large.o));
  EXPECT_TRUE(bitwise_equal(small.dk, large.dk));
}

// ---------------------------------------------------------------------------------------------
// Generation over a KV cache

// The cache [B, M, G·Dh] with every position NaN: decode must read only positions < past + Sq.
TensorBuffer nan_cache(const AttentionDims& d, int64_t max_seq) {
  TensorBuffer cache(Shape{d.batch, max_seq, d.n_kv_heads * d.head_dim});
  fill(cache, std::numeric_limits<float>::quiet_NaN());
  return cache;
}

// Positions s0 .. s0 + n − 1 of every sequence of x [B·S, C] into y [B·y_seq, C] at positions
// y_s0 ... (y a block of new queries, or the cache [B, M, C]).
void copy_positions(Tensor x, int64_t batch, int64_t seq, int64_t s0, int64_t n, Tensor y,
                    int64_t y_seq, int64_t y_s0) {
  const int64_t c = x.cols();
  for (int64_t b = 0; b < batch; ++b)
    std::memcpy(y.f32() + (b * y_seq + y_s0) * c, x.f32() + (b * seq + s0) * c,
                static_cast<size_t>(n * c) * sizeof(float));
}

// Decodes the problem's sequences in chunks of `chunks` new positions and compares each chunk's
// output with the full forward's rows.
void expect_decode_matches_forward(const AttentionDims& full, const std::vector<int64_t>& chunks) {
  AttentionProblem p(full, 21);
  p.forward();
  const int64_t max_seq = full.seq + 3;
  TensorBuffer k_cache = nan_cache(full, max_seq), v_cache = nan_cache(full, max_seq);
  int64_t past = 0;
  for (int64_t sq : chunks) {
    AttentionDims d = full;
    d.seq = sq;
    copy_positions(p.k, full.batch, full.seq, past, sq, k_cache, max_seq, past);
    copy_positions(p.v, full.batch, full.seq, past, sq, v_cache, max_seq, past);
    TensorBuffer q(Shape{full.batch * sq, full.n_heads * full.head_dim}), o(q.shape()),
        expected(q.shape());
    copy_positions(p.q, full.batch, full.seq, past, sq, q, sq, 0);
    copy_positions(p.o, full.batch, full.seq, past, sq, expected, sq, 0);
    TensorBuffer workspace(Shape{attention_workspace_floats(d, omp_get_max_threads())});
    attention_decode(d, past, max_seq, q, k_cache, v_cache, o, workspace);
    expect_close(fmt::format("o at positions {}..{}", past, past + sq - 1), o, expected, 1e-5,
                 1e-5);
    past += sq;
  }
  ASSERT_EQ(past, full.seq);
}

TEST(AttentionDecode, OneTokenAtATimeMatchesForward) {
  const AttentionDims d{.batch = 2, .seq = 300, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16};
  expect_decode_matches_forward(d, std::vector<int64_t>(300, 1));
}

TEST(AttentionDecode, PrefillThenChunksMatchForward) {
  const AttentionDims d{.batch = 3, .seq = 140, .n_heads = 4, .n_kv_heads = 4, .head_dim = 8};
  expect_decode_matches_forward(d, {5, 70, 1, 64});
}

// ---------------------------------------------------------------------------------------------
// RoPE

TEST(Rope, TableHoldsTheAngles) {
  const RopeTable t = RopeTable::build(9, 6, 500.0);
  ASSERT_EQ(t.cos.shape(), (Shape{9, 3}));
  for (int64_t p = 0; p < 9; ++p)
    for (int64_t i = 0; i < 3; ++i) {
      const double angle = static_cast<double>(p) * std::pow(500.0, -2.0 * i / 6.0);
      EXPECT_FLOAT_EQ(t.cos.f32()[p * 3 + i], static_cast<float>(std::cos(angle)));
      EXPECT_FLOAT_EQ(t.sin.f32()[p * 3 + i], static_cast<float>(std::sin(angle)));
    }
}

TEST(Rope, BackwardUndoesForward) {
  const RopeTable t = RopeTable::build(64, 8);
  TensorBuffer x = random_uniform({3 * 20, 5 * 8}, 41), y = testing::clone(x);
  rope_forward(t, 3, 20, 5, 7, y);
  rope_backward(t, 3, 20, 5, 7, y);
  expect_close("x", y, x, 1e-6, 1e-6);
}

TEST(Rope, PositionsContinueFromPos0) {
  // Rotating positions 4..9 of a sequence alone (pos0 = 4) equals rotating the whole sequence.
  const RopeTable t = RopeTable::build(16, 4);
  TensorBuffer whole = random_uniform({10, 2 * 4}, 42), tail(Shape{6, 2 * 4});
  std::memcpy(tail.f32(), whole.f32() + 4 * 8, sizeof(float) * 6 * 8);
  rope_forward(t, 1, 10, 2, 0, whole);
  rope_forward(t, 1, 6, 2, 4, tail);
  expect_close("tail", tail, whole.view().slice(4, 10), 0.0, 0.0);
}

TEST(Rope, ScoresDependOnDistanceOnly) {
  // ⟨R(p) q, R(p') k⟩ = ⟨R(p − p') q, k⟩: the property attention relies on.
  const RopeTable t = RopeTable::build(32, 8);
  TensorBuffer q = random_uniform({1, 8}, 43), k = random_uniform({1, 8}, 44);
  auto score = [&](int64_t pq, int64_t pk) {
    TensorBuffer rq = testing::clone(q), rk = testing::clone(k);
    rope_forward(t, 1, 1, 1, pq, rq);
    rope_forward(t, 1, 1, 1, pk, rk);
    double s = 0.0;
    for (int64_t c = 0; c < 8; ++c) s += static_cast<double>(rq.f32()[c]) * rk.f32()[c];
    return s;
  };
  EXPECT_NEAR(score(9, 4), score(5, 0), 1e-5);
  EXPECT_NEAR(score(20, 17), score(3, 0), 1e-5);
}

// ---------------------------------------------------------------------------------------------
// Programmer errors

TEST(AttentionDeathTest, ShapesAreChecked) {
  const AttentionDims d{.batch = 1, .seq = 4, .n_heads = 4, .n_kv_heads = 2, .head_dim = 4};
  AttentionProblem p(d, 3);
  TensorBuffer wrong_k(Shape{4, 4 * 4});  // G·Dh = 8 expected
  EXPECT_DEATH(attention_forward(d, p.q, wrong_k, p.v, p.o, AttentionCache{p.lse}, p.workspace),
               "k is");
  AttentionDims uneven = d;
  uneven.n_kv_heads = 3;
  EXPECT_DEATH(attention_workspace_floats(uneven, 1), "multiple of G");
  EXPECT_DEATH(attention_forward(d, p.q, p.k, p.v, p.o, AttentionCache{p.lse}, Tensor()),
               "workspace");
  TensorBuffer cache(Shape{1, 4, 8});
  AttentionDims step = d;
  step.seq = 2;
  TensorBuffer q(Shape{2, 16}), o(Shape{2, 16});
  EXPECT_DEATH(attention_decode(step, 3, 4, q, cache, cache, o, p.workspace), "past the cache");
  const RopeTable t = RopeTable::build(8, 4);
  TensorBuffer x(Shape{6, 8});
  EXPECT_DEATH(rope_forward(t, 1, 6, 2, 3, x), "past the table");
  EXPECT_DEATH(RopeTable::build(8, 5), "even");
}

}  // namespace
}  // namespace moe
