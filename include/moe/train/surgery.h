// Expert surgery: one MoE layer of a trained checkpoint changed without training it again
// (`moe experts DIR add|split|remove|freeze`).
//
// Dims: E experts of the layer before, E' after · D model width.
//
//   split s    expert s becomes two copies, s and a new last expert E, with its router row (and
//              noise row, router bias, selection bias) copied. Where the gate's weights are a
//              softmax over every expert (dense_softmax, expert_choice) both copies' router bias
//              is lowered by ln 2, so the pair's probabilities sum to the one's: for dense_softmax
//              the output is unchanged (expert choice's capacity follows E, so not for it). Under
//              every other gate the copies keep the logit: with k = 1 (and hard or evaluated
//              gumbel_softmax) a token that chose s now chooses s, ties going to the lower index,
//              and with its weight renormalised (or σ for sigmoid_bias) the output is unchanged;
//              top-1 weighed by the unrenormalised probability p gets p / (1 + p) instead. With
//              k ≥ 2 a token that chose s takes both copies and gives up its k-th choice, which
//              changes the output until training separates the copies.
//              `noise` > 0 adds ±δ to the two copies' weights (δ ~ N(0, noise² · the tensor's mean
//              square)), so they can diverge in training; the pair's mean stays the original.
//   add [c]    a new last expert E: a copy of expert c, or freshly initialised; its router row is
//              c's (fresh: the mean of the rows) and its router bias `gap` below (c's, or the
//              mean), so its logit is at least `gap` below some expert's for every input: its
//              weight is at most e^-gap of that expert's (the output is unchanged to float
//              precision at the default gap of 20). Under sigmoid_bias its selection bias starts
//              1 below the lowest, so no token chooses it until the aux-loss-free balancing raises
//              it (bias_update_rate per step). Under the other gates it gets traffic only as
//              training raises its logit, which under top-k gates, where an unchosen expert has no
//              gradient, does not happen: split is the way to grow those.
//   remove r   expert r's parameters and router entries go, later experts move down one index.
//              The output equals the old model's with r's logit at −∞: the gate renormalises over
//              the rest (the next choice takes r's place under top-k).
//   freeze e   the config's training.frozen gains "<layer>.experts.<e>.*", and its optimizer state
//              is dropped: a resumed run leaves the expert as it is.
//
// Split and add turn the layer's gate.router_bias on when it was off (the bias starts at 0, so
// nothing else changes). Every other parameter, the optimizer state of every surviving parameter
// (a new expert's is a copy of its source's, a fresh one's zero) and the gates' states move with
// their expert. A training state's best model, of the old structure, is not carried: the run's
// best restarts with its next epoch (and early stopping counts from the change). A hierarchical
// layer, hash routing (its expert is the token id modulo E) and a checkpoint saved in the middle of
// an epoch are refused, as is removing a layer's last expert or going below the gate's k, and,
// on a layer that adapts, going beyond its adapt.max_experts or below its adapt.min_experts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe/core/enum_names.h"
#include "moe/core/status.h"
#include "moe/optim/optimizer.h"
#include "moe/train/checkpoint.h"

namespace moe {

enum class ExpertOp { kSplit, kAdd, kRemove, kFreeze };

inline constexpr EnumName<ExpertOp> kExpertOpNames[] = {{"split", ExpertOp::kSplit},
                                                        {"add", ExpertOp::kAdd},
                                                        {"remove", ExpertOp::kRemove},
                                                        {"freeze", ExpertOp::kFreeze}};

struct ExpertSurgery {
  ExpertOp op = ExpertOp::kSplit;
  int64_t layer = -1;   // which MoE layer (Model::moe_layer order); -1: the model's only one
  int64_t expert = -1;  // split, remove, freeze: the expert; add: the one to copy (-1: fresh)
  float noise = 0.0f;   // split: the relative size of the symmetric perturbation (≥ 0)
  float gap = 20.0f;    // add: how far below its source's logit the new one starts (≥ 0)
  uint64_t seed = 1;    // a fresh expert's initialisation and split's perturbation
};

// The changed model and what was done, for one checkpoint directory.
struct SurgeryResult {
  Config config;
  std::unique_ptr<Model> model;  // weights and gate states moved, ready to save
  std::string layer;             // "blocks.2.moe"
  int64_t experts_before = 0, experts_after = 0;
  std::vector<std::string> notes;  // one sentence each: what changed, what the output keeps
};

// Where a changed layer's experts come from: new expert j is old expert src[j] (-1: fresh), and
// its router bias moves by shift[j] after the copy.
struct ExpertMap {
  std::string prefix;        // "blocks.2.moe"
  std::vector<int64_t> src;  // [E']
  std::vector<float> shift;  // [E']
};

// One change made in memory: the changed model, and what moves the rest along (what the command
// does to a checkpoint, and adaptive training between two epochs).
class ExpertChange {
 public:
  // `s` applied to `model`, which `config` describes (for data of `shape`): result() holds the
  // changed config and model (frozen parameters marked), with weights and gate states moved.
  static Result<ExpertChange> make(const Model& model, const Config& config, const DataShape& shape,
                                   const ExpertSurgery& s);
  SurgeryResult& result() { return result_; }
  const SurgeryResult& result() const { return result_; }
  // `from`'s state (an optimizer over `from_store`, the old model's) into `to`, an optimizer
  // over the changed model's store: a surviving parameter's state follows it, a copy's is its
  // source's, a fresh one's is zero.
  void move_optimizer_state(const ParamStore& from_store, const Optimizer& from,
                            Optimizer& to) const;
  // An arena of the old model's layout (the best parameters, say) in the changed model's, moved
  // as the weights were (router bias shifts and the split's perturbation included).
  std::vector<float> move_values(const ParamStore& from_store,
                                 const std::vector<float>& values) const;
  std::vector<GateState> move_gates(std::vector<GateState> gates) const;

 private:
  ExpertChange() = default;
  SurgeryResult result_;
  ExpertMap map_;
  ExpertSurgery request_;
  std::vector<float> fresh_;  // [P'] a fresh expert's values (the changed model's initialisation)
};

// What the change was, as the checkpoint's info records it ("experts_history", oldest first): op,
// layer, expert, experts before and after, and the epoch of `info` when it has one.
nlohmann::json experts_history_entry(const nlohmann::json& info, const ExpertSurgery& s,
                                     const SurgeryResult& r);

// Applies `s` to the checkpoint in `dir` and writes the result to `out` (created; must not
// exist): the model, and the training state moved along when `dir` has one.
Result<SurgeryResult> operate_on_checkpoint(const std::string& dir, const ExpertSurgery& s,
                                            const std::string& out);

// The same on a whole run directory (config.json, last/, best/, metrics.jsonl): `out` becomes a
// run that `moe train --resume out` continues from the changed last/.
Result<SurgeryResult> operate_on_run(const std::string& dir, const ExpertSurgery& s,
                                     const std::string& out);

}  // namespace moe
