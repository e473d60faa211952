// Keys that are set but do nothing in the configuration they belong to: for every key whose use
// depends on other keys (a gate kind's own options, expert-kind options, text-only and
// tabular-only data options, an optimizer's or a schedule's own options, ...), the rule that
// says when it is read. See include/moe/train/config.h and docs/config.md, "Keys that do nothing".
//
// Dims: E experts · K experts per token · G groups.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "moe/train/config.h"
#include "train/config_reader.h"

namespace moe {

namespace {

using namespace config_detail;  // NOLINT(google-build-using-namespace): this file's own helpers

// The keys set explicitly, sorted, and the warnings found so far.
class Checker {
 public:
  explicit Checker(std::vector<std::string> keys) : keys_(std::move(keys)) {
    std::sort(keys_.begin(), keys_.end());
  }

  // `key` itself, or a key below it ("data.label.0" sets "data.label").
  bool set(const std::string& key) const {
    if (std::binary_search(keys_.begin(), keys_.end(), key)) return true;
    const std::string below = key + ".";
    const auto it = std::lower_bound(keys_.begin(), keys_.end(), below);
    return it != keys_.end() && it->compare(0, below.size(), below) == 0;
  }

  // When `no_effect` holds, warns about `key` if it was set. Returns `no_effect`, so a caller
  // can try the next reason only when this one did not apply: one warning per key.
  bool check(const std::string& key, bool no_effect, const std::string& reason) {
    if (no_effect && set(key)) warnings_.push_back({key, reason});
    return no_effect;
  }

  std::vector<ConfigWarning> take() { return std::move(warnings_); }

 private:
  std::vector<std::string> keys_;
  std::vector<ConfigWarning> warnings_;
};

// ---------------------------------------------------------------------------------------------
// data

// Token data: a corpus (format corpus) or sentence pairs (format pairs), both read with the
// subword tokenizer of data.corpus. Their files have no columns, labels or classes, and a test
// set is a file of its own (data.test).
void check_token_data(Checker& ck, const DataConfig& d) {
  const bool corpus = d.format == DataFormat::kCorpus;
  for (const char* key :
       {"delimiter", "quoting", "label", "ignore_columns", "categorical_columns", "missing",
        "standardize_targets", "max_categories", "text", "idx", "split.test", "split.stratify"})
    ck.check(fmt::format("data.{}", key), true,
             corpus ? "a corpus is plain text (data.format corpus) and does not use it"
                    : "sentence pairs (data.format pairs) are two sentences a line and do not "
                      "use it");
  // Validation is held out of the training data only without a validation file
  // (corpus_source.cpp: the tail of the token stream).
  ck.check("data.split.validation", !d.validation.empty(),
           "data.validation gives the validation set");
  if (!d.corpus.tokenizer_model.empty())
    for (const char* key :
         {"tokenizer", "vocab_size", "byte_fallback", "character_coverage", "max_sentences"})
      ck.check(fmt::format("data.corpus.{}", key), true,
               "data.corpus.tokenizer_model gives the tokenizer: none is trained");
  const bool every_line = d.corpus.tokenizer.max_sentences == 0;
  if (corpus) {
    // The split is a cut, not a draw: the seed is the tokenizer's.
    ck.check("data.split.seed", every_line,
             "a corpus is split at a line or document start, not at random; the seed only "
             "samples the tokenizer's data.corpus.max_sentences lines, and that is 0 (every line)");
    return;
  }
  // Pairs are held out at random: the seed draws them, and samples the tokenizer's lines.
  const bool held_out = d.validation.empty() && d.split.validation > 0;
  ck.check("data.split.seed", !held_out && every_line,
           "nothing is held out of the training pairs (data.validation is given or "
           "data.split.validation is 0) and the tokenizer trains on every line "
           "(data.corpus.max_sentences is 0)");
}

void check_data(Checker& ck, const DataConfig& d) {
  const char* format = enum_name(kFormats, d.format);
  const bool tokens = d.format == DataFormat::kCorpus || d.format == DataFormat::kPairs;
  ck.check("data.corpus", !tokens,
           fmt::format("only data.format corpus and pairs use it (the format is {})", format));
  ck.check("data.pairs", d.format != DataFormat::kPairs,
           fmt::format("only data.format pairs uses it (the format is {})", format));
  if (tokens) return check_token_data(ck, d);
  const bool text = d.format == DataFormat::kText, idx = d.format == DataFormat::kIdx;
  const bool tabular = !text && !idx;
  const bool regression = d.task == TaskKind::kRegression;

  ck.check("data.delimiter", !text,
           fmt::format("only format text reads it; csv always uses a comma and tsv a tab (the "
                       "format is {})",
                       format));
  ck.check("data.quoting", idx,
           "format idx reads binary files; only CSV and TSV files (formats csv, tsv and text) "
           "have quoting");
  if (idx) {
    ck.check("data.label", true,
             "format idx reads its labels from data.idx.train_labels (and the other label files)");
  }
  for (const char* key : {"ignore_columns", "categorical_columns", "missing", "max_categories"})
    ck.check(
        fmt::format("data.{}", key), !tabular,
        fmt::format("only tabular data (format csv or tsv) uses it (the format is {})", format));
  if (!ck.check("data.standardize_targets", !regression,
                "only regression uses it (data.task is classification)")) {
    ck.check(
        "data.standardize_targets", !tabular,
        fmt::format("only tabular data (format csv or tsv) uses it (the format is {})", format));
  }
  for (const char* key : {"column", "lowercase", "strip_html", "stop_words", "stop_words_file",
                          "min_count", "max_vocab", "bigrams", "bigram_buckets", "sublinear_tf"})
    ck.check(fmt::format("data.text.{}", key), !text,
             fmt::format("only format text uses it (the format is {})", format));
  for (const char* key : {"train_images", "train_labels", "validation_images", "validation_labels",
                          "test_images", "test_labels", "n_classes"})
    ck.check(fmt::format("data.idx.{}", key), !idx,
             fmt::format("only format idx uses it (the format is {})", format));

  // The split holds out what has no file of its own (data_source.cpp, load_table_data).
  const bool validation_file = idx ? !d.idx.validation_images.empty() : !d.validation.empty();
  const bool test_file = idx ? !d.idx.test_images.empty() : !d.test.empty();
  const char* validation_key = idx ? "data.idx.validation_images" : "data.validation";
  const char* test_key = idx ? "data.idx.test_images" : "data.test";
  ck.check("data.split.validation", validation_file,
           fmt::format("{} gives the validation set", validation_key));
  ck.check("data.split.test", test_file, fmt::format("{} gives the test set", test_key));
  const bool splits =
      (!validation_file && d.split.validation > 0) || (!test_file && d.split.test > 0);
  const char* no_split =
      "nothing is held out of the training data (every part has its own file or a split ratio "
      "of 0)";
  ck.check("data.split.seed", !splits, no_split);
  if (!ck.check("data.split.stratify", !splits, no_split))
    ck.check("data.split.stratify", regression,
             "only classification stratifies (data.task is regression)");
}

// ---------------------------------------------------------------------------------------------
// model: experts

constexpr const char* kExpertFields[] = {"kind", "hidden", "depth", "activation", "bias"};

bool expert_uses(ExpertKind kind, const std::string& field) {
  if (field == "hidden") return kind != ExpertKind::kLinear;  // linear: W1 [D, D]
  if (field == "depth" || field == "activation") return kind == ExpertKind::kMlp;
  if (field == "bias") return kind != ExpertKind::kSwiglu;  // SwiGLU has no biases
  return true;                                              // kind
}

// The expert kinds that read `field`, for messages.
const char* field_users(const std::string& field) {
  if (field == "hidden") return "swiglu and mlp experts";
  if (field == "bias") return "linear and mlp experts";
  return "mlp experts";
}

std::string kind_names(const std::vector<ExpertKind>& kinds) {
  std::vector<std::string> names;
  for (ExpertKind k : kinds) {
    std::string name = enum_name(kExpertKindNames, k);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i == 0 ? "" : " and ") + names[i];
  return s;
}

// What check_experts' pieces share: the layer, and what model.dense makes of it.
struct ExpertsAt {
  const std::string& at;  // "model.moe.0"
  const MoeBlockConfig& b;
  bool dense;
  bool listed;
  ExpertKind dense_kind;  // the kind of the dense FFN under model.dense
  std::string dense_is;   // "model.dense makes this layer one swiglu FFN"
};

// expert.<field>: the experts that inherit it.
void check_default_field(Checker& ck, const ExpertsAt& x, const std::string& field) {
  const std::string& at = x.at;
  const MoeBlockConfig& b = x.b;
  const bool dense = x.dense, listed = x.listed, hidden = field == "hidden";
  const ExpertKind dense_kind = x.dense_kind;
  const std::string& dense_is = x.dense_is;

  std::vector<ExpertKind> users;
  const auto inherits = [&](const std::string& own) { return !ck.set(own); };
  if (!dense) {
    if (!listed) users.push_back(b.expert.kind);
    for (size_t i = 0; i < b.expert_list.size(); ++i)
      if (inherits(fmt::format("{}.expert_list.{}.{}", at, i, field)))
        users.push_back(b.expert_list[i].kind);
    if (b.n_shared > 0 && inherits(fmt::format("{}.shared_expert.{}", at, field)))
      users.push_back(b.shared.kind);
  } else if (hidden) {  // every hidden width adds up into the dense FFN's
    bool any = !listed || (b.n_shared > 0 && inherits(at + ".shared_expert.hidden"));
    for (size_t i = 0; i < b.expert_list.size() && !any; ++i)
      any = inherits(fmt::format("{}.expert_list.{}.hidden", at, i));
    if (any) users.push_back(dense_kind);
  } else if (!listed || inherits(fmt::format("{}.expert_list.0.{}", at, field))) {
    users.push_back(dense_kind);
  }
  const std::string key = fmt::format("{}.expert.{}", at, field);
  if (!ck.check(key, users.empty(),
                dense ? "model.dense builds the dense FFN from the first expert of expert_list, "
                        "which sets its own"
                      : "every expert it would apply to (in expert_list or shared_expert) sets "
                        "its own")) {
    const bool used = std::any_of(users.begin(), users.end(),
                                  [&](ExpertKind k) { return expert_uses(k, field); });
    ck.check(key, !used,
             dense ? fmt::format("only {} use it ({})", field_users(field), dense_is)
                   : fmt::format("only {} use it (the experts it applies to are {})",
                                 field_users(field), kind_names(users)));
  }
}

// expert_list.<i>.<field>
void check_list_field(Checker& ck, const ExpertsAt& x, const std::string& field) {
  const std::string& at = x.at;
  const MoeBlockConfig& b = x.b;
  const bool dense = x.dense, hidden = field == "hidden";
  const ExpertKind dense_kind = x.dense_kind;
  const std::string& dense_is = x.dense_is;
  for (size_t i = 0; i < b.expert_list.size(); ++i) {
    const std::string entry = fmt::format("{}.expert_list.{}.{}", at, i, field);
    if (!dense) {
      const ExpertKind kind = b.expert_list[i].kind;
      ck.check(entry, !expert_uses(kind, field),
               fmt::format("only {} use it (this expert is {})", field_users(field),
                           enum_name(kExpertKindNames, kind)));
    } else if (hidden || i == 0) {
      ck.check(entry, !expert_uses(dense_kind, field),
               fmt::format("only {} use it ({})", field_users(field), dense_is));
    } else {
      ck.check(entry, true,
               "model.dense builds the dense FFN from the first expert's kind and options");
    }
  }
}

// shared_expert.<field>
void check_shared_field(Checker& ck, const ExpertsAt& x, const std::string& field) {
  const std::string& at = x.at;
  const MoeBlockConfig& b = x.b;
  const bool dense = x.dense, hidden = field == "hidden";
  const ExpertKind dense_kind = x.dense_kind;
  const std::string& dense_is = x.dense_is;
  const std::string no_shared = fmt::format("the layer has no shared experts ({}.shared is 0)", at);
  const std::string shared = fmt::format("{}.shared_expert.{}", at, field);
  if (ck.check(shared, b.n_shared == 0, no_shared)) return;
  if (!dense) {
    ck.check(shared, !expert_uses(b.shared.kind, field),
             fmt::format("only {} use it (the shared experts are {})", field_users(field),
                         enum_name(kExpertKindNames, b.shared.kind)));
  } else if (hidden) {
    ck.check(shared, !expert_uses(dense_kind, field),
             fmt::format("only {} use it ({})", field_users(field), dense_is));
  } else {
    ck.check(shared, true,
             "model.dense builds the dense FFN from the first routed expert's kind and options");
  }
}

// The layer's experts: `expert` (a default for expert_list entries and shared_expert: each
// inherits a field it does not set), each expert_list entry, and shared_expert. Under
// model.dense the layer is one FFN of the first routed expert's kind and options whose hidden
// width sums every routed and shared expert's (dense_equivalent).
void check_experts(Checker& ck, const std::string& at, const MoeBlockConfig& b, bool dense) {
  const bool listed = !b.expert_list.empty();
  const ExpertKind dense_kind = listed ? b.expert_list.front().kind : b.expert.kind;
  const std::string dense_is = fmt::format("model.dense makes this layer one {} FFN",
                                           enum_name(kExpertKindNames, dense_kind));
  const ExpertsAt x{at, b, dense, listed, dense_kind, dense_is};
  for (const char* f : kExpertFields) {
    check_default_field(ck, x, f);
    check_list_field(ck, x, f);
    check_shared_field(ck, x, f);
  }
}

// ---------------------------------------------------------------------------------------------
// model: gates

// A gate's keys beside its kind, relative to the gate's path ("model.moe" or
// "model.moe.hierarchy").
constexpr const char* kGateKeys[] = {"k",
                                     "gate.kind",
                                     "gate.renormalize",
                                     "gate.router_bias",
                                     "gate.softmax_after_topk",
                                     "gate.tau_start",
                                     "gate.tau_min",
                                     "gate.tau_decay",
                                     "gate.hard",
                                     "gate.bias_update_rate",
                                     "gate.sinkhorn_iterations",
                                     "capacity_factor",
                                     "min_capacity",
                                     "balance.switch",
                                     "balance.importance",
                                     "balance.load",
                                     "balance.z"};

// The gate at `at`: its kind's own options (moe/gate.h), capacity, balancing. Under model.dense
// there is no gate: only what sets the dense FFN's width (slots per token: k, hard Gumbel,
// expert choice's capacity factor) still counts.
void check_gate(Checker& ck, const std::string& at, const GateConfig& g, bool dense) {
  const GateKind kind = g.kind;
  const std::string this_gate = fmt::format("(this gate is {})", enum_name(kGateKindNames, kind));
  const std::string dense_reason = "model.dense replaces this MoE layer by a dense FFN";
  const bool topk = kind == GateKind::kTopKSoftmax, gumbel = kind == GateKind::kGumbelSoftmax;
  const bool sigmoid = kind == GateKind::kSigmoidBias, sinkhorn = kind == GateKind::kSinkhorn;
  const bool noisy = kind == GateKind::kNoisyTopK, hash = kind == GateKind::kHash;
  const bool expert_choice = kind == GateKind::kExpertChoice;
  const auto key = [&](const char* k) { return fmt::format("{}.{}", at, k); };
  // A routing option: read by some gate kinds, and by no gate under model.dense.
  const auto routing = [&](const char* k, bool read, const std::string& only) {
    if (!ck.check(key(k), !read, fmt::format("{} {}", only, this_gate)))
      ck.check(key(k), dense, dense_reason);
  };

  ck.check(key("k"), !(topk || noisy || sigmoid || sinkhorn),
           fmt::format("only the topk_softmax, noisy_topk, sigmoid_bias and sinkhorn gates take "
                       "k {}",
                       this_gate));
  if (!ck.check(key("gate.renormalize"), topk && g.softmax_after_topk,
                fmt::format("{}.gate.softmax_after_topk is true: the softmax over the K chosen "
                            "already sums to 1",
                            at)))
    routing("gate.renormalize", topk || sigmoid || sinkhorn,
            "only the topk_softmax, sigmoid_bias and sinkhorn gates use it");
  routing("gate.softmax_after_topk", topk, "only the topk_softmax gate uses it");
  routing("gate.router_bias", !hash, "hash routing has no router");
  for (const char* k : {"gate.tau_start", "gate.tau_min", "gate.tau_decay"})
    routing(k, gumbel, "only the gumbel_softmax gate uses it");
  // gate.hard sets the slots per token (1 instead of E), so the dense FFN's width too.
  ck.check(key("gate.hard"), !gumbel,
           fmt::format("only the gumbel_softmax gate uses it {}", this_gate));
  routing("gate.bias_update_rate", sigmoid, "only the sigmoid_bias gate uses it");
  routing("gate.sinkhorn_iterations", sinkhorn, "only the sinkhorn gate uses it");
  // Expert choice's capacity factor is its slots per token, which the dense FFN's width keeps.
  ck.check(key("capacity_factor"), dense && !expert_choice, dense_reason);
  if (!ck.check(key("min_capacity"), !expert_choice && g.capacity_factor <= 0,
                fmt::format("{}.capacity_factor is 0 (dropless): no expert has a capacity", at)))
    ck.check(key("min_capacity"), dense, dense_reason);
  for (const char* k : {"balance.switch", "balance.importance", "balance.z"})
    routing(k, !hash, "only a gate with a router has balancing losses");
  routing("balance.load", noisy, "only the noisy_topk gate has the load loss");
}

void check_moe_block(Checker& ck, const std::string& at, const MoeBlockConfig& b, bool dense) {
  check_experts(ck, at, b, dense);
  check_gate(ck, at, b.gate, dense);
  for (const char* k :
       {"split_above", "remove_below", "epochs", "max_experts", "min_experts", "noise"}) {
    const std::string key = fmt::format("{}.adapt.{}", at, k);
    if (!ck.check(key, !b.adapt.enabled, fmt::format("{}.adapt.enabled is false", at)))
      ck.check(key, dense, "model.dense replaces this MoE layer by a dense FFN");
  }
  ck.check(at + ".adapt.enabled", dense && b.adapt.enabled,
           "model.dense replaces this MoE layer by a dense FFN");
  const std::string top = at + ".hierarchy";
  if (b.n_groups > 0) {
    check_gate(ck, top, b.top_gate, dense);
    return;
  }
  for (const char* k : kGateKeys)
    ck.check(fmt::format("{}.{}", top, k), true,
             fmt::format("{}.groups is 0 (a flat layer has no top gate)", top));
}

// Every layer of model.moe, by index when it was written as a list.
void check_moe_blocks(Checker& ck, const ModelConfig& m) {
  for (size_t l = 0; l < m.moe.size(); ++l)
    check_moe_block(ck, m.moe_list ? fmt::format("model.moe.{}", l) : std::string("model.moe"),
                    m.moe[l], m.dense);
}

// The language model and the translation model have their own blocks (lm_model.h,
// translation_model.h): the row model's keys do nothing.
void check_token_model(Checker& ck, const ModelConfig& m) {
  const char* model = m.language_model ? "a language model (data.format corpus)"
                                       : "a translation model (data.format pairs)";
  for (const char* key : {"input_dropout", "word_dropout", "bag", "input_l2", "trunk"})
    ck.check(fmt::format("model.{}", key), true, fmt::format("{} does not use it", model));
  if (m.language_model) {
    ck.check("model.dense", m.lm.moe_layers == MoeLayers::kNone,
             "model.lm.moe_layers is none: the model has no MoE layer");
    ck.check("model.lm.ffn_hidden", m.lm.moe_layers == MoeLayers::kAll,
             "every block is an MoE layer (model.lm.moe_layers all); their dense twins under "
             "model.dense take the active width");
  } else {
    const TranslationConfig& t = m.translation;
    ck.check("model.dense", t.n_moe_blocks() == 0,
             "model.translation.encoder_moe and decoder_moe leave no MoE block in the model");
    ck.check("model.translation.ffn_hidden",
             t.n_moe_blocks() == t.encoder_layers + t.decoder_layers,
             "every block is an MoE layer (model.translation.encoder_moe and decoder_moe); their "
             "dense twins under model.dense take the active width");
  }
  check_moe_blocks(ck, m);
}

void check_model(Checker& ck, const Config& c) {
  const ModelConfig& m = c.model;
  const char* format = enum_name(kFormats, c.data.format);
  const bool text = c.data.format == DataFormat::kText;
  ck.check(
      "model.lm", !m.language_model,
      fmt::format("only a language model (data.format corpus) uses it (the format is {})", format));
  ck.check("model.translation", !m.translation_model,
           fmt::format("only a translation model (data.format pairs) uses it (the format is {})",
                       format));
  if (m.language_model || m.translation_model) return check_token_model(ck, m);
  for (const char* key : {"word_dropout", "bag"})
    ck.check(fmt::format("model.{}", key), !text,
             fmt::format("only text input (data.format text) uses it (the format is {})", format));
  ck.check("model.trunk.activation", m.trunk.hidden.empty(),
           "model.trunk.hidden is empty: there are no trunk blocks");
  for (const char* key : {"final_norm", "norm_eps"})
    ck.check(fmt::format("model.trunk.{}", key), m.trunk.norm == NormChoice::kNone,
             "model.trunk.norm is none");
  ck.check("model.trunk.dropout", m.trunk.hidden.empty() && m.moe.empty(),
           "the model has no blocks (no model.trunk.hidden, model.moe is empty)");
  ck.check("model.dense", m.moe.empty(), "the model has no MoE layer (model.moe is empty)");
  check_moe_blocks(ck, m);
}

// ---------------------------------------------------------------------------------------------
// training

void check_training(Checker& ck, const TrainingConfig& t, TaskKind task, DataFormat format) {
  const OptimizerKind opt = t.optimizer.kind;
  const std::string this_optimizer =
      fmt::format("(the optimizer is {})", enum_name(kOptimizerKindNames, opt));
  ck.check("training.init_exclude", t.init.empty(),
           "only a warm start (training.init, moe train --init) uses it");
  for (const char* key : {"momentum", "nesterov"})
    ck.check(fmt::format("training.{}", key), opt != OptimizerKind::kSgd,
             fmt::format("only sgd uses it {}", this_optimizer));
  for (const char* key : {"beta1", "beta2", "eps"})
    ck.check(fmt::format("training.{}", key), opt == OptimizerKind::kSgd,
             fmt::format("only adam and adamw use it {}", this_optimizer));
  const std::string this_schedule =
      fmt::format("(the schedule is {})", enum_name(kScheduleKindNames, t.schedule));
  ck.check("training.min_lr", t.schedule != ScheduleKind::kCosine,
           fmt::format("only the cosine schedule uses it {}", this_schedule));
  for (const char* key : {"step_size", "gamma"})
    ck.check(fmt::format("training.{}", key), t.schedule != ScheduleKind::kStep,
             fmt::format("only the step schedule uses it {}", this_schedule));
  const bool regression = task == TaskKind::kRegression;
  for (const char* key : {"label_smoothing", "class_weights"})
    ck.check(fmt::format("training.{}", key), regression,
             "only classification uses it (data.task is regression)");
  // A language model's loss is cross-entropy over its next tokens with label smoothing, and no
  // class weights (LmModel::task_loss); a translation model's over its target tokens, the same
  // way (TranslationModel::task_loss).
  if (!ck.check("training.class_weights", format == DataFormat::kCorpus,
                "a language model (data.format corpus) weights every token the same"))
    ck.check("training.class_weights", format == DataFormat::kPairs,
             "a translation model (data.format pairs) weights every target token the same");
  ck.check("training.loss", !regression, "only regression uses it (data.task is classification)");
  if (!ck.check("training.huber_delta", !regression,
                "only regression uses it (data.task is classification)"))
    ck.check("training.huber_delta", t.loss != RegressionLoss::kHuber,
             "only the huber loss uses it (training.loss is mse)");
}

}  // namespace

std::vector<std::string> config_keys_set(const json& written, const std::string& prefix) {
  std::vector<std::string> keys;
  std::vector<std::pair<const json*, std::string>> pending = {{&written, prefix}};
  while (!pending.empty()) {  // a loop, not recursion: the depth of a --set value is unbounded
    auto [j, at] = pending.back();
    pending.pop_back();
    const bool objects =
        j->is_array() && !j->empty() &&
        std::all_of(j->begin(), j->end(), [](const json& e) { return e.is_object(); });
    if (j->is_object()) {
      for (auto it = j->begin(); it != j->end(); ++it)
        pending.emplace_back(&it.value(), join_path(at, it.key()));
    } else if (objects) {
      for (size_t i = 0; i < j->size(); ++i)
        pending.emplace_back(&(*j)[i], join_path(at, std::to_string(i)));
    } else if (!at.empty()) {
      keys.push_back(at);
    }
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::string ConfigWarning::message() const {
  return fmt::format("{}: has no effect: {}", key, reason);
}

std::vector<ConfigWarning> ineffective_config_keys(const Config& c,
                                                   const std::vector<std::string>& explicit_keys) {
  Checker ck(explicit_keys);
  check_data(ck, c.data);
  check_model(ck, c);
  check_training(ck, c.training, c.data.task, c.data.format);
  return ck.take();
}

}  // namespace moe
