// Finite-difference gradients of every kind of expert through the Expert interface on caller
// memory (forward_into / backward_into, the MoE layer's path): dx and every parameter gradient.
//
// Dims: N rows · D model width · F expert hidden width.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/moe/experts.h"
#include "moe_layer_testing.h"
#include "testing/gradcheck.h"

namespace moe {
namespace {

using testing::expert_config;

void check_kind(const ExpertConfig& c, uint64_t seed) {
  const int64_t n = 5, d = 7;
  ParamStore store;
  Expert expert(d, c);
  expert.declare(store, "e");
  store.finalize();
  expert.bind(store);
  Rng rng(seed);
  expert.init(rng);

  const ExpertFootprint fp = expert.footprint();
  std::vector<float> cache(static_cast<size_t>(n * fp.cache));
  std::vector<float> scratch(static_cast<size_t>(n * fp.scratch));
  TensorBuffer x(Shape{n, d}), y(Shape{n, d}), r(Shape{n, d}), dx(Shape{n, d});
  Rng(seed + 1).fill_normal(x, 0.0f, 1.0f);
  testing::seed_projection(r, seed + 2);
  store.zero_grads();
  expert.forward_into(x, y, {cache.data(), nullptr});
  expert.backward_into(r, dx, {scratch.data(), nullptr});
  auto loss = [&]() {
    expert.forward_into(x, y, {cache.data(), nullptr});
    return testing::project(y, r);
  };
  std::vector<testing::GradTarget> targets = {{"dx", x, dx}};
  for (ParamId id = 0; id < store.size(); ++id)
    targets.push_back({"d" + store.info(id).name, store.value(id), store.grad(id)});
  testing::expect_gradients_match(loss, targets);
}

TEST(ExpertKindsGradcheck, Linear) {
  check_kind(expert_config(ExpertKind::kLinear, 0), 1);
  check_kind(expert_config(ExpertKind::kLinear, 0, 1, Activation::kGelu, false), 2);
}

TEST(ExpertKindsGradcheck, Mlp) {
  check_kind(expert_config(ExpertKind::kMlp, 6, 1, Activation::kGelu), 3);
  check_kind(expert_config(ExpertKind::kMlp, 5, 3, Activation::kTanh, false), 4);
  check_kind(expert_config(ExpertKind::kMlp, 9, 2, Activation::kSilu), 5);
}

TEST(ExpertKindsGradcheck, Swiglu) {
  check_kind(expert_config(ExpertKind::kSwiglu, 6), 6);
}

}  // namespace
}  // namespace moe
