// Routing inspection of a language model: a hand-made routing of token windows whose position
// load and switch rate are worked out by hand; a tiny LM with hash routing, whose every token id
// goes to one known expert, so each expert's characteristic tokens and their lift are known;
// and a tiny LM with a learned top-2 router (router entropies, output ratios).
//
// Dims: W windows · L window length · V vocabulary · E experts · B position buckets.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "moe/core/rng.h"
#include "moe/model/model.h"
#include "moe/train/inspect.h"

namespace moe {
namespace {

constexpr int64_t kVocab = 23;

// W windows of L tokens drawn from `seed` over ids [0, V).
Dataset token_windows(int64_t w, int64_t l, uint64_t seed) {
  Dataset d;
  d.source = "hand";
  d.kind = FeatureKind::kTokens;
  d.n_rows = w;
  d.n_features = kVocab;
  d.task = TaskKind::kClassification;
  d.has_labels = true;
  d.n_classes = kVocab;
  d.context = l;
  d.n_bytes = w * l * 3;
  Rng rng(seed);
  for (int64_t i = 0; i < w * l + 1; ++i) d.ids.push_back(static_cast<int32_t>(rng.below(kVocab)));
  for (int64_t i = 0; i < w; ++i) d.source_rows.push_back(i * l);
  return d;
}

InspectContext token_context(const Dataset& d) {
  InspectContext c;
  c.data = &d;
  c.path = "hand.txt";
  c.input = InputKind::kTokens;
  c.context = d.context;
  for (int64_t v = 0; v < kVocab; ++v) c.words.push_back(fmt::format("t{}", v));
  return c;
}

ModelConfig lm_config(GateKind gate, int64_t experts, int64_t k, int64_t context) {
  ModelConfig c;
  c.language_model = true;
  c.width = 8;
  c.lm.layers = 1;
  c.lm.heads = 2;
  c.lm.context = context;
  MoeBlockConfig m;
  m.n_experts = experts;
  m.expert = {ExpertKind::kSwiglu, 4, 1, Activation::kGelu, false};
  m.gate.kind = gate;
  m.gate.k = k;
  c.moe = {m};
  return c;
}

std::unique_ptr<Model> make_lm(const ModelConfig& c) {
  DataShape s;
  s.input = FeatureKind::kTokens;
  s.n_features = kVocab;
  s.task = TaskKind::kClassification;
  s.n_outputs = kVocab;
  Result<std::unique_ptr<Model>> m = Model::create(c, s);
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  if (!m.is_ok()) return nullptr;
  m.value()->init(5);
  return std::move(m.value());
}

// The hash gate's expert of token id v (SplitMix64's finaliser modulo E, moe/gate_hash.cpp).
int32_t hash_expert(int64_t v, int64_t n_experts) {
  uint64_t z = static_cast<uint64_t>(v) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<int32_t>(z % static_cast<uint64_t>(n_experts));
}

double sum(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0);
}

// Each bucket's tokens add up to the level's, and each bucket's load row sums to 1.
void expect_positions_consistent(const LevelStats& s, int64_t buckets) {
  ASSERT_EQ(static_cast<int64_t>(s.position_starts.size()), buckets);
  ASSERT_EQ(static_cast<int64_t>(s.position_load.size()), buckets * s.n_experts);
  EXPECT_EQ(s.position_starts[0], 0);
  int64_t tokens = 0;
  for (int64_t b = 0; b < buckets; ++b) {
    tokens += s.position_tokens[static_cast<size_t>(b)];
    double row = 0.0;
    for (int64_t e = 0; e < s.n_experts; ++e)
      row += s.position_load[static_cast<size_t>(b * s.n_experts + e)];
    EXPECT_NEAR(row, 1.0, 1e-9) << "bucket " << b;
  }
  EXPECT_EQ(tokens, s.n_rows);
}

// Two windows of four tokens, routed by hand (one slot each):
//   window 0: experts 0 0 1 1      window 1: experts 1 0 0 0
// Neighbouring pairs inside a window: 6, of which 2 switch (0→1 at position 2, 1→0 at 1); the
// pair across the windows' boundary is not one. First-expert shares q = (5/8, 3/8), so
// independent routing would switch 1 − (25 + 9)/64 = 30/64 of the time. Two buckets of two
// positions: bucket 0 holds experts 0 0 1 0 (load 3/4, 1/4), bucket 1 holds 1 1 0 0 (1/2, 1/2).
TEST(InspectLm, HandRoutingPositionsAndSwitchRate) {
  const Dataset d = token_windows(2, 4, 1);
  InspectContext ctx = token_context(d);
  LevelRouting r;
  r.layer = "blocks.0.moe";
  r.gate = "hash";
  r.n_experts = 2;
  r.k = 1;
  r.offsets.push_back(0);
  const int32_t experts[8] = {0, 0, 1, 1, 1, 0, 0, 0};
  const float weight = 1.0f;
  const uint8_t kept = 0;
  for (int64_t row = 0; row < 8; ++row) r.add_row(row, &experts[row], &weight, &kept, 1, nullptr);
  InspectOptions options;
  options.position_buckets = 2;
  const LevelStats s = inspect_level(r, ctx, options);
  EXPECT_EQ(s.n_rows, 8);
  EXPECT_NEAR(s.load[0], 5.0 / 8, 1e-12);
  EXPECT_EQ(s.switch_pairs, 6);
  EXPECT_NEAR(s.switch_rate, 2.0 / 6, 1e-12);
  EXPECT_NEAR(s.switch_rate_independent, 30.0 / 64, 1e-12);
  expect_positions_consistent(s, 2);
  EXPECT_EQ(s.position_starts[1], 2);
  EXPECT_EQ(s.position_tokens[0], 4);
  EXPECT_NEAR(s.position_load[0], 0.75, 1e-12);
  EXPECT_NEAR(s.position_load[1], 0.25, 1e-12);
  EXPECT_NEAR(s.position_load[2], 0.5, 1e-12);
  EXPECT_NEAR(s.position_load[3], 0.5, 1e-12);
  // More buckets than positions: one bucket per position.
  options.position_buckets = 8;
  expect_positions_consistent(inspect_level(r, ctx, options), 4);
}

// Hash routing sends every token of id v to h(v): expert e's tokens are exactly the ids with
// h(v) = e, each with lift R / (tokens on e), and no other id can be listed for it.
TEST(InspectLm, HashRoutingCharacteristicTokens) {
  constexpr int64_t kExperts = 4, kContext = 8;
  const std::unique_ptr<Model> m = make_lm(lm_config(GateKind::kHash, kExperts, 1, kContext));
  ASSERT_TRUE(m);
  const Dataset d = token_windows(40, kContext, 7);
  const InspectContext ctx = token_context(d);
  InspectOptions options;
  options.batch_size = 3;  // several batches, the last one short
  options.min_count = 2;
  options.top_tokens = kVocab;
  Result<InspectReport> rep = inspect_model(*m, ctx, options);
  ASSERT_TRUE(rep.is_ok()) << rep.status().message();
  ASSERT_EQ(rep->levels.size(), 1u);
  EXPECT_EQ(rep->context, kContext);
  const LevelStats& s = rep->levels[0];
  const int64_t n_tokens = d.n_rows * kContext;
  EXPECT_EQ(s.n_rows, n_tokens);
  EXPECT_NEAR(sum(s.load), 1.0, 1e-9);
  EXPECT_FALSE(s.entropy_from_router);
  EXPECT_NEAR(s.entropy_mean, 0.0, 1e-12);  // one expert, weight 1
  std::vector<int64_t> per_id(kVocab, 0), per_expert(kExperts, 0);
  for (int64_t t = 0; t < n_tokens; ++t) {
    ++per_id[static_cast<size_t>(d.ids[static_cast<size_t>(t)])];
    ++per_expert[static_cast<size_t>(hash_expert(d.ids[static_cast<size_t>(t)], kExperts))];
  }
  for (int64_t e = 0; e < kExperts; ++e)
    EXPECT_NEAR(s.load[static_cast<size_t>(e)], double(per_expert[e]) / double(n_tokens), 1e-12);
  ASSERT_EQ(s.tokens.size(), static_cast<size_t>(kExperts));
  int64_t listed = 0;
  for (int64_t e = 0; e < kExperts; ++e) {
    std::map<std::string, int64_t> expected;  // piece → count
    for (int64_t v = 0; v < kVocab; ++v)
      if (hash_expert(v, kExperts) == e && per_id[static_cast<size_t>(v)] >= options.min_count)
        expected[fmt::format("t{}", v)] = per_id[static_cast<size_t>(v)];
    ASSERT_EQ(s.tokens[static_cast<size_t>(e)].size(), expected.size()) << "expert " << e;
    for (const ExpertWord& w : s.tokens[static_cast<size_t>(e)]) {
      ASSERT_TRUE(expected.count(w.word)) << w.word << " on expert " << e;
      EXPECT_EQ(w.count, expected[w.word]);
      EXPECT_NEAR(w.lift, double(n_tokens) / double(per_expert[e]), 1e-9);
      ++listed;
    }
  }
  EXPECT_GT(listed, 0);
  // The switch rate follows from the ids alone.
  int64_t pairs = 0, switches = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    if (t % kContext == 0) continue;
    ++pairs;
    switches += hash_expert(d.ids[static_cast<size_t>(t)], kExperts) !=
                hash_expert(d.ids[static_cast<size_t>(t - 1)], kExperts);
  }
  EXPECT_EQ(s.switch_pairs, pairs);
  EXPECT_NEAR(s.switch_rate, double(switches) / double(pairs), 1e-12);
  expect_positions_consistent(s, 8);
  for (int64_t b = 0; b < 8; ++b) EXPECT_EQ(s.position_tokens[static_cast<size_t>(b)], d.n_rows);
  // The JSON and text carry the language-model parts.
  const nlohmann::ordered_json j = inspect_to_json(*rep);
  EXPECT_EQ(j["data"]["task"], "language_model");
  EXPECT_EQ(j["data"]["input"], "tokens");
  EXPECT_EQ(j["data"]["tokens"], n_tokens);
  EXPECT_EQ(j["layers"][0]["positions"]["load"].size(), 8u);
  EXPECT_TRUE(j["layers"][0].contains("switch_rate"));
  EXPECT_TRUE(j["metrics"].contains("perplexity"));
  const std::string text = inspect_to_text(*rep);
  EXPECT_NE(text.find("language model"), std::string::npos) << text;
  EXPECT_NE(text.find("load by position"), std::string::npos) << text;
  EXPECT_NE(text.find("neighbouring pairs"), std::string::npos) << text;
}

// A learned top-2 router: entropies come from it, loads and co-activation are consistent, the
// output ratios are recorded; a routing trace of tokens is refused, not crashed on.
TEST(InspectLm, TopKRouterStatistics) {
  constexpr int64_t kExperts = 4, kContext = 6;
  const std::unique_ptr<Model> m =
      make_lm(lm_config(GateKind::kTopKSoftmax, kExperts, 2, kContext));
  ASSERT_TRUE(m);
  const Dataset d = token_windows(10, kContext, 3);
  const InspectContext ctx = token_context(d);
  InspectOptions options;
  options.min_count = 1;
  Result<InspectReport> rep = inspect_model(*m, ctx, options);
  ASSERT_TRUE(rep.is_ok()) << rep.status().message();
  const LevelStats& s = rep->levels[0];
  EXPECT_EQ(s.n_rows, d.n_rows * kContext);
  EXPECT_NEAR(sum(s.load), 1.0, 1e-9);
  EXPECT_TRUE(s.entropy_from_router);
  EXPECT_GT(s.entropy_mean, 0.0);
  EXPECT_LE(s.entropy_mean, s.entropy_max + 1e-9);
  EXPECT_EQ(s.output_ratio.size(), static_cast<size_t>(kExperts));
  double diagonal = 0.0;  // each token uses two experts
  for (int64_t e = 0; e < kExperts; ++e)
    diagonal += s.coactivation[static_cast<size_t>(e * kExperts + e)];
  EXPECT_NEAR(diagonal, 2.0, 1e-9);
  expect_positions_consistent(s, kContext);  // 8 buckets asked, 6 positions
  EXPECT_TRUE(s.class_counts.empty());
  options.keep_trace = true;
  EXPECT_FALSE(inspect_model(*m, ctx, options).is_ok());
}

}  // namespace
}  // namespace moe
