// Unit tests for packed attention (sequences of different lengths, no padding): the blocked
// kernels against the naive reference for cross-attention and causal self-attention at lengths
// around the blocks (64 queries, 256 keys), equal lengths giving the batched attention's bits,
// the same bits on one thread and two, a forward without log-sum-exp, and programmer errors.
//
// Dims: B sequences · Tq query rows · Tk key rows · H query heads · G kv heads · Dh head width.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "moe/core/rng.h"
#include "moe/layers/attention.h"
#include "testing/fixtures.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using testing::expect_close;
using testing::random_uniform;

bool bitwise_equal(Tensor a, Tensor b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

std::vector<int64_t> starts_of(const std::vector<int64_t>& lengths) {
  std::vector<int64_t> starts = {0};
  for (const int64_t n : lengths) starts.push_back(starts.back() + n);
  return starts;
}

// Inputs, outputs, gradients and scratch of one packed problem; owns the starts its dims view.
struct PackedProblem {
  std::vector<int64_t> q_starts, k_starts;
  PackedAttentionDims d;
  TensorBuffer q, k, v, dout;  // [Tq, H·Dh], [Tk, G·Dh] ×2, [Tq, H·Dh]
  TensorBuffer o, lse;         // [Tq, H·Dh], [H, Tq]
  TensorBuffer dq, dk, dv;
  TensorBuffer workspace;

  PackedProblem(const std::vector<int64_t>& q_lens, const std::vector<int64_t>& k_lens,
                int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, bool causal, uint64_t seed)
      : q_starts(starts_of(q_lens)), k_starts(starts_of(k_lens)) {
    d = PackedAttentionDims{.q_starts = q_starts,
                            .k_starts = k_starts,
                            .n_heads = n_heads,
                            .n_kv_heads = n_kv_heads,
                            .head_dim = head_dim,
                            .causal = causal};
    Rng rng(seed);
    q = random_uniform({d.query_rows(), n_heads * head_dim}, rng, -2.0f, 2.0f);
    k = random_uniform({d.key_rows(), n_kv_heads * head_dim}, rng, -2.0f, 2.0f);
    v = random_uniform({d.key_rows(), n_kv_heads * head_dim}, rng);
    dout = random_uniform({d.query_rows(), n_heads * head_dim}, rng);
    o = TensorBuffer(q.shape());
    lse = TensorBuffer(Shape{n_heads, d.query_rows()});
    dq = TensorBuffer(q.shape());
    dk = TensorBuffer(k.shape());
    dv = TensorBuffer(v.shape());
    workspace = TensorBuffer(Shape{attention_workspace_floats(d, 2)});
  }

  void forward() { attention_forward(d, q, k, v, o, AttentionCache{lse}, workspace); }
  void backward() {
    attention_backward(d, q, k, v, o, AttentionCache{lse}, dout, dq, dk, dv, workspace);
  }
};

void expect_matches_reference(PackedProblem& p) {
  for (TensorBuffer* t : {&p.o, &p.dq, &p.dk, &p.dv}) {
    fill(*t, std::numeric_limits<float>::quiet_NaN());  // every element must be written
  }
  p.forward();
  p.backward();
  TensorBuffer o(p.o.shape()), lse(p.lse.shape()), dq(p.dq.shape()), dk(p.dk.shape()),
      dv(p.dv.shape());
  ref::attention_forward(p.d, p.q, p.k, p.v, o, AttentionCache{lse});
  ref::attention_backward(p.d, p.q, p.k, p.v, p.dout, dq, dk, dv);
  expect_close("o", p.o, o, 1e-4, 2e-5);
  expect_close("lse", p.lse, lse, 1e-5, 2e-5);
  expect_close("dq", p.dq, dq, 2e-4, 2e-5);
  expect_close("dk", p.dk, dk, 2e-4, 2e-5);
  expect_close("dv", p.dv, dv, 2e-4, 2e-5);
}

TEST(PackedAttention, CrossAttentionMatchesReferenceAroundTheBlocks) {
  // Query counts around the 64-query block, key counts around the 256-key block, a sentence
  // without queries (its keys get zero gradients) and one with a single key.
  const std::vector<int64_t> q_lens = {1, 64, 65, 0, 130, 7};
  const std::vector<int64_t> k_lens = {300, 1, 257, 5, 64, 256};
  for (int64_t n_kv_heads : {1, 4})
    for (int64_t head_dim : {8, 16}) {
      SCOPED_TRACE("G " + std::to_string(n_kv_heads) + " Dh " + std::to_string(head_dim));
      PackedProblem p(q_lens, k_lens, 4, n_kv_heads, head_dim, false, 40 + head_dim);
      expect_matches_reference(p);
    }
}

TEST(PackedAttention, CausalSelfAttentionMatchesReference) {
  const std::vector<int64_t> lens = {1, 63, 64, 65, 0, 300, 2};
  for (int64_t n_kv_heads : {2, 4}) {
    SCOPED_TRACE("G " + std::to_string(n_kv_heads));
    PackedProblem p(lens, lens, 4, n_kv_heads, 16, true, 50);
    expect_matches_reference(p);
  }
}

TEST(PackedAttention, EqualLengthsGiveTheBatchedBits) {
  for (bool causal : {true, false}) {
    const int64_t batch = 3, seq = 70, h = 4, g = 2, dh = 16;
    PackedProblem p(std::vector<int64_t>(batch, seq), std::vector<int64_t>(batch, seq), h, g, dh,
                    causal, 60);
    p.forward();
    p.backward();
    const AttentionDims bd{.batch = batch,
                           .seq = seq,
                           .n_heads = h,
                           .n_kv_heads = g,
                           .head_dim = dh,
                           .causal = causal};
    TensorBuffer o(p.o.shape()), lse(Shape{batch, h, seq}), dq(p.dq.shape()), dk(p.dk.shape()),
        dv(p.dv.shape());
    attention_forward(bd, p.q, p.k, p.v, o, AttentionCache{lse}, p.workspace);
    attention_backward(bd, p.q, p.k, p.v, o, AttentionCache{lse}, p.dout, dq, dk, dv, p.workspace);
    EXPECT_TRUE(bitwise_equal(p.o, o));
    EXPECT_TRUE(bitwise_equal(p.dq, dq));
    EXPECT_TRUE(bitwise_equal(p.dk, dk));
    EXPECT_TRUE(bitwise_equal(p.dv, dv));
    // lse is [H, Tq] packed and [B, H, S] batched.
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t hh = 0; hh < h; ++hh)
        for (int64_t s = 0; s < seq; ++s)
          ASSERT_EQ(p.lse.f32()[hh * batch * seq + b * seq + s], lse.f32()[(b * h + hh) * seq + s]);
  }
}

TEST(PackedAttention, SameBitsOnOneThreadAndTwo) {
  const std::vector<int64_t> q_lens = {90, 3, 200}, k_lens = {40, 300, 7};
  PackedProblem one(q_lens, k_lens, 4, 2, 16, false, 70), two(q_lens, k_lens, 4, 2, 16, false, 70);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  one.forward();
  one.backward();
  omp_set_num_threads(2);
  two.forward();
  two.backward();
  omp_set_num_threads(saved);
  EXPECT_TRUE(bitwise_equal(one.o, two.o));
  EXPECT_TRUE(bitwise_equal(one.lse, two.lse));
  EXPECT_TRUE(bitwise_equal(one.dq, two.dq));
  EXPECT_TRUE(bitwise_equal(one.dk, two.dk));
  EXPECT_TRUE(bitwise_equal(one.dv, two.dv));
}

TEST(PackedAttention, ForwardWithoutLseForDecoding) {
  // One new decoder query per sentence against the encoder's keys, as generation does.
  PackedProblem p({1, 1, 1}, {5, 1, 9}, 2, 1, 8, false, 80);
  p.forward();
  TensorBuffer o(p.o.shape());
  attention_forward(p.d, p.q, p.k, p.v, o, AttentionCache{}, p.workspace);
  EXPECT_TRUE(bitwise_equal(p.o, o));
}

TEST(PackedAttention, NoRowsIsANoOp) {
  PackedProblem p({0, 0}, {0, 0}, 2, 1, 4, true, 1);
  p.forward();
  p.backward();
  PackedProblem keys_only({0, 0}, {3, 2}, 2, 1, 4, false, 1);
  fill(keys_only.dk, 1.0f);
  keys_only.forward();
  keys_only.backward();
  for (int64_t i = 0; i < keys_only.dk.numel(); ++i) ASSERT_EQ(keys_only.dk.f32()[i], 0.0f);
}

TEST(PackedAttentionDeathTest, StartsAreChecked) {
  PackedProblem p({2, 3}, {4, 1}, 2, 1, 4, false, 2);
  std::vector<int64_t> short_k = {0, 4};
  PackedAttentionDims d = p.d;
  d.k_starts = short_k;
  EXPECT_DEATH(attention_forward(d, p.q, p.k, p.v, p.o, AttentionCache{p.lse}, p.workspace),
               "key starts");
  d = p.d;
  d.causal = true;
  EXPECT_DEATH(attention_forward(d, p.q, p.k, p.v, p.o, AttentionCache{p.lse}, p.workspace),
               "as many of each");
  std::vector<int64_t> no_keys = {0, 5, 5};
  d = p.d;
  d.k_starts = no_keys;
  EXPECT_DEATH(attention_workspace_floats(d, 1), "a query needs a key");
  std::vector<int64_t> backwards = {0, 3, 2};
  d = p.d;
  d.q_starts = backwards;
  EXPECT_DEATH(attention_workspace_floats(d, 1), "sequence 1 has -1 queries");
  TensorBuffer wrong_lse(Shape{2, 4});
  EXPECT_DEATH(attention_forward(p.d, p.q, p.k, p.v, p.o, AttentionCache{wrong_lse}, p.workspace),
               "lse");
  EXPECT_DEATH(attention_backward(p.d, p.q, p.k, p.v, p.o, AttentionCache{}, p.dout, p.dq, p.dk,
                                  p.dv, p.workspace),
               "no lse");
}

}  // namespace
}  // namespace moe
