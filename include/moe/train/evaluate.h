// Running a trained model over a data set: metrics (moe eval, validation during training),
// predictions with each row's routing (moe predict), and which words each expert receives
// (moe inspect, the demo).
//
// Dims: N rows · C classes or regression targets · E experts of a layer · S kept slots of a layer
// over all rows · V text id range.
//
// Evaluation runs the model in inference mode (no dropout, no gate noise), in data set order, in
// batches. Classification outputs are softmax probabilities; regression outputs are in the
// targets' own units (standardisation undone), and so are the regression metrics. The loss is
// the task loss alone (cross-entropy without smoothing or class weights, or the training
// regression loss on the standardised scale), the mean over rows.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "moe/core/status.h"
#include "moe/data/dataset.h"
#include "moe/model/model.h"
#include "moe/train/config.h"
#include "moe/train/metrics.h"

namespace moe {

// Where one MoE layer sent every row: row i's kept slots are [offsets[i], offsets[i+1]), in the
// order its gate ranked them (dropped slots are left out).
struct LayerRouting {
  std::string layer;             // "blocks.1.moe"
  int64_t n_experts = 0;         // E
  std::vector<int64_t> offsets;  // [N+1]
  std::vector<int32_t> experts;  // [S]
  std::vector<float> weights;    // [S]
};

struct Predictions {
  int64_t n_rows = 0;
  int64_t n_outputs = 0;              // C
  std::vector<float> outputs;         // [N, C] probabilities, or regression outputs (raw units)
  std::vector<int32_t> predicted;     // [N] argmax class (classification)
  std::vector<LayerRouting> routing;  // one per MoE layer, when asked for
};

struct EvalOptions {
  int64_t batch_size = 256;
  bool keep_routing = false;  // fill Predictions::routing
  // The regression loss the loss value uses (training's choice).
  RegressionLoss regression_loss = RegressionLoss::kMse;
  double huber_delta = 1.0;
  // Called after each batch's forward, while the model's last-forward state (its routing plans,
  // and the router probabilities in the evaluation's arena) is valid: inspection reads it here.
  std::function<void(const Model&, const Batch&)> after_batch;
};

// Runs the model over every row of `data`; fills `predictions` when not null. Metrics need
// labels: without them (data.has_labels false) the result has n_rows set and nothing else.
// The data must match the model's shape (the data layer encodes it with the model's schema);
// a mismatch is an error, not a crash.
Result<EvalMetrics> evaluate(Model& model, const Dataset& data, const LabelSpec& labels,
                             const EvalOptions& options, Predictions* predictions = nullptr);

// Words that characterise the rows an expert receives, for text models.
struct ExpertWord {
  std::string word;
  int64_t count = 0;  // rows routed to the expert that contain the word
  double lift = 0.0;  // (count / rows of the expert) / (rows containing the word / N)
};

struct ExpertProfile {
  int64_t expert = 0;
  int64_t rows = 0;               // rows with a kept slot on this expert
  double share = 0.0;             // of all kept slots of the layer
  std::vector<ExpertWord> words;  // best first
};

// For each expert of `routing`: the words (vocabulary ids below `words.size()`; bigram buckets
// are skipped) whose share among the expert's rows most exceeds their share among all rows,
// counting only words in at least `min_count` of the expert's rows; the `top` best by lift, ties
// by count then bytewise. `data` is the data set the routing was computed on; with `words`
// empty (dense data) only each expert's rows and share are filled in.
std::vector<ExpertProfile> characteristic_words(const Dataset& data, const LayerRouting& routing,
                                                const std::vector<std::string>& words, int64_t top,
                                                int64_t min_count);

// The same lift for a routing that saw only some rows (a group gate of a hierarchy): `rows` are
// the data rows it saw (the baseline frequencies come from them), `expert_rows[e]` the rows
// expert e received, each once. Returns the `top` words of each expert, ordered as above.
std::vector<std::vector<ExpertWord>> characteristic_words(
    const Dataset& data, std::span<const int64_t> rows,
    const std::vector<std::vector<int64_t>>& expert_rows, const std::vector<std::string>& words,
    int64_t top, int64_t min_count);

}  // namespace moe
