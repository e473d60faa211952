// training.frozen and training.trainable (freeze.h).
#include "moe/train/freeze.h"

#include <fnmatch.h>

#include <algorithm>

#include <fmt/format.h>

namespace moe {

bool param_name_matches(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

Status check_param_patterns(const ParamStore& store, const std::vector<std::string>& patterns,
                            const char* key) {
  for (const std::string& pattern : patterns) {
    bool any = false;
    for (ParamId id = 0; id < store.size() && !any; ++id)
      any = param_name_matches(pattern, store.info(id).name);
    if (!any)
      return Status::error(
          "{}: \"{}\" matches no parameter of this model (moe inspect lists "
          "them as blocks.<l>.moe.experts.<e>.w1, head.w, ...)",
          key, pattern);
  }
  return Status::ok();
}

Status apply_frozen(const TrainingConfig& training, ParamStore& store) {
  MOE_TRY(check_param_patterns(store, training.frozen, "training.frozen"));
  MOE_TRY(check_param_patterns(store, training.trainable, "training.trainable"));
  const auto any_of = [](const std::vector<std::string>& patterns, const std::string& name) {
    return std::any_of(patterns.begin(), patterns.end(),
                       [&](const std::string& p) { return param_name_matches(p, name); });
  };
  std::vector<ParamId> frozen;
  for (ParamId id = 0; id < store.size(); ++id) {
    const std::string& name = store.info(id).name;
    if (any_of(training.frozen, name) ||
        (!training.trainable.empty() && !any_of(training.trainable, name)))
      frozen.push_back(id);
  }
  if (!frozen.empty() && static_cast<int32_t>(frozen.size()) == store.size())
    return Status::error(
        "training.frozen, training.trainable: every parameter of the model would be frozen, "
        "leaving nothing to train");
  for (ParamId id : frozen) store.freeze(id);
  return Status::ok();
}

}  // namespace moe
