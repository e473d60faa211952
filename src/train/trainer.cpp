// The training loop (see trainer.h).
//
// Dims: N training rows · T rows in a batch · C classes or regression targets · E experts of a
// MoE layer · P parameter arena length.
#include "moe/train/trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "core/json_read.h"
#include "moe/core/arena.h"
#include "moe/core/file_io.h"
#include "moe/core/rng.h"
#include "moe/io/run_lock.h"
#include "moe/layers/loss.h"
#include "moe/optim/clip.h"
#include "moe/optim/optimizer.h"
#include "moe/train/checkpoint.h"
#include "moe/train/config_budget.h"
#include "moe/train/evaluate.h"
#include "moe/train/freeze.h"
#include "moe/train/inspect.h"
#include "moe/train/progress.h"
#include "moe/train/run_warnings.h"
#include "moe/train/threads.h"
#include "moe/train/train_state.h"

namespace moe {

namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The metric the config names must exist for this task.
Status check_metric(MetricKind metric, const DataShape& shape) {
  const bool classify = shape.task == TaskKind::kClassification;
  const char* name = metric_kind_name(metric);
  if (shape.input == FeatureKind::kTokens || shape.input == FeatureKind::kPairs) {
    if (metric == MetricKind::kLoss || metric == MetricKind::kAccuracy) return Status::ok();
    return Status::error(
        "training.early_stopping.metric: '{}' is not a {} model metric "
        "(expected loss or accuracy)",
        name, shape.input == FeatureKind::kTokens ? "language" : "translation");
  }
  switch (metric) {
    case MetricKind::kLoss:
      return Status::ok();
    case MetricKind::kAccuracy:
    case MetricKind::kF1:
    case MetricKind::kRocAuc:  // binary, or one-vs-rest macro with more classes
      if (classify) return Status::ok();
      break;
    case MetricKind::kMse:
    case MetricKind::kMae:
    case MetricKind::kR2:
      if (!classify) return Status::ok();
      break;
  }
  return Status::error("training.early_stopping.metric: '{}' is not a {} metric (expected {})",
                       name, task_kind_name(shape.task),
                       classify ? "loss, accuracy, f1 or roc_auc" : "loss, mse, mae or r2");
}

// The name of the first parameter whose gradient (or value) holds a NaN or Inf, or "" (frozen
// parameters' gradients are not computed for certain, so not looked at).
std::string first_non_finite(const ParamStore& store, bool gradients) {
  for (ParamId id = 0; id < store.size(); ++id) {
    if (gradients && store.frozen(id)) continue;
    const Tensor t = gradients ? store.grad(id) : store.value(id);
    const float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(p[i])) return store.info(id).name;
  }
  return "";
}

// Σ over the rows of each class, for balanced weights w_c = N / (C · n_c).
void balanced_class_weights(const Dataset& train, int64_t n_classes, Tensor w) {
  std::vector<int64_t> count(static_cast<size_t>(n_classes), 0);
  for (int32_t y : train.labels) ++count[static_cast<size_t>(y)];
  for (int64_t c = 0; c < n_classes; ++c) {
    const int64_t k = count[static_cast<size_t>(c)];
    w.at(c) = k == 0
                  ? 0.0f
                  : static_cast<float>(static_cast<double>(train.n_rows) /
                                       (static_cast<double>(n_classes) * static_cast<double>(k)));
  }
}

// Keeps the lines of metrics.jsonl whose epoch is at most `epochs` (a resumed run rewrites the
// epochs after its checkpoint); a line that does not parse (cut by a kill) is dropped too.
Status truncate_metrics(const fs::path& path, int64_t epochs) {
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    const Result<nlohmann::json> parsed = parse_json(line, path.string());
    const nlohmann::json j = parsed.is_ok() ? parsed.value() : nlohmann::json();
    if (j.is_object() && j.contains("epoch") && j["epoch"].is_number_integer() &&
        j["epoch"].get<int64_t>() <= epochs)
      kept += line + "\n";
  }
  return write_file_atomic(path.string(), kept);
}

// Takes <out>'s lock and readies the directory for this run: what a killed run left half done
// goes (repair_run_directory), and a fresh run refuses another run's files, or with `overwrite`
// deletes them, so no old checkpoint, metrics line or summary is silently mixed with the new.
Status claim_run_directory(const fs::path& out, bool resuming, bool overwrite, RunLock* lock) {
  MOE_ASSIGN_OR_RETURN(*lock, RunLock::acquire(out.string()));
  MOE_TRY(repair_run_directory(out.string()));
  if (resuming) return Status::ok();
  std::error_code ec;
  std::vector<std::string> found;
  for (const char* name : {"last", "best", "summary.json"})
    if (fs::exists(out / name, ec)) found.push_back(name);
  if (found.empty()) return Status::ok();
  if (!overwrite)
    return Status::error(
        "{}: holds a run already ({}); resume it (moe train --resume {}), replace it "
        "(--overwrite), or choose another output directory",
        out.string(), fmt::join(found, ", "), out.string());
  std::vector<fs::path> old;
  for (const fs::directory_entry& e : fs::directory_iterator(out, ec)) {
    const std::string n = e.path().filename().string();
    if (n == "last" || n.rfind("last.", 0) == 0 || n == "best" || n == "summary.json" ||
        n == "inspect.json" || n == "report.html" || n == "metrics.jsonl" || n == "config.json")
      old.push_back(e.path());
  }
  if (ec) return Status::error("{}: cannot list the directory: {}", out.string(), ec.message());
  for (const fs::path& p : old) {
    if (fs::is_directory(fs::symlink_status(p, ec))) {
      MOE_TRY(remove_directory(p.string()));
    } else if (!fs::remove(p, ec) && ec) {
      return Status::error("{}: cannot remove: {}", p.string(), ec.message());
    }
  }
  fsync_directory(out.string());
  return Status::ok();
}

// The validation figures of an epoch line: loss and the headline metrics (precision, recall and
// RMSE are in metrics.jsonl; a language model's token count is not a metric of the epoch).
std::string metric_summary(const EvalMetrics& m) {
  std::string s;
  for (const std::string& name : m.names()) {
    if (name == "precision" || name == "recall" || name == "rmse" || name == "tokens") continue;
    const double v = m.value(name).value();
    s += fmt::format(" {} {:.4f}", name == "roc_auc" ? "auc" : name, v);
  }
  return s;
}

}  // namespace

// The types Trainer's own Run and EpochSums hold (a named namespace: a member of a class with
// linkage may not have a type of an anonymous one), and the step that uses them.
namespace trainer_detail {

// Each MoE layer's auxiliary losses and per-expert kept slots, summed over an epoch's steps.
class RoutingTally {
 public:
  explicit RoutingTally(const Model& model) : aux_(static_cast<size_t>(model.n_moe_layers())) {
    for (int64_t l = 0; l < model.n_moe_layers(); ++l)
      load_.emplace_back(static_cast<size_t>(model.moe_layer(l).n_experts()), 0);
  }

  // After a training step: the last forward's losses and plans.
  void add(const Model& model) {
    ++steps_;
    for (size_t l = 0; l < aux_.size(); ++l) {
      const MoeLayer& layer = model.moe_layer(static_cast<int64_t>(l));
      aux_[l].switch_loss += layer.aux().switch_loss;
      aux_[l].importance_loss += layer.aux().importance_loss;
      aux_[l].load_loss += layer.aux().load_loss;
      aux_[l].z_loss += layer.aux().z_loss;
      for (size_t e = 0; e < load_[l].size(); ++e)
        load_[l][e] += layer.plan().expert_rows(static_cast<int64_t>(e));
    }
  }

  // The running sums, for a checkpoint inside an epoch: {"steps", "aux": [[switch, importance,
  // load, z] per layer], "load": [[kept slots per expert] per layer]}.
  nlohmann::json to_json() const {
    nlohmann::json aux = nlohmann::json::array();
    for (const AuxLosses& a : aux_)
      aux.push_back({a.switch_loss, a.importance_loss, a.load_loss, a.z_loss});
    return {{"steps", steps_}, {"aux", aux}, {"load", load_}};
  }
  // Restores to_json()'s sums; false when `j` does not have this model's layers and experts.
  bool from_json(const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("steps") || !j["steps"].is_number_integer() ||
        !j.contains("aux") || !j["aux"].is_array() || j["aux"].size() != aux_.size() ||
        !j.contains("load") || !j["load"].is_array() || j["load"].size() != load_.size())
      return false;
    steps_ = j["steps"].get<int64_t>();
    for (size_t l = 0; l < aux_.size(); ++l) {
      const nlohmann::json& a = j["aux"][l];
      const nlohmann::json& e = j["load"][l];
      if (!a.is_array() || a.size() != 4 || !e.is_array() || e.size() != load_[l].size())
        return false;
      for (const nlohmann::json& v : a)
        if (!v.is_number()) return false;
      aux_[l].switch_loss = a[0].get<double>();
      aux_[l].importance_loss = a[1].get<double>();
      aux_[l].load_loss = a[2].get<double>();
      aux_[l].z_loss = a[3].get<double>();
      for (size_t k = 0; k < load_[l].size(); ++k) {
        if (!e[k].is_number_integer()) return false;
        load_[l][k] = e[k].get<int64_t>();
      }
    }
    return true;
  }

  // The epoch's mean of each auxiliary loss some gate of the layer weighs (unweighted values),
  // and each expert's share of the layer's kept slots.
  void fill(const Model& model, EpochRecord* record) const {
    const double per = 1.0 / static_cast<double>(std::max<int64_t>(steps_, 1));
    for (size_t l = 0; l < aux_.size(); ++l) {
      const MoeLayer& layer = model.moe_layer(static_cast<int64_t>(l));
      const std::string& name = model.moe_layer_name(static_cast<int64_t>(l));
      const GateConfig& g = layer.config().gate;
      const GateConfig& top = layer.config().hierarchy.top;
      const bool hierarchical = layer.n_groups() > 0;
      const auto on = [&](float GateConfig::*coef) {
        return g.*coef > 0 || (hierarchical && top.*coef > 0);
      };
      const AuxLosses& a = aux_[l];
      if (on(&GateConfig::switch_loss))
        record->aux_losses.emplace_back(name + ".switch", a.switch_loss * per);
      if (on(&GateConfig::importance_loss))
        record->aux_losses.emplace_back(name + ".importance", a.importance_loss * per);
      if (on(&GateConfig::load_loss))
        record->aux_losses.emplace_back(name + ".load", a.load_loss * per);
      if (on(&GateConfig::z_loss)) record->aux_losses.emplace_back(name + ".z", a.z_loss * per);
      ExpertLoad el;
      el.layer = name;
      int64_t total = 0;
      for (int64_t c : load_[l]) total += c;
      for (int64_t c : load_[l])
        el.share.push_back(total > 0 ? static_cast<double>(c) / static_cast<double>(total) : 0.0);
      record->expert_load.push_back(std::move(el));
    }
  }

 private:
  int64_t steps_ = 0;
  std::vector<AuxLosses> aux_;              // [L]
  std::vector<std::vector<int64_t>> load_;  // [L][E] kept slots per expert
};

// What one training step needs besides the model and the batch.
struct StepInputs {
  const TrainingConfig* training = nullptr;  // clip_norm
  TaskLossOptions loss;                      // class weights, label smoothing, Huber δ
  Tensor dlogits;                            // [T_max, C] buffer for the loss gradient
  Arena* arena = nullptr;                    // reset here, before the forward
  Optimizer* optimizer = nullptr;
  Communicator* comm = nullptr;  // the job's ranks (data parallel), size 1 for one process
};

// What a step reports: the mean task loss of the batch, the gates' weighted auxiliary losses, the
// global gradient norm (before clipping), or what went non-finite (the update is then skipped).
struct StepOutcome {
  double loss = 0.0;
  double aux = 0.0;
  double norm = 0.0;
  const char* non_finite = nullptr;  // "loss" or "gradient norm"
  double non_finite_value = 0.0;
  int64_t rows = 0;  // the whole batch's rows (every rank's part)
  Status failed;     // a collective failed (the step is then abandoned)
  double collective_seconds = 0.0;
};

// What the task loss divides by over this batch (loss.h): its output rows, or their class
// weights' sum when the classes are weighted. A rank's part of a batch weighs this much in the
// batch's mean loss.
double loss_weight(const Batch& batch, int64_t output_rows, const TaskLossOptions& options) {
  const Tensor& w = options.cross_entropy.class_weights;
  if (w.empty() || batch.labels.empty()) return static_cast<double>(output_rows);
  const float* wc = w.f32();
  const auto* y = batch.labels.data<int32_t>();
  double sum = 0.0;
  for (int64_t i = 0; i < batch.labels.numel(); ++i)
    if (y[i] != options.cross_entropy.ignore_index) sum += wc[y[i]];
  return sum;
}

// One optimizer step, in llm.c's order: forward, loss, backward, clip, update.
StepOutcome train_step(Model& model, const Batch& batch, const Rng& noise, double lr,
                       const StepInputs& in) {
  const TrainingConfig& tc = *in.training;
  ParamStore& store = model.params();
  in.arena->reset();
  store.clear_grads();  // = zero_grads(), the SwiGLU experts' zeros deferred (params.h)
  const Tensor logits = model.forward(batch, /*training=*/true, noise, *in.arena);  // [T, C]
  const Tensor dlogits = in.dlogits.slice(0, logits.rows());                        // [T, C]
  StepOutcome out;
  out.loss = model.task_loss(batch, logits, dlogits, in.loss);
  out.aux = model.aux_loss();
  out.rows = batch.n_rows;
  Communicator& comm = *in.comm;
  const bool parallel = comm.size() > 1;
  double share = 1.0;  // this rank's part of the batch's mean loss
  if (parallel) {
    // The batch's mean losses from each rank's part, weighted by what each part's mean divides
    // by; every rank then judges the same values.
    const double weight = loss_weight(batch, logits.rows(), in.loss);
    double sums[4] = {weight, weight * out.loss, weight * out.aux,
                      static_cast<double>(batch.n_rows)};
    const auto t0 = std::chrono::steady_clock::now();
    out.failed = comm.all_reduce_sum(std::span<double>(sums));
    out.collective_seconds += seconds_since(t0);
    if (!out.failed) return out;
    share = sums[0] > 0.0 ? weight / sums[0] : 0.0;
    out.loss = sums[0] > 0.0 ? sums[1] / sums[0] : 0.0;
    out.aux = sums[0] > 0.0 ? sums[2] / sums[0] : 0.0;
    out.rows = static_cast<int64_t>(sums[3]);
  }
  if (!std::isfinite(out.loss + out.aux)) {
    out.non_finite = "loss";
    out.non_finite_value = out.loss + out.aux;
    return out;
  }
  if (parallel) {
    // This part's gradient weighted by its share of the batch's mean loss, from the loss on
    // (so that an expert computed on another rank gets each part's rows at their weight).
    const auto scale = static_cast<float>(share);
    float* g = dlogits.f32();
    for (int64_t i = 0; i < dlogits.numel(); ++i) g[i] *= scale;
    model.set_aux_grad_scale(scale);
  }
  model.backward(dlogits, *in.arena);
  store.settle_grads();
  if (parallel) {
    out.collective_seconds += model.expert_exchange_seconds();
    // The parts' gradients summed: the batch's (the same bits on every rank, so the replicas
    // stay equal).
    model.set_aux_grad_scale(1.0f);
    const Tensor grads = store.grads();
    float* g = grads.f32();
    const auto t0 = std::chrono::steady_clock::now();
    out.failed = comm.all_reduce_sum(std::span<float>(g, static_cast<size_t>(grads.numel())));
    out.collective_seconds += seconds_since(t0);
    if (!out.failed) return out;
  }
  out.norm = tc.clip_norm > 0 ? clip_grad_norm(store, tc.clip_norm) : grad_norm(store);
  if (!std::isfinite(out.norm)) {
    out.non_finite = "gradient norm";
    out.non_finite_value = out.norm;
    return out;
  }
  in.optimizer->step(lr);
  if (!parallel) {
    model.after_step();
    return out;
  }
  // The gates' bias balancing by the whole batch's loads.
  model.after_step([&](std::span<double> loads) {
    const auto t0 = std::chrono::steady_clock::now();
    if (out.failed) out.failed = comm.all_reduce_sum(loads);
    out.collective_seconds += seconds_since(t0);
  });
  return out;
}

}  // namespace trainer_detail

using namespace trainer_detail;

// A model's parameters and gate states at one moment: the best epoch's, or the current ones while
// the best are evaluated.
struct ParamSnapshot {
  std::vector<float> values;  // [P] the parameter arena
  std::vector<GateState> gates;

  static ParamSnapshot of(const Model& model) {
    const Tensor v = model.params().values();  // [P]
    return {std::vector<float>(v.f32(), v.f32() + v.numel()), model.gate_states()};
  }
  Status restore(Model& model) const {
    const Tensor v = model.params().values();  // [P]
    MOE_CHECK(static_cast<int64_t>(values.size()) == v.numel(),
              "parameter snapshot of {} values for an arena of {}", values.size(), v.numel());
    std::memcpy(v.f32(), values.data(), values.size() * sizeof(float));
    return model.set_gate_states(gates);
  }
};

// Everything a run keeps between steps: sized once in create().
struct Trainer::State {
  std::unique_ptr<Optimizer> optimizer;
  BatchIterator iterator;
  BatchBuffers buffers;
  Arena arena;
  TensorBuffer class_weights;  // [C] or empty
  TensorBuffer dlogits;        // [T, C]
  ParamSnapshot best;          // the best epoch's parameters and gate states
  std::unique_ptr<Progress> progress;
  std::optional<TrainState> resumed;  // set by resume(): where run() starts
  // The expert changes (`moe experts`) the resumed checkpoint records: carried into every
  // checkpoint this run writes (an array, or null).
  nlohmann::json experts_history;
  std::unique_ptr<ExpertAdapter> adapter;  // when a layer adapts (model.moe.adapt)
  RunLock lock;                            // <out>/.lock while resume() and run() write <out>

  State(const Dataset& train, const BatchOptions& bo)
      : iterator(train, bo), buffers(BatchBuffers::for_dataset(train, bo.batch_size)) {}
};

Trainer::Trainer(const Config& config, const LoadedData& data, const TrainOptions& options)
    : config_(config), data_(data), options_(options) {
  if (options.comm == nullptr) solo_ = solo_communicator();
  comm_ = options.comm != nullptr ? options.comm : solo_.get();
}

Trainer::~Trainer() = default;

Result<std::unique_ptr<Trainer>> Trainer::create(const Config& config, const LoadedData& data,
                                                 const TrainOptions& options) {
  const DataShape shape = data.schema.shape();
  if (data.train.n_rows == 0) return Status::error("{}: no training rows", data.train.source);
  MOE_TRY(check_metric(config.training.metric, shape));
  MOE_TRY(config.training.optimizer.validate());
  if (config.training.batch_size <= 0 || config.training.epochs <= 0)
    return Status::error("training.batch_size and training.epochs must be positive");
  // A model too large for the machine is refused by a check, not by an allocation failure.
  MOE_TRY(check_training_memory(config.model, config.training.optimizer, shape.n_features,
                                shape.n_outputs, training_memory_limit(),
                                config.training.batch_size));

  std::unique_ptr<Trainer> t(new Trainer(config, data, options));
  MOE_ASSIGN_OR_RETURN(t->model_, Model::create(config.model, shape));
  t->model_->init(config.training.seed);

  BatchOptions bo;
  bo.batch_size = std::min(config.training.batch_size, data.train.n_rows);
  bo.shuffle = true;
  bo.seed = config.training.seed;
  bo.shard = t->comm_->rank();
  bo.shards = t->comm_->size();
  if (bo.shards > 1)
    for (size_t b = 0; b < config.model.moe.size(); ++b)
      if (config.model.moe[b].expert_parallel && config.model.moe[b].n_groups > 0)
        return Status::error(
            "model.moe.expert_parallel: a hierarchical layer (model.moe.hierarchy.groups) cannot "
            "place its experts on ranks yet; train it data parallel only");
  if (bo.batch_size < bo.shards)
    return Status::error(
        "training.batch_size: batches of {} rows cannot be shared among the {} ranks of this job "
        "(each rank trains its part of every batch); use at least {}",
        bo.batch_size, bo.shards, bo.shards);
  t->state_ = std::make_unique<State>(data.train, bo);
  State& s = *t->state_;
  MOE_TRY(apply_frozen(config.training, t->model_->params()));
  s.optimizer = make_optimizer(t->model_->params(), config.training.optimizer);
  auto adapter = std::make_unique<ExpertAdapter>(*t->model_);
  if (!adapter->empty()) s.adapter = std::move(adapter);
  // A language model's batch of B windows has B·S output rows, one per token; a translation
  // model's as many as its target tokens (with eos), at most what the batch buffers hold.
  const int64_t outputs_per_row = shape.input == FeatureKind::kTokens ? data.train.context : 1;
  const int64_t output_rows = shape.input == FeatureKind::kPairs ? s.buffers.tgt_in.numel()
                                                                 : bo.batch_size * outputs_per_row;
  s.dlogits = TensorBuffer(Shape{output_rows, shape.n_outputs});
  // A language model's loss takes no class weights (LmModel::task_loss; a config warning says
  // so), and its data have no per-row labels to count.
  if (shape.task == TaskKind::kClassification && shape.input != FeatureKind::kTokens &&
      shape.input != FeatureKind::kPairs &&
      config.training.class_weights == ClassWeights::kBalanced) {
    s.class_weights = TensorBuffer(Shape{shape.n_outputs});
    balanced_class_weights(data.train, shape.n_outputs, s.class_weights);
  }
  if (options.log) {
    ProgressOptions po;
    po.terminal = options.terminal;
    if (shape.input == FeatureKind::kTokens) po.tokens_per_row = data.train.context;
    s.progress = std::make_unique<Progress>(options.log, po);
  }
  return t;
}

Status Trainer::resume(const std::string& dir) {
  State& s = *state_;
  if (options_.write_files && !s.lock.held())
    MOE_TRY(claim_run_directory(config_.output.dir, /*resuming=*/true, false, &s.lock));
  MOE_ASSIGN_OR_RETURN(Checkpoint ck, load_checkpoint(dir));
  MOE_TRY(adopt_adapted_model(ck.config));
  MOE_TRY(check_resume_config(ck.config, config_).with_context(dir + "/" + kCheckpointJsonFile));
  if (ck.schema.to_json() != data_.schema.to_json())
    return Status::error(
        "{}/{}: the data schema differs from the one fitted on the data now (the data files "
        "changed since the run started); resume needs the same data",
        dir, kCheckpointJsonFile);
  MOE_TRY(ParamSnapshot::of(*ck.model).restore(*model_));
  MOE_ASSIGN_OR_RETURN(TrainState at, load_train_state(dir, *model_, ck.weights_fnv1a64,
                                                       *s.optimizer, ck.config.training));
  const std::string where = dir + "/" + kTrainStateJsonFile;
  const int64_t n_batches = s.iterator.n_batches();
  if (at.seed != config_.training.seed)
    return Status::error("{}: seed {} differs from the config's training.seed {}", where, at.seed,
                         config_.training.seed);
  if (at.batches_per_epoch != n_batches)
    return Status::error(
        "{}: position.batches_per_epoch is {}, the data and batch size now give {} (the data "
        "changed)",
        where, at.batches_per_epoch, n_batches);
  // The schema and the batch count miss edits that keep them (a changed text, labels swapped
  // between rows): the fingerprint of the encoded data is compared too (checkpoints from before
  // it have none).
  const nlohmann::json recorded = ck.info.value("data_fnv1a64", nlohmann::json());
  if (recorded.is_string() && recorded.get<std::string>() != data_fingerprint(data_))
    return Status::error(
        "{}/{}: the training data differs from the data the run was trained on (its content "
        "changed since the run started); resume needs the same data",
        dir, kCheckpointJsonFile);
  if (at.epochs_done > config_.training.epochs)
    return Status::error("{}: {} epochs are done already, more than training.epochs = {}", where,
                         at.epochs_done, config_.training.epochs);
  s.resumed = std::move(at);
  if (const auto h = ck.info.find("experts_history"); h != ck.info.end() && h->is_array())
    s.experts_history = *h;
  return Status::ok();
}

// Everything one call of run() carries from epoch to epoch.
struct Trainer::Run {
  fs::path out;                   // config.output.dir
  std::optional<MetricsLog> log;  // <out>/metrics.jsonl when writing files
  int64_t n_batches = 0;          // per epoch
  int64_t horizon = 0;            // steps planned: epochs · n_batches, or max_steps when fewer
  LrSchedule schedule;            // over `horizon` steps
  Rng step_noise;                 // forked per optimizer step
  bool has_validation = false;
  bool higher = false;  // the metric improves upwards
  EvalOptions eval_options;
  StepInputs step;
  TrainState at;  // where the run stands (the position last/ records)
  TrainResult result;
  double best = 0.0;           // the best value of the metric so far
  double train_seconds = 0.0;  // training time and rows so far, resumed runs included
  int64_t train_rows = 0;
  bool saved_last = false;  // a last/ checkpoint exists
  std::string data_hash;    // data_fingerprint, recorded in checkpoints
};

// An epoch's training: its running sums, from the first batch or from a checkpoint inside it.
struct Trainer::EpochSums {
  double loss_sum = 0.0;  // Σ over batches of the mean task loss
  int64_t step = 0;       // batches taken
  int64_t rows = 0;       // rows taken (after a resume inside the epoch, those before it too)
  int64_t rows_here = 0;  // rows trained by this process, in `seconds`
  double seconds = 0.0;
  RoutingTally tally;
  GateEntropyTally entropy;

  explicit EpochSums(const Model& model) : tally(model), entropy(model) {}
  nlohmann::json to_json() const {
    return {{"loss_sum", loss_sum},
            {"rows", rows},
            {"tally", tally.to_json()},
            {"gate_entropy", entropy.to_json()}};
  }
  bool from_json(const nlohmann::json& sums) {
    if (!sums.contains("loss_sum") || !sums["loss_sum"].is_number() || !sums.contains("rows") ||
        !sums["rows"].is_number_integer() || !sums.contains("tally") ||
        !tally.from_json(sums["tally"]) || !sums.contains("gate_entropy") ||
        !entropy.from_json(sums["gate_entropy"]))
      return false;
    loss_sum = sums["loss_sum"].get<double>();
    rows = sums["rows"].get<int64_t>();
    return true;
  }
};

// In a job of several ranks: every rank must train the same config on the same data (by its
// resolved config, the rows of each split and the training set's fingerprint), or the replicas
// would part without a word. Compared with rank 0's at the start of the run.
Status Trainer::check_same_job() {
  if (comm_->size() == 1) return Status::ok();
  Config c = config_;
  c.output = OutputConfig{};  // where each rank writes (only rank 0 does) may differ
  const std::string what = config_to_json(c).dump() + "|" + data_fingerprint(data_) + "|" +
                           std::to_string(data_.validation.n_rows) + "|" +
                           std::to_string(data_.test.n_rows);
  uint64_t mine = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char ch : what) mine = (mine ^ ch) * 1099511628211ULL;
  uint64_t root = mine;
  MOE_TRY(comm_->broadcast(std::as_writable_bytes(std::span<uint64_t>(&root, 1)), 0));
  double differs[1] = {root != mine ? 1.0 : 0.0};
  MOE_TRY(comm_->all_reduce_max(differs));
  if (root != mine)
    return Status::error(
        "rank {} of {} has another config or other data than rank 0 (every rank of a "
        "data-parallel job trains the same config on the same data)",
        comm_->rank(), comm_->size());
  if (differs[0] != 0.0)
    return Status::error(
        "another rank of this job has another config or other data than rank 0 (every rank "
        "of a data-parallel job trains the same config on the same data)");
  return Status::ok();
}

void Trainer::set_expert_parallel() {
  model_->set_expert_parallel(comm_);  // the layers whose block sets model.moe.expert_parallel
}

Result<TrainResult> Trainer::run() {
  const auto t_start = std::chrono::steady_clock::now();
  MOE_TRY(check_same_job());
  ThreadChoice threads = choose_threads_now(config_.training.threads);
  if (comm_->size() > 1) {
    // Every rank on the fewest threads any chose: a reduction's bits may depend on the count
    // (the gradient norm), and the replicas must stay equal.
    double fewest[1] = {-static_cast<double>(threads.threads)};
    MOE_TRY(comm_->all_reduce_max(fewest));
    if (static_cast<int>(-fewest[0]) != threads.threads) {
      threads.threads = static_cast<int>(-fewest[0]);
      threads.reason += fmt::format("; {} on every rank of the job", threads.threads);
    }
  }
  omp_set_num_threads(threads.threads);
  if (comm_->size() > 1) set_expert_parallel();
  MOE_ASSIGN_OR_RETURN(std::unique_ptr<Run> r, begin_run(threads));
  for (int64_t epoch = r->at.epochs_done + 1;
       epoch <= config_.training.epochs && !r->result.stopped_early && !budget_spent(*r, 0.0);
       ++epoch)
    MOE_TRY(run_epoch(*r, epoch));
  MOE_TRY(finish_run(*r));
  r->result.seconds = seconds_since(t_start);
  if (options_.write_files)
    MOE_TRY(write_file_atomic((r->out / "summary.json").string(),
                              r->result.to_json(data_.schema).dump(2) + "\n"));
  return std::move(r->result);
}

// The run's files opened, its settings fixed, and the position it starts from.
Result<std::unique_ptr<Trainer::Run>> Trainer::begin_run(const ThreadChoice& threads) {
  const TrainingConfig& tc = config_.training;
  State& s = *state_;
  auto r = std::make_unique<Run>();
  r->out = config_.output.dir;
  if (options_.write_files) {
    MOE_ASSIGN_OR_RETURN(MetricsLog log, open_run_files(r->out));
    r->log.emplace(std::move(log));
  }
  r->n_batches = s.iterator.n_batches();
  r->horizon = tc.epochs * r->n_batches;
  if (tc.max_steps > 0) r->horizon = std::min(r->horizon, tc.max_steps);
  r->schedule = tc.make_schedule(r->horizon);
  MOE_TRY(r->schedule.validate().with_context("training schedule"));
  r->step_noise = Rng(tc.seed, kStepStream);
  r->has_validation = data_.validation.n_rows > 0;
  r->higher = r->has_validation && metric_higher_is_better(tc.metric);
  r->eval_options.batch_size = std::max<int64_t>(tc.batch_size, 256);
  r->eval_options.regression_loss = tc.loss;
  r->eval_options.huber_delta = tc.huber_delta;
  r->step.training = &tc;
  r->step.loss.cross_entropy.class_weights = s.class_weights.view();
  r->step.loss.cross_entropy.label_smoothing = tc.label_smoothing;
  r->step.loss.huber = tc.loss == RegressionLoss::kHuber;
  r->step.loss.huber_delta = tc.huber_delta;
  r->step.dlogits = s.dlogits.view();
  r->step.arena = &s.arena;
  r->step.optimizer = s.optimizer.get();
  r->step.comm = comm_;

  TrainResult& result = r->result;
  result.n_params = model_->n_params();
  result.n_active_params = model_->n_active_params();
  result.n_trainable_params = model_->params().n_trainable_elements();
  result.threads = threads.threads;
  result.threads_reason = threads.reason;
  result.ranks = comm_->size();
  if (comm_->size() > 1) result.ranks_via = comm_->describe();
  result.has_validation = r->has_validation;
  result.metric = r->has_validation ? std::string(metric_kind_name(tc.metric)) : "loss";
  result.metric += r->has_validation ? " (validation)" : " (training)";
  r->data_hash = options_.write_files ? data_fingerprint(data_) : "";
  MOE_TRY(start_position(*r));
  return r;
}

// Takes <out>, writes config.json and opens metrics.jsonl: a resumed run keeps the lines of the
// epochs its checkpoint covers; the epochs after it are run again and their old lines go.
Result<MetricsLog> Trainer::open_run_files(const fs::path& out) {
  State& s = *state_;
  // The lock first (it creates the directory): nothing is written into another run's files.
  if (!s.lock.held())
    MOE_TRY(claim_run_directory(out, s.resumed.has_value(), options_.overwrite, &s.lock));
  MOE_TRY(
      write_file_atomic((out / "config.json").string(), config_to_json(config_).dump(2) + "\n"));
  const fs::path metrics = out / "metrics.jsonl";
  if (s.resumed) MOE_TRY(truncate_metrics(metrics, s.resumed->epochs_done));
  return MetricsLog::open(metrics.string(), /*append=*/s.resumed.has_value());
}

// Where the run starts: fresh, or as resume() found it, with the best epoch so far.
Status Trainer::start_position(Run& r) {
  const TrainingConfig& tc = config_.training;
  State& s = *state_;
  TrainState& at = r.at;
  if (s.resumed) {
    at = std::move(*s.resumed);
    s.resumed.reset();
    if (at.metric != r.result.metric)
      return Status::error("resume: the checkpoint judged \"best\" by {}, this run by {}",
                           at.metric, r.result.metric);
  }
  at.batches_per_epoch = r.n_batches;
  at.seed = tc.seed;
  at.optimizer = optimizer_kind_name(tc.optimizer.kind);
  at.schedule = schedule_kind_name(r.schedule.kind);
  at.schedule_total_steps = r.horizon;
  at.metric = r.result.metric;
  r.best = at.best_epoch > 0 ? at.best_value : (r.higher ? -INFINITY : INFINITY);
  if (at.best_epoch > 0) {
    r.result.best_epoch = at.best_epoch;
    r.result.best_value = at.best_value;
    s.best.values = std::move(at.best_values);
    s.best.gates = std::move(at.best_gates);
    if (r.has_validation) {
      // The best epoch's validation metrics, for the summary: evaluation is deterministic, so
      // evaluating the best parameters again gives them exactly.
      const ParamSnapshot current = ParamSnapshot::of(*model_);
      MOE_TRY(s.best.restore(*model_));
      MOE_ASSIGN_OR_RETURN(r.result.validation, evaluate(*model_, data_.validation,
                                                         data_.schema.labels, r.eval_options));
      MOE_TRY(current.restore(*model_));
    }
  }
  at.best_values.clear();
  at.best_gates.clear();
  if (s.adapter && at.step > 0)
    MOE_TRY(s.adapter->from_json(at.adapt, *model_).with_context("resume: train_state.json"));
  at.adapt = s.adapter ? s.adapter->to_json() : nlohmann::json::object();
  r.train_seconds = at.train_seconds;
  r.train_rows = at.train_rows;
  r.saved_last = at.step > 0;
  // A run that had already stopped early stays stopped unless the patience is raised.
  r.result.stopped_early = tc.patience > 0 && at.since_best >= tc.patience;
  return Status::ok();
}

// One epoch: its batches, validation, the best and last checkpoints, its metrics line.
Status Trainer::run_epoch(Run& r, int64_t epoch) {
  const TrainingConfig& tc = config_.training;
  State& s = *state_;
  const auto t_epoch = std::chrono::steady_clock::now();
  // The expert changes decided after the previous epoch (model.moe.adapt), before it trains; a
  // run resumed inside this epoch made them already.
  nlohmann::ordered_json changes = nlohmann::ordered_json::array();
  if (r.at.batches_done == 0) MOE_TRY(make_pending_changes(r, epoch, &changes));
  EpochSums sums(*model_);
  MOE_TRY(train_epoch(r, epoch, &sums));
  r.train_seconds += sums.seconds;
  r.train_rows += sums.rows_here;
  MOE_TRY(sum_tallies(&sums));

  EpochRecord record;
  record.epoch = epoch;
  record.steps = s.optimizer->step_count();
  record.train_loss = sums.loss_sum / static_cast<double>(std::max<int64_t>(sums.step, 1));
  record.learning_rate = r.schedule.lr_at(std::max<int64_t>(record.steps - 1, 0));
  sums.tally.fill(*model_, &record);
  record.gate_entropy = sums.entropy.result(*model_);
  record.expert_changes = std::move(changes);
  EvalMetrics validation;
  MOE_ASSIGN_OR_RETURN(const bool improved, judge_epoch(r, epoch, &record, &validation));
  r.result.stopped_early = tc.patience > 0 && r.at.since_best >= tc.patience;
  if (s.adapter) {  // decide the changes to make before the next epoch
    s.adapter->observe(*model_, record.expert_load);
    r.at.adapt = s.adapter->to_json();
  }
  record.seconds = seconds_since(t_epoch);
  record.rows_per_second =
      sums.seconds > 0 ? static_cast<double>(sums.rows_here) / sums.seconds : 0.0;
  if (model_->shape().input == FeatureKind::kTokens)
    record.tokens_per_second = record.rows_per_second * static_cast<double>(data_.train.context);
  // The metrics line before the checkpoint: a run killed between the two is resumed from the
  // previous checkpoint, which drops this line and writes it again.
  if (r.log) MOE_TRY(r.log->append(record));
  r.at.epochs_done = epoch;
  r.at.batches_done = 0;
  r.at.step = s.optimizer->step_count();
  r.at.stopped_early = r.result.stopped_early;
  r.at.epoch_sums = nlohmann::json::object();
  MOE_TRY(save_last(r, epoch, r.at));
  if (s.progress) report_epoch(r, record, validation, improved);
  return Status::ok();
}

// The batches of an epoch, each one train_step, with a checkpoint every
// output.checkpoint.every optimizer steps inside it.
Status Trainer::train_epoch(Run& r, int64_t epoch, EpochSums* sums) {
  const auto t_epoch = std::chrono::steady_clock::now();
  State& s = *state_;
  if (s.progress) s.progress->start_epoch(epoch, config_.training.epochs, r.n_batches);
  s.iterator.start_epoch(epoch - 1);
  Batch batch;
  if (r.at.batches_done > 0) {
    // Inside an epoch: its running sums, and the iterator past the batches already taken (the
    // order is a function of the seed and the epoch, so skipping gives the same batches).
    if (!sums->from_json(r.at.epoch_sums))
      return Status::error("resume: train_state.json: epoch_sums do not fit this model");
    if (!comm_->is_root()) {  // rank 0 carries the job's sums (see sum_tallies)
      sums->tally = RoutingTally(*model_);
      sums->entropy = GateEntropyTally(*model_);
    }
    for (; sums->step < r.at.batches_done; ++sums->step) s.iterator.next(s.buffers, &batch);
    r.at.batches_done = 0;
  }
  while (s.iterator.next(s.buffers, &batch)) {
    ++sums->step;
    const int64_t global = s.optimizer->step_count();
    const StepOutcome done =
        train_step(*model_, batch, r.step_noise.fork(static_cast<uint64_t>(global)),
                   r.schedule.lr_at(global), r.step);
    MOE_TRY(done.failed);
    if (done.non_finite != nullptr)
      return stop_non_finite(r, done.non_finite, done.non_finite_value, epoch, sums->step);
    sums->loss_sum += done.loss;
    r.result.collective_seconds += done.collective_seconds;
    sums->tally.add(*model_);
    sums->entropy.add(*model_);
    sums->rows += done.rows;
    sums->rows_here += done.rows;
    if (s.progress)
      s.progress->update(sums->step, sums->loss_sum / static_cast<double>(sums->step),
                         sums->rows_here);
    // A checkpoint inside the epoch (the one at its end follows validation).
    const int64_t every = config_.output.checkpoint_every;
    if (budget_spent(r, seconds_since(t_epoch))) break;  // the epoch ends here
    if (every > 0 && sums->step < r.n_batches && s.optimizer->step_count() % every == 0) {
      TrainState inside = r.at;
      inside.epochs_done = epoch - 1;
      inside.batches_done = sums->step;
      inside.step = s.optimizer->step_count();
      MOE_TRY(sum_tallies(sums));
      inside.epoch_sums = sums->to_json();
      MOE_TRY(save_last(r, epoch, inside));
      // The job's sums so far stay on rank 0; the others count afresh from here, so the next
      // sum over the ranks counts every step once.
      if (!comm_->is_root()) {
        sums->tally = RoutingTally(*model_);
        sums->entropy = GateEntropyTally(*model_);
      }
    }
  }
  sums->seconds = seconds_since(t_epoch);
  return Status::ok();
}

bool Trainer::budget_spent(Run& r, double epoch_seconds) {
  const TrainingConfig& tc = config_.training;
  if (tc.max_steps > 0 && state_->optimizer->step_count() >= tc.max_steps) {
    r.result.budget = "max_steps";
  } else if (tc.max_minutes > 0) {
    bool spent = r.train_seconds + epoch_seconds >= tc.max_minutes * 60.0;
    // The clocks of the ranks differ: rank 0's decides for all (a failed broadcast stops too).
    if (comm_->size() > 1 &&
        !comm_->broadcast(std::as_writable_bytes(std::span<bool>(&spent, 1)), 0).is_ok())
      spent = true;
    if (spent) r.result.budget = "max_minutes";
  }
  return !r.result.budget.empty();
}

namespace {

// Every number of `j`, depth first.
void collect_numbers(const nlohmann::json& j, std::vector<double>* out) {
  if (j.is_number()) {
    out->push_back(j.get<double>());
  } else if (j.is_structured()) {
    for (const nlohmann::json& v : j) collect_numbers(v, out);
  }
}

// collect_numbers' inverse: the numbers of `j` replaced in the same order (integers stay
// integers; the sums of counts are exact in a double).
void replace_numbers(nlohmann::json& j, const std::vector<double>& values, size_t* at) {
  if (j.is_number_integer()) {
    j = static_cast<int64_t>(values[(*at)++]);
  } else if (j.is_number()) {
    j = values[(*at)++];
  } else if (j.is_structured()) {
    for (nlohmann::json& v : j) replace_numbers(v, values, at);
  }
}

}  // namespace

Status Trainer::sum_tallies(EpochSums* sums) {
  if (comm_->size() == 1) return Status::ok();
  // The tallies are sums (the steps too, so their means become means over every rank's steps).
  nlohmann::json j = {sums->tally.to_json(), sums->entropy.to_json()};
  std::vector<double> values;
  collect_numbers(j, &values);
  MOE_TRY(comm_->all_reduce_sum(std::span<double>(values)));
  size_t at = 0;
  replace_numbers(j, values, &at);
  if (!sums->tally.from_json(j[0]) || !sums->entropy.from_json(j[1]))
    return Status::error("internal: the routing tallies summed over the ranks do not fit");
  return Status::ok();
}

// Validation and the early-stopping count after an epoch; best/ when the metric improved.
// Returns whether it did.
Result<bool> Trainer::judge_epoch(Run& r, int64_t epoch, EpochRecord* record,
                                  EvalMetrics* validation) {
  const TrainingConfig& tc = config_.training;
  State& s = *state_;
  double value = record->train_loss;
  if (r.has_validation) {
    MOE_ASSIGN_OR_RETURN(*validation,
                         evaluate(*model_, data_.validation, data_.schema.labels, r.eval_options));
    value = validation->value(tc.metric).value();
    // Rank 0's value decides for every rank (their evaluations may differ in the last bits).
    if (comm_->size() > 1)
      MOE_TRY(comm_->broadcast(std::as_writable_bytes(std::span<double>(&value, 1)), 0));
    const bool classify = data_.schema.labels.task == TaskKind::kClassification;
    record->validation = validation->to_json(classify ? data_.schema.labels.class_names
                                                      : data_.schema.labels.columns);
  }
  const bool improved = !std::isnan(value) && (r.higher ? value > r.best : value < r.best);
  if (improved) {
    r.best = value;
    r.at.since_best = 0;
    r.at.best_epoch = epoch;
    r.at.best_value = value;
    r.result.best_epoch = epoch;
    r.result.best_value = value;
    r.result.validation = *validation;
    s.best = ParamSnapshot::of(*model_);
    if (options_.write_files && config_.output.save_best) MOE_TRY(save_best(r, epoch, *record));
  } else if (s.optimizer->step_count() > tc.warmup_steps) {
    // An epoch that ends inside the learning-rate warm-up does not count towards patience:
    // the schedule has not yet reached the rate it was set to.
    ++r.at.since_best;
  }
  return improved;
}

// <out>/best: the model of the epoch just judged best, staged whole, then swapped in.
Status Trainer::save_best(const Run& r, int64_t epoch, const EpochRecord& record) {
  nlohmann::json info = {{"epoch", epoch},
                         {"step", state_->optimizer->step_count()},
                         {"metric", r.result.metric},
                         {"value", r.best}};
  if (r.has_validation) info["validation"] = nlohmann::json::parse(record.validation.dump());
  if (!state_->experts_history.is_null()) info["experts_history"] = state_->experts_history;
  const fs::path staged = r.out / ".best.staging";
  std::error_code ec;
  fs::remove_all(staged, ec);
  MOE_TRY(save_checkpoint(staged.string(), *model_, config_, data_.schema, info));
  return commit_directory(staged.string(), (r.out / "best").string(), "");
}

// <out>/last as a training checkpoint at `position` (epochs done, batches done in the next one):
// staged whole, then swapped in, the older ones rotated (output.checkpoint.keep_last).
Status Trainer::save_last(Run& r, int64_t info_epoch, const TrainState& position) {
  if (!options_.write_files) return Status::ok();
  const State& s = *state_;
  const fs::path staged = r.out / ".last.staging";
  std::error_code ec;
  fs::remove_all(staged, ec);
  TrainState state = position;
  state.train_seconds = r.train_seconds;
  state.train_rows = r.train_rows;
  state.best_values = s.best.values;
  state.best_gates = s.best.gates;
  nlohmann::json info = {
      {"epoch", info_epoch}, {"step", s.optimizer->step_count()}, {"data_fnv1a64", r.data_hash}};
  if (!s.experts_history.is_null()) info["experts_history"] = s.experts_history;
  MOE_TRY(save_checkpoint(staged.string(), *model_, config_, data_.schema, info));
  MOE_TRY(save_train_state(staged.string(), state, *model_, *s.optimizer));
  const int64_t keep = config_.output.keep_last;
  MOE_TRY(rotate_directories(r.out.string(), "last", keep));
  MOE_TRY(commit_directory(staged.string(), (r.out / "last").string(),
                           keep > 1 ? (r.out / "last.1").string() : ""));
  r.saved_last = true;
  return Status::ok();
}

// The message a NaN or Inf loss or gradient norm stops the run with.
Status Trainer::stop_non_finite(const Run& r, const char* what, double value, int64_t epoch,
                                int64_t step) const {
  const ParamStore& store = model_->params();
  std::string where = first_non_finite(store, /*gradients=*/true);
  if (where.empty()) where = first_non_finite(store, /*gradients=*/false);
  const std::string kept =
      r.saved_last ? fmt::format("; the checkpoints in {} are from before it", r.out.string())
                   : "; no checkpoint had been written yet";
  return Status::error(
      "training stopped: the {} is {} at epoch {}, step {} of {} (optimizer step {}){}{}; try "
      "a lower training.lr or set training.clip_norm",
      what, value, epoch, step, r.n_batches, state_->optimizer->step_count() + 1,
      where.empty() ? "" : fmt::format(" (first non-finite: {})", where), kept);
}

// The epoch's line on the progress stream, and the early-stopping note.
void Trainer::report_epoch(const Run& r, const EpochRecord& record, const EvalMetrics& validation,
                           bool improved) const {
  Progress& progress = *state_->progress;
  std::string line = fmt::format("epoch {}/{}  loss {:.4f}", record.epoch, config_.training.epochs,
                                 record.train_loss);
  // Auxiliary losses unweighted, by kind ("switch 1.0213"); layer names only when several.
  for (const auto& [name, v] : record.aux_losses) {
    const std::string shown = model_->n_moe_layers() == 1 ? name.substr(name.rfind('.') + 1) : name;
    line += fmt::format("  {} {:.4f}", shown, v);
  }
  if (r.has_validation) line += "  val" + metric_summary(validation);
  const std::string speed = record.tokens_per_second
                                ? fmt::format("{:.0f} tokens/s", *record.tokens_per_second)
                                : fmt::format("{:.0f} rows/s", record.rows_per_second);
  line += fmt::format("  lr {:.2e}  {:.1f} s  {}{}", record.learning_rate, record.seconds, speed,
                      improved ? "  *" : "");
  progress.end_epoch(line);
  if (!r.result.budget.empty())
    progress.note(fmt::format("training.{} reached after {} steps", r.result.budget,
                              state_->optimizer->step_count()));
  if (r.result.stopped_early)
    progress.note(fmt::format("early stop: no better {} for {} epochs; best epoch {}",
                              r.result.metric, config_.training.patience, r.result.best_epoch));
}

// After the last epoch: the best parameters back in place, the test evaluation, and what the
// best model's experts do on the validation rows (inspect.json and the warnings).
Status Trainer::finish_run(Run& r) {
  const State& s = *state_;
  TrainResult& result = r.result;
  result.epochs = r.at.epochs_done;
  result.steps = s.optimizer->step_count();
  result.n_params = model_->n_params();  // adaptive training may have changed the experts
  result.n_active_params = model_->n_active_params();
  result.n_trainable_params = model_->params().n_trainable_elements();
  result.rows_per_second =
      r.train_seconds > 0 ? static_cast<double>(r.train_rows) / r.train_seconds : 0.0;
  result.train_seconds = r.train_seconds;
  if (!s.best.values.empty()) MOE_TRY(s.best.restore(*model_));
  if (data_.test.n_rows > 0) {
    MOE_ASSIGN_OR_RETURN(result.test,
                         evaluate(*model_, data_.test, data_.schema.labels, r.eval_options));
    result.has_test = true;
  }
  if (model_->n_moe_layers() > 0) {
    MOE_ASSIGN_OR_RETURN(const InspectReport routing, inspect_run(*model_, data_));
    if (options_.write_files)
      MOE_TRY(write_inspect_json((r.out / "inspect.json").string(), routing));
    result.warnings =
        routing_warnings(routing, config_, r.has_validation ? "validation" : "training");
  }
  if (data_.schema.labels.task == TaskKind::kClassification && result.has_validation) {
    std::string w = single_class_warning(result.validation, data_.schema.labels.class_names);
    if (!w.empty()) result.warnings.push_back(std::move(w));
  }
  return Status::ok();
}

Status Trainer::make_pending_changes(Run& r, int64_t epoch, nlohmann::ordered_json* changes) {
  State& s = *state_;
  if (!s.adapter) return Status::ok();
  for (const AdaptStep& step : s.adapter->take_pending())
    MOE_TRY(change_experts(r, epoch - 1, step, changes));
  r.at.adapt = s.adapter->to_json();
  return Status::ok();
}

// One change, decided after epoch `epoch`: the new model takes the old one's place, the optimizer
// state follows its experts, the best restarts, the counts follow, and the change is recorded.
Status Trainer::change_experts(Run& r, int64_t epoch, const AdaptStep& step,
                               nlohmann::ordered_json* changes) {
  State& s = *state_;
  ExpertSurgery op = step.surgery;
  Rng pick = Rng(config_.training.seed, kAdaptStream).fork(static_cast<uint64_t>(epoch));
  op.seed = (uint64_t{pick.next_u32()} << 32) | pick.next_u32();
  MOE_ASSIGN_OR_RETURN(ExpertChange change,
                       ExpertChange::make(*model_, config_, data_.schema.shape(), op));
  SurgeryResult& done = change.result();
  std::unique_ptr<Optimizer> optimizer =
      make_optimizer(done.model->params(), config_.training.optimizer);
  change.move_optimizer_state(model_->params(), *s.optimizer, *optimizer);
  // The best model so far has the old structure: the best restarts with the next epoch judged
  // (surgery.h), and so does early stopping's count.
  s.best.values.clear();
  s.best.gates.clear();
  r.best = r.higher ? -INFINITY : INFINITY;
  r.at.best_epoch = 0;
  r.at.best_value = 0.0;
  r.at.since_best = 0;
  r.result.best_epoch = 0;
  r.result.best_value = 0.0;
  r.result.stopped_early = false;
  config_.model = done.config.model;
  model_ = std::move(done.model);
  if (comm_->size() > 1) set_expert_parallel();
  s.optimizer = std::move(optimizer);
  r.step.optimizer = s.optimizer.get();
  s.adapter->changed(step);
  const char* what = enum_name(kExpertOpNames, op.op);
  changes->push_back({{"layer", step.layer},
                      {"op", what},
                      {"expert", op.expert},
                      {"experts", done.experts_after},
                      {"why", step.why}});
  if (!s.experts_history.is_array()) s.experts_history = nlohmann::json::array();
  s.experts_history.push_back({{"op", what},
                               {"layer", step.layer},
                               {"expert", op.expert},
                               {"experts_before", done.experts_before},
                               {"experts_after", done.experts_after},
                               {"epoch", epoch},
                               {"why", step.why}});
  if (s.progress)
    s.progress->note(fmt::format("after epoch {}: {} {} expert {} ({} → {} experts): {}", epoch,
                                 step.layer, what, op.expert, done.experts_before,
                                 done.experts_after, step.why));
  return Status::ok();
}

Status Trainer::adopt_adapted_model(const Config& then) {
  Config now = config_;
  ModelConfig& m = now.model;
  // A token model's shared MoE object became one per MoE block at its first change.
  if ((m.language_model || m.translation_model) && m.moe.size() == 1 && then.model.moe.size() > 1) {
    m.moe.assign(then.model.moe.size(), m.moe[0]);
    m.moe_list = then.model.moe_list;
  }
  if (m.moe.size() != then.model.moe.size()) return Status::ok();  // the config check says why
  for (size_t i = 0; i < m.moe.size(); ++i) {
    MoeBlockConfig& b = m.moe[i];
    const MoeBlockConfig& t = then.model.moe[i];
    if (!b.adapt.enabled || !t.adapt.enabled) continue;
    b.n_experts = t.n_experts;
    b.expert_list = t.expert_list;
    b.gate.router_bias = t.gate.router_bias;
  }
  if (config_to_json(now) == config_to_json(config_)) return Status::ok();
  config_.model = m;
  MOE_ASSIGN_OR_RETURN(model_, Model::create(config_.model, data_.schema.shape()));
  MOE_TRY(apply_frozen(config_.training, model_->params()));
  State& s = *state_;
  s.optimizer = make_optimizer(model_->params(), config_.training.optimizer);
  if (s.adapter) s.adapter = std::make_unique<ExpertAdapter>(*model_);
  return Status::ok();
}

nlohmann::ordered_json TrainResult::to_json(const DataSchema& schema) const {
  const std::vector<std::string>& names = schema.labels.task == TaskKind::kClassification
                                              ? schema.labels.class_names
                                              : schema.labels.columns;
  nlohmann::ordered_json j;
  j["epochs"] = epochs;
  j["steps"] = steps;
  j["stopped_early"] = stopped_early;
  j["budget"] = budget;
  j["best_epoch"] = best_epoch;
  j["metric"] = metric;
  j["best_value"] = best_value;
  j["validation"] = has_validation ? validation.to_json(names) : nlohmann::ordered_json();
  j["test"] = has_test ? test.to_json(names) : nlohmann::ordered_json();
  j["seconds"] = seconds;
  j["rows_per_second"] = rows_per_second;
  j["train_seconds"] = train_seconds;
  // A language model's row is a window of S tokens.
  if (schema.format == DataFormat::kCorpus)
    j["tokens_per_second"] = rows_per_second * static_cast<double>(schema.context);
  j["params"] = n_params;
  j["active_params"] = n_active_params;
  j["trainable_params"] = n_trainable_params;
  j["threads"] = threads;
  j["threads_reason"] = threads_reason;
  j["ranks"] = ranks;
  if (ranks > 1) {
    j["ranks_via"] = ranks_via;
    j["collective_seconds"] = collective_seconds;
  }
  j["warnings"] = warnings;
  return j;
}

}  // namespace moe
