// TranslationModel's generation: decoding over the key/value caches equals the full forward at
// every position, hypotheses reordered mid-way continue as their parents, beam 1 is greedy, a
// beam wide enough to hold every sentence finds what exhaustive search finds, sentences decode
// the same together and alone; and the refusal of gates that look across tokens.
//
// Dims: B pairs · N hypotheses · V vocabulary · D width · L positions.
#include "moe/model/translation_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "moe/core/arena.h"

namespace moe {
namespace {

constexpr int32_t kBos = 1, kEos = 2;

// Encoder block 1 and decoder block 1 MoE top-2 of 3 SwiGLU experts, the others dense; GQA.
ModelConfig small_config(int64_t vocab_max_tokens = 12) {
  ModelConfig c;
  c.translation_model = true;
  c.width = 16;
  TranslationConfig& tr = c.translation;
  tr.encoder_layers = 2;
  tr.decoder_layers = 2;
  tr.heads = 4;
  tr.kv_heads = 2;
  tr.max_tokens = vocab_max_tokens;
  tr.ffn_hidden = 12;
  MoeBlockConfig m;
  m.n_experts = 3;
  m.expert = {ExpertKind::kSwiglu, 8, 1, Activation::kGelu, false};
  m.gate.kind = GateKind::kTopKSoftmax;
  m.gate.k = 2;
  c.moe = {m};
  return c;
}

std::unique_ptr<TranslationModel> make(int64_t vocab, const ModelConfig& c = small_config(),
                                       uint64_t seed = 5) {
  DataShape s;
  s.input = FeatureKind::kPairs;
  s.n_features = s.n_outputs = vocab;
  Result<std::unique_ptr<TranslationModel>> m = TranslationModel::create(c, s);
  EXPECT_TRUE(m.is_ok()) << m.status().message();
  if (!m.is_ok()) return nullptr;
  m.value()->init(seed);
  return std::move(m.value());
}

// A batch of pairs: sources (eos appended) and targets (bos + y in, y + eos out), packed.
struct PairBatch {
  TensorBuffer src, src_starts, tgt_in, tgt_out, tgt_starts;
  Batch batch;

  PairBatch(const std::vector<std::vector<int32_t>>& sources,
            const std::vector<std::vector<int32_t>>& targets) {
    std::vector<int32_t> s, in, out;
    std::vector<int64_t> ss = {0}, ts = {0};
    for (size_t i = 0; i < sources.size(); ++i) {
      s.insert(s.end(), sources[i].begin(), sources[i].end());
      s.push_back(kEos);
      ss.push_back(static_cast<int64_t>(s.size()));
      in.push_back(kBos);
      in.insert(in.end(), targets[i].begin(), targets[i].end());
      out.insert(out.end(), targets[i].begin(), targets[i].end());
      out.push_back(kEos);
      ts.push_back(static_cast<int64_t>(in.size()));
    }
    src = ints(s);
    tgt_in = ints(in);
    tgt_out = ints(out);
    src_starts = longs(ss);
    tgt_starts = longs(ts);
    batch.n_rows = static_cast<int64_t>(sources.size());
    batch.src_tokens = src.view();
    batch.src_starts = src_starts.view();
    batch.tgt_in = tgt_in.view();
    batch.tgt_out = tgt_out.view();
    batch.tgt_starts = tgt_starts.view();
  }
  static TensorBuffer ints(const std::vector<int32_t>& v) {
    TensorBuffer t(Shape{static_cast<int64_t>(v.size())}, DType::kI32);
    std::copy(v.begin(), v.end(), t.view().data<int32_t>());
    return t;
  }
  static TensorBuffer longs(const std::vector<int64_t>& v) {
    TensorBuffer t(Shape{static_cast<int64_t>(v.size())}, DType::kI64);
    std::copy(v.begin(), v.end(), t.view().data<int64_t>());
    return t;
  }
};

// Σ ln p of the target and eos given the source, by the full forward.
double sentence_log_prob(TranslationModel& model, const std::vector<int32_t>& source,
                         const std::vector<int32_t>& target) {
  PairBatch p({source}, {target});
  Arena arena;
  const Tensor logits = model.forward(p.batch, false, Rng(0), arena);
  const int64_t v = model.vocab();
  double total = 0.0;
  for (int64_t r = 0; r < logits.rows(); ++r) {
    const float* row = logits.f32() + r * v;
    double mx = -std::numeric_limits<double>::infinity(), sum = 0.0;
    for (int64_t j = 0; j < v; ++j) mx = std::max(mx, static_cast<double>(row[j]));
    for (int64_t j = 0; j < v; ++j) sum += std::exp(row[j] - mx);
    total += row[p.tgt_out.view().data<int32_t>()[r]] - mx - std::log(sum);
  }
  return total;
}

TEST(TranslationDecode, CachedStepsEqualTheFullForward) {
  auto model = make(19);
  const std::vector<std::vector<int32_t>> sources = {{5, 6, 7, 8}, {9, 3}, {4, 4, 10, 11, 12, 13}};
  const std::vector<std::vector<int32_t>> targets = {{7, 8, 9}, {10, 11, 12, 13, 14}, {15}};
  PairBatch p(sources, targets);
  Arena arena;
  const Tensor full = model->forward(p.batch, false, Rng(0), arena);
  TensorBuffer expected(full.shape());
  copy(expected.view(), full);
  const int64_t v = model->vocab();
  model->start_decoding(sources, 1, kEos);
  for (int64_t pos = 0; pos < 6; ++pos) {
    std::vector<int32_t> step;
    for (size_t i = 0; i < sources.size(); ++i) {
      const auto len = static_cast<int64_t>(targets[i].size()) + 1;
      step.push_back(pos == 0 ? kBos : pos < len ? targets[i][static_cast<size_t>(pos - 1)] : kEos);
    }
    const Tensor logits = model->decode_step(step);
    for (size_t i = 0; i < sources.size(); ++i) {
      const int64_t start = p.tgt_starts.view().data<int64_t>()[i];
      if (pos >= static_cast<int64_t>(targets[i].size()) + 1) continue;
      for (int64_t j = 0; j < v; ++j) {
        ASSERT_NEAR(logits.f32()[static_cast<int64_t>(i) * v + j],
                    expected.f32()[(start + pos) * v + j], 2e-5)
            << "sentence " << i << " position " << pos << " token " << j;
      }
    }
  }
}

TEST(TranslationDecode, ReorderedHypothesesContinueTheirParents) {
  auto model = make(19);
  const std::vector<std::vector<int32_t>> sources = {{5, 6, 7}, {8, 9}};
  // Two copies per source take different first tokens; then copy 1 of each continues copy 0.
  model->start_decoding(sources, 2, kEos);
  model->decode_step(std::vector<int32_t>{kBos, kBos, kBos, kBos});
  model->decode_step(std::vector<int32_t>{10, 11, 12, 13});
  model->reorder_hypotheses(std::vector<int64_t>{0, 0, 3, 3});
  const Tensor after = model->decode_step(std::vector<int32_t>{14, 15, 16, 17});
  TensorBuffer got(after.shape());
  copy(got.view(), after);
  // The same prefixes decoded directly.
  model->start_decoding(sources, 2, kEos);
  model->decode_step(std::vector<int32_t>{kBos, kBos, kBos, kBos});
  model->decode_step(std::vector<int32_t>{10, 10, 13, 13});
  const Tensor direct = model->decode_step(std::vector<int32_t>{14, 15, 16, 17});
  for (int64_t i = 0; i < got.view().numel(); ++i)
    ASSERT_FLOAT_EQ(got.f32()[i], direct.f32()[i]) << i;
}

TEST(TranslationDecode, BeamOfOneIsGreedy) {
  auto model = make(13, small_config(7));
  const std::vector<std::vector<int32_t>> sources = {{5, 6, 7}, {8}};
  TranslationModel::DecodeOptions o;
  const std::vector<TranslationModel::Hypothesis> out = model->translate(sources, o);
  ASSERT_EQ(out.size(), 2U);
  for (size_t i = 0; i < sources.size(); ++i) {
    // Greedy by recomputation: the most probable next token after each prefix.
    std::vector<int32_t> prefix;
    const int64_t v = model->vocab();
    for (int64_t pos = 0; pos < 7; ++pos) {
      PairBatch p({sources[i]}, {prefix});
      Arena arena;
      const Tensor logits = model->forward(p.batch, false, Rng(0), arena);
      const float* last = logits.f32() + (logits.rows() - 1) * v;
      int32_t best = 0;
      for (int32_t j = 1; j < v; ++j) best = last[j] > last[best] ? j : best;
      if (best == kEos || pos == 6) break;
      prefix.push_back(best);
    }
    EXPECT_EQ(out[i].tokens, prefix) << "sentence " << i;
    EXPECT_NEAR(out[i].log_prob, sentence_log_prob(*model, sources[i], out[i].tokens), 1e-4);
  }
}

TEST(TranslationDecode, WideBeamFindsTheExhaustiveBest) {
  // V = 5 (three ordinary tokens 0, 3, 4 besides bos 1 and eos 2), 3 positions: every sentence of
  // up to two tokens fits in a beam of 64, so beam search is exhaustive.
  auto model = make(5, small_config(3), 11);
  const std::vector<int32_t> source = {3, 4};
  for (const double alpha : {0.0, 1.0}) {
    TranslationModel::DecodeOptions o;
    o.beam = 64;
    o.length_penalty = alpha;
    const TranslationModel::Hypothesis got =
        model->translate(std::vector<std::vector<int32_t>>{source}, o)[0];
    double best = -std::numeric_limits<double>::infinity();
    std::vector<int32_t> best_tokens;
    const std::vector<int32_t> ordinary = {0, 1, 3, 4};  // bos is a token the model may emit too
    std::function<void(std::vector<int32_t>)> walk = [&](std::vector<int32_t> t) {
      const double lp = sentence_log_prob(*model, source, t);
      const double score = lp / std::pow(static_cast<double>(t.size() + 1), alpha);
      if (score > best) {
        best = score;
        best_tokens = t;
      }
      if (t.size() == 2) return;
      for (const int32_t w : ordinary) {
        t.push_back(w);
        walk(t);
        t.pop_back();
      }
    };
    walk({});
    EXPECT_EQ(got.tokens, best_tokens) << "length penalty " << alpha;
    EXPECT_NEAR(got.score, best, 1e-4) << "length penalty " << alpha;
  }
}

TEST(TranslationDecode, SentencesDecodeTheSameTogetherAndAlone) {
  auto model = make(19);
  const std::vector<std::vector<int32_t>> sources = {{5, 6, 7, 8}, {9}, {10, 11, 3, 4, 5}};
  TranslationModel::DecodeOptions o;
  o.beam = 3;
  const std::vector<TranslationModel::Hypothesis> together = model->translate(sources, o);
  for (size_t i = 0; i < sources.size(); ++i) {
    const TranslationModel::Hypothesis alone =
        model->translate(std::vector<std::vector<int32_t>>{sources[i]}, o)[0];
    EXPECT_EQ(alone.tokens, together[i].tokens) << i;
    EXPECT_NEAR(alone.score, together[i].score, 1e-4) << i;
  }
}

TEST(TranslationModel, GatesThatLookAcrossTokensAreRefused) {
  ModelConfig c = small_config();
  c.moe[0].gate.kind = GateKind::kExpertChoice;
  DataShape s;
  s.input = FeatureKind::kPairs;
  s.n_features = s.n_outputs = 19;
  const Result<std::unique_ptr<TranslationModel>> m = TranslationModel::create(c, s);
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("a translation model needs a causal gate"), std::string::npos)
      << m.status().message();
}

}  // namespace
}  // namespace moe
