#include "moe/layers/swiglu.h"

#include <cmath>

namespace moe {

SwigluCache SwigluCache::allocate(Arena& arena, int64_t rows, int64_t hidden) {
  return {arena.alloc(Shape{rows, hidden}), arena.alloc(Shape{rows, hidden})};
}

void swiglu_init(const SwigluParams& p, Rng& rng) {
  const float bound_in = 1.0f / std::sqrt(static_cast<float>(p.w1.dim(1)));
  const float bound_hidden = 1.0f / std::sqrt(static_cast<float>(p.w2.dim(1)));
  rng.fill_uniform(p.w1, -bound_in, bound_in);
  rng.fill_uniform(p.w2, -bound_hidden, bound_hidden);
  rng.fill_uniform(p.w3, -bound_in, bound_in);
}

}  // namespace moe
