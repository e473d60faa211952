// Routing inspection: how every MoE layer (and every level of a hierarchical gate) routes a data
// set, and what each expert receives. The engine behind `moe inspect` and <run>/inspect.json;
// every field is documented in docs/inspect.md.
//
// Dims: N rows of the data set · R rows a level saw (N, or the rows sent to a group) · E experts
// of a level · S slots of a level over its R rows (dropped ones included) · C classes · Y
// regression targets · D_in dense input width · P = H·W pixels of an image · W token windows of
// a language model's data, L their length (the context) · B position buckets.
//
// A language model routes tokens, not rows: its routed "rows" are the W·L input tokens of the
// windows, token row w·L + p the window w's position p (the token ids[w·L + p] of the stream).
// Every statistic below then counts tokens; its own (LevelStats' language-model part) are
// characteristic tokens by lift, load by position in the window, and routing persistence.
//
// A level is one gate's routing: a flat layer has one (level ""), a hierarchical layer has the
// combined routing over all E experts (level ""), the top gate's over groups ("top") and each
// group gate's over its experts ("group.<g>"). Statistics are pure functions of a LevelRouting
// and the data (inspect_level), so they can be checked on hand-made routings; inspect_model
// runs a model over the data, records the routing of every level and computes them all.
//
// Definitions (p_r the router's distribution for row r, normalised to sum 1; kept slots are the
// slots capacity did not drop):
//   load_e          kept slots on e / all kept slots
//   importance_e    Σ of e's kept slot weights / R (Shazeer et al. 2017, "importance")
//   cv              population standard deviation / mean over the E experts
//   entropy_mean    mean_r H(p_r); entropy_of_mean: H(mean_r p_r); nats, at most ln E
//   dropped_rate    dropped slots / all slots
//   dead            experts with load_e < 1/(10E)
//   output_ratio_e  mean over e's kept slots s of ‖w_s · E_e(x_t)‖ / ‖x_t‖, x_t the layer input
//                   of the slot's row (rows with x_t = 0 left out): how much the expert adds to
//                   the rows it receives (the combined level "" of a layer only)
//   reap_e          mean over e's kept slots s of ‖w_s · E_e(x_t)‖: the router-weighted expert
//                   activation norm of REAP (Lasby et al. 2025), the saliency `moe compress`
//                   prunes by (the combined level "" of a layer only)
//   silent          experts with load_e ≥ 1/(10E) (not dead) and output_ratio_e below
//                   kSilentRatio times the largest: routed to, adding nothing
//   collapsed       see kCollapseShare below
//   coactivation    [i][j]: share of rows with a kept slot on both i and j ([i][i]: on i)
//   class_expert    counts[c][e]: rows of class c with a kept slot on e; shares: each class row
//                   of counts divided by its sum
//   mutual info     I(label; expert) of the joint p(c, e) = Σ_{rows of class c} (kept slots
//                   of the row on e) / (kept slots of the row) / R', R' the rows with a kept slot;
//                   its maximum is min(H(label), H(expert)) of the same joint
//   token lift      language models: (tokens of id v on e / tokens on e) / (tokens of id v /
//                   R), each token counted once per expert it keeps
//   position load   [B, E]: the kept slots of the tokens at positions in bucket b on e / all
//                   the bucket's kept slots
//   switch rate     of the pairs of neighbouring tokens in a window (positions p−1, p) both
//                   routed, the share whose first-ranked kept experts differ; against
//                   1 − Σ_e q_e², the rate if tokens drew their first expert independently from
//                   q, the shares of first-ranked experts
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"
#include "moe/data/dataset.h"
#include "moe/model/model.h"
#include "moe/train/data_source.h"
#include "moe/train/evaluate.h"
#include "moe/train/progress.h"

namespace moe {

// A level is flagged collapsed when one expert takes at least kCollapseShare of the routed
// mass, or when the effective number of experts exp(H(share)) is below the mean kept slots per
// row plus kCollapseSlack (a top-2 layer that sends everything to the same two experts has
// collapsed as surely as a top-1 layer on one). The shares are the load, or the importance for
// a gate that keeps every expert for every row (dense softmax), whose load is uniform by
// construction (then the reference is one slot).
inline constexpr double kCollapseShare = 0.9;
inline constexpr double kCollapseSlack = 0.5;
// An expert whose weights have decayed to near zero still receives rows and still shows a load;
// only the size of what it returns reveals it.
inline constexpr double kSilentRatio = 0.01;

// One level's routing of the rows it saw, and its router's probabilities summed over them.
struct LevelRouting {
  std::string layer;             // "blocks.1.moe"
  std::string level;             // "" (flat, or a hierarchy's combined routing), "top", "group.<g>"
  std::string gate;              // gate kind name, "topk_softmax"
  int64_t n_experts = 0;         // E
  int64_t k = 0;                 // slots per row the gate gives (0: variable, expert choice)
  std::vector<int64_t> rows;     // [R] data row of each routed row, increasing
  std::vector<int64_t> offsets;  // [R+1] row r owns slots [offsets[r], offsets[r+1])
  std::vector<int32_t> experts;  // [S]
  std::vector<float> weights;    // [S]
  std::vector<uint8_t> dropped;  // [S] 1: dropped by capacity
  // [S] ‖w·E(x)‖ / ‖x‖ per slot (negative: dropped, or x = 0); empty when not recorded.
  std::vector<float> output_ratio;
  // [S] ‖w·E(x)‖ per slot (negative: dropped); empty when not recorded.
  std::vector<float> output_norm;
  // From the router (false: hash routing, a hierarchy's combined level, or a hand-made routing:
  // entropies then come from each row's kept weights, normalised).
  bool has_probs = false;
  double entropy_sum = 0.0;      // Σ_r H(p_r)
  std::vector<double> prob_sum;  // [E] Σ_r p_r

  int64_t n_rows() const { return static_cast<int64_t>(rows.size()); }
  // Appends one routed row; `probs` [E] (may be null) is the router's row, any positive scale.
  void add_row(int64_t row, const int32_t* row_experts, const float* row_weights,
               const uint8_t* row_dropped, int64_t n_slots, const float* probs);
};

enum class InputKind { kDense, kText, kImage, kTokens, kPairs };
// "dense", "text", "image", "tokens", "pairs"
const char* input_kind_name(InputKind k);

// What the statistics read about the data beyond the routing.
struct InspectContext {
  const Dataset* data = nullptr;
  std::string path;  // shown in the report
  InputKind input = InputKind::kDense;
  LabelSpec labels;                           // task, class names or target columns
  std::vector<std::string> words;             // text: vocabulary (id order); tokens: pieces
  std::vector<std::string> feature_names;     // tabular: one per encoded feature
  int64_t image_height = 0, image_width = 0;  // images
  int64_t context = 0;                        // tokens: L, the positions of a window
  // pairs: the decoder's input tokens of every pair (bos, then its target), pair after pair:
  // the tokens a decoder layer routes. An encoder layer routes the sources (data->ids).
  std::vector<int32_t> decoder_tokens;

  // From a checkpoint's (or a run's) schema and a data set it encoded.
  static InspectContext from_schema(const DataSchema& schema, const Dataset& data,
                                    const std::string& path);
};

struct InspectOptions {
  int64_t batch_size = 256;
  int64_t top_tokens = 10;       // per expert, text models
  int64_t min_count = 5;         // rows of an expert a token must occur in
  int64_t top_features = 8;      // per expert, tabular models
  int64_t position_buckets = 8;  // language models: buckets of window positions (at most L)
  bool keep_trace = false;       // keep each layer's kept slots per row (InspectReport::trace)
};

struct FeatureDelta {
  std::string feature;
  double delta = 0.0;  // (mean over the expert's rows − mean over all rows) / std over all rows
};

struct LevelStats {
  std::string layer, level, gate;
  int64_t n_experts = 0;  // E
  int64_t k = 0;
  int64_t n_rows = 0;              // R
  std::vector<double> load;        // [E]
  std::vector<double> importance;  // [E]
  double cv_load = 0.0, cv_importance = 0.0, max_over_mean_load = 0.0;
  double entropy_mean = 0.0, entropy_of_mean = 0.0, entropy_max = 0.0;
  bool entropy_from_router = false;  // false: from the kept weights
  double dropped_rate = 0.0;
  std::vector<int64_t> dead;
  std::vector<double> output_ratio;  // [E] (empty: not recorded for this level)
  std::vector<double> reap;          // [E] (empty: not recorded for this level)
  std::vector<int64_t> silent;
  bool collapsed = false;
  std::vector<double> coactivation;  // [E, E]
  // Classification (empty without labels).
  std::vector<int64_t> class_counts;  // [C, E]
  std::vector<double> class_shares;   // [C, E]
  double mutual_information = 0.0, mutual_information_max = 0.0;
  // Regression (empty without targets), in the targets' units.
  std::vector<double> target_mean;                  // [E, Y]
  std::vector<double> target_std;                   // [E, Y]
  std::vector<std::vector<ExpertWord>> tokens;      // [E][≤ top] text
  std::vector<std::vector<FeatureDelta>> features;  // [E][≤ top] tabular, largest |delta| first
  std::vector<float> mean_images;                   // [E, P] images
  // Language models (tokens holds the characteristic tokens, pieces as words).
  std::vector<int64_t> position_starts;  // [B] first position of each bucket, from 0
  std::vector<int64_t> position_tokens;  // [B] tokens of the level at those positions
  std::vector<double> position_load;     // [B, E] each bucket's kept slots by expert, rows sum 1
  int64_t switch_pairs = 0;              // neighbouring pairs in a window, both routed
  double switch_rate = 0.0;              // share of them whose first-ranked experts differ
  double switch_rate_independent = 0.0;  // 1 − Σ_e q_e²
};

struct InspectReport {  // NOLINT(bugprone-exception-escape): its members' moves do not throw
  std::string path;
  int64_t n_rows = 0;
  InputKind input = InputKind::kDense;
  LabelSpec labels;
  bool has_labels = false;
  int64_t image_height = 0, image_width = 0;
  int64_t context = 0;              // language models: L (n_rows windows of L tokens)
  nlohmann::ordered_json metrics;   // EvalMetrics::to_json over the rows (null without labels)
  std::vector<LevelStats> levels;   // layer order, then level order
  std::vector<LayerRouting> trace;  // options.keep_trace: one per MoE layer (combined routing)
};

// Adds the rows of `probs` [T, E] (any positive scale per row; each is normalised to sum 1) to
// Σ_t H(p_t) and Σ_t p_t.
void add_gate_entropy(Tensor probs, double* entropy_sum, std::vector<double>* prob_sum);

// Gate entropy of every MoE layer over an epoch's training steps (metrics.jsonl): the flat
// gate's router probabilities, or a hierarchy's top gate's (hash routing has none: no entry).
class GateEntropyTally {
 public:
  explicit GateEntropyTally(const Model& model);
  void add(const Model& model);  // after a training forward
  std::vector<GateEntropy> result(const Model& model) const;
  // The running sums, for a training checkpoint inside an epoch: {"rows", "entropy_sum",
  // "prob_sum"}; from_json restores them, false when `j` does not fit this model's layers.
  nlohmann::json to_json() const;
  bool from_json(const nlohmann::json& j);

 private:
  std::vector<int64_t> rows_;                  // [L]
  std::vector<double> entropy_sum_;            // [L]
  std::vector<std::vector<double>> prob_sum_;  // [L][E]
};

// Every statistic of one level (see the definitions above).
LevelStats inspect_level(const LevelRouting& routing, const InspectContext& context,
                         const InspectOptions& options);

// Runs the model over context.data in evaluation mode, records every level of every MoE layer
// and computes their statistics. A dense model (no MoE layer) is an error.
Result<InspectReport> inspect_model(Model& model, const InspectContext& context,
                                    const InspectOptions& options);

// The "moe.inspect" JSON document (docs/inspect.md) and a plain-text summary for a terminal.
nlohmann::ordered_json inspect_to_json(const InspectReport& report);
std::string inspect_to_text(const InspectReport& report);

// What a training run inspects at its end (the best model): inspect_model with default options
// over the validation rows, or the training rows when there are none. A dense model (no MoE
// layer) is an error, as for inspect_model.
Result<InspectReport> inspect_run(Model& model, const LoadedData& data);

// <out>/inspect.json: the report as JSON, written atomically.
Status write_inspect_json(const std::string& path, const InspectReport& report);

// Writes report.trace per row: the experts each layer kept for it and their weights, as CSV
// (path not ending in .jsonl) or JSON lines (.jsonl).
Status write_trace(const InspectReport& report, const Dataset& data, const std::string& path);

}  // namespace moe
