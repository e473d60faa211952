// Which configuration changes a resumed run accepts (see trainer.h).
//
// A run continues exactly only under the configuration it started with, so every key must keep
// its value except those that say how long to train and where and how often to write: the
// epoch count (not under a cosine schedule, whose horizon is epochs × batches: the learning
// rates already followed would belong to another curve), the early-stopping patience, the
// thread count (results stay exact only with the same one), checkpoint frequency and rotation,
// the output directory, and the warm start's checkpoint (a resumed run never reads it).
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "moe/train/trainer.h"

namespace moe {

namespace {

constexpr const char* kResumableKeys[] = {"training.epochs",
                                          "training.early_stopping.patience",
                                          "training.threads",
                                          "training.max_minutes",
                                          "training.init",
                                          "training.init_exclude",
                                          "output.checkpoint.every",
                                          "output.checkpoint.keep_last",
                                          "output.dir"};

// "/training/early_stopping/patience" -> "training.early_stopping.patience" (JSON pointer
// escapes ~0 and ~1 cannot occur in configuration keys).
std::string dotted(const std::string& pointer) {
  std::string out = pointer.substr(pointer.empty() ? 0 : 1);
  for (char& c : out)
    if (c == '/') c = '.';
  return out;
}

std::string value_at(const nlohmann::json& j, const std::string& pointer) {
  const nlohmann::json::json_pointer p(pointer);
  return j.contains(p) ? j.at(p).dump() : "(absent)";
}

}  // namespace

Status check_resume_config(const Config& run, const Config& now) {
  const nlohmann::json a = config_to_json(run), b = config_to_json(now);
  for (const nlohmann::json& op : nlohmann::json::diff(a, b)) {
    const std::string pointer = op["path"].get<std::string>();
    const std::string key = dotted(pointer);
    bool resumable = false;
    for (const char* k : kResumableKeys) resumable = resumable || key == k;
    if (key == "training.epochs" && run.training.schedule == ScheduleKind::kCosine) {
      return Status::error(
          "training.epochs cannot change on resume under the cosine schedule (the run has {}, "
          "now {}): its horizon is epochs × batches, so the learning rates already used belong "
          "to the old curve; start a new run, or use a constant or step schedule",
          run.training.epochs, now.training.epochs);
    }
    if (!resumable) {
      return Status::error(
          "{} differs from the run's ({} in the checkpoint, {} now); on resume only {} may "
          "change",
          key, value_at(a, pointer), value_at(b, pointer),
          fmt::join(std::begin(kResumableKeys), std::end(kResumableKeys), ", "));
    }
  }
  return Status::ok();
}

}  // namespace moe
