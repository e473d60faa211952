// Parts of the routing inspection shared between its files (see moe/train/inspect.h).
//
// Dims: R rows (tokens) a level saw · E experts of a level · W windows · L window length.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moe/train/inspect.h"

namespace moe::inspect_detail {

// The rows a level's routing may name: N for rows, W·L for a language model's token windows,
// for sentence pairs the larger of the source tokens and the decoder's input tokens.
int64_t routed_row_count(const Dataset& data);

// A translation model's layer routes decoder tokens when its name says it is in the decoder.
bool decoder_layer(const std::string& layer);

// Translation models: the characteristic source tokens of each expert of an encoder layer, or
// target tokens of a decoder layer.
void pair_token_statistics(const LevelRouting& routing,
                           const std::vector<std::vector<int64_t>>& expert_rows,
                           const InspectContext& context, const InspectOptions& options,
                           LevelStats* stats);

// Language models: the characteristic tokens of each expert, the load by position in the window
// and the switch rate of neighbouring tokens (inspect.h). `expert_rows[e]` are the token rows
// with a kept slot on e, each once.
void token_statistics(const LevelRouting& routing,
                      const std::vector<std::vector<int64_t>>& expert_rows,
                      const InspectContext& context, const InspectOptions& options,
                      LevelStats* stats);

}  // namespace moe::inspect_detail
