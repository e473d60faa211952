// The training loop `moe train` runs: epochs over the data, an optimizer and learning-rate
// schedule from the config, validation, early stopping, checkpoints and logs.
//
// Dims: T rows in a batch · C classes or regression targets · E experts of a MoE layer.
//
// One step (optimizer step s, from 0):
//   logits = model.forward(batch, training, Rng(seed, kStepStream).fork(s))        [T, C]
//   loss   = task loss (cross-entropy with label smoothing and class weights, or MSE / Huber
//            on the standardised targets) + Σ MoE layers' weighted auxiliary losses
//   backward; ‖g‖ = global gradient norm, clipped to training.clip_norm when set;
//   optimizer step with lr = schedule(s); the gates' after_step.
// Balanced class weights are sklearn's: w_c = N / (C · n_c) over the training labels (a class
// with no training rows gets weight 0).
//
// A loss or gradient norm that is NaN or Inf stops training at once with a message naming the
// epoch, the step and what went non-finite (the first parameter whose gradient holds a NaN or
// Inf, when that is where it shows); the parameters are not updated with it, and the checkpoints
// already written are left as they were.
//
// After each epoch: validation metrics (when there is validation data), a line on the progress
// stream and in <out>/metrics.jsonl, <out>/best/ when the chosen metric improved (without
// validation data the training loss is the metric), then <out>/last/ rewritten; with
// output.checkpoint.every = n > 0 also every n optimizer steps inside an epoch. With patience
// P > 0 training stops after P epochs without improvement. At the end the best parameters are
// put back into the model and evaluated on the test data, when there is any.
//
// Files in <out>: config.json (the resolved config, written first), metrics.jsonl, best/ (a model
// checkpoint, checkpoint.h), last/ (a training checkpoint: the model checkpoint plus the training
// state, train_state.h; with output.checkpoint.keep_last = n > 1 the previous ones rotate into
// last.1 … last.<n−1>), summary.json (the TrainResult). Every checkpoint directory is written
// under a staging name (.last.staging, .best.staging) and swapped in whole (commit_directory), so
// a run killed at any instant leaves best/ and last/ each complete and loadable; old ones are
// deleted and rotated crash-safely (remove_directory, rotate_directories).
//
// One run per directory: run() (and resume()) hold <out>/.lock (run_lock.h) while they write it,
// so a second run into the same directory is refused with the first one's pid. A fresh run
// refuses a directory that already holds a run (last/, best/ or summary.json): it must be
// resumed, or replaced with TrainOptions::overwrite, which deletes that run's files first.
//
// Resume (resume()): the model, gate states, optimizer moments, position (epoch, batch inside
// it, optimizer step), best so far, early-stopping counter and the partial epoch's sums come
// from a training checkpoint; every random stream is a function of the seed and the position, so
// with the same seed and thread count a resumed run is bit-identical to one never interrupted.
// The training data must be the same: last/model.json's info records the fingerprint of the
// encoded data (data_fingerprint), and data whose content changed is refused.
// Only training.epochs, training.early_stopping.patience, training.threads, training.max_minutes,
// training.init, training.init_exclude, output.checkpoint.every, output.checkpoint.keep_last and
// output.dir may differ from the
// checkpoint's config (and training.epochs not under a cosine schedule, whose horizon it sets).

#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"
#include "moe/dist/communicator.h"
#include "moe/model/model.h"
#include "moe/train/adapt.h"
#include "moe/train/config.h"
#include "moe/train/data_source.h"
#include "moe/train/metrics.h"
#include "moe/train/progress.h"
#include "moe/train/threads.h"
#include "moe/train/train_state.h"

namespace moe {

inline constexpr uint64_t kStepStream = 0x5354;   // "ST": the per-step noise stream
inline constexpr uint64_t kAdaptStream = 0x4144;  // "AD": adaptive training's splits, per epoch

struct TrainOptions {
  std::FILE* log = stdout;  // progress and epoch lines; null for silence
  bool terminal = false;    // draw a progress bar in place (see progress.h)
  bool write_files = true;  // config.json, metrics.jsonl, checkpoints, summary.json
  // A fresh run into a directory holding another run deletes that run's files (checkpoints,
  // metrics, summary, inspect.json, report) instead of refusing (moe train --overwrite).
  bool overwrite = false;
  // Data parallelism (docs/distributed.md): the job's ranks, each training its part of every
  // batch; gradients, losses and routing counts are summed over them, so every rank takes the
  // same step. Null: one process. Only rank 0 should write files and log.
  Communicator* comm = nullptr;
};

// Whether a run whose checkpoint was written with config `run` may continue under `now`: every
// key but those listed in trainer.h's resume note must be equal. The message names the first key
// that differs, both values, and the keys that may change.
Status check_resume_config(const Config& run, const Config& now);

struct TrainResult {
  int64_t epochs = 0;  // epochs run
  int64_t steps = 0;   // optimizer steps taken
  bool stopped_early = false;
  std::string budget;      // "max_steps" or "max_minutes" when a budget ended training, else empty
  int64_t best_epoch = 0;  // 0 when no epoch finished
  std::string metric;      // the metric "best" is judged by, and on which data
  double best_value = 0.0;
  bool has_validation = false;
  EvalMetrics validation;  // the best epoch's
  bool has_test = false;
  EvalMetrics test;  // the best model's, when there is test data
  double seconds = 0.0;
  double rows_per_second = 0.0;  // training rows over training time (validation excluded)
  int64_t n_params = 0;
  int64_t n_active_params = 0;
  int64_t n_trainable_params = 0;  // not frozen (training.frozen, training.trainable)
  int threads = 1;                 // OpenMP threads the run used (threads.h), on every rank
  int ranks = 1;                   // the data-parallel job's ranks (TrainOptions::comm)
  std::string ranks_via;           // "MPI, 2 ranks", "2 threads", or empty for one process
  // Seconds rank 0 spent in the training steps' collectives (the gradient's all-reduce, the
  // losses' and loads' sums, the expert-parallel exchanges), waiting for slower ranks included;
  // part of `train_seconds`.
  double collective_seconds = 0.0;
  double train_seconds = 0.0;  // in training steps (validation and checkpoints excluded)
  std::string threads_reason;  // "training.threads", or how auto chose
  // What the run warns about at its end (run_warnings.h): unused experts, a router that does
  // not choose, a classifier predicting one class.
  std::vector<std::string> warnings;

  nlohmann::ordered_json to_json(const DataSchema& schema) const;
};

class Trainer {
 public:
  // Builds and initialises the model for the data's shape; fails on a config the data cannot
  // satisfy (a metric the task lacks, a model that does not fit).
  static Result<std::unique_ptr<Trainer>> create(const Config& config, const LoadedData& data,
                                                 const TrainOptions& options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs every epoch (or until early stopping or a non-finite loss) and the final test
  // evaluation. Files go to config.output.dir.
  Result<TrainResult> run();

  // Continues from the training checkpoint in `dir` (normally <out>/last) instead of the freshly
  // initialised state; call before run(). Refuses, with a message naming the file or config key,
  // a checkpoint that fails validation, a config that differs from the checkpoint's in a key
  // resume may not change, or data whose schema or batch count differs. After a failure the
  // Trainer must not be run.
  Status resume(const std::string& dir);

  Model& model() { return *model_; }

 private:
  struct State;
  struct Run;
  struct EpochSums;
  Trainer(const Config& config, const LoadedData& data, const TrainOptions& options);
  // run() in its pieces (trainer.cpp), in the order they run.
  Result<std::unique_ptr<Run>> begin_run(const ThreadChoice& threads);
  Result<MetricsLog> open_run_files(const std::filesystem::path& out);
  Status start_position(Run& r);
  Status run_epoch(Run& r, int64_t epoch);
  Status train_epoch(Run& r, int64_t epoch, EpochSums* sums);
  Result<bool> judge_epoch(Run& r, int64_t epoch, EpochRecord* record, EvalMetrics* validation);
  Status save_best(const Run& r, int64_t epoch, const EpochRecord& record);
  Status save_last(Run& r, int64_t info_epoch, const TrainState& position);
  // Whether training.max_steps or training.max_minutes is used up (`epoch_seconds`: the current
  // epoch's training time so far); records which in the result.
  // In a job of several ranks, rank 0's clock decides (the answer is the same on every rank).
  bool budget_spent(Run& r, double epoch_seconds);
  // The epoch's routing tallies summed over the ranks (each rank then holds the job's sums).
  Status sum_tallies(EpochSums* sums);
  Status check_same_job();
  // model.moe.expert_parallel: the MoE layers place their experts on the job's ranks.
  void set_expert_parallel();
  Status stop_non_finite(const Run& r, const char* what, double value, int64_t epoch,
                         int64_t step) const;
  void report_epoch(const Run& r, const EpochRecord& record, const EvalMetrics& validation,
                    bool improved) const;
  Status finish_run(Run& r);
  // Adaptive training (train/adapt.h): before epoch `epoch` trains, the changes decided after
  // the one before, each made by change_experts (`after_epoch` names when it was decided) and
  // listed in *changes (the epoch's record's expert_changes).
  Status make_pending_changes(Run& r, int64_t epoch, nlohmann::ordered_json* changes);
  Status change_experts(Run& r, int64_t after_epoch, const AdaptStep& step,
                        nlohmann::ordered_json* changes);
  // On resume: a checkpoint whose adapting layers changed their experts gives the model its
  // expert counts (the model and optimizer are rebuilt for them).
  Status adopt_adapted_model(const Config& then);

  Config config_;  // model.moe changes when adaptive training changes the experts
  const LoadedData& data_;
  TrainOptions options_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<State> state_;
  std::unique_ptr<Communicator> solo_;  // when options.comm is null
  Communicator* comm_ = nullptr;        // never null
};

}  // namespace moe
