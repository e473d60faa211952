// The training report: one self-contained HTML file per run (inline SVG charts from svg.h, inline
// CSS, no scripts, no network) that shows how the model trained and how it routes.
//
// Dims: N epochs, E experts, K experts per row, C classes.
//
// Sections: a plain-language verdict computed from the numbers; training curves (loss, metrics,
// auxiliary losses, expert load and gate entropy per epoch, from metrics.jsonl); routing of the
// best model per MoE layer (final load, co-activation, class x expert shares, characteristic
// tokens / features / mean images, from inspect.json); the run's summary and config. A part whose
// input file is missing is replaced by a note saying which file would fill it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "moe/core/status.h"
#include "moe/report/run_data.h"

namespace moe::report {

// How evenly a layer spreads its slots over the experts.
enum class Balance { kBalanced, kImbalanced, kCollapsed };

// Thresholds behind the verdict (shown in the report's notes too).
// Balanced: coefficient of variation of the load at most kBalancedCv and no dead expert.
inline constexpr double kBalancedCv = 0.3;
// Collapsed (when inspect.json carries no flag of its own): the effective number of experts,
// exp(entropy of the load shares), is at most kCollapseFactor x K: all rows go to about K
// experts, the fewest top-K routing can use.
inline constexpr double kCollapseFactor = 1.25;
// Specialisation: mutual information between expert and label as a share of its maximum.
inline constexpr double kStrongSpecialisation = 0.5;
inline constexpr double kWeakSpecialisation = 0.2;
// Gate confidence: mean per-row gate entropy as a share of ln E. At or above kUndecidedGate the
// router's distribution is close to uniform; at or below kConfidentGate rows mostly pick one.
inline constexpr double kUndecidedGate = 0.95;
inline constexpr double kConfidentGate = 0.5;

struct LoadAssessment {
  Balance balance = Balance::kBalanced;
  double cv = 0.0;                 // std / mean of the load shares
  double max_over_mean = 0.0;      // busiest expert's load over the mean load
  double effective_experts = 0.0;  // exp(H(load)), between 1 and E
  std::vector<int64_t> dead;       // experts with load < 1 / (10 E)
};

// Assesses load shares [E] of a top-K layer (K <= 0 is read as 1). `collapsed`, when given, is
// the inspector's own collapse flag and takes precedence over the entropy rule.
LoadAssessment assess_load(const std::vector<double>& load, int64_t k,
                           std::optional<bool> collapsed = std::nullopt);

const char* balance_name(Balance balance);  // "balanced", "imbalanced", "collapsed"

// The worst balance over the run's MoE layers (inspect.json, else the last epoch's load in
// metrics.jsonl); nullopt when there is no routing to judge.
std::optional<Balance> routing_balance(const RunData& run);

// The verdict paragraph as plain text (the HTML escapes it).
std::string verdict_text(const RunData& run);

// The whole report as one HTML document.
std::string render_report_html(const RunData& run);

// Loads `run_dir` (load_run) and writes the report to `out_path` atomically.
Status write_report(const std::string& run_dir, const std::string& out_path);

}  // namespace moe::report
