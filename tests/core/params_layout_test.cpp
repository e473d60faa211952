// ParamStore: parameters stored back to back (add_after) and the deferred zeroing of gradients
// (clear_grads / claim_grad / settle_grads), see include/moe/core/params.h.
#include <gtest/gtest.h>

#include <cstdint>

#include "moe/core/params.h"

namespace moe {
namespace {

bool all_equal(Tensor t, float v) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (t.f32()[i] != v) return false;
  return true;
}

void fill_with(Tensor t, float v) {
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = v;
}

TEST(ParamStoreLayout, AddAfterStacksWithoutPaddingAndKeepsIdsAndNames) {
  ParamStore store;
  // 3·5 = 15 floats: an ordinary successor would start at 16.
  const ParamId w1 = store.add("e.w1", Shape{3, 5});
  const ParamId w2 = store.add("e.w2", Shape{5, 3});
  const ParamId w3 = store.add_after(w1, "e.w3", Shape{3, 5});
  const ParamId b = store.add("e.b", Shape{7}, /*decay=*/false);
  store.finalize();
  EXPECT_EQ(store.size(), 4);
  EXPECT_EQ(store.info(w3).name, "e.w3");
  EXPECT_EQ(store.find("e.w3"), w3);
  EXPECT_EQ(store.info(w1).offset, 0);
  EXPECT_EQ(store.info(w3).offset, 15);  // right after w1
  EXPECT_EQ(store.info(w2).offset, 32);  // the pair padded once
  EXPECT_EQ(store.value(w3).f32(), store.value(w1).f32() + 15);
  EXPECT_EQ(store.grad(w3).f32(), store.grad(w1).f32() + 15);
  for (const ParamId id : {w1, w2, b})
    EXPECT_EQ(reinterpret_cast<uintptr_t>(store.value(id).raw()) % 64, 0u) << store.info(id).name;
  EXPECT_EQ(store.n_elements(), 15 + 15 + 15 + 7);
  EXPECT_EQ(store.values().numel(), 32 + 16 + 16);
}

TEST(ParamStoreLayout, AChainOfThreeAndAHeadAtTheEnd) {
  ParamStore store;
  const ParamId a = store.add("a", Shape{2, 3});
  const ParamId c = store.add("c", Shape{1});
  const ParamId b = store.add_after(a, "b", Shape{2, 3});
  const ParamId d = store.add_after(b, "d", Shape{4});
  store.finalize();
  EXPECT_EQ(store.info(a).offset, 0);
  EXPECT_EQ(store.info(b).offset, 6);
  EXPECT_EQ(store.info(d).offset, 12);
  EXPECT_EQ(store.info(c).offset, 16);
}

// One deferred parameter (w) among ordinary ones (b).
struct DeferredStore {
  ParamStore store;
  ParamId w, w_idle, b;
  DeferredStore() {
    w = store.add("w", Shape{4, 4});
    w_idle = store.add("w_idle", Shape{3});
    b = store.add("b", Shape{5});
    store.defer_zero_grad(w);
    store.defer_zero_grad(w_idle);
    EXPECT_FALSE(store.info(b).defer_zero);
    store.finalize();
    EXPECT_TRUE(store.info(w).defer_zero);
  }
};

TEST(ParamStoreLayout, ClearGradsZeroesOrdinaryGradientsAndDefersTheRest) {
  DeferredStore s;
  ParamStore& store = s.store;
  fill_with(store.grad(s.w), 7.0f);  // last step's gradients
  fill_with(store.grad(s.w_idle), 7.0f);
  fill_with(store.grad(s.b), 7.0f);
  store.clear_grads();
  EXPECT_TRUE(all_equal(store.grad(s.b), 0.0f));
  EXPECT_TRUE(all_equal(store.grad(s.w), 7.0f));  // not written: the first writer overwrites it
  EXPECT_TRUE(store.claim_grad(s.w));             // once
  EXPECT_FALSE(store.claim_grad(s.w));
  EXPECT_FALSE(store.claim_grad(s.b));  // ordinary: always accumulate
  fill_with(store.grad(s.w), 1.5f);     // the writer's contribution (β = 0)
  store.settle_grads();
  EXPECT_TRUE(all_equal(store.grad(s.w), 1.5f));       // claimed: kept
  EXPECT_TRUE(all_equal(store.grad(s.w_idle), 0.0f));  // no writer this step: zeroed
  EXPECT_FALSE(store.claim_grad(s.w_idle));            // settled
}

TEST(ParamStoreLayout, ZeroGradsLeavesNothingToClaim) {
  DeferredStore s;
  ParamStore& store = s.store;
  store.clear_grads();
  store.zero_grads();  // eager: every gradient is now a real zero
  EXPECT_FALSE(store.claim_grad(s.w));
  EXPECT_FALSE(store.claim_grad(s.w_idle));
  for (const ParamId id : {s.w, s.w_idle, s.b}) EXPECT_TRUE(all_equal(store.grad(id), 0.0f));
}

TEST(ParamStoreLayout, ReadingTheArenaBeforeSettlingIsAProgrammerError) {
  DeferredStore s;
  s.store.clear_grads();
  EXPECT_DEATH((void)s.store.grads(), "settle_grads");
  s.store.settle_grads();
  EXPECT_EQ(s.store.grads().numel(), s.store.values().numel());
}

}  // namespace
}  // namespace moe
