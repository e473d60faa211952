// The fused SwiGLU gate (moe/kernels/swiglu_act.h), fast against reference at sizes around the
// 16-lane SIMD width and one large enough for the threaded path; the aliasing the header allows;
// bit-identical results across thread counts.
//
// Dims: N elements.
//
// Tolerance (|fast − ref| ≤ atol + rtol·|ref|): the reference rounds once from double; the fast
// σ is within 2.9 ulp and three or four float roundings follow, so rtol 2e-6 (17 ulp) is ample
// without hiding a real error. silu'(h) = σ(h)(1 + h(1 − σ(h))) crosses zero near h = −1.28,
// where the O(1) terms cancel and relative error means nothing: atol 1e-6 for inputs of O(1).
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <vector>

#include "moe/core/rng.h"
#include "moe/kernels/swiglu_act.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

constexpr double kRtol = 2e-6;
constexpr double kAtol = 1e-6;

struct Inputs {
  TensorBuffer h1, h3, da;
  explicit Inputs(int64_t n) : h1(Shape{n}), h3(Shape{n}), da(Shape{n}) {
    Rng(n).fill_normal(h1, 0.0f, 3.0f);  // wide enough to reach both tails of σ
    Rng(n + 1).fill_normal(h3, 0.0f, 1.0f);
    Rng(n + 2).fill_normal(da, 0.0f, 1.0f);
  }
};

TEST(SwigluAct, ForwardAndBackwardMatchReference) {
  for (int64_t n : {1, 15, 16, 17, 63, 64, 65, 100003}) {
    const Inputs in(n);
    TensorBuffer a(Shape{n}), a_ref(Shape{n});
    swiglu_act_forward(n, in.h1.f32(), in.h3.f32(), a.f32());
    ref::swiglu_act_forward(n, in.h1.f32(), in.h3.f32(), a_ref.f32());
    testing::expect_close("a n=" + std::to_string(n), a, a_ref, kRtol, kAtol);

    TensorBuffer dh1(Shape{n}), dh3(Shape{n}), dh1_ref(Shape{n}), dh3_ref(Shape{n});
    swiglu_act_backward(n, in.h1.f32(), in.h3.f32(), in.da.f32(), dh1.f32(), dh3.f32());
    ref::swiglu_act_backward(n, in.h1.f32(), in.h3.f32(), in.da.f32(), dh1_ref.f32(),
                             dh3_ref.f32());
    testing::expect_close("dh1 n=" + std::to_string(n), dh1, dh1_ref, kRtol, kAtol);
    testing::expect_close("dh3 n=" + std::to_string(n), dh3, dh3_ref, kRtol, kAtol);
  }
}

TEST(SwigluAct, OutputsMayAliasAsDocumented) {
  const int64_t n = 1000;
  const Inputs in(n);
  TensorBuffer a(Shape{n}), dh1(Shape{n}), dh3(Shape{n});
  swiglu_act_forward(n, in.h1.f32(), in.h3.f32(), a.f32());
  swiglu_act_backward(n, in.h1.f32(), in.h3.f32(), in.da.f32(), dh1.f32(), dh3.f32());

  TensorBuffer h3_copy(Shape{n}), da_copy(Shape{n}), dh1_alias(Shape{n});
  copy(h3_copy, in.h3);
  swiglu_act_forward(n, in.h1.f32(), h3_copy.f32(), h3_copy.f32());  // a written over h3
  EXPECT_EQ(std::memcmp(h3_copy.f32(), a.f32(), n * sizeof(float)), 0);
  copy(da_copy, in.da);
  swiglu_act_backward(n, in.h1.f32(), in.h3.f32(), da_copy.f32(), dh1_alias.f32(),
                      da_copy.f32());  // dh3 written over da
  EXPECT_EQ(std::memcmp(dh1_alias.f32(), dh1.f32(), n * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(da_copy.f32(), dh3.f32(), n * sizeof(float)), 0);
}

TEST(SwigluAct, SameBitsForAnyThreadCount) {
  const int64_t n = (1 << 16) + 5;  // above the threading threshold, a ragged last block
  const Inputs in(n);
  const int saved = omp_get_max_threads();
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> out(3 * static_cast<size_t>(n));
    swiglu_act_forward(n, in.h1.f32(), in.h3.f32(), out.data());
    swiglu_act_backward(n, in.h1.f32(), in.h3.f32(), in.da.f32(), out.data() + n,
                        out.data() + 2 * n);
    outs.push_back(std::move(out));
  }
  omp_set_num_threads(saved);
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
}

}  // namespace
}  // namespace moe
