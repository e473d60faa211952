// ParamStore: the deferred zeroing of gradients (clear_grads / claim_grad / settle_grads), see
// include/moe/core/params.h.
#include <gtest/gtest.h>

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

TEST(ParamStoreDefer, ClearGradsZeroesOrdinaryGradientsAndDefersTheRest) {
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

TEST(ParamStoreDefer, ZeroGradsLeavesNothingToClaim) {
  DeferredStore s;
  ParamStore& store = s.store;
  store.clear_grads();
  store.zero_grads();  // eager: every gradient is now a real zero
  EXPECT_FALSE(store.claim_grad(s.w));
  EXPECT_FALSE(store.claim_grad(s.w_idle));
  for (const ParamId id : {s.w, s.w_idle, s.b}) EXPECT_TRUE(all_equal(store.grad(id), 0.0f));
}

TEST(ParamStoreDefer, ReadingTheArenaBeforeSettlingIsAProgrammerError) {
  DeferredStore s;
  s.store.clear_grads();
  EXPECT_DEATH((void)s.store.grads(), "settle_grads");
  s.store.settle_grads();
  EXPECT_EQ(s.store.grads().numel(), s.store.values().numel());
}

}  // namespace
}  // namespace moe
