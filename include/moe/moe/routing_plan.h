// RoutingPlan: which experts each token goes to, with what weight, and the same slots sorted by
// expert. Plain data, the hinge of the engine: every gate produces one; dispatch, the experts,
// combine, the balancing statistics and the inspector consume it, all in one process (there is
// no expert parallelism across processes or machines).
//
// Dims: T tokens · E experts · S slots (S = T·K for top-k gates; expert choice and capacity
// limits give a token a variable number of slots) · S_kept slots not dropped.
//
// A slot is one (token, expert, weight) triple. Slots are stored token-major: token t owns slots
// [token_offsets[t], token_offsets[t+1]), in the order its gate ranked them. The sorted view
// groups kept slots by expert, stably (within an expert, in slot order, so in token order), which
// is what makes dispatch a gather and combine a fixed-order sum.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

struct RoutingPlan {
  int64_t n_tokens = 0;   // T
  int64_t n_experts = 0;  // E

  std::vector<int64_t> token_offsets;  // [T+1]
  std::vector<int32_t> expert_ids;     // [S] expert of each slot
  std::vector<float> weights;          // [S] combine weight of each slot
  std::vector<uint8_t> dropped;        // [S] 1: dropped by capacity, contributes nothing

  // Derived by sort_slots_by_expert():
  std::vector<int32_t> slot_token;      // [S] token of each slot
  std::vector<int32_t> perm;            // [S_kept] sorted position -> slot
  std::vector<int32_t> inv_perm;        // [S] slot -> sorted position, -1 if dropped
  std::vector<int64_t> expert_offsets;  // [E+1] each expert's segment of sorted positions

  int64_t n_slots() const { return static_cast<int64_t>(expert_ids.size()); }
  int64_t n_kept() const { return static_cast<int64_t>(perm.size()); }
  int64_t expert_rows(int64_t e) const { return expert_offsets[e + 1] - expert_offsets[e]; }

  // Resets to T tokens, E experts and a fixed K slots per token (token_offsets[t] = t·K), sized
  // for reuse: vectors keep their capacity, so a steady-state step allocates nothing.
  void reset_uniform(int64_t n_tokens, int64_t n_experts, int64_t k);
};

// Counting sort of the kept slots by expert (stable): fills slot_token, perm, inv_perm and
// expert_offsets from token_offsets, expert_ids and dropped. O(S + E).
void sort_slots_by_expert(RoutingPlan* plan);

// Checks the plan's invariants (sizes, ids in range, offsets monotone, perm a stable sort);
// returns false and describes the first violation in *why. For tests and debug assertions.
bool validate_plan(const RoutingPlan& plan, std::string* why);

}  // namespace moe
