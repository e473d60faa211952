#include "moe/moe/hierarchical.h"

#include "moe/core/check.h"

namespace moe {

void combine_hierarchical_plans(const RoutingPlan& top, const std::vector<RoutingPlan>& groups,
                                RoutingPlan* combined, HierarchySlots* slots) {
  const auto n_groups = static_cast<int64_t>(groups.size());
  MOE_CHECK(top.n_experts == n_groups && n_groups > 0,
            "hierarchical plans: top plan over {} groups, {} group plans", top.n_experts, n_groups);
  const int64_t per_group = groups[0].n_experts;
  for (int64_t g = 0; g < n_groups; ++g) {
    const RoutingPlan& p = groups[static_cast<size_t>(g)];
    MOE_CHECK(p.n_experts == per_group && p.n_tokens == top.expert_rows(g),
              "group {} plan: {} tokens over {} experts, the top plan sends it {} rows and "
              "group 0 has {} experts",
              g, p.n_tokens, p.n_experts, top.expert_rows(g), per_group);
  }
  RoutingPlan& c = *combined;
  c.n_tokens = top.n_tokens;
  c.n_experts = n_groups * per_group;
  c.token_offsets.resize(static_cast<size_t>(top.n_tokens + 1));
  c.expert_ids.clear();
  c.weights.clear();
  c.dropped.clear();
  slots->top_slot.clear();
  slots->inner_slot.clear();
  c.token_offsets[0] = 0;
  for (int64_t t = 0; t < top.n_tokens; ++t) {
    for (int64_t s0 = top.token_offsets[t]; s0 < top.token_offsets[t + 1]; ++s0) {
      const int32_t pos = top.inv_perm[static_cast<size_t>(s0)];
      if (pos < 0) continue;  // the top gate dropped it: the group never sees this token
      const int32_t g = top.expert_ids[static_cast<size_t>(s0)];
      const RoutingPlan& inner = groups[static_cast<size_t>(g)];
      const int64_t row = pos - top.expert_offsets[static_cast<size_t>(g)];
      const float w_top = top.weights[static_cast<size_t>(s0)];
      for (int64_t s1 = inner.token_offsets[row]; s1 < inner.token_offsets[row + 1]; ++s1) {
        c.expert_ids.push_back(
            static_cast<int32_t>(g * per_group + inner.expert_ids[static_cast<size_t>(s1)]));
        c.weights.push_back(w_top * inner.weights[static_cast<size_t>(s1)]);
        c.dropped.push_back(inner.dropped[static_cast<size_t>(s1)]);
        slots->top_slot.push_back(static_cast<int32_t>(s0));
        slots->inner_slot.push_back(static_cast<int32_t>(s1));
      }
    }
    c.token_offsets[static_cast<size_t>(t + 1)] = static_cast<int64_t>(c.expert_ids.size());
  }
  sort_slots_by_expert(combined);
}

void split_hierarchical_dweights(const RoutingPlan& top, const std::vector<RoutingPlan>& groups,
                                 const HierarchySlots& slots, const float* dweights, float* dtop,
                                 const std::vector<float*>& dinner) {
  MOE_CHECK(dinner.size() == groups.size(), "split_hierarchical_dweights: {} buffers, {} groups",
            dinner.size(), groups.size());
  for (int64_t s0 = 0; s0 < top.n_slots(); ++s0) dtop[s0] = 0.0f;
  for (size_t g = 0; g < groups.size(); ++g)
    for (int64_t s1 = 0; s1 < groups[g].n_slots(); ++s1) dinner[g][s1] = 0.0f;
  // Combined slots are in token order, so each dtop entry sums its inner slots in rank order.
  for (size_t c = 0; c < slots.top_slot.size(); ++c) {
    const int32_t s0 = slots.top_slot[c], s1 = slots.inner_slot[c];
    const auto g = static_cast<size_t>(top.expert_ids[static_cast<size_t>(s0)]);
    dtop[s0] += dweights[c] * groups[g].weights[static_cast<size_t>(s1)];
    dinner[g][s1] = dweights[c] * top.weights[static_cast<size_t>(s0)];
  }
}

}  // namespace moe
