// Every op of moe/kernels/ops.h, fast (moe::) against reference (moe::ref::), at sizes around the
// 16-lane SIMD width (1, 15, 16, 17, 63, 64, 65) and a large one that takes the threaded path;
// extreme inputs (logits ±80, −inf entries, ties), the aliasing ops.h allows, and determinism
// (repeated runs and different thread counts give the same bits).
//
// Dims: N elements of an elementwise op · [R, C] rows and columns of a row op.
//
// Tolerances (|fast − ref| ≤ atol + rtol·|ref|). The reference computes in double and rounds
// once, so it is within half an ulp (6e-8 relative) of the truth; the fast ops compute in float:
//   - one float operation (add, mul, scale, bias): identical results, checked with rtol 1e-6;
//     axpy may be fused into one fma or not, so it also gets atol 1e-7 for cancellation
//     (inputs are O(1));
//   - transcendental functions: vec_math.h is within 1-6 ulp (5.7 for the normal cdf), plus
//     the roundings of the few operations around it: rtol 2e-6 (17 ulp) leaves room without
//     hiding a real error, and atol covers results near zero where relative error is meaningless
//     (the derivative of GELU crosses zero at x ≈ −0.75, where the fast and reference formulas
//     differ by an ulp of the O(1) terms that cancel);
//   - softmax and friends: exp is within 1.1 ulp of exp(x − max) with the difference carried
//     exactly, sums are in double: rtol 1e-6.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "moe/core/rng.h"
#include "moe/kernels/ops.h"
#include "testing/fixtures.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using testing::clone;
using testing::random_uniform;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int64_t kSizes[] = {1, 15, 16, 17, 63, 64, 65};
constexpr int64_t kLargeN = int64_t{1} << 20;
constexpr int64_t kLargeRows = 1000, kLargeCols = 1031;
constexpr Activation kActivations[] = {
    Activation::kIdentity, Activation::kRelu,    Activation::kGelu, Activation::kGeluTanh,
    Activation::kSilu,     Activation::kSigmoid, Activation::kTanh};

bool same_bits(Tensor a, Tensor b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Inputs that probe each activation's edges, written over the start of a random tensor: zeros,
// tiny and huge magnitudes, the switch points inside vec_math.h (|x| = 0.55 for tanh, |x/√2| =
// 0.5 for the normal cdf) and the far tails where naive formulas overflow or cancel.
void put_edge_values(Tensor x) {
  const float edges[] = {0.0f,   -0.0f,  1e-30f, -1e-30f, 1e-6f,    -1e-6f, 0.55f,
                         -0.55f, 0.549f, 0.551f, 0.7071f, -0.7071f, 0.75f,  -0.75f,
                         3.0f,   -3.0f,  9.0f,   -9.0f,   14.0f,    -14.0f, 20.0f,
                         -20.0f, 44.0f,  -44.0f, 80.0f,   -80.0f,   100.0f, -100.0f};
  const int64_t n = std::min<int64_t>(x.numel(), std::size(edges));
  for (int64_t i = 0; i < n; ++i) x.f32()[i] = edges[i];
}

struct Tol {
  double rtol, atol;
};

Tol forward_tolerance(Activation a) {
  switch (a) {
    case Activation::kIdentity:
    case Activation::kRelu:
      return {1e-6, 0.0};  // exact
    // The reference computes x/2·(1 + erf z) in double, which cancels below x ≈ −5.5 and leaves
    // an absolute error of ~|x|·1e-16 there.
    case Activation::kGelu:
      return {2e-6, 1e-14};
    // Fast gelu_tanh is x·σ(t) with t = 2u rounded a few times in float, so in the negative tail
    // (σ(t) ≈ e^t) its relative error grows as |t|·2^-23: 2e-6 at t ≈ −10, y ≈ −1e-4. Below that
    // the absolute error |x|·|t|·e^t·2^-23 stays under 1e-9.
    case Activation::kGeluTanh:
      return {2e-6, 1e-9};
    default:
      return {2e-6, 1e-30};  // sigmoid, SiLU, tanh: relative accuracy down to 1e-30
  }
}

// Backward results are dy·f'(x) with |dy| ≤ 1; atol 1e-7 is one ulp of the O(1) terms whose
// difference f'(x) is near its zero crossings (GELU variants) or where f' itself is tiny.
Tol backward_tolerance(Activation a) {
  switch (a) {
    case Activation::kIdentity:
    case Activation::kRelu:
      return {1e-6, 0.0};
    default:
      return {2e-6, 1e-7};
  }
}

void check_activation(Activation act, int64_t n, float range, uint64_t seed) {
  TensorBuffer x = random_uniform(Shape{n}, seed, -range, range);  // [N]
  put_edge_values(x);
  TensorBuffer dy = random_uniform(Shape{n}, seed + 1, -1.0f, 1.0f);  // [N]
  TensorBuffer y(Shape{n}), y_ref(Shape{n}), dx(Shape{n}), dx_ref(Shape{n});
  activation_forward(act, x, y);
  ref::activation_forward(act, x, y_ref);
  const Tol f = forward_tolerance(act);
  testing::expect_close(fmt::format("{} forward n={}", activation_name(act), n), y, y_ref, f.rtol,
                        f.atol);
  activation_backward(act, x, dy, dx);
  ref::activation_backward(act, x, dy, dx_ref);
  const Tol b = backward_tolerance(act);
  testing::expect_close(fmt::format("{} backward n={}", activation_name(act), n), dx, dx_ref,
                        b.rtol, b.atol);
}

TEST(Ops, ActivationsMatchReference) {
  for (Activation act : kActivations) {
    for (int64_t n : kSizes) check_activation(act, n, 8.0f, static_cast<uint64_t>(n));
    check_activation(act, kLargeN, 12.0f, 99);
  }
}

TEST(Ops, ActivationNamesRoundTrip) {
  for (Activation act : kActivations) {
    Activation parsed = Activation::kIdentity;
    ASSERT_TRUE(parse_activation(activation_name(act), &parsed)) << activation_name(act);
    EXPECT_EQ(parsed, act);
  }
  Activation unused;
  EXPECT_FALSE(parse_activation("swish", &unused));
}

TEST(Ops, ActivationKnownValues) {
  TensorBuffer x({1, 3}), y({1, 3});
  x.f32()[0] = -1.0f;
  x.f32()[1] = 0.0f;
  x.f32()[2] = 2.0f;
  activation_forward(Activation::kRelu, x, y);
  EXPECT_EQ(y.f32()[0], 0.0f);
  EXPECT_EQ(y.f32()[2], 2.0f);
  activation_forward(Activation::kSigmoid, x, y);
  EXPECT_FLOAT_EQ(y.f32()[1], 0.5f);
  activation_forward(Activation::kGelu, x, y);
  EXPECT_NEAR(y.f32()[2], 1.9544997f, 1e-6);  // 2 · Φ(2)
  activation_forward(Activation::kSilu, x, y);
  EXPECT_NEAR(y.f32()[0], -0.26894142f, 1e-6);  // −σ(−1)
}

TEST(Ops, ActivationsInPlace) {
  // y == x for the forward, dx == dy for the backward (ops.h allows both).
  for (Activation act : kActivations) {
    for (int64_t n : {int64_t{17}, kLargeN}) {
      TensorBuffer x = random_uniform(Shape{n}, 5, -6.0f, 6.0f);
      TensorBuffer dy = random_uniform(Shape{n}, 6, -1.0f, 1.0f);
      TensorBuffer y(Shape{n}), dx(Shape{n});
      activation_forward(act, x, y);
      activation_backward(act, x, dy, dx);
      TensorBuffer x_inplace = clone(x), dy_inplace = clone(dy);
      activation_forward(act, x_inplace, x_inplace);
      activation_backward(act, x, dy_inplace, dy_inplace);
      EXPECT_TRUE(same_bits(x_inplace, y)) << activation_name(act) << " forward n=" << n;
      EXPECT_TRUE(same_bits(dy_inplace, dx)) << activation_name(act) << " backward n=" << n;
    }
  }
}

TEST(Ops, ElementwiseArithmetic) {
  std::vector<int64_t> sizes(std::begin(kSizes), std::end(kSizes));
  sizes.push_back(kLargeN);
  for (int64_t n : sizes) {
    TensorBuffer a = random_uniform(Shape{n}, 11, -1.0f, 1.0f);  // [N]
    TensorBuffer b = random_uniform(Shape{n}, 12, -1.0f, 1.0f);  // [N]
    TensorBuffer y(Shape{n}), y_ref(Shape{n});
    add(a, b, y);
    ref::add(a, b, y_ref);
    testing::expect_close(fmt::format("add n={}", n), y, y_ref, 1e-6, 0.0);
    mul(a, b, y);
    ref::mul(a, b, y_ref);
    testing::expect_close(fmt::format("mul n={}", n), y, y_ref, 1e-6, 0.0);
    copy(y, b);
    copy(y_ref, b);
    axpy(0.75f, a, y);
    ref::axpy(0.75f, a, y_ref);
    testing::expect_close(fmt::format("axpy n={}", n), y, y_ref, 1e-6, 1e-7);
    copy(y, a);
    copy(y_ref, a);
    scale(y, -1.5f);
    ref::scale(y_ref, -1.5f);
    testing::expect_close(fmt::format("scale n={}", n), y, y_ref, 1e-6, 0.0);
  }
}

struct RowShape {
  int64_t rows, cols;
};

std::vector<RowShape> row_shapes() {
  std::vector<RowShape> shapes;
  for (int64_t rows : {1, 17})
    for (int64_t cols : kSizes) shapes.push_back({rows, cols});
  shapes.push_back({kLargeRows, kLargeCols});
  return shapes;
}

TEST(Ops, BiasRowsAndTheirGradient) {
  for (auto [rows, cols] : row_shapes()) {
    TensorBuffer y = random_uniform(Shape{rows, cols}, 21, -1.0f, 1.0f);  // [R, C]
    TensorBuffer bias = random_uniform(Shape{cols}, 22, -1.0f, 1.0f);     // [C]
    TensorBuffer y_ref = clone(y);
    add_bias_rows(y, bias);
    ref::add_bias_rows(y_ref, bias);
    testing::expect_close(fmt::format("add_bias_rows {}x{}", rows, cols), y, y_ref, 1e-6, 0.0);
    // The gradient accumulates into what dbias already holds.
    TensorBuffer dbias = random_uniform(Shape{cols}, 23, -1.0f, 1.0f);  // [C]
    TensorBuffer dbias_ref = clone(dbias);
    sum_rows_accumulate(y, dbias);
    ref::sum_rows_accumulate(y, dbias_ref);
    testing::expect_close(fmt::format("sum_rows_accumulate {}x{}", rows, cols), dbias, dbias_ref,
                          1e-6, 1e-7);
  }
}

// Softmax, log-softmax and the row reductions of x, fast against reference. Rows that contain
// −inf are compared position by position (−inf must match exactly, finite values closely).
void check_row_ops(const std::string& what, Tensor x) {
  const Shape shape = x.shape();
  const int64_t rows = x.rows(), cols = x.cols();
  TensorBuffer y(shape), y_ref(shape);                  // [R, C]
  TensorBuffer out(Shape{rows}), out_ref(Shape{rows});  // [R]
  auto compare = [&](const std::string& op, Tensor got, Tensor want, double rtol, double atol) {
    bool any_inf = false;
    for (int64_t i = 0; i < want.numel(); ++i) any_inf |= std::isinf(want.f32()[i]);
    if (!any_inf) {
      testing::expect_close(what + " " + op, got, want, rtol, atol);
      return;
    }
    for (int64_t i = 0; i < want.numel(); ++i) {
      const float g = got.f32()[i], w = want.f32()[i];
      if (std::isinf(w)) {
        EXPECT_EQ(g, w) << what << " " << op << " at " << i;
      } else {
        EXPECT_LE(std::fabs(g - w), atol + rtol * std::fabs(w)) << what << " " << op << " at " << i;
      }
    }
  };
  softmax_rows(x, y);
  ref::softmax_rows(x, y_ref);
  // atol: results below ~1e-38 are subnormal floats, with fewer digits than rtol assumes.
  compare("softmax", y, y_ref, 1e-6, 1e-37);
  // log-softmax: the double sum of exps is within ~1.1 ulp of the reference's, which moves
  // log Σ by at most ~1.3e-7 absolutely: atol 2e-7.
  log_softmax_rows(x, y);
  ref::log_softmax_rows(x, y_ref);
  compare("log_softmax", y, y_ref, 1e-6, 2e-7);
  row_logsumexp(x, out);
  ref::row_logsumexp(x, out_ref);
  compare("row_logsumexp", out, out_ref, 1e-6, 2e-7);
  row_max(x, out);
  ref::row_max(x, out_ref);
  compare("row_max", out, out_ref, 0.0, 0.0);
  bool finite = true;
  for (int64_t i = 0; i < x.numel(); ++i) finite &= std::isfinite(x.f32()[i]);
  if (finite) {
    // Both sum in double, in different orders: they differ by at most C·2^-53·Σ|x| before the
    // final rounding, which matters only where the row cancels.
    row_sum(x, out);
    ref::row_sum(x, out_ref);
    double max_abs_row = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      double a = 0.0;
      for (int64_t c = 0; c < cols; ++c) a += std::fabs(x.f32()[r * cols + c]);
      max_abs_row = std::fmax(max_abs_row, a);
    }
    compare("row_sum", out, out_ref, 1e-6, static_cast<double>(cols) * 0x1p-53 * max_abs_row);
  }
}

// Backward of softmax and log-softmax at y = the forward output of x (reference), with random dy.
void check_row_backward(const std::string& what, Tensor x, uint64_t seed) {
  const Shape shape = x.shape();
  const int64_t rows = x.rows(), cols = x.cols();
  TensorBuffer y(shape), dx(shape), dx_ref(shape);             // [R, C]
  TensorBuffer dy = random_uniform(shape, seed, -1.0f, 1.0f);  // [R, C]
  ref::softmax_rows(x, y);
  softmax_rows_backward(y, dy, dx);
  ref::softmax_rows_backward(y, dy, dx_ref);
  // dx = y·(dy − Σ y·dy): the fast dot has one float rounding per product and a double sum, then
  // dy − dot and the product by y round in float, so |error| ≤ y·2^-24·(Σ|y·dy| + |dot| +
  // |dy − dot|) + 2^-24·|dx| ≲ 4·2^-24 = 2.4e-7 with y ≤ 1 and |dy| ≤ 1: atol 2.5e-7.
  testing::expect_close(what + " softmax_backward", dx, dx_ref, 1e-6, 2.5e-7);
  // A −inf logit has y = −inf and e^y = 0: its dx is dy, finite.
  ref::log_softmax_rows(x, y);
  log_softmax_rows_backward(y, dy, dx);
  ref::log_softmax_rows_backward(y, dy, dx_ref);
  // dx = dy − e^y·Σdy: the float e^y (1.1 ulp) scales Σdy, so the error is ~1.3e-7·|Σ dy| at
  // most (e^y ≤ 1): atol 2e-7·max_r |Σ_c dy[r, c]|.
  double max_row_sum = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0.0;
    for (int64_t c = 0; c < cols; ++c) s += dy.f32()[r * cols + c];
    max_row_sum = std::fmax(max_row_sum, std::fabs(s));
  }
  testing::expect_close(what + " log_softmax_backward", dx, dx_ref, 1e-6, 2e-7 * max_row_sum);
}

TEST(Ops, RowOpsMatchReference) {
  for (auto [rows, cols] : row_shapes()) {
    TensorBuffer x = random_uniform(Shape{rows, cols}, static_cast<uint64_t>(cols), -8.0f, 8.0f);
    check_row_ops(fmt::format("{}x{}", rows, cols), x);
    check_row_backward(fmt::format("{}x{}", rows, cols), x, 31);
  }
}

TEST(Ops, RowOpsOnRank3Tensors) {
  // [2, 3, C] is seen as 6 rows of C.
  TensorBuffer x = random_uniform(Shape{2, 3, 65}, 41, -4.0f, 4.0f);
  check_row_ops("2x3x65", x);
  check_row_backward("2x3x65", x, 42);
}

TEST(Ops, SoftmaxWithLargeLogits) {
  // Logits of ±80: exp(x − max) spans e^-160 (underflows to 0) to 1. A dominant class has a
  // log-softmax of −Σ_other e^{x − max}, tiny, where an inexact log Σ would show.
  for (int64_t cols : {2, 17, 64, 1031}) {
    const int64_t rows = 9;
    TensorBuffer x = random_uniform(Shape{rows, cols}, 51, -80.0f, 80.0f);  // [R, C]
    for (int64_t r = 0; r < rows; ++r) x.f32()[r * cols + (r % cols)] = r % 2 == 0 ? 80.0f : -80.0f;
    fill(x.view()[3], -80.0f);  // row 3: one class at 80, the rest at −80 (e^-160 underflows)
    x.f32()[3 * cols] = 80.0f;
    Rng(53).fill_uniform(x.view()[5], 55.0f, 60.0f);  // row 5: one class 20-25 above the rest
    x.f32()[5 * cols] = 80.0f;
    check_row_ops(fmt::format("±80 {}x{}", rows, cols), x);
    check_row_backward(fmt::format("±80 {}x{}", rows, cols), x, 52);
  }
}

TEST(Ops, SoftmaxWithMinusInfinity) {
  // Masked logits: −inf entries with at least one finite entry per row get probability 0 and
  // log-probability −inf; the finite entries share the mass as if the −inf ones were absent.
  const int64_t rows = 4, cols = 33;
  TensorBuffer x = random_uniform(Shape{rows, cols}, 61, -3.0f, 3.0f);  // [R, C]
  for (int64_t c = 0; c < cols; ++c) {
    if (c != 5) x.f32()[c] = -kInf;                    // row 0: one finite entry
    if (c % 3 != 0) x.f32()[cols + c] = -kInf;         // row 1: every third entry finite
    if (c == cols - 1) x.f32()[2 * cols + c] = -kInf;  // row 2: the last entry masked
  }
  check_row_ops("-inf 4x33", x);
  TensorBuffer y(Shape{rows, cols});
  softmax_rows(x, y);
  EXPECT_EQ(y.f32()[5], 1.0f);
  EXPECT_EQ(y.f32()[0], 0.0f);
  log_softmax_rows(x, y);
  EXPECT_EQ(y.f32()[5], 0.0f);
  EXPECT_EQ(y.f32()[0], -kInf);
  check_row_backward("-inf 4x33", x, 62);
}

TEST(Ops, SoftmaxWithTies) {
  // Every entry equal: softmax is exactly uniform for a power-of-two width, log-softmax −log C.
  for (int64_t cols : {1, 16, 64, 1031}) {
    TensorBuffer x(Shape{3, cols});
    fill(x, 2.5f);
    check_row_ops(fmt::format("ties {}", cols), x);
    TensorBuffer y(Shape{3, cols});
    softmax_rows(x, y);
    if ((cols & (cols - 1)) == 0) {
      EXPECT_EQ(y.f32()[cols - 1], 1.0f / static_cast<float>(cols));
    }
    log_softmax_rows(x, y);
    EXPECT_NEAR(y.f32()[0], -std::log(static_cast<double>(cols)), 1e-6);
  }
  // Two tied maxima among smaller entries.
  TensorBuffer x = random_uniform(Shape{5, 40}, 71, -2.0f, 2.0f);
  for (int64_t r = 0; r < 5; ++r) x.f32()[r * 40 + 3] = x.f32()[r * 40 + 30] = 7.0f;
  check_row_ops("two maxima 5x40", x);
  check_row_backward("two maxima 5x40", x, 72);
}

TEST(Ops, SoftmaxInPlace) {
  for (auto [rows, cols] : {RowShape{3, 17}, RowShape{kLargeRows, kLargeCols}}) {
    TensorBuffer x = random_uniform(Shape{rows, cols}, 81, -8.0f, 8.0f);
    TensorBuffer y(Shape{rows, cols});
    softmax_rows(x, y);
    TensorBuffer inplace = clone(x);
    softmax_rows(inplace, inplace);
    EXPECT_TRUE(same_bits(inplace, y)) << "softmax " << rows << "x" << cols;
    log_softmax_rows(x, y);
    copy(inplace, x);
    log_softmax_rows(inplace, inplace);
    EXPECT_TRUE(same_bits(inplace, y)) << "log_softmax " << rows << "x" << cols;
  }
}

TEST(Ops, SumAndSumSquares) {
  std::vector<int64_t> sizes(std::begin(kSizes), std::end(kSizes));
  sizes.push_back(kLargeN);
  sizes.push_back(3 * kLargeN + 5);  // several chunk groups and a ragged end
  for (int64_t n : sizes) {
    TensorBuffer x = random_uniform(Shape{n}, 91, -1.0f, 1.0f);  // [N]
    double abs_sum = 0.0;
    for (int64_t i = 0; i < n; ++i) abs_sum += std::fabs(x.f32()[i]);
    // Both accumulate in double in different orders; a sum of n terms is within (n − 1)·2^-53·
    // Σ|x| of the exact one, so the two agree to 2n·2^-53·Σ|x|.
    const double bound = 2.0 * static_cast<double>(n) * 0x1p-53;
    EXPECT_NEAR(sum(x), ref::sum(x), bound * abs_sum) << "sum n=" << n;
    const double sq = ref::sum_squares(x);
    EXPECT_NEAR(sum_squares(x), sq, bound * sq) << "sum_squares n=" << n;
  }
  TensorBuffer empty(Shape{0});
  EXPECT_EQ(sum(empty), 0.0);
  EXPECT_EQ(sum_squares(empty), 0.0);
}

// Runs `op` (which writes `out`) with 2 threads, again with 2, then with 1, and expects the same
// bits each time.
template <typename Op>
void expect_deterministic(const std::string& what, Tensor out, Op op) {
  const int saved = omp_get_max_threads();
  TensorBuffer first(out.shape());
  omp_set_num_threads(2);
  op();
  copy(first, out);
  for (int threads : {2, 1}) {
    omp_set_num_threads(threads);
    fill(out, -1.0f);
    op();
    EXPECT_TRUE(same_bits(out, first)) << what << " with " << threads << " threads";
  }
  omp_set_num_threads(saved);
}

TEST(Ops, DeterministicAcrossRunsAndThreadCounts) {
  const int64_t rows = kLargeRows, cols = kLargeCols;
  TensorBuffer x = random_uniform(Shape{rows, cols}, 101, -8.0f, 8.0f);   // [R, C]
  TensorBuffer dy = random_uniform(Shape{rows, cols}, 102, -1.0f, 1.0f);  // [R, C]
  TensorBuffer p(Shape{rows, cols}), y(Shape{rows, cols});                // [R, C]
  TensorBuffer out(Shape{rows});                                          // [R]
  TensorBuffer dbias(Shape{cols});                                        // [C]
  ref::softmax_rows(x, p);
  for (Activation act : kActivations) {
    expect_deterministic(fmt::format("{} forward", activation_name(act)), y,
                         [&] { activation_forward(act, x, y); });
    expect_deterministic(fmt::format("{} backward", activation_name(act)), y,
                         [&] { activation_backward(act, x, dy, y); });
  }
  expect_deterministic("softmax", y, [&] { softmax_rows(x, y); });
  expect_deterministic("log_softmax", y, [&] { log_softmax_rows(x, y); });
  expect_deterministic("softmax_backward", y, [&] { softmax_rows_backward(p, dy, y); });
  expect_deterministic("log_softmax_backward", y, [&] { log_softmax_rows_backward(x, dy, y); });
  expect_deterministic("row_logsumexp", out, [&] { row_logsumexp(x, out); });
  expect_deterministic("row_sum", out, [&] { row_sum(x, out); });
  expect_deterministic("sum_rows_accumulate", dbias, [&] {
    fill(dbias, 0.0f);
    sum_rows_accumulate(dy, dbias);
  });
  expect_deterministic("axpy", y, [&] {
    copy(y, dy);
    axpy(0.3f, x, y);
  });
  // The double sums, bit for bit.
  for (int threads : {2, 1}) {
    omp_set_num_threads(threads);
    const double s = sum(x), sq = sum_squares(x);
    omp_set_num_threads(2);
    EXPECT_EQ(s, sum(x)) << threads << " threads";
    EXPECT_EQ(sq, sum_squares(x)) << threads << " threads";
  }
}

TEST(Ops, ShapeMismatchIsAProgrammerError) {
  TensorBuffer a(Shape{4, 3}), b(Shape{4, 2}), bias(Shape{2}), out(Shape{3});
  EXPECT_DEATH(add(a, b, a), "add");
  EXPECT_DEATH(softmax_rows(a, b), "softmax_rows");
  EXPECT_DEATH(add_bias_rows(a, bias), "add_bias_rows");
  EXPECT_DEATH(row_sum(a, out), "row_sum");
  EXPECT_DEATH(ref::row_max(a, out), "row_max");
}

}  // namespace
}  // namespace moe
