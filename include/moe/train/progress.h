// Training progress for people and for programs: a progress bar (or plain lines) on a stream,
// and metrics.jsonl, one JSON object per epoch.
//
// Dims: E experts of a MoE layer.
//
// On a terminal the bar is one line redrawn in place ('\r', then the line cleared to its end) at
// most every `min_redraw_seconds` (0.1 s: about ten times a second, so drawing never costs the
// training loop anything measurable):
//   epoch 3/20  [########........]  120/250  loss 0.4132  5321 rows/s  ETA 0:04
// For token data (a language model) the speed is in tokens per second instead: each row is a
// window of S tokens, so tokens/s = rows/s · S.
// Off a terminal (a log file, a pipe, CI) nothing is redrawn: a plain line every
// `plain_interval_seconds` during a long epoch, and always one at the end of each epoch.
// The ETA covers the rest of this epoch, from its mean step time so far.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"

namespace moe {

struct ProgressOptions {
  bool terminal = false;  // draw a bar in place; see stream_is_terminal
  double min_redraw_seconds = 0.1;
  double plain_interval_seconds = 30.0;
  int bar_width = 24;
  // Token data: S, the tokens a row (window) predicts, so the speed is shown in tokens/s;
  // 0: rows/s.
  int64_t tokens_per_row = 0;
  // Seconds from any fixed origin; a steady clock by default. Tests pass a fake one.
  std::function<double()> clock;
};

// Whether `stream` is a terminal (isatty on its descriptor).
bool stream_is_terminal(std::FILE* stream);

class Progress {
 public:
  Progress(std::FILE* out, ProgressOptions options);

  // Starts an epoch (from 1) of `n_steps` steps out of `n_epochs`.
  void start_epoch(int64_t epoch, int64_t n_epochs, int64_t n_steps);
  // After step `step` (from 1) of the epoch: the epoch's mean loss so far and rows seen so far.
  // Draws when the redraw interval has passed (or on the last step), otherwise returns at once.
  void update(int64_t step, double mean_loss, int64_t rows);
  // Ends the epoch: clears the bar and prints `summary` as a line of its own.
  void end_epoch(const std::string& summary);
  // Prints a line of text (a warning, a note) without tearing the bar: the bar is cleared first
  // and redrawn on the next update.
  void note(const std::string& line);

  // Seconds since start_epoch and the epoch's rows per second so far.
  double epoch_seconds() const;
  double rows_per_second() const;

 private:
  std::string status_line() const;
  void clear_bar();
  double now() const { return options_.clock(); }

  std::FILE* out_;
  ProgressOptions options_;
  int64_t epoch_ = 0;
  int64_t n_epochs_ = 0;
  int64_t n_steps_ = 0;
  int64_t step_ = 0;
  int64_t rows_ = 0;
  double loss_ = 0.0;
  double epoch_start_ = 0.0;
  double last_draw_ = 0.0;
  bool drawn_ = false;  // a bar is on the current line
};

// Formats seconds as m:ss, or h:mm:ss from an hour on.
std::string format_duration(double seconds);

// Per-expert load of one MoE layer over an epoch: the fraction of its routed slots each expert
// received (sums to 1 when the layer routed anything).
struct ExpertLoad {
  std::string layer;          // the layer's parameter prefix, "body.moe.0"
  std::vector<double> share;  // [E]
};

// Gate entropy of one MoE layer over an epoch's training rows, in nats (moe/train/inspect.h).
struct GateEntropy {
  std::string layer;
  double mean = 0.0;     // mean over rows of H(p_row)
  double of_mean = 0.0;  // H(mean over rows of p_row)
  double max = 0.0;      // ln E
};

// One line of metrics.jsonl.
struct EpochRecord {
  // Declared without noexcept: clang-tidy's bugprone-exception-escape sees a possible throw in
  // ordered_json's noexcept default constructor (nlohmann silences it there with a NOLINT), and
  // the implicit constructor, noexcept too, would inherit the report.
  EpochRecord() noexcept(false) = default;

  int64_t epoch = 0;        // from 1
  int64_t steps = 0;        // optimizer steps so far, over all epochs
  double train_loss = 0.0;  // the task loss, mean over the epoch's batches
  // Each auxiliary loss by name ("body.moe.0.switch", ...), mean over the batches, unweighted.
  std::vector<std::pair<std::string, double>> aux_losses;
  nlohmann::ordered_json validation;  // EvalMetrics::to_json, or null without validation data
  std::vector<ExpertLoad> expert_load;
  std::vector<GateEntropy> gate_entropy;  // written as "gate_entropy" when not empty
  double learning_rate = 0.0;             // at the epoch's last step
  double seconds = 0.0;                   // the epoch's wall time, validation included
  double rows_per_second = 0.0;           // training rows over the training part of the epoch
  // Token data: rows_per_second · S (a row is a window of S tokens), written beside it.
  std::optional<double> tokens_per_second;
  // What adaptive training changed before this epoch trained, decided on the one before
  // (model.moe.adapt): one object per change, {"layer", "op", "expert", "experts", "why"}
  // ("experts": the count after it, which expert_load has); "expert_changes" when not empty.
  nlohmann::ordered_json expert_changes = nlohmann::ordered_json::array();

  // {"epoch", "steps", "train_loss", "aux_losses" {...}, "validation" {...} | null,
  //  "expert_load" {layer: [...]}, "learning_rate", "seconds", "rows_per_second",
  //  "tokens_per_second" (token data only), "expert_changes" (when any)}
  nlohmann::ordered_json to_json() const;
};

// Appends one JSON line per epoch to a file, flushed after each line so a run that is stopped
// leaves every finished epoch readable.
class MetricsLog {
 public:
  // Creates (truncating) `path`; with `append`, keeps what it holds and writes after it (a
  // resumed run).
  static Result<MetricsLog> open(const std::string& path, bool append = false);
  Status append(const EpochRecord& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace moe
