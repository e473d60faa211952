// Corpus BLEU against NLTK's corpus_bleu on the same 13a tokens (tests/golden/gen_bleu.py writes
// golden/fixtures/bleu_nltk.json): the tokenisation must match Python's regular expressions
// exactly, and the score NLTK's to 1e-9. Then BLEU and chrF against sacreBLEU itself on random
// sentences (tests/golden/gen_sacrebleu.py, golden/fixtures/sacrebleu_random.json).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moe/train/translation_metrics.h"

namespace moe {
namespace {

nlohmann::json read_fixture(const std::string& name) {
  std::ifstream in("golden/fixtures/" + name);
  EXPECT_TRUE(in) << "golden/fixtures/" << name << " is missing";
  return in ? nlohmann::json::parse(in) : nlohmann::json{{"cases", nlohmann::json::array()}};
}

TEST(BleuGolden, MatchesNltkOn13aTokens) {
  const nlohmann::json fixture = read_fixture("bleu_nltk.json");
  ASSERT_GE(fixture.at("cases").size(), 4U);
  for (const nlohmann::json& c : fixture.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto hyps = c.at("hypotheses").get<std::vector<std::string>>();
    const auto refs = c.at("references").get<std::vector<std::string>>();
    const auto hyp_tokens = c.at("hypothesis_tokens").get<std::vector<std::string>>();
    const auto ref_tokens = c.at("reference_tokens").get<std::vector<std::string>>();
    for (size_t i = 0; i < hyps.size(); ++i) {
      EXPECT_EQ(tokenize_13a(hyps[i]), hyp_tokens[i]);
      EXPECT_EQ(tokenize_13a(refs[i]), ref_tokens[i]);
    }
    const double expected = c.at("bleu").get<double>();
    const double actual = corpus_bleu(hyps, refs).score;
    std::printf("%s: BLEU %.12f, NLTK %.12f\n", c.at("name").get<std::string>().c_str(), actual,
                expected);
    EXPECT_NEAR(actual, expected, 1e-9);
  }
}

TEST(BleuGolden, BleuAndChrfMatchSacreBleuOnRandomSentences) {
  const nlohmann::json fixture = read_fixture("sacrebleu_random.json");
  ASSERT_GE(fixture.at("cases").size(), 10U);
  for (const nlohmann::json& c : fixture.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const auto hyps = c.at("hypotheses").get<std::vector<std::string>>();
    const auto refs = c.at("references").get<std::vector<std::string>>();
    EXPECT_NEAR(corpus_bleu(hyps, refs).score, c.at("bleu").get<double>(), 1e-9);
    EXPECT_NEAR(corpus_chrf(hyps, refs), c.at("chrf").get<double>(), 1e-9);
  }
}

}  // namespace
}  // namespace moe
