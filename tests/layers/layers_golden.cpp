// The layers against PyTorch: forward output, input gradient and every parameter gradient, from
// the fixtures tests/golden/gen_layers.py writes (float64 autograd on the stored float32 inputs).
//
// Dims: T rows · D/I/O features · F hidden · V vocabulary · N ids · B bags.
#include <gtest/gtest.h>

#include <string>

#include "moe/core/arena.h"
#include "moe/layers/activation.h"
#include "moe/layers/dropout.h"
#include "moe/layers/embedding.h"
#include "moe/layers/linear.h"
#include "moe/layers/norm.h"
#include "moe/layers/swiglu.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

using testing::expect_close;
using testing::Fixture;

TensorBuffer zeros_like(Tensor t) {
  return TensorBuffer(t.shape(), t.dtype());
}

TEST(LayersGolden, Linear) {
  Fixture f("layers_linear");
  ASSERT_TRUE(f.ok());
  TensorBuffer x = f.get("x"), w = f.get("w"), b = f.get("b"), dy = f.get("dy");
  for (bool bias : {true, false}) {
    const std::string suffix = bias ? "" : "_nobias";
    TensorBuffer y = zeros_like(f.get("y" + suffix)), dx = zeros_like(x), dw = zeros_like(w),
                 db = zeros_like(b);
    const LinearParams p{w, bias ? b.view() : Tensor()};
    const LinearGrads g{dw, bias ? db.view() : Tensor()};
    linear_forward(p, x, y);
    linear_backward(p, g, x, dy, dx);
    expect_close("linear y" + suffix, y, f.get("y" + suffix));
    expect_close("linear dx" + suffix, dx, f.get("dx" + suffix));
    expect_close("linear dW" + suffix, dw, f.get("dw" + suffix));
    if (bias) expect_close("linear db", db, f.get("db"));
  }
}

TEST(LayersGolden, Activations) {
  Fixture f("layers_activation");
  ASSERT_TRUE(f.ok());
  TensorBuffer x = f.get("x"), dy = f.get("dy");
  for (Activation act : {Activation::kRelu, Activation::kGelu, Activation::kGeluTanh,
                         Activation::kSilu, Activation::kSigmoid, Activation::kTanh}) {
    const std::string name = activation_name(act);
    TensorBuffer y = zeros_like(x), dx = zeros_like(x);
    ActivationCache cache;
    activation_layer_forward(act, x, y, &cache);
    activation_layer_backward(act, cache, dy, dx);
    expect_close(name + " y", y, f.get("y_" + name));
    expect_close(name + " dx", dx, f.get("dx_" + name));
  }
}

TEST(LayersGolden, Swiglu) {
  Fixture f("layers_swiglu");
  ASSERT_TRUE(f.ok());
  TensorBuffer x = f.get("x"), w1 = f.get("w1"), w2 = f.get("w2"), w3 = f.get("w3"),
               dy = f.get("dy");
  TensorBuffer y = zeros_like(x), dx = zeros_like(x), dw1 = zeros_like(w1), dw2 = zeros_like(w2),
               dw3 = zeros_like(w3);
  Arena arena;
  const SwigluCache cache = SwigluCache::allocate(arena, x.view().rows(), w1.view().dim(0));
  const SwigluParams p{w1, w2, w3};
  swiglu_forward(p, x, y, cache, arena);
  swiglu_backward(p, SwigluGrads{dw1, dw2, dw3}, cache, x, dy, dx, arena);
  expect_close("swiglu y", y, f.get("y"));
  expect_close("swiglu dx", dx, f.get("dx"));
  expect_close("swiglu dW1", dw1, f.get("dw1"));
  expect_close("swiglu dW2", dw2, f.get("dw2"));
  expect_close("swiglu dW3", dw3, f.get("dw3"));
}

TEST(LayersGolden, Embedding) {
  Fixture f("layers_embedding");
  ASSERT_TRUE(f.ok());
  TensorBuffer w = f.get("w"), ids = f.get("ids"), dy = f.get("dy");
  TensorBuffer y = zeros_like(dy), dw = zeros_like(w);
  embedding_forward(EmbeddingParams{w}, ids, y);
  embedding_backward(EmbeddingGrads{dw}, ids, dy);
  expect_close("embedding y", y, f.get("y"));
  expect_close("embedding dW", dw, f.get("dw"));
}

TEST(LayersGolden, EmbeddingBagAllModes) {
  Fixture f("layers_embedding_bag");
  ASSERT_TRUE(f.ok());
  TensorBuffer w = f.get("w"), ids = f.get("ids"), offsets = f.get("offsets"),
               weights = f.get("weights"), dy = f.get("dy");
  for (BagMode mode : {BagMode::kSum, BagMode::kMean, BagMode::kWeightedSum}) {
    const std::string name = bag_mode_name(mode);
    const bool weighted = mode == BagMode::kWeightedSum;
    const EmbeddingBagInput in{ids, offsets, weighted ? weights.view() : Tensor()};
    TensorBuffer y = zeros_like(dy), dw = zeros_like(w), dweights = zeros_like(weights);
    embedding_bag_forward(EmbeddingParams{w}, mode, in, y);
    embedding_bag_backward(EmbeddingParams{w}, EmbeddingGrads{dw}, mode, in, dy,
                           weighted ? dweights.view() : Tensor());
    expect_close("bag " + name + " y", y, f.get("y_" + name));
    expect_close("bag " + name + " dW", dw, f.get("dw_" + name));
    if (weighted) expect_close("bag " + name + " dweights", dweights, f.get("dweights_" + name));
  }
}

TEST(LayersGolden, LayerNormWithAndWithoutBias) {
  Fixture f("layers_norm");
  ASSERT_TRUE(f.ok());
  const float eps = std::stof(f.meta("layer_norm_eps"));
  TensorBuffer x = f.get("x"), gain = f.get("gain"), bias = f.get("bias"), dy = f.get("dy");
  Arena arena;
  for (bool with_bias : {true, false}) {
    const std::string suffix = with_bias ? "" : "_nobias";
    TensorBuffer y = zeros_like(x), dx = zeros_like(x), dgain = zeros_like(gain),
                 dbias = zeros_like(bias);
    const LayerNormCache cache = LayerNormCache::allocate(arena, x.view().rows());
    const LayerNormParams p{gain, with_bias ? bias.view() : Tensor()};
    layer_norm_forward(p, eps, x, y, cache);
    layer_norm_backward(p, LayerNormGrads{dgain, with_bias ? dbias.view() : Tensor()}, cache, x, dy,
                        dx);
    expect_close("layer_norm y" + suffix, y, f.get("ln_y" + suffix));
    expect_close("layer_norm dx" + suffix, dx, f.get("ln_dx" + suffix));
    expect_close("layer_norm dgain" + suffix, dgain, f.get("ln_dgain" + suffix));
    if (with_bias) expect_close("layer_norm dbias", dbias, f.get("ln_dbias"));
  }
}

TEST(LayersGolden, RmsNorm) {
  Fixture f("layers_norm");
  ASSERT_TRUE(f.ok());
  const float eps = std::stof(f.meta("rms_norm_eps"));
  TensorBuffer x = f.get("x"), gain = f.get("gain"), dy = f.get("dy");
  TensorBuffer y = zeros_like(x), dx = zeros_like(x), dgain = zeros_like(gain);
  Arena arena;
  const RmsNormCache cache = RmsNormCache::allocate(arena, x.view().rows());
  rms_norm_forward(RmsNormParams{gain}, eps, x, y, cache);
  rms_norm_backward(RmsNormParams{gain}, RmsNormGrads{dgain}, cache, x, dy, dx);
  expect_close("rms_norm y", y, f.get("rms_y"));
  expect_close("rms_norm dx", dx, f.get("rms_dx"));
  expect_close("rms_norm dgain", dgain, f.get("rms_dgain"));
}

TEST(LayersGolden, DropoutWithFixtureMask) {
  Fixture f("layers_dropout");
  ASSERT_TRUE(f.ok());
  const float p = std::stof(f.meta("p"));
  TensorBuffer x = f.get("x"), mask = f.get("mask"), dy = f.get("dy");
  TensorBuffer y = zeros_like(x), dx = zeros_like(x);
  const DropoutCache cache{mask};
  dropout_apply_mask(p, cache, x, y);
  dropout_backward(p, cache, dy, dx);
  expect_close("dropout y", y, f.get("y"));
  expect_close("dropout dx", dx, f.get("dx"));
}

}  // namespace
}  // namespace moe
