// Compression of a trained checkpoint (`moe compress`): experts pruned by a saliency measured on
// calibration data, and the weights stored in fewer bits (WeightFormat, moe/train/checkpoint.h).
//
// Pruning scores every expert of every MoE layer on the calibration rows with inspect_model
// (moe/train/inspect.h) and removes the lowest-scoring ones with expert surgery's remove
// (moe/train/surgery.h): the router's rows go with them, and the gate renormalises over the
// experts left, as if the removed ones' logits were −∞. Two scores:
//   reap   the router-weighted expert activation norm of REAP (Lasby et al. 2025, "REAP the
//          Experts"): the mean over an expert's kept slots of ‖w · E(x)‖. An expert that is
//          seldom chosen but decisive when it is keeps a high score.
//   load   the share of kept slots the expert receives (frequency pruning).
// Ties go to the higher index. Each layer keeps `prune_to` experts, or loses
// floor(prune_fraction · E); never fewer than its gate's k, nor a hierarchical or hash-routed
// layer (surgery refuses them, and so does compress, naming the layer).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/enum_names.h"
#include "moe/core/status.h"
#include "moe/train/checkpoint.h"
#include "moe/train/inspect.h"

namespace moe {

enum class PruneBy { kReap, kLoad };
inline constexpr EnumName<PruneBy> kPruneByNames[] = {{"reap", PruneBy::kReap},
                                                      {"load", PruneBy::kLoad}};

struct CompressOptions {
  int64_t prune_to = 0;         // experts each MoE layer keeps (0: prune_fraction decides)
  double prune_fraction = 0.0;  // in [0, 1): share of each layer's experts removed
  PruneBy prune_by = PruneBy::kReap;
  int64_t batch_size = 256;  // rows per forward pass when scoring
};

// One MoE layer's scores and what pruning removed from it.
struct PrunedLayer {
  std::string layer;             // "blocks.1.moe"
  std::vector<double> score;     // [E] on the calibration rows
  std::vector<double> load;      // [E] share of kept slots
  std::vector<int64_t> removed;  // experts removed (indices before pruning), increasing
  int64_t experts_before = 0, experts_after = 0;
};

// How many experts a layer of `n_experts` keeps under `options` (n_experts when nothing is
// pruned).
int64_t experts_kept(int64_t n_experts, const CompressOptions& options);

// True when `options` asks for any expert to go.
bool prunes(const CompressOptions& options);

// Prunes the model of `ck` in place (its model, config and info: the removals are appended to
// info.experts_history), scored on `calibration` (a data set ck->schema encoded). Returns every
// MoE layer's scores and removals.
Result<std::vector<PrunedLayer>> prune_checkpoint(Checkpoint* ck, const InspectContext& calibration,
                                                  const CompressOptions& options);

// Writes `ck` as a checkpoint in `out`, which must not exist: written under out + ".staging" and
// renamed into place whole, its weights stored as `format` says.
Status save_compressed(const Checkpoint& ck, WeightFormat format, const std::string& out);

}  // namespace moe
