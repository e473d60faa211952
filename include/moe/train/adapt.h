// Adaptive experts during a run (model.moe.adapt, model_config.h): after each epoch, the trainer
// shows each adapting layer's expert loads (each expert's share of the layer's kept slots) to an
// ExpertAdapter, which counts for every expert the epochs in a row it has been overloaded
// (share > split_above / E) or dead (share < remove_below / E), and names the changes due:
//
//   split   the most loaded of the experts overloaded for `epochs` epochs, while E < max_experts
//           (with adapt.noise as the split's perturbation, so the copies can part ways);
//   remove  else the least loaded of those dead for `epochs` epochs, while E > min_experts and
//           the gate's k still fits.
//
// At most one change per layer and epoch. A change decided after epoch e is pending until the
// start of epoch e + 1, when the trainer makes it with train/surgery.h's ExpertChange (the
// optimizer state follows its experts) and calls changed(): a run's last epoch never changes
// the model it ends with, and a run stopped in between resumes with the change still to make.
// The counts and the pending changes are part of the training state, so a resumed run decides
// and changes as the uninterrupted one would.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"
#include "moe/model/model.h"
#include "moe/train/progress.h"
#include "moe/train/surgery.h"

namespace moe {

struct AdaptStep {
  ExpertSurgery surgery;  // op, layer index, expert, noise (the caller sets the seed)
  std::string layer;      // "blocks.1.moe"
  std::string why;        // "held 41% of the slots (2.0 × the mean is 25%) for 2 epochs"
};

class ExpertAdapter {
 public:
  // The adapting layers of `model` (model.moe.adapt.enabled), every count 0.
  explicit ExpertAdapter(const Model& model);
  bool empty() const { return counts_.empty(); }

  // The counts as the training state keeps them, and back (checked against `model`'s layers and
  // expert counts; the message names what does not fit).
  nlohmann::json to_json() const;
  Status from_json(const nlohmann::json& j, const Model& model);

  // One epoch's loads (EpochRecord::expert_load) of `model`: the counts move on and the changes
  // now due become pending.
  void observe(const Model& model, const std::vector<ExpertLoad>& loads);
  // The pending changes, handed over (none pending afterwards).
  std::vector<AdaptStep> take_pending();
  // After the trainer made `step`: the counts follow the experts (a split's two copies and a new
  // expert start from 0; a removed expert's go).
  void changed(const AdaptStep& step);

 private:
  struct Counts {
    std::vector<int64_t> over, dead;  // [E]
  };
  std::map<std::string, Counts> counts_;  // by layer name
  std::vector<AdaptStep> pending_;
};

}  // namespace moe
