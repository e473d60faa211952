// Metrics against hand-computed values, following scikit-learn's definitions (see metrics.h).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "moe/core/rng.h"
#include "moe/train/metrics.h"

namespace moe {
namespace {

// One-hot-like scores [N, C] that make `predicted` the argmax of each row.
std::vector<float> scores_for(const std::vector<int32_t>& predicted, int64_t n_classes) {
  std::vector<float> s(predicted.size() * static_cast<size_t>(n_classes), 0.1f);
  for (size_t i = 0; i < predicted.size(); ++i)
    s[i * static_cast<size_t>(n_classes) + static_cast<size_t>(predicted[i])] = 0.7f;
  return s;
}

TEST(Classification, ThreeClassesByHand) {
  // Confusion (rows true, columns predicted): [[2,1,0],[0,2,0],[1,0,2]].
  const std::vector<int32_t> y = {0, 0, 1, 1, 2, 2, 2, 0};
  const std::vector<int32_t> p = {0, 1, 1, 1, 2, 0, 2, 0};
  const ClassificationMetrics m = classification_metrics(y, scores_for(p, 3), 3);
  EXPECT_EQ(m.n_rows, 8);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.75);
  EXPECT_EQ(m.confusion, (std::vector<int64_t>{2, 1, 0, 0, 2, 0, 1, 0, 2}));
  EXPECT_EQ(m.confusion_at(2, 0), 1);
  EXPECT_EQ(m.support, (std::vector<int64_t>{3, 2, 3}));
  EXPECT_DOUBLE_EQ(m.precision[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.precision[1], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.precision[2], 1.0);
  EXPECT_DOUBLE_EQ(m.recall[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.recall[1], 1.0);
  EXPECT_DOUBLE_EQ(m.recall[2], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.f1[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.f1[1], 0.8);
  EXPECT_DOUBLE_EQ(m.f1[2], 0.8);
  EXPECT_NEAR(m.macro_precision, 7.0 / 9.0, 1e-15);
  EXPECT_NEAR(m.macro_recall, 7.0 / 9.0, 1e-15);
  EXPECT_NEAR(m.macro_f1, 34.0 / 45.0, 1e-15);
  // One-vs-rest AUCs with scores .7 (predicted) and .1, ties counting one half: class 0, 11 of
  // 15 pairs; class 1, 11 of 12; class 2, 12.5 of 15.
  EXPECT_TRUE(m.has_roc_auc);
  EXPECT_NEAR(m.roc_auc, (11.0 / 15 + 11.0 / 12 + 12.5 / 15) / 3, 1e-15);
}

TEST(Classification, MacroSkipsClassesAbsentFromLabelsAndPredictionsAndZeroDivisionIsZero) {
  // C = 4: class 2 is predicted once but never true (precision 0/1, recall 0/0 -> 0); class 3
  // occurs nowhere and is left out of the macro means, as sklearn does without `labels=`.
  const std::vector<int32_t> y = {0, 0, 1, 1};
  const std::vector<int32_t> p = {0, 2, 1, 1};
  const ClassificationMetrics m = classification_metrics(y, scores_for(p, 4), 4);
  EXPECT_DOUBLE_EQ(m.precision[2], 0.0);
  EXPECT_DOUBLE_EQ(m.recall[2], 0.0);
  EXPECT_DOUBLE_EQ(m.f1[2], 0.0);
  EXPECT_DOUBLE_EQ(m.f1[3], 0.0);
  EXPECT_EQ(m.support[3], 0);
  EXPECT_NEAR(m.macro_precision, 2.0 / 3.0, 1e-15);
  EXPECT_NEAR(m.macro_recall, 0.5, 1e-15);
  EXPECT_NEAR(m.macro_f1, 5.0 / 9.0, 1e-15);
}

TEST(Classification, ArgmaxTieTakesLowestClass) {
  const std::vector<float> s = {0.5f, 0.5f, 0.0f, 0.2f, 0.4f, 0.4f};
  EXPECT_EQ(argmax_rows(s, 3), (std::vector<int32_t>{0, 1}));
}

TEST(RocAuc, TiedScoresShareTheirMeanRank) {
  // Ascending: .1(-) .2(-) .35(+) .4(-) .4(-) .4(+) .8(+) .9(+); ranks of + : 3, 5, 7, 8 = 23.
  // AUC = (23 − 4·5/2) / (4·4) = 13/16; by pairs: 2 + (2 + ½·2) + 4 + 4 = 13 of 16.
  const std::vector<int32_t> y = {0, 0, 1, 1, 0, 1, 1, 0};
  const std::vector<float> s = {0.1f, 0.4f, 0.35f, 0.8f, 0.4f, 0.4f, 0.9f, 0.2f};
  EXPECT_DOUBLE_EQ(roc_auc(y, s), 13.0 / 16.0);
}

TEST(RocAuc, SeparatedReversedConstantAndOneClass) {
  const std::vector<int32_t> y = {0, 1, 0, 1};
  EXPECT_DOUBLE_EQ(roc_auc(y, std::vector<float>{0.1f, 0.9f, 0.2f, 0.8f}), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc(y, std::vector<float>{0.9f, 0.1f, 0.8f, 0.2f}), 0.0);
  EXPECT_DOUBLE_EQ(roc_auc(y, std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f}), 0.5);
  EXPECT_TRUE(std::isnan(roc_auc(std::vector<int32_t>{1, 1}, std::vector<float>{0.2f, 0.3f})));
}

TEST(RocAuc, MatchesPairCountingOnRandomScoresWithTies) {
  // AUC = P(score₊ > score₋) + ½ P(score₊ = score₋), counted over every pair.
  Rng rng(5);
  std::vector<int32_t> y(300);
  std::vector<float> s(300);
  for (size_t i = 0; i < y.size(); ++i) {
    y[i] = rng.uniform() < 0.4 ? 1 : 0;
    s[i] = static_cast<float>(static_cast<int>(rng.uniform() * 20)) / 20.0f;  // many ties
  }
  double wins = 0, pairs = 0;
  for (size_t a = 0; a < y.size(); ++a) {
    for (size_t b = 0; b < y.size(); ++b) {
      if (y[a] != 1 || y[b] != 0) continue;
      pairs += 1;
      wins += s[a] > s[b] ? 1.0 : (s[a] == s[b] ? 0.5 : 0.0);
    }
  }
  EXPECT_NEAR(roc_auc(y, s), wins / pairs, 1e-12);
}

TEST(Classification, BinaryUsesClassOneProbabilityForAuc) {
  const std::vector<int32_t> y = {0, 1, 1, 0};
  const std::vector<float> probs = {0.8f, 0.2f, 0.3f, 0.7f, 0.6f, 0.4f, 0.45f, 0.55f};  // [4, 2]
  const ClassificationMetrics m = classification_metrics(y, probs, 2);
  // Scores of class 1: .2(−) .7(+) .4(+) .55(−); .7 beats both negatives, .4 beats .2 only:
  // 3 of 4 pairs.
  EXPECT_TRUE(m.has_roc_auc);
  EXPECT_DOUBLE_EQ(m.roc_auc, 0.75);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.5);  // predictions 0, 1, 0, 1
}

TEST(Classification, MultiClassAucIsTheOneVsRestMacroMean) {
  // Three classes, four rows: y = 0, 1, 2, 2.
  const std::vector<int32_t> y = {0, 1, 2, 2};
  const std::vector<float> p = {0.6f, 0.3f, 0.1f,   // [4, 3]
                                0.5f, 0.2f, 0.3f,   //
                                0.2f, 0.3f, 0.5f,   //
                                0.1f, 0.7f, 0.2f};  //
  // Class 0: positive .6 against .5 .2 .1: 1. Class 1: positive .2 against .3 .3 .7: 0.
  // Class 2: positives .5 .2 against negatives .1 .3: .5 beats both, .2 beats .1: 3 of 4.
  const ClassificationMetrics m = classification_metrics(y, p, 3);
  EXPECT_TRUE(m.has_roc_auc);
  EXPECT_DOUBLE_EQ(m.roc_auc, (1.0 + 0.0 + 0.75) / 3);
  // A class absent from the labels has no AUC of its own and is left out of the mean.
  const std::vector<int32_t> y2 = {0, 0, 2, 2};
  const ClassificationMetrics m2 = classification_metrics(y2, p, 3);
  // Class 0: .6 .5 against .2 .1: 1. Class 2: .5 .2 against .1 .3: .75.
  EXPECT_DOUBLE_EQ(m2.roc_auc, (1.0 + 0.75) / 2);
  // One class only: nothing is defined.
  const std::vector<int32_t> one = {1, 1, 1, 1};
  const ClassificationMetrics m3 = classification_metrics(one, p, 3);
  EXPECT_FALSE(m3.has_roc_auc);
  EXPECT_TRUE(std::isnan(m3.roc_auc));
  // With two classes the one-vs-rest mean is the binary AUC: p_0 = 1 − p_1 orders in reverse.
  const std::vector<int32_t> yb = {0, 1, 1, 0};
  const std::vector<float> pb = {0.8f, 0.2f, 0.3f, 0.7f, 0.6f, 0.4f, 0.45f, 0.55f};
  std::vector<int32_t> not_one(yb.size());
  std::vector<float> p0(yb.size());
  for (size_t i = 0; i < yb.size(); ++i) {
    not_one[i] = 1 - yb[i];
    p0[i] = pb[2 * i];
  }
  EXPECT_DOUBLE_EQ(roc_auc(not_one, p0), classification_metrics(yb, pb, 2).roc_auc);
}

TEST(Regression, TwoTargetsByHand) {
  // Target 0: y = 1, 2, 3, 4; ŷ = 1.5, 2, 2, 5: errors .5, 0, −1, 1; Σd² = 2.25, Σ|d| = 2.5,
  // Σ(y − ȳ)² = 5, so MSE .5625, MAE .625, R² = 1 − 2.25/5 = .55.
  // Target 1: constant 2 predicted exactly: MSE 0, MAE 0, R² 1 (force_finite).
  const std::vector<float> y = {1, 2, 2, 2, 3, 2, 4, 2};
  std::vector<float> p = {1.5f, 2, 2, 2, 2, 2, 5, 2};
  const RegressionMetrics m = regression_metrics(y, p, 2);
  EXPECT_EQ(m.n_rows, 4);
  EXPECT_DOUBLE_EQ(m.mse[0], 0.5625);
  EXPECT_DOUBLE_EQ(m.mae[0], 0.625);
  EXPECT_DOUBLE_EQ(m.r2[0], 0.55);
  EXPECT_DOUBLE_EQ(m.mse[1], 0.0);
  EXPECT_DOUBLE_EQ(m.r2[1], 1.0);
  EXPECT_DOUBLE_EQ(m.mean_mse, 0.28125);
  EXPECT_DOUBLE_EQ(m.mean_mae, 0.3125);
  EXPECT_DOUBLE_EQ(m.mean_r2, 0.775);
  // RMSE per target is √MSE; its mean is the mean of the roots, (.75 + 0) / 2, not √.28125.
  EXPECT_DOUBLE_EQ(m.rmse[0], 0.75);
  EXPECT_DOUBLE_EQ(m.rmse[1], 0.0);
  EXPECT_DOUBLE_EQ(m.mean_rmse, 0.375);
  // A constant target predicted wrongly: R² 0, not −inf.
  p[1] = 3;
  const RegressionMetrics w = regression_metrics(y, p, 2);
  EXPECT_DOUBLE_EQ(w.r2[1], 0.0);
  EXPECT_DOUBLE_EQ(w.mse[1], 0.25);
  EXPECT_DOUBLE_EQ(w.mean_r2, 0.275);
}

TEST(EvalMetrics, ValueByNameAndByConfigKind) {
  EvalMetrics e;
  e.task = TaskKind::kClassification;
  e.has_loss = true;
  e.loss = 0.3;
  const std::vector<int32_t> y = {0, 1, 1, 0};
  e.classification = classification_metrics(y, scores_for({0, 1, 0, 0}, 2), 2);
  e.n_rows = 4;
  EXPECT_EQ(e.names(),
            (std::vector<std::string>{"loss", "accuracy", "precision", "recall", "f1", "roc_auc"}));
  EXPECT_DOUBLE_EQ(e.value("accuracy").value(), 0.75);
  EXPECT_DOUBLE_EQ(e.value("loss").value(), 0.3);
  const Result<double> bad = e.value("r2");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("'r2'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("accuracy"), std::string::npos);
  EXPECT_DOUBLE_EQ(e.value(MetricKind::kAccuracy).value(), 0.75);
  EXPECT_DOUBLE_EQ(e.value(MetricKind::kRocAuc).value(), e.classification.roc_auc);
  EXPECT_FALSE(e.value(MetricKind::kMae).is_ok());
}

TEST(EvalMetrics, JsonAndTextReports) {
  EvalMetrics e;
  e.task = TaskKind::kClassification;
  const std::vector<int32_t> y = {0, 0, 1, 1, 2, 2, 2, 0};
  e.classification = classification_metrics(y, scores_for({0, 1, 1, 1, 2, 0, 2, 0}, 3), 3);
  e.n_rows = 8;
  const nlohmann::ordered_json j = e.to_json({"cat", "dog", "owl"});
  EXPECT_EQ(j.begin().key(), "rows");
  EXPECT_FALSE(j.contains("loss"));
  EXPECT_TRUE(j.contains("roc_auc"));  // one-vs-rest macro with three classes
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 0.75);
  EXPECT_EQ(j["per_class"]["dog"]["support"].get<int64_t>(), 2);
  EXPECT_EQ(j["confusion"][2][0].get<int64_t>(), 1);
  const std::string text = e.to_text({"cat", "dog", "owl"});
  EXPECT_NE(text.find("accuracy  0.7500"), std::string::npos) << text;
  EXPECT_NE(text.find("owl"), std::string::npos);

  EvalMetrics r;
  r.task = TaskKind::kRegression;
  r.regression = regression_metrics(std::vector<float>{1, 2}, std::vector<float>{1, 3}, 1);
  r.n_rows = 2;
  const nlohmann::ordered_json rj = r.to_json({"price"});
  EXPECT_DOUBLE_EQ(rj["mse"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(rj["rmse"].get<double>(), std::sqrt(0.5));
  EXPECT_DOUBLE_EQ(rj["per_target"]["price"]["mae"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(rj["per_target"]["price"]["rmse"].get<double>(), std::sqrt(0.5));
  EXPECT_EQ(r.names(), (std::vector<std::string>{"mse", "rmse", "mae", "r2"}));
  const std::string rtext = r.to_text({"price"});
  EXPECT_NE(rtext.find("rmse      0.7071\n"), std::string::npos) << rtext;
  EXPECT_NE(rtext.find("target         mse        rmse         mae        r2\n"
                       "price          0.5      0.7071         0.5   -1.0000\n"),
            std::string::npos)
      << rtext;
}

// Class names longer than 8 characters are printed whole in the confusion matrix, each column
// as wide as its name.
TEST(EvalMetrics, ConfusionMatrixKeepsLongClassNames) {
  EvalMetrics e;
  e.task = TaskKind::kClassification;
  const std::vector<int32_t> y = {0, 1, 1, 2};
  e.classification = classification_metrics(y, scores_for({0, 1, 0, 2}, 3), 3);
  e.n_rows = 4;
  const std::string text = e.to_text({"cat", "hippopotamus", "owl"});
  const std::string confusion = text.substr(text.find("confusion"));
  EXPECT_EQ(confusion,
            "confusion (rows: true class, columns: predicted)\n"
            "                   cat  hippopotamus       owl\n"
            "cat                  1             0         0\n"
            "hippopotamus         1             1         0\n"
            "owl                  0             0         1\n");
}

}  // namespace
}  // namespace moe
