// Hierarchical routing (Jordan & Jacobs 1994, "Hierarchical mixtures of experts and the EM
// algorithm"): a top gate picks among G groups, a gate inside each group picks among its E_g
// experts, and a token's weight for expert (g, j) is the product along the path, w_top · w_inner.
//
// Dims: T tokens · G groups · E_g experts per group · E = G · E_g experts, numbered group-major
// (expert g·E_g + j is expert j of group g) · S0 top slots · S_g slots of group g · S combined
// slots.
//
// Group g's gate sees only the rows the top plan sends to g: the top plan's dispatched rows,
// segment g, in token order. Row r of that segment is "token" r of group g's plan. The combined
// plan lists, for each token, its kept top slots in rank order and inside each the group's slots
// in rank order. A dropped top slot gives no combined slot (the token never reached the group);
// a dropped inner slot stays, dropped.
#pragma once

#include <cstdint>
#include <vector>

#include "moe/moe/routing_plan.h"

namespace moe {

// For each combined slot, the two slots it came from.
struct HierarchySlots {
  std::vector<int32_t> top_slot;    // [S] slot of the top plan
  std::vector<int32_t> inner_slot;  // [S] slot of plan group_plans[top expert of top_slot]
};

// Builds the combined plan over E = G · E_g experts from the top plan (T tokens, G experts,
// sorted) and the G group plans (group g's over top.expert_rows(g) tokens, E_g experts); sorts it
// by expert. Vectors keep their capacity across calls.
void combine_hierarchical_plans(const RoutingPlan& top, const std::vector<RoutingPlan>& groups,
                                RoutingPlan* combined, HierarchySlots* slots);

// The chain rule through w = w_top · w_inner: from dweights [S] of the combined plan,
// dtop [S0] (=) with dtop[s0] = Σ_{combined c from s0} dweights[c] · w_inner(c), and for each
// group dinner[g] [S_g] (=) with dinner[g][s1] = dweights[c] · w_top(c). Slots that produced no
// combined slot (dropped top slots) get 0.
void split_hierarchical_dweights(const RoutingPlan& top, const std::vector<RoutingPlan>& groups,
                                 const HierarchySlots& slots, const float* dweights, float* dtop,
                                 const std::vector<float*>& dinner);

}  // namespace moe
