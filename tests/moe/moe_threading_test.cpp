// The MoE layer's expert scheduling: experts run concurrently (one thread each) or one after
// another (threads inside each GEMM), on 1, 2 or 3 threads; every combination must give the same
// bits in the output, dx and every parameter gradient, and match the per-token reference. The
// width D = 512 sends the expert GEMMs down oneDNN's real paths (cached matmul primitives for
// x·Wᵀ, dnnl_sgemm for the backward products), including their runs inside a parallel region.
//
// Dims: T tokens · D model width · F expert hidden width · E experts · K experts per token.
#include <gtest/gtest.h>
#include <omp.h>

#include <vector>

#include "moe/core/rng.h"
#include "moe_testing.h"
#include "testing/fixtures.h"
#include "testing/tensors.h"

namespace moe {
namespace {

using testing::LayerHarness;
using testing::LayerStep;
using testing::random_normal;
using testing::swiglu_top_k_config;

struct Outcome {
  std::vector<float> y, dx, grads;
};

Outcome run(ExpertThreading threading, int threads, bool check_reference) {
  const int64_t t = 300, d = 512, e = 16, k = 2, f = 64;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  LayerHarness h(swiglu_top_k_config(d, e, k, f), 5);
  h.layer.set_expert_threading(threading);
  const TensorBuffer x = testing::random_normal(Shape{t, d}, 6);
  const LayerStep r =
      testing::forward_backward(h, x, testing::random_normal(Shape{t, d}, 7), /*training=*/true);
  // Uneven segments, several experts with many rows and some with few: both schedules matter.
  EXPECT_GT(h.layer.plan().n_kept(), 0);
  if (check_reference)
    testing::expect_close("y vs per-token reference", r.y, testing::reference_output(h.layer, x),
                          1e-5, 1e-6);
  omp_set_num_threads(saved);
  auto values = [](const TensorBuffer& b) {
    return std::vector<float>(b.f32(), b.f32() + b.numel());
  };
  return {values(r.y), values(r.dx), values(r.grads)};
}

TEST(MoeLayerThreading, SameBitsWhateverTheScheduleAndThreadCount) {
  const Outcome base = run(ExpertThreading::kInsideGemm, 1, /*check_reference=*/true);
  struct Case {
    ExpertThreading threading;
    int threads;
    const char* name;
  };
  for (const Case& c : {Case{ExpertThreading::kAcrossExperts, 2, "across experts, 2 threads"},
                        Case{ExpertThreading::kAcrossExperts, 3, "across experts, 3 threads"},
                        Case{ExpertThreading::kInsideGemm, 2, "inside GEMM, 2 threads"},
                        Case{ExpertThreading::kAuto, 2, "auto, 2 threads"}}) {
    const Outcome o = run(c.threading, c.threads, /*check_reference=*/false);
    EXPECT_TRUE(o.y == base.y) << c.name << ": y differs";
    EXPECT_TRUE(o.dx == base.dx) << c.name << ": dx differs";
    EXPECT_TRUE(o.grads == base.grads) << c.name << ": parameter gradients differ";
  }
}

}  // namespace
}  // namespace moe
