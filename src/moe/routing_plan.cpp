#include "moe/moe/routing_plan.h"

#include <fmt/format.h>

#include "moe/core/check.h"

namespace moe {

void RoutingPlan::reset_uniform(int64_t t, int64_t e, int64_t k) {
  n_tokens = t;
  n_experts = e;
  token_offsets.resize(static_cast<size_t>(t + 1));
  for (int64_t i = 0; i <= t; ++i) token_offsets[static_cast<size_t>(i)] = i * k;
  expert_ids.assign(static_cast<size_t>(t * k), 0);
  weights.assign(static_cast<size_t>(t * k), 0.0f);
  dropped.assign(static_cast<size_t>(t * k), 0);
}

void sort_slots_by_expert(RoutingPlan* plan) {
  RoutingPlan& p = *plan;
  const int64_t s = p.n_slots();
  MOE_CHECK(static_cast<int64_t>(p.token_offsets.size()) == p.n_tokens + 1 &&
                p.token_offsets.back() == s && static_cast<int64_t>(p.weights.size()) == s &&
                static_cast<int64_t>(p.dropped.size()) == s,
            "routing plan sizes: T={} offsets={} S={} weights={} dropped={}", p.n_tokens,
            p.token_offsets.size(), s, p.weights.size(), p.dropped.size());
  p.slot_token.resize(static_cast<size_t>(s));
  for (int64_t t = 0; t < p.n_tokens; ++t)
    for (int64_t i = p.token_offsets[t]; i < p.token_offsets[t + 1]; ++i)
      p.slot_token[static_cast<size_t>(i)] = static_cast<int32_t>(t);

  // Count kept slots per expert, prefix-sum into offsets, then place each slot in order.
  p.expert_offsets.assign(static_cast<size_t>(p.n_experts + 1), 0);
  for (int64_t i = 0; i < s; ++i) {
    if (p.dropped[static_cast<size_t>(i)]) continue;
    const int32_t e = p.expert_ids[static_cast<size_t>(i)];
    MOE_CHECK(e >= 0 && e < p.n_experts, "slot {} routed to expert {} of {}", i, e, p.n_experts);
    ++p.expert_offsets[static_cast<size_t>(e) + 1];
  }
  for (int64_t e = 0; e < p.n_experts; ++e)
    p.expert_offsets[static_cast<size_t>(e + 1)] += p.expert_offsets[static_cast<size_t>(e)];
  p.perm.resize(static_cast<size_t>(p.expert_offsets.back()));
  p.inv_perm.resize(static_cast<size_t>(s));
  // expert_offsets[e] serves as expert e's fill cursor, starting at its segment's start.
  for (int64_t i = 0; i < s; ++i) {
    if (p.dropped[static_cast<size_t>(i)]) {
      p.inv_perm[static_cast<size_t>(i)] = -1;
      continue;
    }
    const auto e = static_cast<size_t>(p.expert_ids[static_cast<size_t>(i)]);
    const int64_t pos = p.expert_offsets[e]++;
    p.perm[static_cast<size_t>(pos)] = static_cast<int32_t>(i);
    p.inv_perm[static_cast<size_t>(i)] = static_cast<int32_t>(pos);
  }
  // Each cursor now sits at the next expert's start: shift back by one expert.
  for (int64_t e = p.n_experts; e > 0; --e)
    p.expert_offsets[static_cast<size_t>(e)] = p.expert_offsets[static_cast<size_t>(e - 1)];
  p.expert_offsets[0] = 0;
}

bool validate_plan(const RoutingPlan& p, std::string* why) {
  auto fail = [&](const std::string& m) {
    if (why) *why = m;
    return false;
  };
  const int64_t s = p.n_slots();
  if (static_cast<int64_t>(p.token_offsets.size()) != p.n_tokens + 1)
    return fail(fmt::format("token_offsets has {} entries for {} tokens", p.token_offsets.size(),
                            p.n_tokens));
  if (p.token_offsets[0] != 0 || p.token_offsets.back() != s)
    return fail("token_offsets must run from 0 to the slot count");
  for (int64_t t = 0; t < p.n_tokens; ++t)
    if (p.token_offsets[t + 1] < p.token_offsets[t])
      return fail(fmt::format("token_offsets decrease at token {}", t));
  if (static_cast<int64_t>(p.weights.size()) != s || static_cast<int64_t>(p.dropped.size()) != s ||
      static_cast<int64_t>(p.inv_perm.size()) != s ||
      static_cast<int64_t>(p.slot_token.size()) != s)
    return fail("per-slot arrays differ in length");
  if (static_cast<int64_t>(p.expert_offsets.size()) != p.n_experts + 1)
    return fail("expert_offsets must have E+1 entries");
  int64_t kept = 0;
  for (int64_t i = 0; i < s; ++i) {
    const int32_t e = p.expert_ids[static_cast<size_t>(i)];
    if (e < 0 || e >= p.n_experts) return fail(fmt::format("slot {} has expert {}", i, e));
    if (!p.dropped[static_cast<size_t>(i)]) ++kept;
  }
  if (kept != p.n_kept() || p.expert_offsets.back() != kept)
    return fail("perm and expert_offsets do not cover exactly the kept slots");
  for (int64_t e = 0; e < p.n_experts; ++e) {
    for (int64_t pos = p.expert_offsets[e]; pos < p.expert_offsets[e + 1]; ++pos) {
      const int32_t slot = p.perm[static_cast<size_t>(pos)];
      if (p.expert_ids[static_cast<size_t>(slot)] != e)
        return fail(fmt::format("sorted position {} holds a slot of expert {}, not {}", pos,
                                p.expert_ids[static_cast<size_t>(slot)], e));
      if (p.inv_perm[static_cast<size_t>(slot)] != pos)
        return fail("inv_perm is not perm's inverse");
      if (pos > p.expert_offsets[e] && p.perm[static_cast<size_t>(pos - 1)] >= slot)
        return fail(fmt::format("expert {}'s segment is not in slot order (unstable sort)", e));
    }
  }
  return true;
}

}  // namespace moe
