#include <gtest/gtest.h>

#include <set>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"

namespace moe {
namespace {

TEST(Tensor, ShapeSliceReshapeIndex) {
  TensorBuffer buf(Shape{4, 3});
  Tensor t = buf;
  for (int64_t i = 0; i < 12; ++i) t.f32()[i] = static_cast<float>(i);
  EXPECT_EQ(t.rows(), 4);
  EXPECT_EQ(t.cols(), 3);
  Tensor s = t.slice(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_EQ(s.f32()[0], 3.0f);
  EXPECT_EQ(t[2].shape(), (Shape{3}));
  EXPECT_EQ(t[2].f32()[1], 7.0f);
  EXPECT_EQ(t.reshape(Shape{2, 2, 3}).dim(2), 3);
  EXPECT_EQ(t.at(3, 2), 11.0f);
  EXPECT_EQ(Shape({2, 0, 5}).numel(), 0);
  EXPECT_EQ(Shape({2, 3}).str(), "[2, 3]");
}

TEST(Tensor, BufferIsAlignedAndZeroed) {
  TensorBuffer buf(Shape{1000});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.f32()) % 64, 0u);
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(buf.f32()[i], 0.0f);
}

TEST(Tensor, WrongDtypeAccessIsAProgrammerError) {
  TensorBuffer buf(Shape{4}, DType::kI64);
  EXPECT_DEATH((void)buf.view().f32(), "accessed as F32");
}

TEST(Status, ResultCarriesValueOrMessage) {
  Result<int> good = 3;
  ASSERT_TRUE(good.is_ok());
  EXPECT_EQ(*good, 3);
  Result<int> bad = Status::error("line {}: bad value '{}'", 7, "x");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message(), "line 7: bad value 'x'");
  EXPECT_EQ(bad.status().with_context("cfg.json").message(), "cfg.json: line 7: bad value 'x'");
}

TEST(Arena, SteadyStateAllocatesNothing) {
  Arena arena;
  for (int step = 0; step < 3; ++step) {
    arena.reset();
    Tensor a = arena.alloc(Shape{100, 7});
    Tensor b = arena.zeros(Shape{33});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.raw()) % 64, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.raw()) % 64, 0u);
    EXPECT_EQ(b.f32()[32], 0.0f);
  }
  // Only the first step (before its size was known) overflowed.
  EXPECT_EQ(arena.overflow_allocations(), 2);
  EXPECT_GE(arena.capacity(), 700 * sizeof(float));
}

TEST(Arena, MarkAndRelease) {
  Arena arena(1 << 16);
  const size_t m = arena.mark();
  Tensor a = arena.alloc(Shape{10});
  arena.release(m);
  Tensor b = arena.alloc(Shape{10});
  EXPECT_EQ(a.raw(), b.raw());
}

TEST(Rng, DeterministicAndIndependentOfThreads) {
  TensorBuffer a(Shape{200000}), b(Shape{200000});
  Rng r1(42), r2(42);
  r1.fill_normal(a, 0.0f, 1.0f);
  r2.fill_normal(b, 0.0f, 1.0f);
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.f32()[i], b.f32()[i]);
  double mean = 0, var = 0;
  for (int64_t i = 0; i < a.numel(); ++i) mean += a.f32()[i];
  mean /= static_cast<double>(a.numel());
  for (int64_t i = 0; i < a.numel(); ++i) var += (a.f32()[i] - mean) * (a.f32()[i] - mean);
  var /= static_cast<double>(a.numel());
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(var, 1.0, 0.02);
  // Sequential draws continue where the bulk draw stopped.
  EXPECT_EQ(r1.offset(), 200000u);
  EXPECT_EQ(r1.next_u32(), r2.next_u32());
}

TEST(Rng, StreamsAndSeedsDiffer) {
  Rng a(1), b(2), c = Rng(1).fork(7), d = Rng(1).fork(8);
  std::set<uint32_t> seen = {a.next_u32(), b.next_u32(), c.next_u32(), d.next_u32()};
  EXPECT_EQ(seen.size(), 4u);
  Rng u(5);
  for (int i = 0; i < 1000; ++i) {
    const float x = u.uniform();
    ASSERT_GE(x, 0.0f);
    ASSERT_LT(x, 1.0f);
    ASSERT_LT(u.below(7), 7u);
  }
}

TEST(Rng, PhiloxKnownAnswer) {
  // Known-answer vector from the Random123 distribution's kat_vectors for philox4x32_10.
  const auto out = philox4x32({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[1], 0xe169c58du);
  EXPECT_EQ(out[2], 0xbc57ac4cu);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
}

TEST(ParamStore, ContiguousAlignedNamed) {
  ParamStore store;
  const ParamId w = store.add("layer.w", Shape{3, 5});
  const ParamId b = store.add("layer.b", Shape{5}, /*decay=*/false);
  store.finalize();
  EXPECT_EQ(store.find("layer.b"), b);
  EXPECT_EQ(store.find("nope"), -1);
  EXPECT_EQ(store.n_elements(), 20);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(store.value(b).raw()) % 64, 0u);
  EXPECT_EQ(store.value(w).shape(), (Shape{3, 5}));
  store.grad(w).f32()[0] = 1.0f;
  store.zero_grads();
  EXPECT_EQ(store.grad(w).f32()[0], 0.0f);
  EXPECT_FALSE(store.info(b).decay);
}

}  // namespace
}  // namespace moe
