// The MoE layer against PyTorch: output, input gradient and every parameter gradient (router
// included) from the fixtures tests/golden/gen_moe.py writes (float64 autograd on the stored
// float32 values). Parameters are stored under their ParamStore names, so a fixture also pins the
// naming scheme and the [out, in] layouts.
//
// Dims: T tokens · D model width · F expert hidden width · E experts · K experts per token.
#include <gtest/gtest.h>

#include <string>

#include "moe_layer_testing.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

using testing::expert_config;
using testing::Fixture;
using testing::gate_config;

// Loads every parameter of the layer from the fixture, runs forward and backward, and compares
// y, dx, every gradient and (for top-k gates) each token's expert ids, best first.
void check_against_fixture(const std::string& name, const MoeConfig& c, bool check_ids) {
  Fixture f(name);
  ASSERT_TRUE(f.ok());
  testing::LayerHarness h(c, 1);
  for (ParamId id = 0; id < h.store.size(); ++id) {
    TensorBuffer v = f.get(h.store.info(id).name);
    ASSERT_EQ(v.shape(), h.store.info(id).shape) << h.store.info(id).name;
    copy(h.store.value(id), v);
  }
  TensorBuffer x = f.get("x"), dy = f.get("dy");
  const int64_t t = x.view().rows();
  TensorBuffer y(x.shape()), dx(x.shape());
  h.store.zero_grads();
  h.forward(x, y, /*training=*/true);
  if (check_ids) {
    TensorBuffer ids = f.get("expert_ids");  // [T, K]
    const RoutingPlan& p = h.layer.plan();
    const int64_t k = ids.view().cols();
    for (int64_t tok = 0; tok < t; ++tok) {
      ASSERT_EQ(p.token_offsets[tok + 1] - p.token_offsets[tok], k) << "token " << tok;
      for (int64_t j = 0; j < k; ++j)
        EXPECT_EQ(p.expert_ids[p.token_offsets[tok] + j],
                  static_cast<int32_t>(ids.view().at(tok, j)))
            << "token " << tok << " slot " << j;
    }
  }
  h.layer.backward(dy, dx, h.arena);
  testing::expect_close(name + " y", y, f.get("y"));
  testing::expect_close(name + " dx", dx, f.get("dx"));
  for (ParamId id = 0; id < h.store.size(); ++id) {
    const std::string& pname = h.store.info(id).name;
    testing::expect_close("d" + pname, h.store.grad(id), f.get("grad." + pname));
  }
}

TEST(MoeLayerGolden, TopTwoSoftmaxWithSwigluExperts) {
  MoeConfig c = testing::moe_config(8, 4, expert_config(ExpertKind::kSwiglu, 16),
                                    gate_config(GateKind::kTopKSoftmax, 8, 4, 2));
  check_against_fixture("moe_top2_swiglu", c, true);
}

TEST(MoeLayerGolden, HeterogeneousExpertsWithASharedExpert) {
  MoeConfig c;
  c.d_model = 8;
  c.gate = gate_config(GateKind::kTopKSoftmax, 8, 4, 2);
  c.experts = {expert_config(ExpertKind::kLinear, 0),
               expert_config(ExpertKind::kMlp, 12, 2, Activation::kGelu),
               expert_config(ExpertKind::kMlp, 6, 1, Activation::kSilu),
               expert_config(ExpertKind::kSwiglu, 16)};
  c.shared = {expert_config(ExpertKind::kSwiglu, 8)};
  check_against_fixture("moe_heterogeneous_shared", c, true);
}

TEST(MoeLayerGolden, HierarchicalDenseTwoByFour) {
  MoeConfig c;
  c.d_model = 8;
  c.gate = gate_config(GateKind::kDenseSoftmax, 8, 4, 4);
  c.experts = repeat_experts(expert_config(ExpertKind::kLinear, 0), 8);
  c.hierarchy.n_groups = 2;
  c.hierarchy.top = gate_config(GateKind::kDenseSoftmax, 8, 2, 2);
  check_against_fixture("moe_hierarchical_dense", c, false);
}

}  // namespace
}  // namespace moe
