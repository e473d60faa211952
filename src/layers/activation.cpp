#include "moe/layers/activation.h"

namespace moe {

void activation_layer_forward(Activation act, Tensor x, Tensor y, ActivationCache* cache) {
  MOE_CHECK(x.shape() == y.shape(), "activation {}: x {} y {}", activation_name(act),
            x.shape().str(), y.shape().str());
  MOE_CHECK(x.raw() != y.raw() || x.numel() == 0,
            "activation {}: y aliases x, but backward needs the input", activation_name(act));
  activation_forward(act, x, y);
  cache->x = x;
}

void activation_layer_backward(Activation act, const ActivationCache& cache, Tensor dy, Tensor dx) {
  MOE_CHECK(dy.shape() == cache.x.shape() && dx.shape() == cache.x.shape(),
            "activation {} backward: x {} dy {} dx {}", activation_name(act), cache.x.shape().str(),
            dy.shape().str(), dx.shape().str());
  activation_backward(act, cache.x, dy, dx);
}

}  // namespace moe
