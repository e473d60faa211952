// Expert parallelism in the layer, threads standing in for ranks: the rows go out to their
// experts' owners and come back exactly (identity experts make the layer's output and input
// gradient the same bits as without it), and with real experts each rank's output and input
// gradient match the layer run alone, while the experts' gradients, summed over the ranks as the
// trainer's all-reduce sums them, are the sum of what each rank alone computes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <thread>

#include "moe/dist/communicator.h"
#include "moe/moe/moe_layer.h"
#include "moe_testing.h"
#include "testing/tensors.h"

namespace moe {
namespace {

constexpr int64_t kEpWidth = 8, kEpRows = 24, kEpExperts = 4;

MoeConfig ep_config(ExpertKind kind) {
  MoeConfig c = testing::moe_config(
      kEpWidth, kEpExperts, testing::expert_config(kind, kind == ExpertKind::kLinear ? 0 : 16),
      testing::gate_config(GateKind::kTopKSoftmax, kEpWidth, kEpExperts, 2));
  c.expert_parallel = true;
  return c;
}

struct RankRun {
  testing::LayerStep alone;     // the layer without expert parallelism
  testing::LayerStep parallel;  // with it
  std::vector<int64_t> rows;    // expert rows each expert computed here (EP), per expert
};

// Each of n ranks runs the same layer (the same weights) on its own rows, alone and with its
// experts placed on the ranks. `identity`: every linear expert is y = x.
std::vector<RankRun> run_ranks(int n, ExpertKind kind, bool identity) {
  std::vector<std::unique_ptr<Communicator>> comms = thread_group(n);
  std::vector<RankRun> out(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      testing::LayerHarness h(ep_config(kind), 5);
      if (identity)
        for (int64_t e = 0; e < kEpExperts; ++e) {
          Tensor w = h.store.value(h.store.find(fmt::format("moe.experts.{}.w1", e)));
          for (int64_t i = 0; i < kEpWidth; ++i)
            for (int64_t j = 0; j < kEpWidth; ++j) w.at(i, j) = i == j ? 1.0f : 0.0f;
          Tensor b = h.store.value(h.store.find(fmt::format("moe.experts.{}.b1", e)));
          for (int64_t i = 0; i < kEpWidth; ++i) b.f32()[i] = 0.0f;
        }
      const TensorBuffer x =
          testing::random_normal(Shape{kEpRows, kEpWidth}, 100 + static_cast<uint64_t>(r));
      const TensorBuffer dy =
          testing::random_normal(Shape{kEpRows, kEpWidth}, 200 + static_cast<uint64_t>(r));
      RankRun& mine = out[static_cast<size_t>(r)];
      mine.alone = testing::forward_backward(h, x, dy, /*training=*/true);
      h.layer.set_expert_parallel(comms[static_cast<size_t>(r)].get());
      mine.parallel = testing::forward_backward(h, x, dy, /*training=*/true);
    });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

bool same_bits(const TensorBuffer& a, const TensorBuffer& b) {
  return a.view().nbytes() == b.view().nbytes() &&
         std::memcmp(a.f32(), b.f32(), a.view().nbytes()) == 0;
}

TEST(MoeExpertParallel, RowsGoToTheirOwnersAndComeBackExactly) {
  for (int n : {2, 3, 5}) {
    const std::vector<RankRun> runs = run_ranks(n, ExpertKind::kLinear, /*identity=*/true);
    for (int r = 0; r < n; ++r) {
      const RankRun& run = runs[static_cast<size_t>(r)];
      EXPECT_TRUE(same_bits(run.alone.y, run.parallel.y)) << "y, rank " << r << " of " << n;
      EXPECT_TRUE(same_bits(run.alone.dx, run.parallel.dx)) << "dx, rank " << r << " of " << n;
    }
  }
}

TEST(MoeExpertParallel, EveryExpertKindMatchesTheLayerAloneAndItsGradientsSumAlike) {
  for (ExpertKind kind : {ExpertKind::kLinear, ExpertKind::kMlp, ExpertKind::kSwiglu}) {
    for (int n : {2, 3}) {
      const std::vector<RankRun> runs = run_ranks(n, kind, /*identity=*/false);
      const int64_t p = runs[0].alone.grads.view().numel();
      std::vector<double> sum_alone(static_cast<size_t>(p)), sum_parallel(static_cast<size_t>(p));
      for (int r = 0; r < n; ++r) {
        const RankRun& run = runs[static_cast<size_t>(r)];
        const std::string what = fmt::format("{}, rank {} of {}", expert_kind_name(kind), r, n);
        testing::expect_close(what + ": y", run.parallel.y, run.alone.y, 1e-6, 1e-6);
        testing::expect_close(what + ": dx", run.parallel.dx, run.alone.dx, 1e-6, 1e-6);
        for (int64_t i = 0; i < p; ++i) {
          sum_alone[static_cast<size_t>(i)] += run.alone.grads.f32()[i];
          sum_parallel[static_cast<size_t>(i)] += run.parallel.grads.f32()[i];
        }
      }
      for (int64_t i = 0; i < p; ++i)
        EXPECT_NEAR(sum_parallel[static_cast<size_t>(i)], sum_alone[static_cast<size_t>(i)],
                    1e-5 * (1.0 + std::fabs(sum_alone[static_cast<size_t>(i)])))
            << expert_kind_name(kind) << ", " << n << " ranks, gradient element " << i;
    }
  }
}

TEST(MoeExpertParallel, OwnersTakeContiguousBlocks) {
  // 4 experts on 3 ranks: [0], [1], [2, 3]; on 5 ranks rank 0 owns none.
  EXPECT_EQ(MoeLayer::expert_owner(0, 4, 3), 0);
  EXPECT_EQ(MoeLayer::expert_owner(1, 4, 3), 1);
  EXPECT_EQ(MoeLayer::expert_owner(2, 4, 3), 2);
  EXPECT_EQ(MoeLayer::expert_owner(3, 4, 3), 2);
  for (int64_t e = 0; e < 4; ++e) EXPECT_NE(MoeLayer::expert_owner(e, 4, 5), 0);
  for (int n : {1, 2, 3, 5, 8})
    for (int64_t e_n : {1, 4, 7, 64}) {
      int last = 0;
      for (int64_t e = 0; e < e_n; ++e) {
        const int q = MoeLayer::expert_owner(e, e_n, n);
        EXPECT_GE(q, last);
        EXPECT_LE(e_n * q / n, e);
        EXPECT_LT(e, e_n * (q + 1) / n);
        last = q;
      }
    }
}

}  // namespace
}  // namespace moe
