// Finite-difference gradient checks for every layer, with respect to its inputs and parameters.
//
// Each check reduces the layer's output to L = Σ r ⊙ y with fixed random r, runs one backward
// with dy = r, and compares every analytic gradient with central differences of L.
// Dims: T rows · D/I/O features · F hidden · V vocabulary · N ids · B bags.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/rng.h"
#include "moe/layers/activation.h"
#include "moe/layers/dropout.h"
#include "moe/layers/embedding.h"
#include "moe/layers/linear.h"
#include "moe/layers/norm.h"
#include "moe/layers/swiglu.h"
#include "testing/gradcheck.h"

namespace moe {
namespace {

using testing::expect_gradients_match;
using testing::GradTarget;
using testing::project;
using testing::seed_projection;

TensorBuffer uniform(Shape s, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  TensorBuffer t(s);
  rng.fill_uniform(t, lo, hi);
  return t;
}

TensorBuffer ids_buffer(const std::vector<int32_t>& values) {
  TensorBuffer t(Shape{static_cast<int64_t>(values.size())}, DType::kI32);
  for (size_t i = 0; i < values.size(); ++i) t.view().data<int32_t>()[i] = values[i];
  return t;
}

TEST(LayersGradcheck, LinearWithAndWithoutBias) {
  for (bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "with bias" : "without bias");
    const int64_t t = 3, in = 5, out = 4;
    Rng rng(11);
    TensorBuffer x = uniform({t, in}, rng), w = uniform({out, in}, rng), b = uniform({out}, rng);
    TensorBuffer y({t, out}), r({t, out}), dx({t, in}), dw({out, in}), db({out});
    seed_projection(r, 1);
    const LinearParams p{w, bias ? b.view() : Tensor()};
    auto loss = [&] {
      linear_forward(p, x, y);
      return project(y, r);
    };
    loss();
    linear_backward(p, LinearGrads{dw, bias ? db.view() : Tensor()}, x, r, dx);
    std::vector<GradTarget> targets = {{"dx", x, dx}, {"dW", w, dw}};
    if (bias) targets.push_back({"db", b, db});
    expect_gradients_match(loss, targets);
  }
}

TEST(LayersGradcheck, EveryActivation) {
  for (Activation act :
       {Activation::kIdentity, Activation::kRelu, Activation::kGelu, Activation::kGeluTanh,
        Activation::kSilu, Activation::kSigmoid, Activation::kTanh}) {
    SCOPED_TRACE(activation_name(act));
    Rng rng(12);
    TensorBuffer x = uniform({4, 6}, rng, -3.0f, 3.0f);
    // Keep inputs a few eps away from ReLU's kink, where a central difference straddles it.
    for (int64_t i = 0; i < x.numel(); ++i)
      if (std::fabs(x.f32()[i]) < 0.05f) x.f32()[i] += 0.1f;
    TensorBuffer y({4, 6}), r({4, 6}), dx({4, 6});
    seed_projection(r, 2);
    ActivationCache cache;
    auto loss = [&] {
      activation_layer_forward(act, x, y, &cache);
      return project(y, r);
    };
    loss();
    activation_layer_backward(act, cache, r, dx);
    expect_gradients_match(loss, {{"dx", x, dx}});
  }
}

TEST(LayersGradcheck, Swiglu) {
  const int64_t t = 3, d = 5, f = 7;
  Rng rng(13);
  TensorBuffer x = uniform({t, d}, rng), w1 = uniform({f, d}, rng), w2 = uniform({d, f}, rng),
               w3 = uniform({f, d}, rng);
  TensorBuffer y({t, d}), r({t, d}), dx({t, d}), dw1({f, d}), dw2({d, f}), dw3({f, d});
  seed_projection(r, 3);
  Arena arena;
  const SwigluCache cache = SwigluCache::allocate(arena, t, f);
  const SwigluParams p{w1, w2, w3};
  auto loss = [&] {
    swiglu_forward(p, x, y, cache, arena);
    return project(y, r);
  };
  loss();
  swiglu_backward(p, SwigluGrads{dw1, dw2, dw3}, cache, x, r, dx, arena);
  expect_gradients_match(loss,
                         {{"dx", x, dx}, {"dW1", w1, dw1}, {"dW2", w2, dw2}, {"dW3", w3, dw3}});
}

TEST(LayersGradcheck, EmbeddingWithRepeatedIds) {
  const int64_t v = 6, d = 4;
  Rng rng(14);
  TensorBuffer w = uniform({v, d}, rng);
  TensorBuffer ids = ids_buffer({2, 0, 2, 5, 2});
  TensorBuffer y({5, d}), r({5, d}), dw({v, d});
  seed_projection(r, 4);
  auto loss = [&] {
    embedding_forward(EmbeddingParams{w}, ids, y);
    return project(y, r);
  };
  loss();
  embedding_backward(EmbeddingGrads{dw}, ids, r);
  expect_gradients_match(loss, {{"dW", w, dw}});
}

TEST(LayersGradcheck, EmbeddingBagEveryMode) {
  const int64_t v = 6, d = 4;
  // Bags of lengths 2, 0, 3, 1 with ids repeated inside and across bags.
  TensorBuffer ids = ids_buffer({1, 4, 1, 1, 3, 5});
  TensorBuffer offsets(Shape{5}, DType::kI64);
  const int64_t off[] = {0, 2, 2, 5, 6};
  for (int i = 0; i < 5; ++i) offsets.view().data<int64_t>()[i] = off[i];
  for (BagMode mode : {BagMode::kSum, BagMode::kMean, BagMode::kWeightedSum}) {
    SCOPED_TRACE(bag_mode_name(mode));
    const bool weighted = mode == BagMode::kWeightedSum;
    Rng rng(15);
    TensorBuffer w = uniform({v, d}, rng), weights = uniform({6}, rng, -0.5f, 2.0f);
    TensorBuffer y({4, d}), r({4, d}), dw({v, d}), dweights({6});
    seed_projection(r, 5);
    const EmbeddingBagInput in{ids, offsets, weighted ? weights.view() : Tensor()};
    auto loss = [&] {
      embedding_bag_forward(EmbeddingParams{w}, mode, in, y);
      return project(y, r);
    };
    loss();
    embedding_bag_backward(EmbeddingParams{w}, EmbeddingGrads{dw}, mode, in, r,
                           weighted ? dweights.view() : Tensor());
    std::vector<GradTarget> targets = {{"dW", w, dw}};
    if (weighted) targets.push_back({"dweights", weights, dweights});
    expect_gradients_match(loss, targets);
  }
}

TEST(LayersGradcheck, LayerNormWithAndWithoutBias) {
  for (bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "with bias" : "without bias");
    const int64_t t = 3, d = 6;
    Rng rng(16);
    TensorBuffer x = uniform({t, d}, rng, -2.0f, 2.0f), gain = uniform({d}, rng, 0.5f, 1.5f),
                 b = uniform({d}, rng);
    TensorBuffer y({t, d}), r({t, d}), dx({t, d}), dgain({d}), db({d});
    seed_projection(r, 6);
    Arena arena;
    const LayerNormCache cache = LayerNormCache::allocate(arena, t);
    const LayerNormParams p{gain, bias ? b.view() : Tensor()};
    auto loss = [&] {
      layer_norm_forward(p, 1e-5f, x, y, cache);
      return project(y, r);
    };
    loss();
    layer_norm_backward(p, LayerNormGrads{dgain, bias ? db.view() : Tensor()}, cache, x, r, dx);
    std::vector<GradTarget> targets = {{"dx", x, dx}, {"dgain", gain, dgain}};
    if (bias) targets.push_back({"dbias", b, db});
    expect_gradients_match(loss, targets);
  }
}

TEST(LayersGradcheck, RmsNorm) {
  const int64_t t = 3, d = 6;
  Rng rng(17);
  TensorBuffer x = uniform({t, d}, rng, -2.0f, 2.0f), gain = uniform({d}, rng, 0.5f, 1.5f);
  TensorBuffer y({t, d}), r({t, d}), dx({t, d}), dgain({d});
  seed_projection(r, 7);
  Arena arena;
  const RmsNormCache cache = RmsNormCache::allocate(arena, t);
  auto loss = [&] {
    rms_norm_forward(RmsNormParams{gain}, 1e-6f, x, y, cache);
    return project(y, r);
  };
  loss();
  rms_norm_backward(RmsNormParams{gain}, RmsNormGrads{dgain}, cache, x, r, dx);
  expect_gradients_match(loss, {{"dx", x, dx}, {"dgain", gain, dgain}});
}

TEST(LayersGradcheck, DropoutWithFixedMask) {
  const int64_t t = 4, d = 5;
  const float p = 0.4f;
  Rng rng(18);
  TensorBuffer x = uniform({t, d}, rng), y({t, d}), r({t, d}), dx({t, d});
  TensorBuffer mask(Shape{t, d}, DType::kU8);
  const DropoutCache cache{mask};
  Rng mask_rng(19);
  dropout_forward(p, mask_rng, x, y, cache);  // draws the mask once; the loss replays it
  seed_projection(r, 8);
  auto loss = [&] {
    dropout_apply_mask(p, cache, x, y);
    return project(y, r);
  };
  loss();
  dropout_backward(p, cache, r, dx);
  expect_gradients_match(loss, {{"dx", x, dx}});
}

}  // namespace
}  // namespace moe
