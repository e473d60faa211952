// Evaluation metrics: accuracy, precision, recall, F1, ROC AUC and the confusion matrix for
// classification; MSE, RMSE, MAE and R² for regression. The definitions are scikit-learn's (1.2),
// so a number printed here can be checked against sklearn.metrics on the same predictions.
//
// Dims: N rows · C classes · Y regression targets.
//
// Classification, with ŷ_i = argmax_c p_{i,c} (the lowest class on a tie), per class c:
//   tp_c = #{y = c, ŷ = c}, precision_c = tp_c / #{ŷ = c}, recall_c = tp_c / #{y = c},
//   F1_c = 2 tp_c / (#{y = c} + #{ŷ = c})   (the harmonic mean of precision and recall)
// A ratio whose denominator is 0 is 0 (sklearn's zero_division default). Macro averages are the
// unweighted means over the classes that occur in the labels or the predictions (sklearn's
// default label set), so a class absent from both does not drag the mean down.
//
// ROC AUC (binary tasks, C = 2, the score of a row being p_{i,1}): the Mann–Whitney form
//   AUC = (R₊ − n₊(n₊ + 1)/2) / (n₊ n₋),
// R₊ the sum of the positive rows' ranks among all scores (ascending, from 1), tied scores sharing
// the mean of their ranks. This is exactly the area under the ROC curve with ties drawn as
// diagonal segments, sklearn's roc_auc_score. Undefined (NaN, has_roc_auc false) when either
// class is missing from the labels.
//
// ROC AUC with more than two classes: one-vs-rest, macro-averaged. For each class c, AUC_c is the
// binary AUC above of the labels 1[y = c] against the scores p_{i,c}; the reported value is the
// unweighted mean of AUC_c over the classes whose AUC_c is defined (those with rows both of c and
// of other classes), NaN when there is none. With every class present in the labels this is
// sklearn's roc_auc_score(y, p, multi_class="ovr", average="macro"), which refuses labels that
// miss a class. With two classes the one-vs-rest mean equals the binary AUC (p_{i,0} = 1 − p_{i,1}
// orders the rows in reverse), so one definition covers both.
//
// Regression, per target j over N rows, ȳ_j the mean of the true values:
//   MSE_j = Σ (ŷ − y)² / N,  RMSE_j = √MSE_j,  MAE_j = Σ |ŷ − y| / N,
//   R²_j = 1 − Σ (ŷ − y)² / Σ (y − ȳ_j)²,  and when Σ (y − ȳ_j)² = 0: 1 for a perfect fit, else 0
//   (sklearn's force_finite). The "mean" values are the unweighted means over targets; for RMSE
//   that is the mean of the per-target roots, not the root of the mean MSE (sklearn's
//   root_mean_squared_error with multioutput="uniform_average").
//
// Everything is summed in double, in row order: the same inputs give the same bits.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "moe/core/status.h"
#include "moe/data/dataset.h"
#include "moe/train/config.h"

namespace moe {

struct ClassificationMetrics {
  int64_t n_rows = 0;
  int64_t n_classes = 0;  // C
  double accuracy = 0.0;
  std::vector<double> precision;  // [C]
  std::vector<double> recall;     // [C]
  std::vector<double> f1;         // [C]
  std::vector<int64_t> support;   // [C] rows whose true class is c
  double macro_precision = 0.0;
  double macro_recall = 0.0;
  double macro_f1 = 0.0;
  std::vector<int64_t> confusion;  // [C, C] row = true class, column = predicted class
  bool has_roc_auc = false;
  double roc_auc = 0.0;  // NaN unless has_roc_auc

  int64_t confusion_at(int64_t truth, int64_t predicted) const {
    return confusion[static_cast<size_t>(truth * n_classes + predicted)];
  }
};

struct RegressionMetrics {
  int64_t n_rows = 0;
  int64_t n_targets = 0;     // Y
  std::vector<double> mse;   // [Y]
  std::vector<double> rmse;  // [Y] √mse
  std::vector<double> mae;   // [Y]
  std::vector<double> r2;    // [Y]
  double mean_mse = 0.0;
  double mean_rmse = 0.0;  // the mean of rmse, not √mean_mse
  double mean_mae = 0.0;
  double mean_r2 = 0.0;
};

// The row-wise argmax of scores [N, C] (the lowest index on a tie): predicted classes [N].
std::vector<int32_t> argmax_rows(std::span<const float> scores, int64_t n_classes);

// labels [N] in [0, C); scores [N, C], probabilities or logits (only their order matters).
// Labels outside [0, C) or a size mismatch are programmer errors (MOE_CHECK).
ClassificationMetrics classification_metrics(std::span<const int32_t> labels,
                                             std::span<const float> scores, int64_t n_classes);

// ROC AUC of binary labels (0/1) against scores [N]; NaN if either class is absent.
double roc_auc(std::span<const int32_t> labels, std::span<const float> scores);

// targets and predictions [N, Y], in the same (raw, not standardised) units.
RegressionMetrics regression_metrics(std::span<const float> targets,
                                     std::span<const float> predictions, int64_t n_targets);

// A language model's next-token metrics over N tokens of text of `n_bytes` UTF-8 bytes:
//   loss = mean −ln p(token), perplexity = e^loss, bits per byte = N · loss / (n_bytes · ln 2)
// (comparable across vocabularies: the text's bytes do not depend on the tokenizer), accuracy
// the share of tokens that are the model's most probable next token.
struct LanguageMetrics {
  int64_t n_tokens = 0;
  int64_t n_bytes = 0;  // the bytes of the text the windows cover (Dataset::window_bytes)
  double perplexity = 0.0;
  double bits_per_byte = 0.0;
  double accuracy = 0.0;
};

// The metrics of one evaluation, with the mean loss when it was computed.
struct EvalMetrics {
  TaskKind task = TaskKind::kClassification;
  int64_t n_rows = 0;
  bool has_loss = false;
  double loss = 0.0;
  ClassificationMetrics classification;  // when task is kClassification
  RegressionMetrics regression;          // when task is kRegression
  bool language_model = false;           // token data: `language` instead of `classification`
  LanguageMetrics language;

  // The scalar metric `name` names: "loss"; a language model's "perplexity", "bits_per_byte",
  // "accuracy", "tokens"; "accuracy", "precision", "recall", "f1" (the macro
  // averages), "roc_auc" (binary, or
  // one-vs-rest macro with more classes); "mse", "rmse", "mae", "r2" (means over targets). An
  // error names the metric and lists what this task offers.
  Result<double> value(std::string_view name) const;
  // The metric a training config names (MetricKind::kRocAuc is "roc_auc" here).
  Result<double> value(MetricKind kind) const;
  // The scalar metrics this task offers, in the order above.
  std::vector<std::string> names() const;

  // Keys in report order: {"rows", "loss"?, then the scalars, then "per_class" {name: {precision,
  // recall, f1, support}} and "confusion" [[...]] for classification, or "per_target" {name: {mse,
  // rmse, mae, r2}} for regression}. `names` label the classes or targets (indices when empty).
  nlohmann::ordered_json to_json(const std::vector<std::string>& names = {}) const;
  // A human-readable report: the scalars, a per-class or per-target table and, for
  // classification with at most 20 classes, the confusion matrix (each column as wide as the
  // longer of its class name and its largest count, at least 8: names are never cut).
  std::string to_text(const std::vector<std::string>& names = {}) const;
};

}  // namespace moe
