// Evaluation metrics (see metrics.h for the definitions).
//
// Dims: N rows · C classes · Y regression targets.
#include "moe/train/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "moe/core/check.h"

namespace moe {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ratio(int64_t num, int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

// A class or target name for reports: the given name, else its index.
std::string label_name(const std::vector<std::string>& names, size_t i) {
  return i < names.size() ? names[i] : std::to_string(i);
}

constexpr const char* kClassificationMetrics[] = {"loss",   "accuracy", "precision",
                                                  "recall", "f1",       "roc_auc"};
constexpr const char* kRegressionMetrics[] = {"loss", "mse", "rmse", "mae", "r2"};

// Four decimals, or six significant digits for large values (an MSE in squared dollars).
std::string format_metric(double v) {
  return std::fabs(v) < 1e6 ? fmt::format("{:.4f}", v) : fmt::format("{:.6g}", v);
}

}  // namespace

std::vector<int32_t> argmax_rows(std::span<const float> scores, int64_t n_classes) {
  MOE_CHECK(n_classes > 0 && scores.size() % static_cast<size_t>(n_classes) == 0,
            "{} scores are not rows of {} classes", scores.size(), n_classes);
  const size_t c = static_cast<size_t>(n_classes);
  const size_t n = scores.size() / c;
  std::vector<int32_t> out(n);  // [N]
  for (size_t i = 0; i < n; ++i) {
    const float* row = scores.data() + i * c;  // [C]
    size_t best = 0;
    for (size_t j = 1; j < c; ++j)
      if (row[j] > row[best]) best = j;
    out[i] = static_cast<int32_t>(best);
  }
  return out;
}

double roc_auc(std::span<const int32_t> labels, std::span<const float> scores) {
  MOE_CHECK(labels.size() == scores.size(), "{} labels, {} scores", labels.size(), scores.size());
  const size_t n = labels.size();
  std::vector<size_t> order(n);  // [N] rows by ascending score
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Ranks from 1; a run of equal scores at positions [i, j) shares the mean rank (i + 1 + j) / 2.
  double positive_rank_sum = 0.0;
  int64_t n_pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double mean_rank = 0.5 * static_cast<double>(i + 1 + j);
    for (size_t r = i; r < j; ++r) {
      MOE_CHECK(labels[order[r]] == 0 || labels[order[r]] == 1, "binary label {}",
                labels[order[r]]);
      if (labels[order[r]] == 1) {
        positive_rank_sum += mean_rank;
        ++n_pos;
      }
    }
    i = j;
  }
  const int64_t n_neg = static_cast<int64_t>(n) - n_pos;
  if (n_pos == 0 || n_neg == 0) return kNaN;
  const double np = static_cast<double>(n_pos);
  return (positive_rank_sum - np * (np + 1.0) / 2.0) / (np * static_cast<double>(n_neg));
}

ClassificationMetrics classification_metrics(std::span<const int32_t> labels,
                                             std::span<const float> scores, int64_t n_classes) {
  MOE_CHECK(n_classes > 0, "{} classes", n_classes);
  MOE_CHECK(scores.size() == labels.size() * static_cast<size_t>(n_classes),
            "{} scores for {} labels of {} classes", scores.size(), labels.size(), n_classes);
  const size_t c = static_cast<size_t>(n_classes);
  ClassificationMetrics m;
  m.n_rows = static_cast<int64_t>(labels.size());
  m.n_classes = n_classes;
  m.confusion.assign(c * c, 0);
  const std::vector<int32_t> predicted = argmax_rows(scores, n_classes);  // [N]
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    MOE_CHECK(labels[i] >= 0 && labels[i] < n_classes, "label {} of row {} outside [0, {})",
              labels[i], i, n_classes);
    ++m.confusion[static_cast<size_t>(labels[i]) * c + static_cast<size_t>(predicted[i])];
    correct += labels[i] == predicted[i];
  }
  m.accuracy = ratio(correct, m.n_rows);

  m.precision.assign(c, 0.0);
  m.recall.assign(c, 0.0);
  m.f1.assign(c, 0.0);
  m.support.assign(c, 0);
  int64_t n_present = 0;
  for (size_t k = 0; k < c; ++k) {
    int64_t predicted_k = 0;
    for (size_t t = 0; t < c; ++t) {
      m.support[k] += m.confusion[k * c + t];
      predicted_k += m.confusion[t * c + k];
    }
    const int64_t tp = m.confusion[k * c + k];
    m.precision[k] = ratio(tp, predicted_k);
    m.recall[k] = ratio(tp, m.support[k]);
    m.f1[k] = ratio(2 * tp, m.support[k] + predicted_k);
    if (m.support[k] + predicted_k > 0) {
      ++n_present;
      m.macro_precision += m.precision[k];
      m.macro_recall += m.recall[k];
      m.macro_f1 += m.f1[k];
    }
  }
  if (n_present > 0) {
    m.macro_precision /= static_cast<double>(n_present);
    m.macro_recall /= static_cast<double>(n_present);
    m.macro_f1 /= static_cast<double>(n_present);
  }

  m.roc_auc = kNaN;
  if (n_classes == 2) {
    std::vector<float> positive(labels.size());  // [N] p_{i,1}
    for (size_t i = 0; i < labels.size(); ++i) positive[i] = scores[2 * i + 1];
    m.roc_auc = roc_auc(labels, positive);
  } else {
    // One-vs-rest macro average over the classes with both positive and negative rows.
    std::vector<int32_t> is_k(labels.size());   // [N] 1[y_i = k]
    std::vector<float> score_k(labels.size());  // [N] p_{i,k}
    double sum = 0.0;
    int64_t n_defined = 0;
    for (size_t k = 0; k < c; ++k) {
      for (size_t i = 0; i < labels.size(); ++i) {
        is_k[i] = labels[i] == static_cast<int32_t>(k) ? 1 : 0;
        score_k[i] = scores[i * c + k];
      }
      const double auc_k = roc_auc(is_k, score_k);
      if (std::isnan(auc_k)) continue;
      sum += auc_k;
      ++n_defined;
    }
    if (n_defined > 0) m.roc_auc = sum / static_cast<double>(n_defined);
  }
  m.has_roc_auc = !std::isnan(m.roc_auc);
  return m;
}

RegressionMetrics regression_metrics(std::span<const float> targets,
                                     std::span<const float> predictions, int64_t n_targets) {
  MOE_CHECK(n_targets > 0 && targets.size() == predictions.size() &&
                targets.size() % static_cast<size_t>(n_targets) == 0,
            "{} targets, {} predictions, {} per row", targets.size(), predictions.size(),
            n_targets);
  const size_t y = static_cast<size_t>(n_targets);
  const size_t n = targets.size() / y;
  RegressionMetrics m;
  m.n_rows = static_cast<int64_t>(n);
  m.n_targets = n_targets;
  m.mse.assign(y, 0.0);
  m.rmse.assign(y, 0.0);
  m.mae.assign(y, 0.0);
  m.r2.assign(y, 0.0);
  if (n == 0) return m;
  for (size_t j = 0; j < y; ++j) {
    double mean = 0.0;
    for (size_t i = 0; i < n; ++i) mean += targets[i * y + j];
    mean /= static_cast<double>(n);
    double sq = 0.0, abs = 0.0, total = 0.0;
    for (size_t i = 0; i < n; ++i) {
      const double truth = targets[i * y + j];
      const double d = static_cast<double>(predictions[i * y + j]) - truth;
      sq += d * d;
      abs += std::fabs(d);
      total += (truth - mean) * (truth - mean);
    }
    m.mse[j] = sq / static_cast<double>(n);
    m.rmse[j] = std::sqrt(m.mse[j]);
    m.mae[j] = abs / static_cast<double>(n);
    m.r2[j] = total > 0.0 ? 1.0 - sq / total : (sq == 0.0 ? 1.0 : 0.0);
    m.mean_mse += m.mse[j];
    m.mean_rmse += m.rmse[j];
    m.mean_mae += m.mae[j];
    m.mean_r2 += m.r2[j];
  }
  m.mean_mse /= static_cast<double>(y);
  m.mean_rmse /= static_cast<double>(y);
  m.mean_mae /= static_cast<double>(y);
  m.mean_r2 /= static_cast<double>(y);
  return m;
}

std::vector<std::string> EvalMetrics::names() const {
  std::vector<std::string> out;
  if (language_model) {
    if (has_loss) out = {"loss", "perplexity", "bits_per_byte", "accuracy"};
    out.emplace_back("tokens");
    return out;
  }
  if (task == TaskKind::kClassification) {
    for (std::string_view m : kClassificationMetrics) {
      if (m == "loss" && !has_loss) continue;
      out.emplace_back(m);
    }
  } else {
    for (std::string_view m : kRegressionMetrics) {
      if (m == "loss" && !has_loss) continue;
      out.emplace_back(m);
    }
  }
  return out;
}

Result<double> EvalMetrics::value(std::string_view name) const {
  if (name == "loss" && has_loss) return loss;
  if (language_model) {
    const LanguageMetrics& l = language;
    if (name == "tokens") return static_cast<double>(l.n_tokens);
    if (has_loss && name == "perplexity") return l.perplexity;
    if (has_loss && name == "bits_per_byte") return l.bits_per_byte;
    if (has_loss && name == "accuracy") return l.accuracy;
    return Status::error("metric '{}' is not available for a language model (available: {})", name,
                         fmt::join(names(), ", "));
  }
  if (task == TaskKind::kClassification) {
    const ClassificationMetrics& c = classification;
    if (name == "accuracy") return c.accuracy;
    if (name == "precision") return c.macro_precision;
    if (name == "recall") return c.macro_recall;
    if (name == "f1") return c.macro_f1;
    if (name == "roc_auc") return c.roc_auc;
  } else {
    const RegressionMetrics& r = regression;
    if (name == "mse") return r.mean_mse;
    if (name == "rmse") return r.mean_rmse;
    if (name == "mae") return r.mean_mae;
    if (name == "r2") return r.mean_r2;
  }
  return Status::error("metric '{}' is not available for this {} task (available: {})", name,
                       task_kind_name(task), fmt::join(names(), ", "));
}

Result<double> EvalMetrics::value(MetricKind kind) const {
  return value(kind == MetricKind::kRocAuc ? std::string_view("roc_auc")
                                           : std::string_view(metric_kind_name(kind)));
}

nlohmann::ordered_json EvalMetrics::to_json(const std::vector<std::string>& labels) const {
  nlohmann::ordered_json j;
  j["rows"] = n_rows;
  for (const std::string& name : names()) j[name] = value(name).value();
  if (language_model) {
    j["tokens"] = language.n_tokens;
    j["bytes"] = language.n_bytes;
  } else if (task == TaskKind::kClassification) {
    const ClassificationMetrics& c = classification;
    nlohmann::ordered_json per_class = nlohmann::ordered_json::object();
    for (size_t k = 0; k < static_cast<size_t>(c.n_classes); ++k) {
      per_class[label_name(labels, k)] = {{"precision", c.precision[k]},
                                          {"recall", c.recall[k]},
                                          {"f1", c.f1[k]},
                                          {"support", c.support[k]}};
    }
    j["per_class"] = per_class;
    nlohmann::ordered_json confusion = nlohmann::ordered_json::array();
    for (int64_t t = 0; t < c.n_classes; ++t) {
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (int64_t p = 0; p < c.n_classes; ++p) row.push_back(c.confusion_at(t, p));
      confusion.push_back(row);
    }
    j["confusion"] = confusion;
  } else {
    const RegressionMetrics& r = regression;
    nlohmann::ordered_json per_target = nlohmann::ordered_json::object();
    for (size_t t = 0; t < static_cast<size_t>(r.n_targets); ++t) {
      per_target[label_name(labels, t)] = {
          {"mse", r.mse[t]}, {"rmse", r.rmse[t]}, {"mae", r.mae[t]}, {"r2", r.r2[t]}};
    }
    j["per_target"] = per_target;
  }
  return j;
}

std::string EvalMetrics::to_text(const std::vector<std::string>& labels) const {
  std::string out = fmt::format("rows      {}\n", n_rows);
  for (const std::string& name : names())
    out += name == "tokens" ? fmt::format("{:<9} {}\n", name, language.n_tokens)
                            : fmt::format("{:<9} {}\n", name, format_metric(value(name).value()));
  if (language_model) return out;
  if (task == TaskKind::kClassification) {
    const ClassificationMetrics& c = classification;
    size_t width = 5;
    for (size_t k = 0; k < static_cast<size_t>(c.n_classes); ++k)
      width = std::max(width, label_name(labels, k).size());
    out += fmt::format("\n{:<{}}  precision  recall     f1  support\n", "class", width);
    for (size_t k = 0; k < static_cast<size_t>(c.n_classes); ++k) {
      out += fmt::format("{:<{}}  {:9.4f}  {:6.4f}  {:.4f}  {:7}\n", label_name(labels, k), width,
                         c.precision[k], c.recall[k], c.f1[k], c.support[k]);
    }
    if (c.n_classes <= 20) {
      // Column p is as wide as its name or its largest count, at least 8.
      std::vector<size_t> column(static_cast<size_t>(c.n_classes), 8);
      for (int64_t p = 0; p < c.n_classes; ++p) {
        size_t& w = column[static_cast<size_t>(p)];
        w = std::max(w, label_name(labels, static_cast<size_t>(p)).size());
        for (int64_t t = 0; t < c.n_classes; ++t)
          w = std::max(w, fmt::format("{}", c.confusion_at(t, p)).size());
      }
      out += fmt::format("\nconfusion (rows: true class, columns: predicted)\n{:<{}}", "", width);
      for (size_t p = 0; p < static_cast<size_t>(c.n_classes); ++p)
        out += fmt::format("  {:>{}}", label_name(labels, p), column[p]);
      out += "\n";
      for (int64_t t = 0; t < c.n_classes; ++t) {
        out += fmt::format("{:<{}}", label_name(labels, static_cast<size_t>(t)), width);
        for (int64_t p = 0; p < c.n_classes; ++p)
          out += fmt::format("  {:>{}}", c.confusion_at(t, p), column[static_cast<size_t>(p)]);
        out += "\n";
      }
    }
  } else {
    const RegressionMetrics& r = regression;
    size_t width = 6;
    for (size_t t = 0; t < static_cast<size_t>(r.n_targets); ++t)
      width = std::max(width, label_name(labels, t).size());
    out += fmt::format("\n{:<{}}  {:>10}  {:>10}  {:>10}  {:>8}\n", "target", width, "mse", "rmse",
                       "mae", "r2");
    for (size_t t = 0; t < static_cast<size_t>(r.n_targets); ++t) {
      out += fmt::format("{:<{}}  {:10.4g}  {:10.4g}  {:10.4g}  {:8.4f}\n", label_name(labels, t),
                         width, r.mse[t], r.rmse[t], r.mae[t], r.r2[t]);
    }
  }
  return out;
}

}  // namespace moe
