// Model: what the trainer, evaluation, checkpoints and inspection drive, whatever the network.
//
// Dims: T rows (or tokens) in a batch · C outputs per row · E experts of a MoE layer.
//
// A kind of model (row_model.h: the classifier / regressor over tabular, text and image rows)
// derives from Model, builds its parameters into params() and registers each MoE layer it holds
// (add_moe_layer). What every kind shares lives here, over those registrations: the auxiliary
// losses, the gates' after-step updates and their persistent state, parameter counts. The
// trainer's step is then the same for every kind:
//
//   output = forward(batch, training, rng, arena)           [T, C]
//   loss   = task_loss(batch, output, doutput, options)     + aux_loss()
//   backward(doutput, arena); optimizer step; after_step()
//
// create() is the one place that chooses the kind from the config and the data's shape.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"
#include "moe/data/dataset.h"
#include "moe/layers/loss.h"
#include "moe/model/model_config.h"
#include "moe/moe/moe_layer.h"

namespace moe {

// A gate's persistent state (not a parameter): what checkpoints save beside the weights.
struct GateState {
  std::string name;         // the gate's parameter prefix: "blocks.2.moe.router",
                            // "blocks.2.moe.groups.1.router"
  int64_t step = 0;         // after_step calls so far (the Gumbel temperature's position)
  std::vector<float> bias;  // [E] the sigmoid gate's selection bias; empty for other kinds
};

// Which end of the network a parameter serves: its rows stand for the data's input ids
// (features, words, pixels, tokens), for its outputs (classes, targets, tokens), for both (a
// language model's tied embedding), or for neither. A warm start (train/warm_start.h) reuses an
// end's parameters only when that end of the data means what it meant before.
enum class ParamEnd { kInner, kInput, kOutput, kBoth };

// How the task loss is taken (training.* keys).
struct TaskLossOptions {
  CrossEntropyOptions cross_entropy;  // classification: class weights, label smoothing
  bool huber = false;                 // regression: Huber with huber_delta, else MSE
  float huber_delta = 1.0f;
};

class Model {
 public:
  // Checks the config against the data's shape and builds the model the two describe, its
  // parameters zero-filled; call init() or load values into params().
  static Result<std::unique_ptr<Model>> create(const ModelConfig& config, const DataShape& shape);
  virtual ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const DataShape& shape() const { return shape_; }
  ParamStore& params() { return store_; }
  const ParamStore& params() const { return store_; }

  // Every parameter from its own stream of Rng(seed).
  virtual void init(uint64_t seed) = 0;
  // One batch -> the output [T, C], memory from `arena`, which must stay alive and unreset until
  // backward returns. `rng` is this step's noise source (dropout, noisy gates); the caller forks
  // it per step.
  virtual Tensor forward(const Batch& batch, bool training, const Rng& rng, Arena& arena) = 0;
  // doutput [T, C] -> every parameter gradient (+=), the MoE layers' weighted auxiliary losses
  // included. Call after a training forward, with the same arena.
  virtual void backward(Tensor doutput, Arena& arena) = 0;
  // The mean task loss of `output` against the batch's labels or targets; its gradient is
  // written (=) into doutput [T, C].
  virtual double task_loss(const Batch& batch, Tensor output, Tensor doutput,
                           const TaskLossOptions& options) const = 0;
  virtual int64_t n_blocks() const = 0;
  // The end of the network parameter `name` serves (ParamEnd).
  virtual ParamEnd param_end(const std::string& name) const = 0;

  // Once per optimizer step: the gates' bias balancing and temperature schedules; `sum_loads`
  // as Gate::after_step (a data-parallel job's trainer passes it).
  void after_step(const LoadSum& sum_loads = {});
  // Every MoE layer's MoeLayer::set_aux_grad_scale and set_expert_parallel.
  void set_aux_grad_scale(float scale);
  void set_expert_parallel(Communicator* comm);
  // Seconds the MoE layers spent in expert-parallel exchanges in the last forward and backward.
  double expert_exchange_seconds() const;

  // The MoE layers in the order they were registered (block order).
  int64_t n_moe_layers() const { return static_cast<int64_t>(moe_.size()); }
  const MoeLayer& moe_layer(int64_t i) const;
  const std::string& moe_layer_name(int64_t i) const;  // "blocks.2.moe"
  int64_t moe_layer_block(int64_t i) const;            // its block index l
  // Σ over MoE layers of the weighted auxiliary losses of the last forward (the term the
  // training loss adds, whose gradient backward applies).
  double aux_loss() const;

  int64_t n_params() const;  // every parameter element
  // Parameters one row uses: everything but the routed experts, plus for each MoE layer its
  // slots per token (K; expert choice: its capacity factor) times the mean routed expert's size.
  // Embedding tables count whole.
  int64_t n_active_params() const;

  // Every parameter by name, in store order (views into params()).
  std::vector<NamedTensor> named_parameters() const;

  std::vector<GateState> gate_states() const;
  // Restores states saved by gate_states(); every gate must appear once with a bias of its size.
  Status set_gate_states(const std::vector<GateState>& states);

 protected:
  Model(ModelConfig config, DataShape shape);
  // A MoE layer of block `block`, its parameters under `name`, routing `slots_per_token` slots
  // per row (model_config.h: moe_slots_per_token). The layer must outlive the model's use of it.
  void add_moe_layer(std::string name, int64_t block, MoeLayer* layer, double slots_per_token);

  ModelConfig config_;
  DataShape shape_;
  ParamStore store_;

 private:
  struct MoeSite {
    std::string name;  // "blocks.2.moe"
    int64_t block = 0;
    MoeLayer* layer = nullptr;
    double slots_per_token = 1.0;
  };
  const MoeSite& site(int64_t i) const;
  std::vector<MoeSite> moe_;
};

}  // namespace moe
