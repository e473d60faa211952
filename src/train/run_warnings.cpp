#include "moe/train/run_warnings.h"

#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace moe {

namespace {

std::string expert_list(const std::vector<int64_t>& experts) {
  return fmt::format("[{}]", fmt::join(experts, " "));
}

}  // namespace

std::vector<std::string> routing_warnings(const InspectReport& routing, const Config& config,
                                          const std::string& rows_name) {
  std::vector<std::string> out;
  const OptimizerConfig& opt = config.training.optimizer;
  size_t layer_index = 0;
  std::string last_layer;
  for (const LevelStats& s : routing.levels) {
    if (s.layer != last_layer) {
      if (!last_layer.empty()) ++layer_index;
      last_layer = s.layer;
    }
    if (!s.level.empty()) continue;  // a hierarchy's own levels: its combined routing speaks
    // A language or translation model's one model.moe object configures every MoE layer.
    const ModelConfig& m = config.model;
    const size_t block_index =
        (m.language_model || m.translation_model) && m.moe.size() == 1 ? 0 : layer_index;
    const MoeBlockConfig* block =
        block_index < config.model.moe.size() ? &config.model.moe[block_index] : nullptr;
    // A language model routes tokens (inspect.h): its counts are tokens.
    const bool lm = routing.input == InputKind::kTokens;
    const std::string rows =
        fmt::format("on the {} {} {}", s.n_rows, rows_name, lm ? "tokens" : "rows");
    if (!s.dead.empty()) {
      out.push_back(fmt::format(
          "{}: expert{} {} {} dead ({}): under 1/(10·E) of the slots. A larger balancing loss "
          "(model.moe.balance) or the sigmoid_bias gate spreads the load",
          s.layer, s.dead.size() == 1 ? "" : "s", expert_list(s.dead),
          s.dead.size() == 1 ? "is" : "are", rows));
    }
    if (!s.silent.empty()) {
      std::string hint;
      if (opt.kind == OptimizerKind::kAdam && opt.weight_decay > 0)
        hint = fmt::format(
            ". Adam's weight_decay ({}) is an L2 term in the gradient and decays experts with "
            "little gradient to nothing; training.optimizer = \"adamw\" decouples it",
            opt.weight_decay);
      out.push_back(fmt::format(
          "{}: {} of {} experts are silent {} ({}): routed to, but what they return is under "
          "{:g}% of the largest expert's output (docs/inspect.md){}",
          s.layer, s.silent.size(), s.n_experts, expert_list(s.silent), rows, 100 * kSilentRatio,
          hint));
    }
    if (s.entropy_from_router && s.entropy_max > 0 &&
        s.entropy_mean >= kUniformRouterShare * s.entropy_max && s.n_experts > 1) {
      std::string hint;
      if (block != nullptr && block->n_groups == 0 && block->gate.k == 1 &&
          block->gate.renormalize && !block->gate.softmax_after_topk &&
          block->gate.kind == GateKind::kTopKSoftmax)
        hint =
            ". With k = 1 and gate.renormalize = true the one weight is always 1, so the task "
            "loss sends the router no gradient (only the balancing loss trains it); "
            "model.moe.gate.renormalize = false weights the expert by its gate probability "
            "(the Switch Transformer's top-1)";
      out.push_back(fmt::format(
          "{}: the router barely chooses ({}): mean per-{} gate entropy {:.3f} of at most "
          "{:.3f} nats ({:.0f}%), so every expert receives nearly the same mixture of {}{}",
          s.layer, rows, lm ? "token" : "row", s.entropy_mean, s.entropy_max,
          100 * s.entropy_mean / s.entropy_max, lm ? "tokens" : "rows", hint));
    }
  }
  return out;
}

std::string single_class_warning(const EvalMetrics& validation,
                                 const std::vector<std::string>& names) {
  if (validation.task != TaskKind::kClassification) return "";
  const ClassificationMetrics& m = validation.classification;
  if (m.n_classes < 2 || m.confusion.size() != static_cast<size_t>(m.n_classes * m.n_classes))
    return "";
  int64_t predicted_classes = 0, true_classes = 0, only = -1;
  for (int64_t p = 0; p < m.n_classes; ++p) {
    int64_t column = 0;
    for (int64_t t = 0; t < m.n_classes; ++t) column += m.confusion_at(t, p);
    if (column > 0) {
      ++predicted_classes;
      only = p;
    }
  }
  for (int64_t t = 0; t < m.n_classes; ++t) {
    int64_t row = 0;
    for (int64_t p = 0; p < m.n_classes; ++p) row += m.confusion_at(t, p);
    if (row > 0) ++true_classes;
  }
  if (predicted_classes != 1 || true_classes < 2) return "";
  const std::string name = only < static_cast<int64_t>(names.size())
                               ? names[static_cast<size_t>(only)]
                               : std::to_string(only);
  return fmt::format(
      "the best model predicts one class (\"{}\") for every validation row although {} classes "
      "occur there: it learned the class prior only. Judge by f1 or roc_auc "
      "(training.early_stopping.metric), give training more epochs, or weigh the classes "
      "(training.class_weights = \"balanced\")",
      name, true_classes);
}

}  // namespace moe
