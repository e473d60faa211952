// ModelConfig: the model as the config's `model` section describes it, as plain structs (read,
// validated and written by train/config.h; docs/config.md lists every key).
//
// Dims: D model width · F expert hidden width · E experts · K experts per token · G groups.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moe/moe/experts.h"
#include "moe/moe/gate.h"
#include "moe/moe/moe_layer.h"

namespace moe {

enum class NormChoice { kRms, kLayer, kNone };

// Adaptive experts (model.moe.adapt; train/adapt.h): after each epoch of training, an expert that
// has held more than split_above times the mean share of the layer's routed slots for `epochs`
// epochs in a row is split in two (train/surgery.h), or, failing that, one that has held less
// than remove_below times the mean for as long is removed; at most one change per layer and
// epoch, the expert count kept within [min_experts, max_experts].
struct AdaptConfig {
  bool enabled = false;
  double split_above = 2.0;
  double remove_below = 0.1;
  int64_t epochs = 2;
  int64_t max_experts = 0;  // resolved when parsed: 0 means twice the layer's experts
  int64_t min_experts = 0;  // resolved when parsed: 0 means the gate's k, at least 2
  float noise = 0.01f;      // the split's symmetric perturbation (surgery.h)
};

// One MoE layer as the user writes it. The model fills in d_model when it builds the layer.
struct MoeBlockConfig {
  int64_t n_experts = 8;                  // E
  ExpertConfig expert;                    // every routed expert, unless expert_list is given
  std::vector<ExpertConfig> expert_list;  // heterogeneous experts: one per expert (size E)
  int64_t n_shared = 0;                   // always-on experts with the config `shared`
  ExpertConfig shared;
  // The gate: kind, K, capacity, balancing coefficients and every kind's options. Its d_model
  // and n_experts are filled in by the model (n_experts = E, or E / G in a hierarchy).
  GateConfig gate;
  // Hierarchy (G groups of E / G experts each, routed by a top gate over groups); 0 = flat.
  int64_t n_groups = 0;
  GateConfig top_gate;
  // Compute precision of the SwiGLU experts (and of the dense FFN replacing the layer under
  // model.dense): fp32, or bf16 GEMMs with fp32 accumulation and fp32 master weights. The
  // checkpoint stays fp32 either way.
  Precision precision = Precision::kF32;
  AdaptConfig adapt;
  // Under mpirun: each rank computes the rows every rank routes to its own block of experts
  // (docs/distributed.md). No effect in one process.
  bool expert_parallel = false;

  // The experts each routed slot can go to, resolved: expert_list, or E copies of `expert`.
  std::vector<ExpertConfig> routed_experts() const;
};

// The layer as moe/moe_layer.h builds it, at model width D (gate sizes filled in).
MoeConfig moe_layer_config(const MoeBlockConfig& c, int64_t width);

// Routed slots per token of the layer: the gate's K (E for dense softmax and soft Gumbel, 1 for
// hash and hard Gumbel), for expert choice its capacity factor (1 when 0), and in a hierarchy
// the top gate's slots times the group gate's.
double moe_slots_per_token(const MoeBlockConfig& c);

// The dense FFN that replaces an MoE layer when model.dense is set: the kind of the layer's
// first expert with hidden width round(K · mean routed F) + Σ shared F_s, K the slots per token
// above, so it has the MoE layer's active width per row.
ExpertConfig dense_equivalent(const MoeBlockConfig& c);

struct TrunkConfig {
  std::vector<int64_t> hidden;  // widths of the dense residual FFN blocks before the MoE blocks
  Activation activation = Activation::kGelu;  // their MLP activation
  NormChoice norm = NormChoice::kRms;         // pre-norm of every block (and the final norm)
  // A norm before the head too. Without it the logits keep the residual stream's magnitude,
  // which for TF-IDF bags carries how much evidence a document holds.
  bool final_norm = true;
  float norm_eps = 1e-5f;
  float dropout = 0.0f;  // on every block's output before the residual add
};

enum class InputBag { kWeightedSum, kSum, kMean };  // text input: how a document's ids pool

// Which blocks of a language model have an MoE FFN (the others a dense SwiGLU FFN).
enum class MoeLayers {
  kAll,         // every block (Switch, Mixtral)
  kEveryOther,  // blocks 1, 3, 5, … (GShard)
  kNone,        // none: a dense Transformer
};

// The decoder-only language model (model/lm_model.h), for token data (data.format "corpus").
// Its MoE FFN is model.moe: one object, the same for every MoE block, or a list with one object
// per MoE block (what `moe experts` writes when it changes one layer); model.width is D.
struct LmConfig {
  int64_t layers = 4;           // L blocks
  int64_t heads = 4;            // H query heads; D % H == 0, head width D / H even (RoPE)
  int64_t kv_heads = 0;         // G key/value heads (grouped-query attention); 0: G = H
  int64_t context = 128;        // S tokens a window predicts
  bool tie_embeddings = true;   // the head is the token embedding table
  double rope_theta = 10000.0;  // RoPE base
  MoeLayers moe_layers = MoeLayers::kAll;
  // Hidden width of the dense FFNs of blocks without MoE (moe_layers every_other or none); 0: the
  // MoE layer's active width (dense_equivalent), so a block costs the same FLOPs whichever FFN it
  // has. MoE blocks replaced under model.dense always take the active width.
  int64_t ffn_hidden = 0;
  float norm_eps = 1e-5f;  // every RMSNorm (Mixtral's value)

  int64_t n_kv_heads() const { return kv_heads > 0 ? kv_heads : heads; }
  int64_t n_moe_blocks() const {
    int64_t n = 0;
    for (int64_t l = 0; l < layers; ++l) n += block_is_moe(l) ? 1 : 0;
    return n;
  }
  bool block_is_moe(int64_t l) const {
    return moe_layers == MoeLayers::kAll || (moe_layers == MoeLayers::kEveryOther && l % 2 == 1);
  }
};

// The encoder-decoder translation model (model/translation_model.h), for sentence pairs
// (data.format "pairs"): an encoder stack over the source sentence, a decoder stack with causal
// self-attention and cross-attention to the encoder's output, one vocabulary for both sides.
// Its MoE FFNs are model.moe: one object for every MoE block, or a list of one per MoE block
// (the encoder's in block order, then the decoder's).
struct TranslationConfig {
  int64_t encoder_layers = 3;
  int64_t decoder_layers = 3;
  int64_t heads = 4;            // H query heads of every attention; D % H == 0, D / H even (RoPE)
  int64_t kv_heads = 0;         // G key/value heads; 0: G = H
  int64_t max_tokens = 128;     // per sentence and side, the source's eos and target's bos included
  bool tie_embeddings = true;   // the output head is the token embedding table
  double rope_theta = 10000.0;  // RoPE base of the self-attentions (cross-attention has none)
  MoeLayers encoder_moe = MoeLayers::kEveryOther;  // which encoder blocks have an MoE FFN
  MoeLayers decoder_moe = MoeLayers::kEveryOther;  // which decoder blocks have one
  int64_t ffn_hidden = 0;  // dense FFN width of the other blocks; 0: the MoE layer's active width
  float norm_eps = 1e-5f;

  int64_t n_kv_heads() const { return kv_heads > 0 ? kv_heads : heads; }
  static bool is_moe(MoeLayers which, int64_t l) {
    return which == MoeLayers::kAll || (which == MoeLayers::kEveryOther && l % 2 == 1);
  }
  bool encoder_block_is_moe(int64_t l) const { return is_moe(encoder_moe, l); }
  bool decoder_block_is_moe(int64_t l) const { return is_moe(decoder_moe, l); }
  int64_t n_moe_blocks() const {
    int64_t n = 0;
    for (int64_t l = 0; l < encoder_layers; ++l) n += encoder_block_is_moe(l) ? 1 : 0;
    for (int64_t l = 0; l < decoder_layers; ++l) n += decoder_block_is_moe(l) ? 1 : 0;
    return n;
  }
};

struct ModelConfig {
  int64_t width = 64;          // D, the residual stream width
  float input_dropout = 0.0f;  // after the input stage
  // Text input, training only: each id of a document is dropped with this probability and the
  // kept ones scaled by 1/(1 − p) (word dropout, Iyyer et al. 2015), so the model cannot lean
  // on a few memorised words.
  float word_dropout = 0.0f;
  InputBag bag = InputBag::kWeightedSum;  // text input only
  // λ of an L2 penalty (λ/2)·‖W_in‖² on the input weights (the text embedding table), added to
  // the gradient: coupled, so Adam scales it per coordinate like the data gradient, which pulls
  // the rows of rare words harder than decoupled training.weight_decay does.
  float input_l2 = 0.0f;
  TrunkConfig trunk;
  std::vector<MoeBlockConfig> moe;  // the MoE blocks, in order (may be empty: a dense model)
  bool dense = false;               // replace each MoE block by dense_equivalent()
  LmConfig lm;                      // token data only
  TranslationConfig translation;    // sentence pairs only
  // Set from data.format ("corpus") when the config is parsed, not a key of its own: the model
  // is the language model (model/lm_model.h) rather than the row model.
  bool language_model = false;
  // Set from data.format ("pairs"): the translation model (model/translation_model.h).
  bool translation_model = false;
  // model.moe was written as a JSON array (kept so the resolved config has the same form and
  // `--set model.moe.0.k=...` keeps working); one layer written as an object stays an object.
  bool moe_list = false;

  // A language or translation model's MoE layer `i` (in block order): model.moe[i], or the one
  // object all share.
  const MoeBlockConfig& lm_moe(int64_t i) const {
    return moe.size() == 1 ? moe[0] : moe[static_cast<size_t>(i)];
  }
};

}  // namespace moe
