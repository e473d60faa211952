// Which parameters a run trains: training.frozen and training.trainable, name patterns over the
// model's parameters ("blocks.0.moe.experts.*", "head.*").
//
// A pattern is a shell glob (* any run of characters, ? one character, [...] a set; '.' and '/'
// have no special meaning) matched against the whole name. frozen freezes every parameter a
// pattern of it matches; trainable, when not empty, freezes every parameter none of its patterns
// matches. Both may be given. Each pattern must match at least one parameter, and at least one
// parameter must stay trainable; otherwise the error names the key and the pattern.
#pragma once

#include <string>
#include <vector>

#include "moe/core/params.h"
#include "moe/core/status.h"
#include "moe/train/config.h"

namespace moe {

bool param_name_matches(const std::string& pattern, const std::string& name);

// Checks that every pattern of `patterns` (the config key `key`) matches a parameter of `store`.
Status check_param_patterns(const ParamStore& store, const std::vector<std::string>& patterns,
                            const char* key);

// Freezes (ParamStore::freeze) what training.frozen and training.trainable say; call before the
// optimizer is made over the store.
Status apply_frozen(const TrainingConfig& training, ParamStore& store);

}  // namespace moe
