// What `moe train` warns about when a run ends: an MoE that does not use its experts, and a
// classifier that learned only the class prior. Each warning says what was seen, on which rows,
// and, where the cause is known, what to change. The messages go to stderr (`moe: warning: ...`)
// and into summary.json's "warnings".
#pragma once

#include <string>
#include <vector>

#include "moe/train/config.h"
#include "moe/train/inspect.h"
#include "moe/train/metrics.h"

namespace moe {

// A router whose mean per-row entropy is at least this share of ln E barely chooses: every
// expert sees nearly the same mixture of rows.
inline constexpr double kUniformRouterShare = 0.95;

// From the combined routing ("" level) of every MoE layer of `routing` (the best model on the
// validation rows, <out>/inspect.json): dead experts, silent experts, a uniform router.
// `config` supplies the hints (the layer's gate, the optimizer); `rows_name` says which rows
// were routed ("validation").
std::vector<std::string> routing_warnings(const InspectReport& routing, const Config& config,
                                          const std::string& rows_name);

// A classifier whose every validation row is predicted as one class (with more than one class
// among the rows), or an empty string.
std::string single_class_warning(const EvalMetrics& validation,
                                 const std::vector<std::string>& class_names);

}  // namespace moe
