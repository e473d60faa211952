// Unit tests of the losses: hand-computed values, perfect predictions, the class-weight
// normaliser, ignored rows, gradient scaling, extreme logits, thread-count independence.
//
// Dims: T rows · C classes.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "moe/core/rng.h"
#include "moe/layers/loss.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using testing::f32_tensor;
using testing::i32_tensor;

// Σ_j dz_{i,j} for every row: a softmax-based gradient sums to 0 per row.
void expect_rows_sum_to_zero(Tensor dz) {
  for (int64_t i = 0; i < dz.dim(0); ++i) {
    double s = 0.0;
    for (int64_t j = 0; j < dz.dim(1); ++j) s += dz.at(i, j);
    EXPECT_NEAR(s, 0.0, 1e-7) << "row " << i;
  }
}

TEST(CrossEntropy, HandComputedValuesAndGradient) {
  TensorBuffer z = f32_tensor(Shape{2, 3}, {1, 2, 3, 1, 1, 1});  // [T, C]
  TensorBuffer y = i32_tensor({2, 0});
  TensorBuffer dz(Shape{2, 3});
  const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double want = ((lse0 - 3.0) + std::log(3.0)) / 2.0;
  // The exponentials are float (summed in double): ~1e-7 relative.
  EXPECT_NEAR(cross_entropy_loss(z, y, dz), want, 1e-7 * want);
  // dz = (softmax − onehot) / T
  for (int j = 0; j < 3; ++j) {
    const double p = std::exp(1.0 + j - lse0);
    EXPECT_NEAR(dz.view().at(0, j), (p - (j == 2)) / 2.0, 1e-7);
    EXPECT_NEAR(dz.view().at(1, j), (1.0 / 3.0 - (j == 0)) / 2.0, 1e-7);
  }
}

TEST(CrossEntropy, TwoTiedLogitsCostLogTwo) {
  TensorBuffer z = f32_tensor(Shape{1, 2}, {0.5f, 0.5f});
  TensorBuffer y = i32_tensor({1});
  TensorBuffer dz(Shape{1, 2});
  EXPECT_NEAR(cross_entropy_loss(z, y, dz), std::log(2.0), 1e-12);
  EXPECT_FLOAT_EQ(dz.view().at(0, 0), 0.5f);
  EXPECT_FLOAT_EQ(dz.view().at(0, 1), -0.5f);
}

TEST(CrossEntropy, PerfectPredictionsCostNothing) {
  TensorBuffer z = f32_tensor(Shape{3, 4}, {60, 0, 0, 0, 0, 0, 60, 0, 0, 60, 0, 0});
  TensorBuffer y = i32_tensor({0, 2, 1});
  TensorBuffer dz(Shape{3, 4});
  EXPECT_LT(cross_entropy_loss(z, y, dz), 1e-20);
  for (int64_t i = 0; i < 12; ++i) EXPECT_LT(std::fabs(dz.f32()[i]), 1e-20f);
}

// With smoothing ε the best prediction is the smoothed target q = (1 − ε)·onehot + ε/C itself:
// the loss is then its entropy H(q) and the gradient vanishes.
TEST(CrossEntropy, SmoothedTargetIsTheOptimum) {
  const double eps = 0.2;
  const int C = 4;
  const double hit = 1.0 - eps + eps / C, miss = eps / C;
  std::vector<float> logits(2 * C, static_cast<float>(std::log(miss)));
  logits[1] = static_cast<float>(std::log(hit));
  logits[C + 3] = static_cast<float>(std::log(hit));
  TensorBuffer z = f32_tensor(Shape{2, C}, logits);
  TensorBuffer y = i32_tensor({1, 3});
  TensorBuffer dz(Shape{2, C});
  CrossEntropyOptions opts;
  opts.label_smoothing = eps;
  const double entropy = -(hit * std::log(hit) + (C - 1) * miss * std::log(miss));
  EXPECT_NEAR(cross_entropy_loss(z, y, dz, opts), entropy, 1e-6);
  for (int64_t i = 0; i < 2 * C; ++i) EXPECT_NEAR(dz.f32()[i], 0.0f, 1e-7f);
}

TEST(CrossEntropy, ClassWeightsNormaliseBySumOfTargetWeights) {
  Rng rng(3);
  TensorBuffer z(Shape{5, 3});
  rng.fill_normal(z, 0.0f, 1.5f);
  TensorBuffer y = i32_tensor({0, 2, 2, 1, 0});
  TensorBuffer w = f32_tensor(Shape{3}, {0.5f, 2.0f, 1.25f});
  CrossEntropyOptions opts;
  opts.class_weights = w;
  TensorBuffer dz(Shape{5, 3});
  const double got = cross_entropy_loss(z, y, dz, opts);
  // Σ_i w_{y_i}·l_i / Σ_i w_{y_i}, with l_i from single-row unweighted calls.
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < 5; ++i) {
    const int32_t t = y.view().data<int32_t>()[i];
    const double l =
        cross_entropy_loss(Tensor(z)[i].reshape(Shape{1, 3}), Tensor(y).slice(i, i + 1), Tensor());
    num += w.f32()[t] * l;
    den += w.f32()[t];
  }
  EXPECT_NEAR(got, num / den, 1e-12);
  expect_rows_sum_to_zero(dz);

  // Uniform weights of any value give the unweighted loss: the normaliser cancels them.
  TensorBuffer w3 = f32_tensor(Shape{3}, {3, 3, 3});
  opts.class_weights = w3;
  opts.label_smoothing = 0.3;
  TensorBuffer dz_uniform(Shape{5, 3}), dz_plain(Shape{5, 3});
  const double uniform = cross_entropy_loss(z, y, dz_uniform, opts);
  CrossEntropyOptions plain;
  plain.label_smoothing = 0.3;
  EXPECT_NEAR(uniform, cross_entropy_loss(z, y, dz_plain, plain), 1e-12);
  for (int64_t i = 0; i < 15; ++i) EXPECT_NEAR(dz_uniform.f32()[i], dz_plain.f32()[i], 1e-7);
}

TEST(CrossEntropy, IgnoredRowsContributeNothing) {
  Rng rng(4);
  TensorBuffer z(Shape{4, 5});
  rng.fill_normal(z, 0.0f, 1.0f);
  TensorBuffer y = i32_tensor({3, -100, 1, -100});
  TensorBuffer dz(Shape{4, 5});
  fill(dz, 7.0f);  // stale values must be overwritten
  CrossEntropyOptions opts;
  opts.label_smoothing = 0.1;
  const double got = cross_entropy_loss(z, y, dz, opts);
  // The same two valid rows alone.
  TensorBuffer z2(Shape{2, 5});
  copy(Tensor(z2)[0], Tensor(z)[0]);
  copy(Tensor(z2)[1], Tensor(z)[2]);
  TensorBuffer y2 = i32_tensor({3, 1});
  TensorBuffer dz2(Shape{2, 5});
  EXPECT_NEAR(got, cross_entropy_loss(z2, y2, dz2, opts), 1e-12);
  for (int64_t j = 0; j < 5; ++j) {
    EXPECT_EQ(dz.view().at(1, j), 0.0f);
    EXPECT_EQ(dz.view().at(3, j), 0.0f);
    EXPECT_FLOAT_EQ(dz.view().at(0, j), dz2.view().at(0, j));
    EXPECT_FLOAT_EQ(dz.view().at(2, j), dz2.view().at(1, j));
  }
  // A custom ignore index.
  TensorBuffer y3 = i32_tensor({3, 4, 1, 4});
  opts.ignore_index = 4;
  EXPECT_NEAR(cross_entropy_loss(z, y3, Tensor(), opts), got, 1e-12);
}

TEST(CrossEntropy, AllRowsIgnoredGivesZeroLossAndGradient) {
  TensorBuffer z = f32_tensor(Shape{2, 2}, {1, 2, 3, 4});
  TensorBuffer y = i32_tensor({-100, -100});
  TensorBuffer dz(Shape{2, 2});
  fill(dz, 1.0f);
  EXPECT_EQ(cross_entropy_loss(z, y, dz), 0.0);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(dz.f32()[i], 0.0f);
}

TEST(CrossEntropy, GradScaleScalesOnlyTheGradient) {
  Rng rng(5);
  TensorBuffer z(Shape{3, 4});
  rng.fill_normal(z, 0.0f, 1.0f);
  TensorBuffer y = i32_tensor({0, 3, 2});
  TensorBuffer w = f32_tensor(Shape{4}, {1, 2, 3, 4});
  CrossEntropyOptions opts;
  opts.class_weights = w;
  opts.label_smoothing = 0.1;
  TensorBuffer dz1(Shape{3, 4}), dz4(Shape{3, 4});
  const double l1 = cross_entropy_loss(z, y, dz1, opts);
  const double l4 = cross_entropy_loss(z, y, dz4, opts, 0.25);
  EXPECT_EQ(l1, l4);
  for (int64_t i = 0; i < 12; ++i) EXPECT_NEAR(dz4.f32()[i], 0.25f * dz1.f32()[i], 1e-8);
  // Without a gradient tensor only the loss is computed, and it is the same.
  EXPECT_EQ(cross_entropy_loss(z, y, Tensor(), opts), l1);
}

TEST(CrossEntropy, ExtremeLogitsStayFinite) {
  TensorBuffer z = f32_tensor(Shape{2, 3}, {1e4f, -1e4f, 0, -3e4f, 3e4f, 3e4f});
  TensorBuffer y = i32_tensor({1, 0});
  TensorBuffer dz(Shape{2, 3});
  CrossEntropyOptions opts;
  opts.label_smoothing = 0.1;
  const double loss = cross_entropy_loss(z, y, dz, opts);
  EXPECT_TRUE(std::isfinite(loss));
  // Row 0 misses by 2e4, row 1 by 6e4 (plus log 2 for the tie): mean ≈ 4e4 before smoothing.
  EXPECT_GT(loss, 3e4);
  for (int64_t i = 0; i < 6; ++i) EXPECT_TRUE(std::isfinite(dz.f32()[i]));
  expect_rows_sum_to_zero(dz);
}

TEST(CrossEntropy, IdenticalForAnyThreadCount) {
  // Large enough (T·C ≥ 2^15) for the threaded path.
  Rng rng(6);
  TensorBuffer z(Shape{300, 257});
  rng.fill_normal(z, 0.0f, 3.0f);
  TensorBuffer y(Shape{300}, DType::kI32);
  for (int64_t i = 0; i < 300; ++i)
    y.view().data<int32_t>()[i] = i % 7 == 0 ? -100 : static_cast<int32_t>(rng.below(257));
  CrossEntropyOptions opts;
  opts.label_smoothing = 0.05;
  TensorBuffer dz1(Shape{300, 257}), dz2(Shape{300, 257});
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double l1 = cross_entropy_loss(z, y, dz1, opts);
  omp_set_num_threads(2);
  const double l2 = cross_entropy_loss(z, y, dz2, opts);
  omp_set_num_threads(saved);
  EXPECT_EQ(l1, l2);
  // Bit patterns, not values: the claim is bit-identical output.
  const int differ = std::memcmp(dz1.f32(), dz2.f32(), dz1.view().nbytes());  // NOLINT
  EXPECT_EQ(differ, 0);
}

TEST(CrossEntropy, TargetOutOfRangeIsAProgrammerError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // OpenMP threads exist by now
  TensorBuffer z(Shape{2, 3});
  TensorBuffer y = i32_tensor({0, 3});
  EXPECT_DEATH((void)cross_entropy_loss(z, y, Tensor()), "target 3 of row 1 outside");
  TensorBuffer y_neg = i32_tensor({-1, 0});
  EXPECT_DEATH((void)cross_entropy_loss(z, y_neg, Tensor()), "target -1 of row 0");
  TensorBuffer w(Shape{4});
  CrossEntropyOptions opts;
  opts.class_weights = w;
  TensorBuffer y_ok = i32_tensor({0, 1});
  EXPECT_DEATH((void)cross_entropy_loss(z, y_ok, Tensor(), opts), "class_weights");
}

TEST(Mse, HandComputedValuesAndPerfectPrediction) {
  TensorBuffer x = f32_tensor(Shape{2, 2}, {1, 2, 0, -1});
  TensorBuffer y = f32_tensor(Shape{2, 2}, {0, 0, 0, 1});
  TensorBuffer dx(Shape{2, 2});
  EXPECT_DOUBLE_EQ(mse_loss(x, y, dx), (1.0 + 4.0 + 0.0 + 4.0) / 4.0);
  const float want[] = {0.5f, 1.0f, 0.0f, -1.0f};  // 2 (x − y) / 4
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(dx.f32()[i], want[i]);
  EXPECT_EQ(mse_loss(x, x, dx, 3.0), 0.0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(dx.f32()[i], 0.0f);
}

TEST(Huber, QuadraticInsideDeltaLinearOutside) {
  TensorBuffer x = f32_tensor(Shape{1, 4}, {0.5f, -2.0f, 3.0f, 0.0f});
  TensorBuffer y(Shape{1, 4});
  TensorBuffer dx(Shape{1, 4});
  // δ = 1: ½·0.25, 1·(2 − ½), 1·(3 − ½), 0
  EXPECT_DOUBLE_EQ(huber_loss(x, y, dx, 1.0), (0.125 + 1.5 + 2.5 + 0.0) / 4);
  const float want[] = {0.125f, -0.25f, 0.25f, 0.0f};  // clamp(d, −1, 1) / 4
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(dx.f32()[i], want[i]);
  // A δ above every residual is half the MSE, gradient included.
  TensorBuffer dmse(Shape{1, 4});
  EXPECT_DOUBLE_EQ(huber_loss(x, y, dx, 10.0), 0.5 * mse_loss(x, y, dmse));
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(dx.f32()[i], 0.5f * dmse.f32()[i]);
}

TEST(RegressionLosses, ShapeMismatchIsAProgrammerError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // OpenMP threads exist by now
  TensorBuffer x(Shape{2, 3}), y(Shape{3, 2});
  EXPECT_DEATH((void)mse_loss(x, y, Tensor()), "mse: target is \\[3, 2\\]");
  EXPECT_DEATH((void)huber_loss(x, x, Tensor(), 0.0), "delta must be positive");
}

}  // namespace
}  // namespace moe
