// Routing inspection of a language model: what each expert's tokens are, where in the window
// they sit, and whether neighbouring tokens stay with one expert (see inspect.h).
//
// Dims: R tokens a level saw · E experts of a level · V vocabulary · W windows · L window
// length · B position buckets.
#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "inspect_internal.h"
#include "moe/core/check.h"
#include "moe/core/index.h"

namespace moe::inspect_detail {

namespace {

// The piece of token id v, or "<id v>" without a tokenizer's pieces.
std::string piece_of(const InspectContext& ctx, int32_t v) {
  return sz(v) < ctx.words.size() ? ctx.words[sz(v)] : fmt::format("<id {}>", v);
}

// For each expert the token ids whose share among its tokens most exceeds their share among the
// level's tokens: lift = (count on e / tokens on e) / (count / R), ids with count ≥ min_count,
// the best `top` by lift, ties by count then bytewise.
// `ids` holds the token of every row the level may name.
void characteristic_tokens(const LevelRouting& lr,
                           const std::vector<std::vector<int64_t>>& expert_rows,
                           const std::vector<int32_t>& ids, const InspectContext& ctx,
                           const InspectOptions& options, LevelStats* st) {
  const int64_t v_n = ctx.data->n_features;
  std::vector<int64_t> all(sz(v_n), 0);  // [V] the level's tokens of each id
  for (int64_t r : lr.rows) ++all[sz(ids[sz(r)])];
  const double n_all = static_cast<double>(lr.rows.size());
  std::vector<int64_t> mine(sz(v_n));  // [V] the expert's tokens of each id
  for (const std::vector<int64_t>& rows : expert_rows) {
    std::vector<ExpertWord> best;
    std::fill(mine.begin(), mine.end(), 0);
    for (int64_t r : rows) ++mine[sz(ids[sz(r)])];
    const double n_mine = static_cast<double>(rows.size());
    for (int64_t v = 0; v < v_n && !rows.empty(); ++v) {
      const int64_t k = mine[sz(v)];
      if (k == 0 || k < options.min_count) continue;
      const double lift = (static_cast<double>(k) / n_mine) / (double(all[sz(v)]) / n_all);
      best.push_back({piece_of(ctx, static_cast<int32_t>(v)), k, lift});
    }
    std::sort(best.begin(), best.end(), [](const ExpertWord& a, const ExpertWord& b) {
      if (a.lift != b.lift) return a.lift > b.lift;
      if (a.count != b.count) return a.count > b.count;
      return a.word < b.word;
    });
    if (static_cast<int64_t>(best.size()) > options.top_tokens) best.resize(sz(options.top_tokens));
    st->tokens.push_back(std::move(best));
  }
}

// Kept slots by expert per bucket of window positions: bucket b holds the positions p with
// ⌊p·B / L⌋ = b, B = min(buckets, L).
void position_statistics(const LevelRouting& lr, int64_t context, int64_t buckets, LevelStats* st) {
  const int64_t e_n = lr.n_experts;
  const int64_t b_n = std::max<int64_t>(1, std::min(buckets, context));
  const auto bucket_of = [&](int64_t p) { return p * b_n / context; };
  st->position_starts.assign(sz(b_n), 0);
  for (int64_t p = context - 1; p >= 0; --p) st->position_starts[sz(bucket_of(p))] = p;
  st->position_tokens.assign(sz(b_n), 0);
  st->position_load.assign(sz(b_n * e_n), 0.0);
  for (int64_t r = 0; r < lr.n_rows(); ++r) {
    const int64_t b = bucket_of(lr.rows[sz(r)] % context);
    ++st->position_tokens[sz(b)];
    for (int64_t s = lr.offsets[sz(r)]; s < lr.offsets[sz(r + 1)]; ++s)
      if (!lr.dropped[sz(s)]) st->position_load[sz(b * e_n + lr.experts[sz(s)])] += 1.0;
  }
  for (int64_t b = 0; b < b_n; ++b) {
    double total = 0.0;
    for (int64_t e = 0; e < e_n; ++e) total += st->position_load[sz(b * e_n + e)];
    for (int64_t e = 0; e < e_n && total > 0; ++e) st->position_load[sz(b * e_n + e)] /= total;
  }
}

// How often a token's first-ranked kept expert differs from its left neighbour's in the window,
// against how often it would if first experts were drawn independently from their shares.
void switch_statistics(const LevelRouting& lr, int64_t n_token_rows, int64_t context,
                       LevelStats* st) {
  const int64_t e_n = lr.n_experts;
  std::vector<int32_t> first(sz(n_token_rows), -1);  // [W·L] first kept expert, -1: none
  std::vector<double> share(sz(e_n), 0.0);           // [E] q
  double routed = 0.0;
  for (int64_t r = 0; r < lr.n_rows(); ++r) {
    for (int64_t s = lr.offsets[sz(r)]; s < lr.offsets[sz(r + 1)]; ++s) {
      if (lr.dropped[sz(s)]) continue;
      first[sz(lr.rows[sz(r)])] = lr.experts[sz(s)];
      share[sz(lr.experts[sz(s)])] += 1.0;
      routed += 1.0;
      break;
    }
  }
  int64_t pairs = 0, switches = 0;
  for (int64_t r = 0; r < lr.n_rows(); ++r) {
    const int64_t row = lr.rows[sz(r)];
    if (row % context == 0 || first[sz(row)] < 0 || first[sz(row - 1)] < 0) continue;
    ++pairs;
    switches += first[sz(row)] != first[sz(row - 1)];
  }
  st->switch_pairs = pairs;
  st->switch_rate = pairs > 0 ? static_cast<double>(switches) / static_cast<double>(pairs) : 0.0;
  double same = 0.0;
  for (double q : share) same += routed > 0 ? (q / routed) * (q / routed) : 0.0;
  st->switch_rate_independent = routed > 0 ? 1.0 - same : 0.0;
}

}  // namespace

int64_t routed_row_count(const Dataset& data) {
  if (data.kind == FeatureKind::kPairs)
    return std::max(static_cast<int64_t>(data.ids.size()),
                    static_cast<int64_t>(data.target_ids.size()) + data.n_rows);
  return data.kind == FeatureKind::kTokens ? data.n_rows * data.context : data.n_rows;
}

bool decoder_layer(const std::string& layer) {
  return layer.rfind("decoder.", 0) == 0;
}

void pair_token_statistics(const LevelRouting& lr,
                           const std::vector<std::vector<int64_t>>& expert_rows,
                           const InspectContext& ctx, const InspectOptions& options,
                           LevelStats* st) {
  const Dataset& data = *ctx.data;
  MOE_CHECK(data.kind == FeatureKind::kPairs &&
                static_cast<int64_t>(ctx.decoder_tokens.size()) ==
                    static_cast<int64_t>(data.target_ids.size()) + data.n_rows,
            "pair statistics need sentence pairs and their decoder tokens");
  characteristic_tokens(lr, expert_rows, decoder_layer(lr.layer) ? ctx.decoder_tokens : data.ids,
                        ctx, options, st);
}

void token_statistics(const LevelRouting& lr, const std::vector<std::vector<int64_t>>& expert_rows,
                      const InspectContext& ctx, const InspectOptions& options, LevelStats* st) {
  const Dataset& data = *ctx.data;
  MOE_CHECK(data.kind == FeatureKind::kTokens && data.context > 0,
            "token statistics need token windows");
  MOE_CHECK(static_cast<int64_t>(data.ids.size()) >= routed_row_count(data),
            "a token stream of {} ids for {} windows of {}", data.ids.size(), data.n_rows,
            data.context);
  characteristic_tokens(lr, expert_rows, data.ids, ctx, options, st);
  position_statistics(lr, data.context, options.position_buckets, st);
  switch_statistics(lr, routed_row_count(data), data.context, st);
}

}  // namespace moe::inspect_detail
