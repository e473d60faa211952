// The training state: what a checkpoint directory needs beyond the model to continue a run
// exactly (`moe train --resume`).
//
// Dims: P = the ParamStore's arena length (every parameter, padding included).
//
//   <dir>/train_state.safetensors   the optimizer's state per parameter ("adam.m.<param>",
//                                   "adam.v.<param>", or "sgd.momentum.<param>") and, once an
//                                   epoch has been judged best, the best parameters
//                                   ("best.<param>"), every tensor F32 in the parameter's shape
//   <dir>/train_state.json          position (epochs done, batches done in the next epoch,
//                                   optimizer step), the seed every random stream derives from,
//                                   the schedule, the best metric and epoch, the early-stopping
//                                   counter, the best epoch's gate states, the partial epoch's
//                                   sums, adaptive training's counts (when a layer adapts), and
//                                   the hashes binding both files to model.json
//
// It sits beside model.safetensors + model.json (checkpoint.h) in the same directory, which the
// trainer writes under a staging name and swaps in whole. Loading checks it as strictly as a model
// checkpoint: JSON fields typed, both hashes, every tensor the optimizer and model declare
// present with its exact shape, F32, finite, and nothing else. Every failure is one message
// naming the file and the field or tensor. Layout and fields: docs/formats.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"
#include "moe/model/model.h"
#include "moe/optim/optimizer.h"
#include "moe/train/config.h"

namespace moe {

inline constexpr int64_t kTrainStateFormatVersion = 1;
inline constexpr const char* kTrainStateTensorsFile = "train_state.safetensors";
inline constexpr const char* kTrainStateJsonFile = "train_state.json";

struct TrainState {
  // Position. Every random stream derives from `seed`: the shuffle of epoch e (from 0) is
  // Rng(seed).fork(e), the noise of optimizer step s is Rng(seed, kStepStream).fork(s); so the
  // position below is all the random state there is.
  int64_t epochs_done = 0;        // complete epochs
  int64_t batches_done = 0;       // batches of epoch epochs_done + 1 already taken
  int64_t batches_per_epoch = 0;  // the run's, to refuse a data set of another size
  int64_t step = 0;               // optimizer steps taken: the schedule's next position
  uint64_t seed = 0;
  std::string optimizer;             // optimizer_kind_name of the run's optimizer
  std::string schedule;              // schedule_kind_name
  int64_t schedule_total_steps = 0;  // the horizon the schedule was built for

  // Best so far and early stopping.
  std::string metric;      // what "best" is judged by: "accuracy (validation)", "loss (training)"
  int64_t best_epoch = 0;  // 0: no epoch judged yet (then best_values is empty)
  double best_value = 0.0;
  int64_t since_best = 0;  // epochs without improvement (the early-stopping counter)
  bool stopped_early = false;
  std::vector<float> best_values;  // [P] the best epoch's parameters (arena layout)
  std::vector<GateState> best_gates;

  // The epoch in progress (batches_done > 0): the trainer's running sums for its epoch record,
  // an object the trainer writes and checks itself.
  nlohmann::json epoch_sums = nlohmann::json::object();
  // Adaptive training's per-expert epoch counts (train/adapt.h), an object the trainer writes and
  // checks itself; empty when no layer adapts (the file then has no "adapt").
  nlohmann::json adapt = nlohmann::json::object();
  // Training time and rows so far (rows/s of the whole run).
  double train_seconds = 0.0;
  int64_t train_rows = 0;
};

// Writes train_state.safetensors then train_state.json into `dir`, which must already hold the
// model checkpoint of the same moment (its model.json's weights hash is recorded).
Status save_train_state(const std::string& dir, const TrainState& state, const Model& model,
                        const Optimizer& optimizer);

// Reads and validates the training state in `dir` against `model` (built from the checkpoint's
// config; its weights are not touched) and fills `optimizer`'s state tensors and step count.
// `weights_fnv1a64` is the hash the directory's model.json records (Checkpoint::weights_fnv1a64)
// and `run` the training section of its config: the schedule recorded must be the one it gives.
Result<TrainState> load_train_state(const std::string& dir, const Model& model,
                                    const std::string& weights_fnv1a64, Optimizer& optimizer,
                                    const TrainingConfig& run);

}  // namespace moe
