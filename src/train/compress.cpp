// Expert pruning and compressed checkpoints (moe/train/compress.h).
#include "moe/train/compress.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include <fmt/format.h>

#include "moe/core/index.h"
#include "moe/train/surgery.h"

namespace moe {

namespace {

// The combined level ("") of each MoE layer, in layer order.
std::vector<const LevelStats*> layer_levels(const InspectReport& report, const Model& model) {
  std::vector<const LevelStats*> out;
  for (int64_t l = 0; l < model.n_moe_layers(); ++l) {
    const std::string& name = model.moe_layer_name(l);
    const auto it =
        std::find_if(report.levels.begin(), report.levels.end(),
                     [&](const LevelStats& s) { return s.layer == name && s.level.empty(); });
    MOE_CHECK(it != report.levels.end(), "inspection has no level of layer {}", name);
    out.push_back(&*it);
  }
  return out;
}

// The experts of a layer to remove: the E − keep lowest scores, ties to the higher index,
// returned in increasing order.
std::vector<int64_t> lowest(const std::vector<double>& score, int64_t keep) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return score[sz(a)] != score[sz(b)] ? score[sz(a)] < score[sz(b)] : a > b;
  });
  const int64_t n_remove = static_cast<int64_t>(score.size()) - keep;
  std::vector<int64_t> out(order.begin(), order.begin() + std::max<int64_t>(0, n_remove));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int64_t experts_kept(int64_t n_experts, const CompressOptions& options) {
  if (options.prune_to > 0) return std::min(n_experts, options.prune_to);
  const auto removed =
      static_cast<int64_t>(std::floor(options.prune_fraction * static_cast<double>(n_experts)));
  return n_experts - removed;
}

bool prunes(const CompressOptions& options) {
  return options.prune_to > 0 || options.prune_fraction > 0.0;
}

Result<std::vector<PrunedLayer>> prune_checkpoint(Checkpoint* ck, const InspectContext& calibration,
                                                  const CompressOptions& options) {
  MOE_CHECK(options.prune_fraction >= 0.0 && options.prune_fraction < 1.0,
            "prune_fraction {} outside [0, 1)", options.prune_fraction);
  if (ck->model->n_moe_layers() == 0) return Status::error("a dense model has no experts to prune");
  InspectOptions inspect;
  inspect.batch_size = options.batch_size;
  MOE_ASSIGN_OR_RETURN(const InspectReport report, inspect_model(*ck->model, calibration, inspect));
  std::vector<PrunedLayer> layers;
  for (const LevelStats* s : layer_levels(report, *ck->model)) {
    PrunedLayer p;
    p.layer = s->layer;
    p.load = s->load;
    p.score = options.prune_by == PruneBy::kLoad ? s->load : s->reap;
    MOE_CHECK(static_cast<int64_t>(p.score.size()) == s->n_experts,
              "layer {}: {} scores for {} experts", s->layer, p.score.size(), s->n_experts);
    p.experts_before = s->n_experts;
    p.experts_after = experts_kept(s->n_experts, options);
    p.removed = lowest(p.score, p.experts_after);
    layers.push_back(std::move(p));
  }
  if (!ck->info.is_object()) ck->info = nlohmann::json::object();
  for (size_t l = 0; l < layers.size(); ++l) {
    // From the highest index down, so the indices still to remove do not move.
    const PrunedLayer& p = layers[l];
    for (auto it = p.removed.rbegin(); it != p.removed.rend(); ++it) {
      ExpertSurgery s;
      s.op = ExpertOp::kRemove;
      s.layer = static_cast<int64_t>(l);
      s.expert = *it;
      MOE_ASSIGN_OR_RETURN(ExpertChange change,
                           ExpertChange::make(*ck->model, ck->config, ck->schema.shape(), s));
      SurgeryResult& r = change.result();
      nlohmann::json entry = experts_history_entry(ck->info, s, r);
      entry["why"] = fmt::format("moe compress: {} score {:.4g}",
                                 enum_name(kPruneByNames, options.prune_by), p.score[sz(*it)]);
      ck->info["experts_history"].push_back(std::move(entry));
      ck->config = std::move(r.config);
      ck->model = std::move(r.model);
    }
  }
  return layers;
}

Status save_compressed(const Checkpoint& ck, WeightFormat format, const std::string& out) {
  return write_new_directory(out, [&](const std::string& staging) {
    return save_checkpoint(staging, *ck.model, ck.config, ck.schema, ck.info, format);
  });
}

}  // namespace moe
