#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>

#include "kernel_testing.h"
#include "moe/core/rng.h"
#include "moe/kernels/gemm.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

using testing::GemmCase;

void check_against_reference(const GemmCase& c) {
  testing::GemmOperands o = testing::random_operands(c, DType::kF32);
  gemm(o.a, c.ta, o.b, c.tb, o.fast, {c.alpha, c.beta});
  gemm_ref(o.a, c.ta, o.b, c.tb, o.want, {c.alpha, c.beta});
  testing::expect_product_close(c.label("gemm"), o.fast, o.want, c.k);
}

TEST(Gemm, MatchesReferenceAroundSimdWidths) {
  for (int64_t m : {1, 15, 16, 17, 64, 65})
    for (int64_t n : {1, 16, 17, 63})
      for (int64_t k : {1, 15, 16, 65})
        for (bool ta : {false, true})
          for (bool tb : {false, true}) check_against_reference({m, n, k, ta, tb, 1.0f, 0.0f});
}

TEST(Gemm, AlphaBetaAccumulate) {
  check_against_reference({33, 47, 29, false, true, 0.5f, 1.0f});
  check_against_reference({33, 47, 29, true, false, -2.0f, 0.25f});
}

TEST(Gemm, Large) {
  check_against_reference({300, 257, 513, false, true, 1.0f, 0.0f});
}

TEST(Gemm, ZeroInnerDimensionScalesC) {
  TensorBuffer a(Shape{3, 0}), b(Shape{0, 2}), c(Shape{3, 2});
  fill(c, 4.0f);
  gemm(a, false, b, false, c, {1.0f, 0.5f});
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(c.f32()[i], 2.0f);
}

TEST(Gemm, BetaZeroIgnoresNaNInOutput) {
  // [2, 2]·[2, 2] goes to dnnl_sgemm, [2, 512]·[64, 512]ᵀ to the matmul primitive.
  struct Case {
    int64_t n, k;
    bool tb;
  };
  for (const Case& cs : {Case{2, 2, false}, Case{64, 512, true}}) {
    TensorBuffer a(Shape{2, cs.k}), b(cs.tb ? Shape{cs.n, cs.k} : Shape{cs.k, cs.n});
    TensorBuffer c(Shape{2, cs.n});
    fill(a, 1.0f);
    fill(b, 1.0f);
    fill(c, NAN);
    gemm(a, false, b, cs.tb, c);
    for (int64_t i = 0; i < c.numel(); ++i)
      ASSERT_EQ(c.f32()[i], static_cast<float>(cs.k)) << "n=" << cs.n << " k=" << cs.k;
  }
}

// A·Bᵀ with k ≥ 512 and n ≥ 64 runs on matmul primitives over row blocks of 512, then one block
// of the exact remaining count (gemm_dnnl.cpp): row counts on each side of that boundary and an
// expert's typical few dozen, with and without alpha/beta, and the sizes on each side of the
// switch between the two paths.
TEST(Gemm, RowBlocksOfTheMatmulPath) {
  for (int64_t m : {1, 31, 33, 71, 511, 512, 513, 1061})  // 1061 = 2·512 + 37
    check_against_reference({m, 64, 512, false, true, 1.0f, 0.0f});
  check_against_reference({97, 65, 513, false, true, -0.5f, 1.0f});
  check_against_reference({97, 63, 512, false, true, 2.0f, 0.5f});
  check_against_reference({97, 64, 511, false, true, 2.0f, 0.5f});
}

TEST(Gemm, StridedOperandsOfTheMatmulPath) {
  testing::StridedProduct p = testing::strided_operands(70, 64, 520, 9, DType::kF32);
  gemm(p.shape, {1.5f, 0.5f}, p.a.f32(), p.b.f32(), p.fast.f32());
  gemm_ref(p.shape, {1.5f, 0.5f}, p.a.f32(), p.b.f32(), p.want.f32());
  testing::expect_strided_close("strided A.Bt", p);
}

// One row times Bᵀ (gemv_bt, which gemm() takes for large B with threads to share): row counts
// around its four-row steps, inner lengths around its 16 lanes, alpha/beta, a strided B, and a
// product large enough to share its rows over threads, which must give the bits of one thread.
void check_gemv(int64_t n, int64_t k, int64_t ldb, GemmScale scale) {
  TensorBuffer a(Shape{1, k}), b(Shape{n, ldb}), fast(Shape{1, n}), want(Shape{1, n});
  Rng rng(static_cast<uint64_t>(n * 1000 + k));
  rng.fill_uniform(a, -1, 1);
  rng.fill_uniform(b, -1, 1);
  rng.fill_uniform(fast, -1, 1);
  std::memcpy(want.f32(), fast.f32(), static_cast<size_t>(fast.view().nbytes()));
  gemv_bt(n, k, scale, a.f32(), b.f32(), ldb, fast.f32());
  const GemmShape s{
      .m = 1, .n = n, .k = k, .trans_a = false, .trans_b = true, .lda = k, .ldb = ldb, .ldc = n};
  gemm_ref(s, scale, a.f32(), b.f32(), want.f32());
  testing::expect_close(fmt::format("gemv n={} k={} ldb={}", n, k, ldb), fast, want, 1e-4,
                        1e-4 * std::sqrt(k + 1.0));
}

TEST(Gemm, SingleRowTimesTransposedB) {
  for (int64_t n : {1, 3, 4, 5, 8, 9, 63, 64})
    for (int64_t k : {1, 15, 16, 17, 33, 512}) check_gemv(n, k, k, {1.0f, 0.0f});
  check_gemv(37, 70, 70, {-0.5f, 1.0f});
  check_gemv(37, 70, 77, {2.0f, 0.25f});
  check_against_reference({1, 1024, 512, false, true, 1.0f, 0.0f});  // through gemm()

  const int64_t n = 2053, k = 515;  // shared over threads; n not a multiple of 4 or 2
  TensorBuffer a(Shape{1, k}), b(Shape{n, k}), one(Shape{1, n}), two(Shape{1, n});
  Rng rng(4);
  rng.fill_uniform(a, -1, 1);
  rng.fill_uniform(b, -1, 1);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  gemv_bt(n, k, {}, a.f32(), b.f32(), k, one.f32());
  omp_set_num_threads(2);
  gemv_bt(n, k, {}, a.f32(), b.f32(), k, two.f32());
  omp_set_num_threads(threads);
  EXPECT_EQ(std::memcmp(one.f32(), two.f32(), static_cast<size_t>(one.view().nbytes())), 0);
  check_gemv(n, k, k, {});
}

TEST(Gemm, RepeatedCallsAreBitIdentical) {
  // The second call reuses the cached primitives; the result must not change.
  for (bool tb : {false, true}) {
    TensorBuffer a(Shape{300, 512}), b(tb ? Shape{96, 512} : Shape{512, 96});
    TensorBuffer c1(Shape{300, 96}), c2(Shape{300, 96});
    Rng rng(9);
    rng.fill_uniform(a, -1, 1);
    rng.fill_uniform(b, -1, 1);
    gemm(a, false, b, tb, c1);
    gemm(a, false, b, tb, c2);
    EXPECT_EQ(std::memcmp(c1.f32(), c2.f32(), c1.view().nbytes()), 0) << "trans_b " << tb;
  }
}

TEST(Gemm, ConcurrentCallersFromThreads) {
  // Each thread keeps its own primitive cache; several threads multiplying at once (one expert
  // each) must all get the reference answer.
  constexpr int kThreads = 4;
  const int64_t m = 77, n = 64, k = 512;
  std::vector<TensorBuffer> as, bs, cs, refs;
  for (int t = 0; t < kThreads; ++t) {
    as.emplace_back(Shape{m, k});
    bs.emplace_back(Shape{n, k});
    cs.emplace_back(Shape{m, n});
    refs.emplace_back(Shape{m, n});
    Rng rng(100 + t);
    rng.fill_uniform(as.back(), -1, 1);
    rng.fill_uniform(bs.back(), -1, 1);
    gemm_ref(as.back(), false, bs.back(), true, refs.back());
  }
#pragma omp parallel for num_threads(kThreads) schedule(static, 1)
  for (int t = 0; t < kThreads; ++t)
    for (int rep = 0; rep < 3; ++rep) gemm(as[t], false, bs[t], true, cs[t]);
  for (int t = 0; t < kThreads; ++t)
    testing::expect_close(fmt::format("thread {}", t), cs[t], refs[t], 1e-4,
                          1e-4 * std::sqrt(k + 1.0));
}

}  // namespace
}  // namespace moe
