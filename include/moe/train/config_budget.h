// How many weight-matrix elements a model configuration asks for, computed from the
// configuration alone, before anything is allocated, and whether training it fits in memory.
//
// Dims: D model width · D_in input features (V for text) · C outputs · E experts · F expert
// hidden width · G groups.
//
// A checkpoint's model.json and a training config are user input: a config with width 2^20 or a
// million experts must be refused by a check, not by an allocation failure. The count covers every
// weight matrix the model declares (input, trunk and dense blocks, routers, routed and shared
// experts, head) and leaves out vectors (biases, norm gains), so it is a lower bound of the
// parameter count: a weights file holding fewer elements cannot belong to the config (the
// checkpoint loader), and training needs at least that many weights' worth of memory (the
// trainer). Arithmetic saturates at INT64_MAX.
#pragma once

#include <cstdint>
#include <string>

#include "moe/core/status.h"
#include "moe/optim/optimizer.h"
#include "moe/train/config.h"

namespace moe {

int64_t model_matrix_elements(const ModelConfig& config, int64_t n_features, int64_t n_outputs);

// The memory training may use: the machine's physical memory (sysconf), or the process's
// address-space limit (ulimit -v) when that is lower; `what` names it and its size in messages.
struct MemoryLimit {
  int64_t bytes = INT64_MAX;
  std::string what;
};
MemoryLimit training_memory_limit();

// The least memory training the model takes: every weight-matrix element with its gradient and
// the optimizer's state (Adam: two moments, SGD: momentum when μ > 0), 4 bytes each, plus, for
// a layer whose model.moe.precision is bf16, the 2-byte bf16 copy of each SwiGLU matrix (routed,
// shared or the dense FFN). Activations and vectors come on top, so this is a lower bound.
int64_t training_weight_bytes(const ModelConfig& config, const OptimizerConfig& optimizer,
                              int64_t n_features, int64_t n_outputs);

// Refuses, before anything is allocated, a model whose training_weight_bytes exceed the limit.
// The message names the key whose size accounts for most of it (model.width,
// model.trunk.hidden.I, and per MoE layer experts, expert.hidden, expert_list.J.hidden, shared,
// shared_expert.hidden), its value, the memory needed and the limit.
// Then check_expert_budget, `batch_size` the training batch (evaluation uses at least 256).
Status check_training_memory(const ModelConfig& config, const OptimizerConfig& optimizer,
                             int64_t n_features, int64_t n_outputs, const MemoryLimit& limit,
                             int64_t batch_size = 256);

// What grows with the number of experts beyond their weights, for every routing level of every
// MoE layer (a flat layer has one level of E experts; a hierarchical one also a top level of G
// and G levels of E/G): per batch of T rows the router's logits and probabilities with their
// gradients [T, E] (4 floats per entry); the statistics moe inspect and <run>/inspect.json keep,
// co-activation [E, E] and class × expert [C, E] tables (counts, shares and the joint, 8 bytes
// each) with their JSON form (the value and its text); and kExpertOverheadBytes of bookkeeping
// per expert (its layers, names and slots in the routing plan).
inline constexpr int64_t kExpertOverheadBytes = 1024;
int64_t expert_statistics_bytes(const ModelConfig& config, int64_t n_outputs, int64_t batch_size);

// The size inspect.json (or moe inspect --format json) takes for those tables, about 15 bytes of
// indented JSON per value, and the most moe writes: an E × E table of 4096 experts is 250 MiB
// already, one of 16000 experts 3.6 GiB, which no report or editor opens.
inline constexpr int64_t kMaxInspectJsonBytes = int64_t{256} << 20;
int64_t inspect_json_bytes(const ModelConfig& config, int64_t n_outputs);

// Refuses, with the experts key of the layer to blame (model.moe.experts, model.moe.I.experts,
// model.moe.expert_list) and its value, a model whose per-expert statistics and weights need more
// memory than `limit` (`weight_bytes`: what the weights take already, 0 for a loaded model), or
// whose inspect.json would exceed kMaxInspectJsonBytes. Training checks it before the model is
// built (check_training_memory calls it); moe inspect before it runs the model.
Status check_expert_budget(const ModelConfig& config, int64_t n_outputs, int64_t batch_size,
                           int64_t weight_bytes, const MemoryLimit& limit);

}  // namespace moe
