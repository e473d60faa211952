// Hash routing (Roller et al. 2021, "Hash Layers For Large Sparse Models"): each token goes to
// one expert fixed by a hash of its id, with weight 1. No parameters, nothing to learn, perfectly
// deterministic; the balance is whatever the id distribution gives.
//
// Dims: T tokens · E experts.
//
// The id is the token id (vocabulary index) when the caller passes token_ids, else the row's
// position in the data set (first_row + t). The hash is SplitMix64's finaliser (Steele et al.
// 2014), a fixed bijection on 64-bit integers that spreads consecutive ids evenly; the expert is
// the hash modulo E. Backward contributes nothing.
#include "gate_internal.h"

namespace moe::gate_detail {

namespace {
uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

void hash_forward(const GateState& g, const GateInput& in, RoutingPlan* plan) {
  const int64_t t_n = g.cache.n_tokens, e_n = g.cfg.n_experts;
  plan->reset_uniform(t_n, e_n, 1);
  for (int64_t t = 0; t < t_n; ++t) {
    const int64_t id = in.token_ids != nullptr ? in.token_ids[t] : in.first_row + t;
    plan->expert_ids[sz(t)] =
        static_cast<int32_t>(mix64(static_cast<uint64_t>(id)) % static_cast<uint64_t>(e_n));
    plan->weights[sz(t)] = 1.0f;
  }
}

}  // namespace moe::gate_detail
