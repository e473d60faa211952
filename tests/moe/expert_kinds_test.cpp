// Every kind of expert through the one Expert interface (moe/experts.h): forward and backward
// against a reference made of gemm_ref and the reference ops, the same bits on caller memory
// (forward_into / backward_into) as on an Arena, bf16 within rounding of fp32, and, in a MoE
// layer, bf16 and both schedules for linear and MLP experts as for SwiGLU.
//
// Dims: N rows · D model width · F expert hidden width · T tokens · E experts · K per token.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/kernels/gemm.h"
#include "moe/kernels/ops.h"
#include "moe/kernels/swiglu_act.h"
#include "moe/moe/experts.h"
#include "moe_testing.h"
#include "testing/fixtures.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using testing::expert_config;

constexpr int64_t kD = 12, kF = 10;  // off the SIMD widths

struct KindCase {
  const char* name;
  ExpertConfig config;
};

std::vector<KindCase> kind_cases() {
  return {{"linear", expert_config(ExpertKind::kLinear, 0)},
          {"linear_nobias", expert_config(ExpertKind::kLinear, 0, 1, Activation::kGelu, false)},
          {"mlp1_gelu", expert_config(ExpertKind::kMlp, kF, 1, Activation::kGelu)},
          {"mlp3_tanh_nobias", expert_config(ExpertKind::kMlp, kF, 3, Activation::kTanh, false)},
          {"mlp2_relu", expert_config(ExpertKind::kMlp, 17, 2, Activation::kRelu)},
          {"mlp2_silu", expert_config(ExpertKind::kMlp, 17, 2, Activation::kSilu)},
          {"swiglu", expert_config(ExpertKind::kSwiglu, kF)}};
}

TensorBuffer random_buffer(Shape s, uint64_t seed) {
  TensorBuffer t(s);
  Rng(seed).fill_normal(t.view(), 0.0f, 1.0f);
  return t;
}

// One expert in its own store, initialised from a fixed seed.
struct ExpertHarness {
  ParamStore store;
  Expert expert;
  Arena arena;
  explicit ExpertHarness(const ExpertConfig& c, Precision p = Precision::kF32) : expert(kD, c) {
    expert.set_precision(p);
    expert.declare(store, "e");
    store.finalize();
    expert.bind(store);
    Rng rng(5);
    expert.init(rng);
  }
  Tensor value(const std::string& name) const { return store.value(store.find("e." + name)); }
  TensorBuffer grads_copy() const {
    TensorBuffer g(store.grads().shape());
    copy(g, store.grads());
    return g;
  }
};

struct StepResult {
  TensorBuffer y, dx, grads;
};

StepResult arena_step(ExpertHarness& h, Tensor x, Tensor dy) {
  StepResult r{TensorBuffer(x.shape()), TensorBuffer(x.shape()), {}};
  h.store.zero_grads();
  h.arena.reset();
  h.expert.forward(x, r.y, h.arena);
  h.expert.backward(dy, r.dx, h.arena);
  r.grads = h.grads_copy();
  return r;
}

// The same step on caller memory sized by footprint(), filled with NaN first: a kind that read a
// value it had not written would spread NaN into its results.
StepResult caller_memory_step(ExpertHarness& h, Tensor x, Tensor dy) {
  const int64_t n = x.rows();
  const ExpertFootprint fp = h.expert.footprint();
  std::vector<float> cache(static_cast<size_t>(n * fp.cache), std::nanf(""));
  std::vector<float> scratch(static_cast<size_t>(n * fp.scratch), std::nanf(""));
  std::vector<bf16> cache16(static_cast<size_t>(n * fp.cache_bf16), f32_to_bf16(std::nanf("")));
  std::vector<bf16> scratch16(static_cast<size_t>(n * fp.scratch_bf16), f32_to_bf16(std::nanf("")));
  StepResult r{TensorBuffer(x.shape()), TensorBuffer(x.shape()), {}};
  h.store.zero_grads();
  h.expert.forward_into(x, r.y, {cache.data(), cache16.data()});
  h.expert.backward_into(dy, r.dx, {scratch.data(), scratch16.data()});
  r.grads = h.grads_copy();
  return r;
}

// The expert by separate reference products: y, dx and every parameter gradient, by name.
struct Reference {
  TensorBuffer y, dx;
  std::vector<std::pair<std::string, TensorBuffer>> grads;
};

Reference reference_step(const ExpertHarness& h, const ExpertConfig& c, Tensor x, Tensor dy) {
  const int64_t n = x.rows();
  Reference r{TensorBuffer(x.shape()), TensorBuffer(x.shape()), {}};
  if (c.kind == ExpertKind::kSwiglu) {
    const int64_t f = c.hidden;
    TensorBuffer h1(Shape{n, f}), h3(Shape{n, f}), a(Shape{n, f}), da(Shape{n, f}),
        dh1(Shape{n, f}), dh3(Shape{n, f}), dw1(Shape{f, kD}), dw2(Shape{kD, f}), dw3(Shape{f, kD});
    gemm_ref(x, false, h.value("w1"), true, h1);
    gemm_ref(x, false, h.value("w3"), true, h3);
    ref::swiglu_act_forward(n * f, h1.f32(), h3.f32(), a.f32());
    gemm_ref(a, false, h.value("w2"), true, r.y);
    gemm_ref(dy, true, a, false, dw2);
    gemm_ref(dy, false, h.value("w2"), false, da);
    ref::swiglu_act_backward(n * f, h1.f32(), h3.f32(), da.f32(), dh1.f32(), dh3.f32());
    gemm_ref(dh1, true, x, false, dw1);
    gemm_ref(dh3, true, x, false, dw3);
    gemm_ref(dh1, false, h.value("w1"), false, r.dx);
    gemm_ref(dh3, false, h.value("w3"), false, r.dx, {1.0f, 1.0f});
    r.grads.emplace_back("w1", std::move(dw1));
    r.grads.emplace_back("w2", std::move(dw2));
    r.grads.emplace_back("w3", std::move(dw3));
    return r;
  }
  // Linear: one layer D -> D; MLP: D -> F, (F -> F) × (depth − 1), F -> D, act between.
  const int n_layers = c.kind == ExpertKind::kLinear ? 1 : c.depth + 1;
  std::vector<TensorBuffer> pre, post;  // per hidden layer, [N, F]
  std::vector<Tensor> inputs{x};
  for (int i = 0; i < n_layers; ++i) {
    const std::string id = std::to_string(i + 1);
    const Tensor w = h.value("w" + id);
    const bool last = i == n_layers - 1;
    TensorBuffer out(Shape{n, w.dim(0)});
    gemm_ref(inputs.back(), false, w, true, last ? r.y.view() : out.view());
    if (c.bias) ref::add_bias_rows(last ? r.y.view() : out.view(), h.value("b" + id));
    if (last) break;
    TensorBuffer act(out.shape());
    ref::activation_forward(c.activation, out, act);
    pre.push_back(std::move(out));
    post.push_back(std::move(act));
    inputs.push_back(post.back().view());
  }
  TensorBuffer dz(dy.shape());
  copy(dz, dy);
  for (int i = n_layers - 1; i >= 0; --i) {
    const std::string id = std::to_string(i + 1);
    const Tensor w = h.value("w" + id);
    TensorBuffer dw(w.shape());
    gemm_ref(dz, true, inputs[static_cast<size_t>(i)], false, dw);
    r.grads.emplace_back("w" + id, std::move(dw));
    if (c.bias) {
      TensorBuffer db(Shape{w.dim(0)});
      ref::sum_rows_accumulate(dz, db);
      r.grads.emplace_back("b" + id, std::move(db));
    }
    TensorBuffer din(Shape{n, w.dim(1)});
    gemm_ref(dz, false, w, false, i == 0 ? r.dx.view() : din.view());
    if (i == 0) break;
    TensorBuffer next(din.shape());
    ref::activation_backward(c.activation, pre[static_cast<size_t>(i - 1)], din, next);
    dz = std::move(next);
  }
  return r;
}

Tensor grad_of(const ExpertHarness& h, const TensorBuffer& grads, const std::string& name) {
  const ParamInfo& info = h.store.info(h.store.find("e." + name));
  return Tensor(grads.f32() + info.offset, info.shape);
}

bool same_bits(Tensor a, Tensor b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(ExpertKinds, EveryKindMatchesTheReference) {
  for (const KindCase& k : kind_cases()) {
    ExpertHarness h(k.config);
    for (const int64_t n : {1, 7, 33}) {
      SCOPED_TRACE(std::string(k.name) + ", N=" + std::to_string(n));
      const TensorBuffer x = random_buffer(Shape{n, kD}, 30 + n);
      const TensorBuffer dy = random_buffer(Shape{n, kD}, 40 + n);
      const StepResult s = arena_step(h, x, dy);
      const Reference r = reference_step(h, k.config, x, dy);
      testing::expect_close("y", s.y, r.y, 1e-4, 1e-5);
      testing::expect_close("dx", s.dx, r.dx, 1e-4, 1e-5);
      for (const auto& [name, g] : r.grads)
        testing::expect_close("d" + name, grad_of(h, s.grads, name), g, 1e-4, 1e-5);
      EXPECT_EQ(static_cast<int64_t>(r.grads.size()), h.store.size());
    }
  }
}

TEST(ExpertKinds, CallerMemoryGivesTheArenaBits) {
  for (const KindCase& k : kind_cases()) {
    for (const Precision p : {Precision::kF32, Precision::kBF16}) {
      SCOPED_TRACE(std::string(k.name) + " " + precision_name(p));
      ExpertHarness h(k.config, p);
      const TensorBuffer x = random_buffer(Shape{19, kD}, 1), dy = random_buffer(Shape{19, kD}, 2);
      const StepResult a = arena_step(h, x, dy);
      const StepResult b = caller_memory_step(h, x, dy);
      EXPECT_TRUE(same_bits(a.y, b.y));
      EXPECT_TRUE(same_bits(a.dx, b.dx));
      EXPECT_TRUE(same_bits(a.grads, b.grads));
    }
  }
}

TEST(ExpertKinds, FootprintAndBf16Copies) {
  for (const KindCase& k : kind_cases()) {
    SCOPED_TRACE(k.name);
    ExpertHarness h32(k.config), h16(k.config, Precision::kBF16);
    const ExpertFootprint f32 = h32.expert.footprint(), f16 = h16.expert.footprint();
    EXPECT_EQ(f32.cache_bf16, 0);
    EXPECT_EQ(f32.scratch_bf16, 0);
    EXPECT_EQ(f16.cache, f32.cache);
    EXPECT_EQ(f16.scratch, f32.scratch);
    EXPECT_GE(f16.cache_bf16, kD);    // x rounded, at least
    EXPECT_GE(f16.scratch_bf16, kD);  // dy rounded, at least
    // One bf16 copy of every weight matrix (not of the biases).
    int64_t matrices = 0;
    for (ParamId id = 0; id < h16.store.size(); ++id)
      if (h16.store.info(id).shape.rank == 2) matrices += h16.store.info(id).shape.numel();
    EXPECT_EQ(h16.expert.bf16_weight_bytes(), 2 * matrices);
    EXPECT_EQ(h32.expert.bf16_weight_bytes(), 0);
  }
}

// ‖a − b‖₂ / ‖b‖₂ over every element.
double relative_error(Tensor a, Tensor b) {
  double diff = 0.0, ref = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double dv = static_cast<double>(a.f32()[i]) - b.f32()[i];
    diff += dv * dv;
    ref += static_cast<double>(b.f32()[i]) * b.f32()[i];
  }
  return ref > 0.0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

// bf16 against fp32 for each kind, with the bound of moe_bf16_test.cpp (2^-5: ~8x the error of
// products on operands rounded once to 8 significant bits); the lower bound proves the bf16 path
// ran at all.
TEST(ExpertKinds, Bf16StaysWithinRoundingOfFp32) {
  const double tol = std::ldexp(1.0, -5);
  for (const KindCase& k : kind_cases()) {
    SCOPED_TRACE(k.name);
    ExpertHarness h32(k.config), h16(k.config, Precision::kBF16);
    const TensorBuffer x = random_buffer(Shape{41, kD}, 7), dy = random_buffer(Shape{41, kD}, 8);
    const StepResult a = arena_step(h32, x, dy);
    const StepResult b = arena_step(h16, x, dy);
    EXPECT_LT(relative_error(b.y, a.y), tol);
    EXPECT_GT(relative_error(b.y, a.y), 1e-5) << "bf16 output equals fp32: bf16 did not run";
    // ReLU's derivative jumps at 0: the few pre-activations within bf16's error of 0 (~0.1%
    // here) take the other branch and move their gradient by its whole size, which gives an
    // error near √0.1% ≈ 3% whatever the size; its output is continuous and stays in bounds.
    if (k.config.kind == ExpertKind::kMlp && k.config.activation == Activation::kRelu) continue;
    EXPECT_LT(relative_error(b.dx, a.dx), tol);
    for (ParamId id = 0; id < h32.store.size(); ++id) {
      const ParamInfo& info = h32.store.info(id);
      EXPECT_LT(relative_error(Tensor(b.grads.f32() + info.offset, info.shape),
                               Tensor(a.grads.f32() + info.offset, info.shape)),
                tol)
          << info.name;
    }
  }
}

TEST(ExpertKinds, NoRowsCostsNothingAndLeavesGradients) {
  for (const KindCase& k : kind_cases()) {
    SCOPED_TRACE(k.name);
    ExpertHarness h(k.config, Precision::kBF16);
    h.store.zero_grads();
    const Tensor none(static_cast<float*>(nullptr), Shape{0, kD});
    h.expert.forward_into(none, none, {});
    h.expert.backward_into(none, none, {});
    EXPECT_EQ(sum_squares(h.store.grads()), 0.0);
  }
}

// A layer with every kind among its routed and shared experts.
MoeConfig mixed_layer(Precision p) {
  const int64_t d = 64, e = 4;
  MoeConfig c = testing::moe_config(d, e, expert_config(ExpertKind::kSwiglu, 48),
                                    testing::gate_config(GateKind::kTopKSoftmax, d, e, 2));
  c.experts = {expert_config(ExpertKind::kLinear, 0), expert_config(ExpertKind::kMlp, 40, 1),
               expert_config(ExpertKind::kMlp, 24, 2, Activation::kSilu, false),
               expert_config(ExpertKind::kSwiglu, 48)};
  c.shared = {expert_config(ExpertKind::kMlp, 32, 1, Activation::kRelu)};
  c.precision = p;
  return c;
}

TEST(ExpertKinds, LayerOfEveryKindInBf16StaysCloseToFp32) {
  testing::LayerHarness h32(mixed_layer(Precision::kF32), 5);
  testing::LayerHarness h16(mixed_layer(Precision::kBF16), 5);
  const TensorBuffer x = testing::random_normal({150, 64}, 1),
                     dy = testing::random_normal({150, 64}, 2);
  const testing::LayerStep a = testing::forward_backward(h32, x, dy, /*training=*/true);
  const testing::LayerStep b = testing::forward_backward(h16, x, dy, /*training=*/true);
  for (int64_t e = 0; e < 4; ++e) ASSERT_GT(h32.layer.plan().expert_rows(e), 0);
  const double tol = std::ldexp(1.0, -5);
  EXPECT_LT(relative_error(b.y, a.y), tol);
  EXPECT_LT(relative_error(b.dx, a.dx), tol);
  for (ParamId id = 0; id < h32.store.size(); ++id) {
    const ParamInfo& info = h32.store.info(id);
    const Tensor g32(a.grads.f32() + info.offset, info.shape);
    const Tensor g16(b.grads.f32() + info.offset, info.shape);
    EXPECT_LT(relative_error(g16, g32), tol) << info.name;
    // Every expert computed in bf16: none of its weight gradients is fp32's.
    if (info.shape.rank == 2 && info.name.find("router") == std::string::npos) {
      EXPECT_GT(relative_error(g16, g32), 1e-6) << info.name << " looks computed in fp32";
    }
  }
  EXPECT_GT(h16.layer.bf16_weight_bytes(), 0);
}

// Experts across threads or one after another, in either precision: the same bits.
TEST(ExpertKinds, LayerOfEveryKindGivesTheSameBitsOnEitherSchedule) {
  for (const Precision p : {Precision::kF32, Precision::kBF16}) {
    SCOPED_TRACE(precision_name(p));
    testing::LayerHarness h(mixed_layer(p), 5);
    const TensorBuffer x = testing::random_normal({200, 64}, 3),
                       dy = testing::random_normal({200, 64}, 4);
    h.layer.set_expert_threading(ExpertThreading::kAcrossExperts);
    const testing::LayerStep a = testing::forward_backward(h, x, dy, /*training=*/true);
    h.layer.set_expert_threading(ExpertThreading::kInsideGemm);
    const testing::LayerStep b = testing::forward_backward(h, x, dy, /*training=*/true);
    EXPECT_TRUE(same_bits(a.y, b.y));
    EXPECT_TRUE(same_bits(a.dx, b.dx));
    EXPECT_TRUE(same_bits(a.grads, b.grads));
    if (p == Precision::kF32)
      testing::expect_close("y vs per-token reference", a.y, testing::reference_output(h.layer, x),
                            1e-5, 1e-6);
  }
}

}  // namespace
}  // namespace moe
