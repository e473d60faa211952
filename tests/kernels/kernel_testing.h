// Shared helpers of the GEMM kernel tests (gemm_test.cpp, bf16_test.cpp): random operands in fp32
// or bf16, one product's case, and the comparison of a fast kernel's C with the reference's.
//
// Dims: op(A) [m, k] · op(B) [k, n] = C [m, n].
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "moe/core/rng.h"
#include "moe/kernels/bf16.h"
#include "moe/kernels/gemm.h"
#include "testing/fixtures.h"
#include "testing/tensors.h"

namespace moe::testing {

// Uniform(-1, 1) values drawn from `rng`, stored in `dtype`: F32, or BF16 rounded from those
// fp32 values (so both precisions of one seed see the same draws).
inline TensorBuffer random_matrix(Rng& rng, Shape shape, DType dtype) {
  TensorBuffer x = random_uniform(shape, rng);
  if (dtype == DType::kF32) return x;
  TensorBuffer rounded(shape, DType::kBF16);
  convert_to_bf16(x, rounded);
  return rounded;
}

// The fast kernel accumulates in fp32, the reference in double: an error that grows like
// sqrt(k) rounding steps of each sum, hence the absolute term.
inline void expect_product_close(const std::string& label, Tensor fast, Tensor want, int64_t k) {
  expect_close(label, fast, want, 1e-4, 1e-4 * std::sqrt(static_cast<double>(k) + 1));
}

struct GemmCase {
  int64_t m, n, k;
  bool ta, tb;
  float alpha, beta;

  std::string label(const char* op) const {
    return fmt::format("{} m={} n={} k={} {}{} a={} b={}", op, m, n, k, ta ? 'T' : 'N',
                       tb ? 'T' : 'N', alpha, beta);
  }
};

// A and B as stored (A [m, k] or [k, m], B [k, n] or [n, k]) in `dtype`, and one random C twice:
// `fast` for the kernel under test, `want` for the reference. Seeded by the shape.
struct GemmOperands {
  TensorBuffer a, b, fast, want;
};

inline GemmOperands random_operands(const GemmCase& c, DType dtype) {
  Rng rng(c.m * 131 + c.n * 17 + c.k);
  GemmOperands o;
  o.a = random_matrix(rng, c.ta ? Shape{c.k, c.m} : Shape{c.m, c.k}, dtype);
  o.b = random_matrix(rng, c.tb ? Shape{c.n, c.k} : Shape{c.k, c.n}, dtype);
  o.fast = random_matrix(rng, Shape{c.m, c.n}, DType::kF32);
  o.want = TensorBuffer(o.fast.shape());
  copy(o.want, o.fast);
  return o;
}

// C = A·Bᵀ on views of wider buffers, the packed expert segments' case: A [m, k + pad],
// B [n, k + pad] and C [m, n + pad], so lda, ldb and ldc exceed the columns used.
struct StridedProduct {
  GemmShape shape;
  TensorBuffer a, b, fast, want;
};

inline StridedProduct strided_operands(int64_t m, int64_t n, int64_t k, int64_t pad, DType dtype) {
  Rng rng(5);
  StridedProduct p;
  p.shape = {.m = m,
             .n = n,
             .k = k,
             .trans_a = false,
             .trans_b = true,
             .lda = k + pad,
             .ldb = k + pad,
             .ldc = n + pad};
  p.a = random_matrix(rng, Shape{m, k + pad}, dtype);
  p.b = random_matrix(rng, Shape{n, k + pad}, dtype);
  p.fast = random_matrix(rng, Shape{m, n + pad}, DType::kF32);
  p.want = TensorBuffer(p.fast.shape());
  copy(p.want, p.fast);
  return p;
}

// The products agree, and the padding columns of C are untouched (equal to the reference's,
// which never writes them).
inline void expect_strided_close(const std::string& label, const StridedProduct& p) {
  expect_product_close(label, p.fast, p.want, p.shape.k);
  for (int64_t i = 0; i < p.shape.m; ++i)
    for (int64_t j = p.shape.n; j < p.shape.ldc; ++j)
      EXPECT_EQ(p.fast.f32()[i * p.shape.ldc + j], p.want.f32()[i * p.shape.ldc + j]) << label;
}

}  // namespace moe::testing
