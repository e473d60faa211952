// Unit tests for the layers: shapes, edge cases (T = 1, T = 0, empty bags, constant rows),
// accumulation semantics (dx written, parameter gradients accumulated), determinism across
// thread counts, dropout statistics, and programmer errors caught by MOE_CHECK.
//
// Dims: T rows · D/I/O features · F hidden · V vocabulary · N ids · B bags.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/rng.h"
#include "moe/kernels/ops.h"
#include "moe/layers/dropout.h"
#include "moe/layers/embedding.h"
#include "moe/layers/linear.h"
#include "moe/layers/norm.h"
#include "moe/layers/swiglu.h"
#include "testing/fixtures.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using testing::expect_close;
using testing::i32_tensor;
using testing::i64_tensor;
using testing::random_uniform;

bool bitwise_equal(Tensor a, Tensor b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Runs body once on one thread and once on two, for checks that results do not depend on it.
template <typename F>
void with_threads(int n, F body) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(n);
  body();
  omp_set_num_threads(saved);
}

// ---------------------------------------------------------------------------------------------
// Linear

// y = x Wᵀ + b in double: [T, I] · [O, I]ᵀ
TensorBuffer naive_linear(Tensor x, Tensor w, Tensor b) {
  const int64_t t = x.rows(), in = x.cols(), out = w.dim(0);
  TensorBuffer y(Shape{t, out});
  for (int64_t i = 0; i < t; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = b.empty() ? 0.0 : b.f32()[o];
      for (int64_t k = 0; k < in; ++k) s += static_cast<double>(x.at(i, k)) * w.at(o, k);
      y.view().at(i, o) = static_cast<float>(s);
    }
  return y;
}

TEST(Linear, ForwardBackwardWithAndWithoutBiasMatchNaiveLoops) {
  for (bool bias : {true, false}) {
    for (int64_t t : {1, 7}) {
      SCOPED_TRACE(fmt::format("bias={} T={}", bias, t));
      const int64_t in = 9, out = 5;
      Rng rng(21);
      TensorBuffer x = random_uniform({t, in}, rng), w = random_uniform({out, in}, rng),
                   b = random_uniform({out}, rng);
      TensorBuffer dy = random_uniform({t, out}, rng), y({t, out}), dx({t, in}), dw({out, in}),
                   db({out});
      const LinearParams p{w, bias ? b.view() : Tensor()};
      linear_forward(p, x, y);
      expect_close("linear y", y, naive_linear(x, w, p.b), 1e-5, 1e-5);
      fill(dw, 1.0f);  // parameter gradients accumulate onto what is there
      fill(db, 1.0f);
      fill(dx, 7.0f);  // the input gradient is overwritten
      linear_backward(p, LinearGrads{dw, bias ? db.view() : Tensor()}, x, dy, dx);
      for (int64_t o = 0; o < out; ++o) {
        double sb = 1.0;
        for (int64_t i = 0; i < t; ++i) sb += dy.view().at(i, o);
        EXPECT_NEAR(db.f32()[o], bias ? sb : 1.0, 1e-5);
        for (int64_t k = 0; k < in; ++k) {
          double sw = 1.0;
          for (int64_t i = 0; i < t; ++i) sw += dy.view().at(i, o) * x.view().at(i, k);
          EXPECT_NEAR(dw.view().at(o, k), sw, 1e-5);
        }
      }
      // dx = dy · W, the same as a bias-free linear map with the transposed weight.
      TensorBuffer wt({in, out});
      for (int64_t o = 0; o < out; ++o)
        for (int64_t k = 0; k < in; ++k) wt.view().at(k, o) = w.view().at(o, k);
      expect_close("linear dx", dx, naive_linear(dy, wt, Tensor()), 1e-5, 1e-5);
    }
  }
}

TEST(Linear, MismatchedShapesAreProgrammerErrors) {
  TensorBuffer x({2, 3}), w({4, 5}), y({2, 4});
  EXPECT_DEATH(linear_forward(LinearParams{w, Tensor()}, x, y), "linear");
}

// ---------------------------------------------------------------------------------------------
// SwiGLU parameters

TEST(Swiglu, InitBoundsFollowFanIn) {
  const int64_t d = 16, f = 64;
  TensorBuffer w1({f, d}), w2({d, f}), w3({f, d});
  Rng rng(27);
  swiglu_init(SwigluParams{w1, w2, w3}, rng);
  auto max_abs = [](Tensor t) {
    float m = 0.0f;
    for (int64_t i = 0; i < t.numel(); ++i) m = std::fmax(m, std::fabs(t.f32()[i]));
    return m;
  };
  EXPECT_LE(max_abs(w1), 0.25f);  // 1/√D
  EXPECT_GT(max_abs(w1), 0.2f);
  EXPECT_LE(max_abs(w2), 0.125f);  // 1/√F
  EXPECT_GT(max_abs(w2), 0.1f);
}

// ---------------------------------------------------------------------------------------------
// EmbeddingBag

TEST(EmbeddingBag, ModesPoolAsDocumentedAndEmptyBagsGiveZeros) {
  const int64_t v = 4, d = 2;
  TensorBuffer w({v, d});
  for (int64_t i = 0; i < v * d; ++i)
    w.f32()[i] = static_cast<float>(i + 1);  // row r = (2r+1, 2r+2)
  TensorBuffer ids = i32_tensor({0, 3, 3, 1});
  TensorBuffer offsets = i64_tensor({0, 0, 3, 3, 4});  // bags: {}, {0, 3, 3}, {}, {1}
  TensorBuffer weights({4});
  const float wv[] = {2.0f, 0.5f, -1.0f, 3.0f};
  std::memcpy(weights.f32(), wv, sizeof(wv));
  TensorBuffer y({4, d});
  embedding_bag_forward(EmbeddingParams{w}, BagMode::kSum, {ids, offsets, Tensor()}, y);
  EXPECT_EQ(y.view().at(0, 0), 0.0f);
  EXPECT_EQ(y.view().at(1, 0), 1.0f + 7.0f + 7.0f);
  EXPECT_EQ(y.view().at(2, 1), 0.0f);
  EXPECT_EQ(y.view().at(3, 1), 4.0f);
  embedding_bag_forward(EmbeddingParams{w}, BagMode::kMean, {ids, offsets, Tensor()}, y);
  EXPECT_EQ(y.view().at(0, 1), 0.0f);
  EXPECT_FLOAT_EQ(y.view().at(1, 1), (2.0f + 8.0f + 8.0f) / 3.0f);
  EXPECT_EQ(y.view().at(3, 0), 3.0f);
  embedding_bag_forward(EmbeddingParams{w}, BagMode::kWeightedSum, {ids, offsets, weights}, y);
  EXPECT_EQ(y.view().at(0, 0), 0.0f);
  EXPECT_FLOAT_EQ(y.view().at(1, 0), 2.0f * 1.0f + 0.5f * 7.0f - 1.0f * 7.0f);
  EXPECT_FLOAT_EQ(y.view().at(3, 1), 3.0f * 4.0f);
}

TEST(EmbeddingBag, NoBagsAndAllEmptyBags) {
  TensorBuffer w({3, 2}), dw({3, 2});
  fill(w, 1.0f);
  TensorBuffer no_ids(Shape{0}, DType::kI32);
  TensorBuffer y0({0, 2});
  embedding_bag_forward(EmbeddingParams{w}, BagMode::kMean, {no_ids, i64_tensor({0}), Tensor()},
                        y0);
  TensorBuffer y({3, 2}), dy({3, 2});
  fill(y, 9.0f);
  fill(dy, 1.0f);
  TensorBuffer zero_offsets = i64_tensor({0, 0, 0, 0});
  const EmbeddingBagInput empty_bags{no_ids, zero_offsets, Tensor()};
  embedding_bag_forward(EmbeddingParams{w}, BagMode::kMean, empty_bags, y);
  EXPECT_EQ(sum_squares(y), 0.0);
  embedding_bag_backward(EmbeddingParams{w}, EmbeddingGrads{dw}, BagMode::kMean, empty_bags, dy,
                         Tensor());
  EXPECT_EQ(sum_squares(dw), 0.0);
}

TEST(EmbeddingBag, BackwardScalesPerMode) {
  TensorBuffer w({3, 2});
  fill(w, 2.0f);
  TensorBuffer ids = i32_tensor({1, 1, 2});
  TensorBuffer offsets = i64_tensor({0, 2, 3});  // bags {1, 1}, {2}
  TensorBuffer weights({3});
  const float wv[] = {0.5f, 0.25f, 4.0f};
  std::memcpy(weights.f32(), wv, sizeof(wv));
  TensorBuffer dy({2, 2});
  const float dyv[] = {1.0f, 2.0f, 3.0f, 4.0f};
  std::memcpy(dy.f32(), dyv, sizeof(dyv));
  {
    TensorBuffer dw({3, 2});
    embedding_bag_backward(EmbeddingParams{w}, EmbeddingGrads{dw}, BagMode::kMean,
                           {ids, offsets, Tensor()}, dy, Tensor());
    EXPECT_EQ(dw.view().at(1, 1), 2.0f);  // two halves of dy[0]
    EXPECT_EQ(dw.view().at(2, 0), 3.0f);
    EXPECT_EQ(dw.view().at(0, 0), 0.0f);
  }
  {
    TensorBuffer dw({3, 2}), dweights({3});
    embedding_bag_backward(EmbeddingParams{w}, EmbeddingGrads{dw}, BagMode::kWeightedSum,
                           {ids, offsets, weights}, dy, dweights);
    EXPECT_EQ(dw.view().at(1, 0), 0.75f);
    EXPECT_EQ(dw.view().at(2, 1), 16.0f);
    EXPECT_EQ(dweights.f32()[0], 2.0f * (1.0f + 2.0f));  // dy[bag] · W[id]
    EXPECT_EQ(dweights.f32()[2], 2.0f * (3.0f + 4.0f));
  }
}

TEST(EmbeddingBag, BackwardIsIdenticalOnOneAndTwoThreads) {
  const int64_t v = 40, d = 96, b = 300;
  Rng rng(30);
  std::vector<int64_t> off = {0};
  std::vector<int32_t> id_values;
  for (int64_t i = 0; i < b; ++i) {
    const int64_t len = static_cast<int64_t>(rng.below(8));  // some bags are empty
    for (int64_t k = 0; k < len; ++k) id_values.push_back(static_cast<int32_t>(rng.below(v)));
    off.push_back(static_cast<int64_t>(id_values.size()));
  }
  TensorBuffer ids = i32_tensor(id_values), offsets = i64_tensor(off);
  TensorBuffer w = random_uniform({v, d}, rng), weights = random_uniform({ids.numel()}, rng);
  TensorBuffer dy = random_uniform({b, d}, rng);
  TensorBuffer dw1({v, d}), dw2({v, d}), dt1({ids.numel()}), dt2({ids.numel()});
  const EmbeddingBagInput in{ids, offsets, weights};
  with_threads(1, [&] {
    embedding_bag_backward(EmbeddingParams{w}, EmbeddingGrads{dw1}, BagMode::kWeightedSum, in, dy,
                           dt1);
  });
  with_threads(2, [&] {
    embedding_bag_backward(EmbeddingParams{w}, EmbeddingGrads{dw2}, BagMode::kWeightedSum, in, dy,
                           dt2);
  });
  EXPECT_TRUE(bitwise_equal(dw1, dw2));
  EXPECT_TRUE(bitwise_equal(dt1, dt2));
}

TEST(EmbeddingBag, MalformedInputsAreProgrammerErrors) {
  TensorBuffer w({4, 2}), y({2, 2});
  TensorBuffer ids = i32_tensor({0, 1, 2});
  EXPECT_DEATH(embedding_bag_forward(EmbeddingParams{w}, BagMode::kSum,
                                     {ids, i64_tensor({0, 2, 1}), Tensor()}, y),
               "offsets");
  EXPECT_DEATH(embedding_bag_forward(EmbeddingParams{w}, BagMode::kSum,
                                     {ids, i64_tensor({0, 1, 2}), Tensor()}, y),
               "offsets run 0 .. 2 for 3 ids");
  EXPECT_DEATH(embedding_bag_forward(EmbeddingParams{w}, BagMode::kWeightedSum,
                                     {ids, i64_tensor({0, 1, 3}), Tensor()}, y),
               "needs weights");
}

TEST(EmbeddingBag, OutOfRangeIdIsAProgrammerError) {
  TensorBuffer w({4, 2}), y({1, 2});
  EXPECT_DEATH(embedding_bag_forward(EmbeddingParams{w}, BagMode::kSum,
                                     {i32_tensor({1, 4}), i64_tensor({0, 2}), Tensor()}, y),
               "outside \\[0, 4\\)");
  EXPECT_DEATH(embedding_bag_forward(EmbeddingParams{w}, BagMode::kSum,
                                     {i32_tensor({-1, 0}), i64_tensor({0, 2}), Tensor()}, y),
               "position 0");
}

// ---------------------------------------------------------------------------------------------
// LayerNorm and RMSNorm

TEST(LayerNorm, UnitGainRowsHaveZeroMeanAndUnitVariance) {
  const int64_t t = 5, d = 33;
  Rng rng(31);
  TensorBuffer x = random_uniform({t, d}, rng, -3.0f, 5.0f), y({t, d}), gain({d}), bias({d});
  layer_norm_init(LayerNormParams{gain, bias});
  Arena arena;
  const LayerNormCache cache = LayerNormCache::allocate(arena, t);
  layer_norm_forward(LayerNormParams{gain, bias}, 1e-5f, x, y, cache);
  for (int64_t r = 0; r < t; ++r) {
    double m = 0.0, v = 0.0, xm = 0.0;
    for (int64_t c = 0; c < d; ++c) {
      m += y.view().at(r, c);
      v += static_cast<double>(y.view().at(r, c)) * y.view().at(r, c);
      xm += x.view().at(r, c);
    }
    EXPECT_NEAR(m / d, 0.0, 1e-6);
    EXPECT_NEAR(v / d, 1.0, 1e-4);
    EXPECT_NEAR(cache.mean.f32()[r], xm / d, 1e-5);
  }
}

TEST(LayerNorm, LargeOffsetDoesNotLoseTheSignal) {
  // |μ| ≫ σ: a one-pass E[x²] − μ² in float would cancel to noise here.
  const int64_t d = 64;
  Rng rng(32);
  TensorBuffer x = random_uniform({1, d}, rng, -1.0f, 1.0f), shifted({1, d}), y1({1, d}),
               y2({1, d});
  for (int64_t c = 0; c < d; ++c) shifted.f32()[c] = x.f32()[c] + 1000.0f;
  TensorBuffer gain({d});
  layer_norm_init(LayerNormParams{gain, Tensor()});
  Arena arena;
  const LayerNormCache cache = LayerNormCache::allocate(arena, 1);
  layer_norm_forward(LayerNormParams{gain, Tensor()}, 1e-5f, x, y1, cache);
  layer_norm_forward(LayerNormParams{gain, Tensor()}, 1e-5f, shifted, y2, cache);
  // Adding 1000 rounds x to float's grid there (spacing 6e-5), so the outputs agree to ~1e-4.
  expect_close("layer_norm shifted", y2, y1, 0.0, 5e-4);
}

TEST(LayerNorm, ConstantRowGivesBiasAndFiniteGradients) {
  const int64_t d = 8;
  TensorBuffer x({1, d}), y({1, d}), dy({1, d}), dx({1, d}), gain({d}), bias({d}), dgain({d}),
      dbias({d});
  fill(x, 3.0f);
  fill(dy, 1.0f);
  layer_norm_init(LayerNormParams{gain, bias});
  fill(bias, 0.25f);
  Arena arena;
  const LayerNormCache cache = LayerNormCache::allocate(arena, 1);
  const LayerNormParams p{gain, bias};
  layer_norm_forward(p, 1e-5f, x, y, cache);
  layer_norm_backward(p, LayerNormGrads{dgain, dbias}, cache, x, dy, dx);
  for (int64_t c = 0; c < d; ++c) {
    EXPECT_EQ(y.f32()[c], 0.25f);
    EXPECT_TRUE(std::isfinite(dx.f32()[c]));
    EXPECT_NEAR(dx.f32()[c], 0.0f, 1e-6);  // a uniform dy only moves the mean, which is removed
    EXPECT_EQ(dbias.f32()[c], 1.0f);
  }
}

TEST(LayerNorm, ParameterGradientsIdenticalOnOneAndTwoThreads) {
  const int64_t t = 700, d = 96;
  Rng rng(33);
  TensorBuffer x = random_uniform({t, d}, rng), dy = random_uniform({t, d}, rng),
               gain = random_uniform({d}, rng), bias = random_uniform({d}, rng), y({t, d});
  Arena arena;
  const LayerNormCache cache = LayerNormCache::allocate(arena, t);
  const LayerNormParams p{gain, bias};
  layer_norm_forward(p, 1e-5f, x, y, cache);
  TensorBuffer dx1({t, d}), dx2({t, d}), dg1({d}), dg2({d}), db1({d}), db2({d});
  with_threads(1, [&] { layer_norm_backward(p, LayerNormGrads{dg1, db1}, cache, x, dy, dx1); });
  with_threads(2, [&] { layer_norm_backward(p, LayerNormGrads{dg2, db2}, cache, x, dy, dx2); });
  EXPECT_TRUE(bitwise_equal(dg1, dg2));
  EXPECT_TRUE(bitwise_equal(db1, db2));
  EXPECT_TRUE(bitwise_equal(dx1, dx2));
}

TEST(RmsNorm, UnitGainRowsHaveUnitRms) {
  for (int64_t t : {1, 4}) {
    const int64_t d = 20;
    Rng rng(34);
    TensorBuffer x = random_uniform({t, d}, rng, -2.0f, 6.0f), y({t, d}), gain({d});
    rms_norm_init(RmsNormParams{gain});
    Arena arena;
    const RmsNormCache cache = RmsNormCache::allocate(arena, t);
    rms_norm_forward(RmsNormParams{gain}, 1e-6f, x, y, cache);
    for (int64_t r = 0; r < t; ++r) {
      double ms = 0.0, xs = 0.0;
      for (int64_t c = 0; c < d; ++c) {
        ms += static_cast<double>(y.view().at(r, c)) * y.view().at(r, c);
        xs += static_cast<double>(x.view().at(r, c)) * x.view().at(r, c);
      }
      EXPECT_NEAR(ms / d, 1.0, 1e-5);
      EXPECT_NEAR(cache.rstd.f32()[r], 1.0 / std::sqrt(xs / d + 1e-6), 1e-5);
    }
  }
}

TEST(RmsNorm, BackwardWritesDxAndAccumulatesGain) {
  const int64_t t = 3, d = 7;
  Rng rng(35);
  TensorBuffer x = random_uniform({t, d}, rng), dy = random_uniform({t, d}, rng),
               gain = random_uniform({d}, rng), y({t, d}), dx1({t, d}), dx2({t, d}), dgain1({d}),
               dgain2({d});
  Arena arena;
  const RmsNormCache cache = RmsNormCache::allocate(arena, t);
  rms_norm_forward(RmsNormParams{gain}, 1e-6f, x, y, cache);
  rms_norm_backward(RmsNormParams{gain}, RmsNormGrads{dgain1}, cache, x, dy, dx1);
  fill(dx2, 5.0f);
  rms_norm_backward(RmsNormParams{gain}, RmsNormGrads{dgain2}, cache, x, dy, dx2);
  rms_norm_backward(RmsNormParams{gain}, RmsNormGrads{dgain2}, cache, x, dy, Tensor());
  EXPECT_TRUE(bitwise_equal(dx1, dx2));
  for (int64_t c = 0; c < d; ++c) EXPECT_FLOAT_EQ(dgain2.f32()[c], 2.0f * dgain1.f32()[c]);
}

TEST(Norm, MismatchedGainIsAProgrammerError) {
  TensorBuffer x({2, 5}), y({2, 5}), gain({4});
  Arena arena;
  EXPECT_DEATH(rms_norm_forward(RmsNormParams{gain}, 1e-6f, x, y, RmsNormCache::allocate(arena, 2)),
               "rms_norm");
}

// ---------------------------------------------------------------------------------------------
// Dropout

TEST(Dropout, SameSeedSameMaskAndAnotherSeedAnother) {
  const int64_t n = 4096;
  TensorBuffer x({n}), y({n}), m1(Shape{n}, DType::kU8), m2(Shape{n}, DType::kU8),
      m3(Shape{n}, DType::kU8);
  fill(x, 1.0f);
  Rng a(40), b(40), c(41);
  dropout_forward(0.5f, a, x, y, DropoutCache{m1});
  dropout_forward(0.5f, b, x, y, DropoutCache{m2});
  dropout_forward(0.5f, c, x, y, DropoutCache{m3});
  EXPECT_TRUE(bitwise_equal(m1, m2));
  EXPECT_FALSE(bitwise_equal(m1, m3));
  // The draw advances the generator: the next step's mask differs.
  EXPECT_EQ(a.offset(), static_cast<uint64_t>(n / 4));
  dropout_forward(0.5f, a, x, y, DropoutCache{m2});
  EXPECT_FALSE(bitwise_equal(m1, m2));
}

TEST(Dropout, KeptFractionAndScaling) {
  const int64_t n = 200000;
  TensorBuffer x({n}), y({n}), mask(Shape{n}, DType::kU8);
  fill(x, 2.0f);
  for (float p : {0.1f, 0.5f, 0.9f}) {
    SCOPED_TRACE(fmt::format("p={}", p));
    Rng rng(42);
    dropout_forward(p, rng, x, y, DropoutCache{mask});
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t k = mask.view().data<uint8_t>()[i];
      ASSERT_TRUE(k == 0 || k == 1);
      kept += k;
      ASSERT_EQ(y.f32()[i], k ? 2.0f / (1.0f - p) : 0.0f);
    }
    // Binomial(n, 1 − p): 5 standard deviations.
    const double sd = std::sqrt(n * p * (1.0 - p));
    EXPECT_NEAR(static_cast<double>(kept), n * (1.0 - p), 5.0 * sd);
    EXPECT_NEAR(sum(y) / n, 2.0, 0.05);  // inverted dropout keeps the mean
  }
}

TEST(Dropout, MaskDoesNotDependOnThreadCount) {
  const int64_t n = 100003;  // threaded, and not a multiple of 4
  TensorBuffer x({n}), y({n}), m1(Shape{n}, DType::kU8), m2(Shape{n}, DType::kU8);
  with_threads(1, [&] {
    Rng rng(43);
    dropout_forward(0.3f, rng, x, y, DropoutCache{m1});
  });
  with_threads(2, [&] {
    Rng rng(43);
    dropout_forward(0.3f, rng, x, y, DropoutCache{m2});
  });
  EXPECT_TRUE(bitwise_equal(m1, m2));
}

TEST(Dropout, BackwardAppliesTheForwardMask) {
  const int64_t t = 3, d = 10;
  Rng rng(44);
  TensorBuffer x = random_uniform({t, d}, rng), dy = random_uniform({t, d}, rng), y({t, d}),
               dx({t, d});
  TensorBuffer mask(Shape{t, d}, DType::kU8);
  const DropoutCache cache{mask};
  Rng mask_rng(45);
  dropout_forward(0.25f, mask_rng, x, y, cache);
  dropout_backward(0.25f, cache, dy, dx);
  for (int64_t i = 0; i < t * d; ++i) {
    const bool kept = mask.view().data<uint8_t>()[i] != 0;
    EXPECT_FLOAT_EQ(dx.f32()[i], kept ? dy.f32()[i] / 0.75f : 0.0f);
    EXPECT_FLOAT_EQ(y.f32()[i], kept ? x.f32()[i] / 0.75f : 0.0f);
  }
}

TEST(Dropout, EvaluationAndExtremeProbabilities) {
  const int64_t n = 64;
  Rng rng(46);
  TensorBuffer x = random_uniform({n}, rng), y({n}), mask(Shape{n}, DType::kU8);
  dropout_forward_eval(x, y);
  EXPECT_TRUE(bitwise_equal(x, y));
  dropout_forward(0.0f, rng, x, y, DropoutCache{mask});
  EXPECT_TRUE(bitwise_equal(x, y));
  dropout_forward(1.0f, rng, x, y, DropoutCache{mask});
  EXPECT_EQ(sum_squares(y), 0.0);
  EXPECT_DEATH(dropout_forward(1.5f, rng, x, y, DropoutCache{mask}), "outside \\[0, 1\\]");
  TensorBuffer float_mask({n});
  EXPECT_DEATH(dropout_apply_mask(0.5f, DropoutCache{float_mask}, x, y), "mask F32");
}

}  // namespace
}  // namespace moe
