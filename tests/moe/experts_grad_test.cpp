// SwiGLU experts with their weight gradients written on a step's first contribution
// (ParamStore::clear_grads) rather than added to zeros: the same gradients as after
// zero_grads(), and the expert against a reference of gemm_ref and the reference gate kernels.
//
// Dims: N rows · D model width · F expert hidden width.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/kernels/gemm.h"
#include "moe/kernels/swiglu_act.h"
#include "moe/moe/experts.h"
#include "testing/fixtures.h"
#include "testing/tensors.h"

namespace moe {
namespace {

// Every parameter's gradient = v (the padding after each group stays as it is, zero).
void fill_grads(const ParamStore& store, float v) {
  for (ParamId id = 0; id < store.size(); ++id) {
    const Tensor g = store.grad(id);
    for (int64_t i = 0; i < g.numel(); ++i) g.f32()[i] = v;
  }
}

// One SwiGLU expert in its own store; D and F off multiples of 16.
struct ExpertHarness {
  static constexpr int64_t kD = 12, kF = 10;
  ParamStore store;
  Expert expert{kD, ExpertConfig{ExpertKind::kSwiglu, kF}};
  Arena arena;
  ExpertHarness() {
    expert.declare(store, "e");
    store.finalize();
    expert.bind(store);
    Rng rng(5);
    expert.init(rng);
  }
  Tensor w(int i) const { return store.value(store.find("e.w" + std::to_string(i))); }
  Tensor dw(int i) const { return store.grad(store.find("e.w" + std::to_string(i))); }
  void step(Tensor x, Tensor y, Tensor dy, Tensor dx) {
    arena.reset();
    expert.forward(x, y, arena);
    expert.backward(dy, dx, arena);
  }
};

// The SwiGLU expert by separate products: y, dx and the three weight gradients.
struct Reference {
  TensorBuffer y, dx, dw1, dw2, dw3;
};

Reference reference_step(const ExpertHarness& h, Tensor x, Tensor dy) {
  const int64_t n = x.rows(), d = ExpertHarness::kD, f = ExpertHarness::kF;
  TensorBuffer h1(Shape{n, f}), h3(Shape{n, f}), a(Shape{n, f}), da(Shape{n, f}), dh1(Shape{n, f}),
      dh3(Shape{n, f});
  Reference r{TensorBuffer(Shape{n, d}), TensorBuffer(Shape{n, d}), TensorBuffer(Shape{f, d}),
              TensorBuffer(Shape{d, f}), TensorBuffer(Shape{f, d})};
  gemm_ref(x, false, h.w(1), true, h1);
  gemm_ref(x, false, h.w(3), true, h3);
  ref::swiglu_act_forward(n * f, h1.f32(), h3.f32(), a.f32());
  gemm_ref(a, false, h.w(2), true, r.y);
  gemm_ref(dy, true, a, false, r.dw2);
  gemm_ref(dy, false, h.w(2), false, da);
  ref::swiglu_act_backward(n * f, h1.f32(), h3.f32(), da.f32(), dh1.f32(), dh3.f32());
  gemm_ref(dh1, true, x, false, r.dw1);
  gemm_ref(dh3, true, x, false, r.dw3);
  gemm_ref(dh1, false, h.w(1), false, r.dx);
  gemm_ref(dh3, false, h.w(3), false, r.dx, {1.0f, 1.0f});
  return r;
}

TEST(ExpertGrad, SwigluMatchesTheReference) {
  ExpertHarness h;
  for (const int64_t n : {1, 7, 33}) {
    const TensorBuffer x = testing::random_normal(Shape{n, ExpertHarness::kD}, 30 + n);
    const TensorBuffer dy = testing::random_normal(Shape{n, ExpertHarness::kD}, 40 + n);
    TensorBuffer y(Shape{n, ExpertHarness::kD}), dx(Shape{n, ExpertHarness::kD});
    h.store.zero_grads();
    h.step(x, y, dy, dx);
    const Reference r = reference_step(h, x, dy);
    testing::expect_close("y", y, r.y);
    testing::expect_close("dx", dx, r.dx);
    testing::expect_close("dw1", h.dw(1), r.dw1);
    testing::expect_close("dw2", h.dw(2), r.dw2);
    testing::expect_close("dw3", h.dw(3), r.dw3);
  }
}

// The same gradients whether the step starts from zero_grads() or from clear_grads() over stale
// values; a second contribution in the step accumulates; an expert without rows ends at zero.
void check_deferred_zeroing(Precision p) {
  ExpertHarness h;
  h.expert.set_precision(p);
  const int64_t n = 9, d = ExpertHarness::kD;
  const TensorBuffer x = testing::random_normal(Shape{n, d}, 1),
                     dy = testing::random_normal(Shape{n, d}, 2);
  const TensorBuffer x2 = testing::random_normal(Shape{n, d}, 3),
                     dy2 = testing::random_normal(Shape{n, d}, 4);
  TensorBuffer y(Shape{n, d}), dx(Shape{n, d});
  const Tensor grads(h.store.grad(0).f32(), Shape{h.store.values().numel()});  // the arena

  // Eager: zeros, then two contributions.
  h.store.zero_grads();
  h.step(x, y, dy, dx);
  h.step(x2, y, dy2, dx);
  TensorBuffer eager(grads.shape());
  std::memcpy(eager.f32(), grads.f32(), grads.nbytes());

  // Deferred, over stale gradients (NaN: β = 0 must not read them).
  fill_grads(h.store, std::nanf(""));
  h.store.clear_grads();
  h.step(x, y, dy, dx);
  h.step(x2, y, dy2, dx);
  h.store.settle_grads();
  testing::expect_close("deferred vs eager", grads, eager, 0.0, 0.0);

  // No rows this step: the gradients end at zero.
  fill_grads(h.store, 3.0f);
  h.store.clear_grads();
  const Tensor none(static_cast<float*>(nullptr), Shape{0, d});
  h.step(none, none, none, none);
  h.store.settle_grads();
  for (int64_t i = 0; i < grads.numel(); ++i) ASSERT_EQ(grads.f32()[i], 0.0f) << i;
}

TEST(ExpertGrad, DeferredZeroingGivesTheEagerGradientsFp32) {
  check_deferred_zeroing(Precision::kF32);
}

TEST(ExpertGrad, DeferredZeroingGivesTheEagerGradientsBf16) {
  check_deferred_zeroing(Precision::kBF16);
}

// bf16: the expert stays within bf16 rounding of the fp32 reference (restating its exact
// roundings would restate the whole bf16 path).
TEST(ExpertGrad, Bf16StaysWithinRoundingOfTheReference) {
  ExpertHarness h;
  h.expert.set_precision(Precision::kBF16);
  const int64_t n = 17, d = ExpertHarness::kD;
  const TensorBuffer x = testing::random_normal(Shape{n, d}, 7),
                     dy = testing::random_normal(Shape{n, d}, 8);
  TensorBuffer y(Shape{n, d}), dx(Shape{n, d});
  h.store.zero_grads();
  h.step(x, y, dy, dx);
  const Reference r = reference_step(h, x, dy);
  // A few bf16 roundings (2^-9 relative each) of operands of sums over ≤ 17 terms.
  const double rtol = 3e-2, atol = 3e-2;
  testing::expect_close("y", y, r.y, rtol, atol);
  testing::expect_close("dx", dx, r.dx, rtol, atol);
  testing::expect_close("dw1", h.dw(1), r.dw1, rtol, atol);
  testing::expect_close("dw2", h.dw(2), r.dw2, rtol, atol);
  testing::expect_close("dw3", h.dw(3), r.dw3, rtol, atol);
}

}  // namespace
}  // namespace moe
