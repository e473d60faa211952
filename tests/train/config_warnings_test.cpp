// Keys that are set but do nothing (ineffective_config_keys): each such key warns once with its
// full path, the same key where it does something does not, a default never does, the keys a
// file and its --set overrides set, and the shipped examples.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "moe/train/config.h"

namespace moe {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// The warnings of a configuration written as `text`, every key in it explicit.
std::vector<ConfigWarning> warnings_of(const std::string& text) {
  const json j = json::parse(text);
  Result<Config> c = parse_config(j, "c.json");
  EXPECT_TRUE(c.is_ok()) << c.status().message() << "\n" << text;
  if (!c.is_ok()) return {};
  return ineffective_config_keys(*c, config_keys_set(j));
}

std::vector<std::string> keys_of(const std::vector<ConfigWarning>& warnings) {
  std::vector<std::string> keys;
  for (const ConfigWarning& w : warnings) keys.push_back(w.key);
  return keys;
}

// One configuration section per case, inside {"data": {"train": "t.csv"}} unless it names data.
struct Case {
  const char* config;
  const char* key;     // the one key that warns
  const char* reason;  // a part of its reason
};

const Case kIneffective[] = {
    // data
    {R"({"data": {"train": "t.csv", "delimiter": ";"}})", "data.delimiter", "only format text"},
    {R"({"data": {"train": "t.csv", "text": {"bigrams": true}}})", "data.text.bigrams",
     "only format text uses it (the format is csv)"},
    {R"({"data": {"train": "t.csv", "text": {"column": "body"}}})", "data.text.column",
     "only format text"},
    {R"({"data": {"format": "text", "train": "t.tsv", "missing": "impute"}})", "data.missing",
     "only tabular data"},
    {R"({"data": {"format": "text", "train": "t.tsv", "categorical_columns": ["a"]}})",
     "data.categorical_columns", "only tabular data"},
    {R"({"data": {"train": "t.csv", "standardize_targets": false}})", "data.standardize_targets",
     "only regression"},
    {R"({"data": {"train": "t.csv", "idx": {"n_classes": 3}}})", "data.idx.n_classes",
     "only format idx"},
    {R"({"data": {"format": "idx", "label": "y",
                  "idx": {"train_images": "i", "train_labels": "l"}}})",
     "data.label", "format idx reads its labels"},
    {R"({"data": {"format": "idx", "quoting": "none",
                  "idx": {"train_images": "i", "train_labels": "l"}}})",
     "data.quoting", "format idx reads binary files"},
    {R"({"data": {"train": "t.csv", "validation": "v.csv", "split": {"validation": 0.2}}})",
     "data.split.validation", "data.validation gives the validation set"},
    {R"({"data": {"train": "t.csv", "validation": "v.csv", "split": {"seed": 3}}})",
     "data.split.seed", "nothing is held out"},
    {R"({"data": {"train": "t.csv", "task": "regression", "split": {"stratify": false}}})",
     "data.split.stratify", "only classification stratifies"},
    // model
    {R"({"data": {"train": "t.csv"}, "model": {"word_dropout": 0.5}})", "model.word_dropout",
     "only text input"},
    {R"({"data": {"train": "t.csv"}, "model": {"bag": "mean"}})", "model.bag", "only text input"},
    {R"({"data": {"train": "t.csv"}, "model": {"trunk": {"activation": "relu"}}})",
     "model.trunk.activation", "model.trunk.hidden is empty"},
    {R"({"data": {"train": "t.csv"}, "model": {"trunk": {"norm": "none", "final_norm": false}}})",
     "model.trunk.final_norm", "model.trunk.norm is none"},
    {R"({"data": {"train": "t.csv"}, "model": {"moe": [], "dense": true}})", "model.dense",
     "no MoE layer"},
    // gates
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"gate": {"hard": true}}}})",
     "model.moe.gate.hard", "only the gumbel_softmax gate uses it (this gate is topk_softmax)"},
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"gate": {"tau_start": 2}}}})",
     "model.moe.gate.tau_start", "only the gumbel_softmax gate"},
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"gate": {"tau_decay": 0.1}}}})",
     "model.moe.gate.tau_decay", "only the gumbel_softmax gate"},
    {R"({"data": {"train": "t.csv"},
         "model": {"moe": {"gate": {"kind": "sigmoid_bias", "softmax_after_topk": true}}}})",
     "model.moe.gate.softmax_after_topk",
     "only the topk_softmax gate uses it (this gate is "
     "sigmoid_bias)"},
    {R"({"data": {"train": "t.csv"},
         "model": {"moe": {"gate": {"softmax_after_topk": true, "renormalize": false}}}})",
     "model.moe.gate.renormalize", "softmax_after_topk is true"},
    {R"({"data": {"train": "t.csv"},
         "model": {"moe": {"gate": {"kind": "noisy_topk", "renormalize": false}}}})",
     "model.moe.gate.renormalize", "this gate is noisy_topk"},
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"gate": {"bias_update_rate": 0.01}}}})",
     "model.moe.gate.bias_update_rate", "only the sigmoid_bias gate"},
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"gate": {"sinkhorn_iterations": 3}}}})",
     "model.moe.gate.sinkhorn_iterations", "only the sinkhorn gate"},
    {R"({"data": {"train": "t.csv"},
         "model": {"moe": {"k": 1, "gate": {"kind": "dense_softmax"}}}})",
     "model.moe.k", "take k (this gate is dense_softmax)"},
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"min_capacity": 4}}})",
     "model.moe.min_capacity", "capacity_factor is 0"},
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"balance": {"load": 0}}}})",
     "model.moe.balance.load", "only the noisy_topk gate"},
    {R"({"data": {"train": "t.csv"},
         "model": {"moe": {"gate": {"kind": "hash"}, "balance": {"switch": 0}}}})",
     "model.moe.balance.switch", "(this gate is hash)"},
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"hierarchy": {"k": 2}}}})",
     "model.moe.hierarchy.k", "model.moe.hierarchy.groups is 0"},
    {R"({"data": {"train": "t.csv"},
         "model": {"moe": {"hierarchy": {"groups": 2, "gate": {"hard": true}}}}})",
     "model.moe.hierarchy.gate.hard", "only the gumbel_softmax gate"},
    // experts
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"expert": {"depth": 2}}}})",
     "model.moe.expert.depth", "only mlp experts use it (the experts it applies to are swiglu)"},
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"expert": {"bias": false}}}})",
     "model.moe.expert.bias", "only linear and mlp experts"},
    {R"({"data": {"train": "t.csv"},
         "model": {"moe": {"expert": {"kind": "linear", "hidden": 16}}}})",
     "model.moe.expert.hidden", "only swiglu and mlp experts"},
    {R"({"data": {"train": "t.csv"},
         "model": {"moe": {"expert_list": [{"kind": "mlp"}, {"activation": "relu"}]}}})",
     "model.moe.expert_list.1.activation", "this expert is swiglu"},
    {R"({"data": {"train": "t.csv"},
         "model": {"moe": {"expert": {"depth": 2},
                           "expert_list": [{"kind": "mlp", "depth": 1},
                                           {"kind": "mlp", "depth": 3}]}}})",
     "model.moe.expert.depth", "sets its own"},
    {R"({"data": {"train": "t.csv"}, "model": {"moe": {"shared_expert": {"hidden": 8}}}})",
     "model.moe.shared_expert.hidden", "model.moe.shared is 0"},
    {R"({"data": {"train": "t.csv"},
         "model": {"moe": {"shared": 1, "shared_expert": {"kind": "swiglu", "depth": 2}}}})",
     "model.moe.shared_expert.depth", "the shared experts are swiglu"},
    // model.dense: the layer is one FFN, there is no gate
    {R"({"data": {"train": "t.csv"}, "model": {"dense": true, "moe": {"gate": {"renormalize":
                                                                          false}}}})",
     "model.moe.gate.renormalize", "model.dense replaces this MoE layer"},
    {R"({"data": {"train": "t.csv"}, "model": {"dense": true, "moe": {"balance": {"z": 0.1}}}})",
     "model.moe.balance.z", "model.dense"},
    {R"({"data": {"train": "t.csv"}, "model": {"dense": true, "moe": {"capacity_factor": 1.5}}})",
     "model.moe.capacity_factor", "model.dense"},
    {R"({"data": {"train": "t.csv"},
         "model": {"dense": true, "moe": {"expert_list": [{"kind": "mlp"}, {"depth": 2}]}}})",
     "model.moe.expert_list.1.depth", "first expert's kind and options"},
    // layers of a list are named by index
    {R"({"data": {"train": "t.csv"}, "model": {"moe": [{}, {"gate": {"tau_min": 0.1}}]}})",
     "model.moe.1.gate.tau_min", "only the gumbel_softmax gate"},
    // training
    {R"({"data": {"train": "t.csv"}, "training": {"momentum": 0.9}})", "training.momentum",
     "only sgd uses it (the optimizer is adamw)"},
    {R"({"data": {"train": "t.csv"}, "training": {"optimizer": "sgd", "beta2": 0.99}})",
     "training.beta2", "only adam and adamw"},
    {R"({"data": {"train": "t.csv"}, "training": {"schedule": "constant", "min_lr": 0}})",
     "training.min_lr", "only the cosine schedule"},
    {R"({"data": {"train": "t.csv"}, "training": {"gamma": 0.5}})", "training.gamma",
     "only the step schedule"},
    {R"({"data": {"train": "t.csv"}, "training": {"loss": "huber"}})", "training.loss",
     "only regression"},
    {R"({"data": {"train": "t.csv", "task": "regression"}, "training": {"huber_delta": 2}})",
     "training.huber_delta", "only the huber loss"},
    {R"({"data": {"train": "t.csv", "task": "regression"},
         "training": {"class_weights": "none"}})",
     "training.class_weights", "only classification"},
    // a corpus: held out only without a validation file, split by position, not by a draw
    {R"({"data": {"format": "corpus", "train": "t.txt", "validation": "v.txt",
                  "split": {"validation": 0.2}}})",
     "data.split.validation", "data.validation gives the validation set"},
    {R"({"data": {"format": "corpus", "train": "t.txt", "split": {"seed": 3}}})", "data.split.seed",
     "data.corpus.max_sentences lines, and that is 0"},
    {R"({"data": {"format": "corpus", "train": "t.txt"},
         "training": {"class_weights": "balanced"}})",
     "training.class_weights", "a language model (data.format corpus) weights every token"},
    {R"({"data": {"train": "t.csv", "corpus": {"vocab_size": 1000}}})", "data.corpus",
     "only data.format corpus and pairs use it (the format is csv)"},
    // sentence pairs: the translation model's keys and the pairs' own, nowhere else
    {R"({"data": {"train": "t.csv"}, "model": {"translation": {"encoder_layers": 6}}})",
     "model.translation",
     "only a translation model (data.format pairs) uses it (the format is csv)"},
    {R"({"data": {"format": "corpus", "train": "t.txt"},
         "model": {"translation": {"decoder_moe": "all"}}})",
     "model.translation",
     "only a translation model (data.format pairs) uses it (the format is "
     "corpus)"},
    {R"({"data": {"train": "t.csv", "pairs": {"drop_long": true}}})", "data.pairs",
     "only data.format pairs uses it (the format is csv)"},
    {R"({"data": {"format": "corpus", "train": "t.txt", "pairs": {"drop_long": false}}})",
     "data.pairs", "only data.format pairs uses it (the format is corpus)"},
    {R"({"data": {"format": "pairs", "train": "t.tsv"}, "model": {"lm": {"layers": 2}}})",
     "model.lm", "only a language model (data.format corpus) uses it (the format is pairs)"},
    {R"({"data": {"format": "pairs", "train": "t.tsv"}, "model": {"trunk": {"hidden": [32]}}})",
     "model.trunk", "a translation model (data.format pairs) does not use it"},
    {R"({"data": {"format": "pairs", "train": "t.tsv"}, "model": {"input_dropout": 0.1}})",
     "model.input_dropout", "a translation model (data.format pairs) does not use it"},
    {R"({"data": {"format": "pairs", "train": "t.tsv", "label": "y"}})", "data.label",
     "sentence pairs (data.format pairs) are two sentences a line and do not use it"},
    {R"({"data": {"format": "pairs", "train": "t.tsv", "quoting": "rfc4180"}})", "data.quoting",
     "sentence pairs (data.format pairs)"},
    {R"({"data": {"format": "pairs", "train": "t.tsv", "split": {"test": 0.1}}})",
     "data.split.test", "sentence pairs (data.format pairs)"},
    {R"({"data": {"format": "pairs", "train": "t.tsv", "validation": "v.tsv",
                  "split": {"validation": 0.2}}})",
     "data.split.validation", "data.validation gives the validation set"},
    {R"({"data": {"format": "pairs", "train": "t.tsv", "validation": "v.tsv",
                  "split": {"seed": 3}}})",
     "data.split.seed", "nothing is held out of the training pairs"},
    {R"({"data": {"format": "pairs", "train": "t.tsv",
                  "corpus": {"tokenizer_model": "tokenizer.model", "vocab_size": 8000}}})",
     "data.corpus.vocab_size", "data.corpus.tokenizer_model gives the tokenizer"},
    {R"({"data": {"format": "pairs", "train": "t.tsv"},
         "training": {"class_weights": "balanced"}})",
     "training.class_weights", "a translation model (data.format pairs) weights every target"},
    {R"({"data": {"format": "pairs", "train": "t.tsv"},
         "model": {"dense": true,
                   "translation": {"encoder_moe": "none", "decoder_moe": "none"}}})",
     "model.dense", "leave no MoE block"},
    {R"({"data": {"format": "pairs", "train": "t.tsv"},
         "model": {"translation": {"encoder_moe": "all", "decoder_moe": "all",
                                   "ffn_hidden": 64}}})",
     "model.translation.ffn_hidden", "every block is an MoE layer"},
    // a translation model's (and a language model's) MoE layers of a list are named by index
    {R"({"data": {"format": "pairs", "train": "t.tsv"},
         "model": {"moe": [{}, {"gate": {"tau_min": 0.1}}]}})",
     "model.moe.1.gate.tau_min", "only the gumbel_softmax gate"},
    {R"({"data": {"format": "corpus", "train": "t.txt"},
         "model": {"lm": {"layers": 2}, "moe": [{}, {"gate": {"hard": true}}]}})",
     "model.moe.1.gate.hard", "only the gumbel_softmax gate"},
};

TEST(ConfigWarnings, EachIneffectiveKeyWarnsOnce) {
  for (const Case& c : kIneffective) {
    SCOPED_TRACE(c.config);
    const std::vector<ConfigWarning> w = warnings_of(c.config);
    ASSERT_EQ(w.size(), 1u) << ::testing::PrintToString(keys_of(w));
    EXPECT_EQ(w[0].key, c.key);
    EXPECT_NE(w[0].reason.find(c.reason), std::string::npos) << w[0].reason;
    EXPECT_EQ(w[0].message(), std::string(c.key) + ": has no effect: " + w[0].reason);
  }
}

TEST(ConfigWarnings, MessageNamesKeyAndWhy) {
  const std::vector<ConfigWarning> w =
      warnings_of(R"({"data": {"train": "t.csv"}, "model": {"moe": {"gate": {"hard": true}}}})");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].message(),
            "model.moe.gate.hard: has no effect: only the gumbel_softmax gate uses it (this gate "
            "is topk_softmax)");
}

// The same keys in a set-up that reads them.
TEST(ConfigWarnings, EffectiveKeysDoNotWarn) {
  const char* effective[] = {
      R"({"data": {"format": "text", "train": "t.tsv", "delimiter": "tab", "quoting": "rfc4180",
                   "text": {"bigrams": true, "column": "body"}},
          "model": {"word_dropout": 0.5, "bag": "mean"}})",
      R"({"data": {"train": "t.csv", "task": "regression", "label": ["a", "b"],
                   "standardize_targets": false, "missing": "impute", "max_categories": 5,
                   "split": {"validation": 0.2, "test": 0.1, "seed": 3}},
          "training": {"loss": "huber", "huber_delta": 2}})",
      R"({"data": {"format": "idx", "idx": {"train_images": "i", "train_labels": "l",
                                            "n_classes": 3},
                   "split": {"validation": 0.2, "stratify": false}}})",
      R"({"data": {"train": "t.csv"},
          "model": {"trunk": {"hidden": [32], "activation": "relu", "final_norm": false},
                    "moe": {"gate": {"kind": "gumbel_softmax", "hard": true, "tau_start": 2,
                                     "tau_min": 0.1, "tau_decay": 0.01}}}})",
      R"({"data": {"train": "t.csv"},
          "model": {"moe": {"k": 1, "gate": {"softmax_after_topk": true},
                            "capacity_factor": 1.25, "min_capacity": 4,
                            "balance": {"switch": 0.02, "importance": 0.1, "z": 0.001}}}})",
      R"({"data": {"train": "t.csv"},
          "model": {"moe": {"gate": {"kind": "sigmoid_bias", "renormalize": false,
                                     "bias_update_rate": 0.01}}}})",
      R"({"data": {"train": "t.csv"},
          "model": {"moe": {"gate": {"kind": "sinkhorn", "sinkhorn_iterations": 3},
                            "hierarchy": {"groups": 2, "k": 1, "gate": {"kind": "noisy_topk"},
                                          "balance": {"load": 0.01}}}}})",
      R"({"data": {"train": "t.csv"},
          "model": {"moe": {"gate": {"kind": "expert_choice"}, "min_capacity": 2}}})",
      R"({"data": {"train": "t.csv"},
          "model": {"moe": {"precision": "bf16", "expert": {"kind": "mlp", "depth": 2},
                            "shared": 1, "shared_expert": {"kind": "swiglu"}}}})",
      // expert.depth reaches the mlp entries of expert_list that do not set their own
      R"({"data": {"train": "t.csv"},
          "model": {"moe": {"expert": {"depth": 2, "bias": false},
                            "expert_list": [{"kind": "mlp"}, {"kind": "swiglu"}]}}})",
      // under model.dense: what sets the dense FFN's width still counts
      R"({"data": {"train": "t.csv"},
          "model": {"dense": true, "moe": {"k": 1, "precision": "bf16",
                                           "expert": {"hidden": 32},
                                           "shared": 1, "shared_expert": {"hidden": 16}}}})",
      R"({"data": {"train": "t.csv"},
          "model": {"dense": true, "moe": {"gate": {"kind": "gumbel_softmax", "hard": true}}}})",
      R"({"data": {"train": "t.csv"},
          "model": {"dense": true, "moe": {"gate": {"kind": "expert_choice"},
                                           "capacity_factor": 2}}})",
      R"({"data": {"train": "t.csv"},
          "training": {"optimizer": "sgd", "momentum": 0.9, "nesterov": true,
                       "schedule": "step", "step_size": 10, "gamma": 0.5,
                       "label_smoothing": 0.1, "class_weights": "balanced"}})",
      R"({"data": {"train": "t.csv"},
          "training": {"optimizer": "adam", "beta1": 0.8, "eps": 1e-6, "min_lr": 1e-5}})",
      R"({"data": {"format": "corpus", "train": "t.txt", "split": {"validation": 0.2, "seed": 3},
                   "corpus": {"max_sentences": 200}},
          "training": {"label_smoothing": 0.1}})",
  };
  for (const char* text : effective) {
    SCOPED_TRACE(text);
    EXPECT_EQ(keys_of(warnings_of(text)), std::vector<std::string>{});
  }
}

// Sentence pairs read the tokenizer keys, their own and every translation key.
TEST(ConfigWarnings, EffectivePairsKeysDoNotWarn) {
  const char* effective[] = {
      R"({"data": {"format": "pairs", "train": "t.tsv", "test": "e.tsv",
                   "split": {"validation": 0.2, "seed": 3},
                   "corpus": {"tokenizer": "unigram", "vocab_size": 8000, "byte_fallback": false,
                              "character_coverage": 1.0, "max_sentences": 200},
                   "pairs": {"drop_long": true}},
          "model": {"width": 96, "dense": true,
                    "translation": {"encoder_layers": 4, "decoder_layers": 2, "heads": 6,
                                    "kv_heads": 2, "max_tokens": 64, "tie_embeddings": false,
                                    "rope_theta": 1e6, "encoder_moe": "all",
                                    "decoder_moe": "every_other", "ffn_hidden": 128,
                                    "norm_eps": 1e-6},
                    "moe": {"experts": 4, "k": 1, "expert": {"hidden": 64}}},
          "training": {"label_smoothing": 0.1}})",
      // the seed draws the held-out pairs; with a validation file it samples the tokenizer's
      R"({"data": {"format": "pairs", "train": "t.tsv", "validation": "v.tsv",
                   "split": {"seed": 3}, "corpus": {"max_sentences": 200}}})",
      R"({"data": {"format": "pairs", "train": "t.tsv", "corpus": {"tokenizer_model": "t.model"}},
          "model": {"translation": {"encoder_moe": "none"}}})",
  };
  for (const char* text : effective) {
    SCOPED_TRACE(text);
    EXPECT_EQ(keys_of(warnings_of(text)), std::vector<std::string>{});
  }
}

// Defaults that the set-up does not read are never named: only explicit keys are.
TEST(ConfigWarnings, DefaultsDoNotWarn) {
  const json j = json::parse(R"({"data": {"train": "t.csv", "task": "regression"},
                                 "model": {"moe": {"expert": {"kind": "linear"},
                                                   "gate": {"kind": "hash"}}}})");
  Result<Config> c = parse_config(j, "c.json");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_TRUE(ineffective_config_keys(*c, config_keys_set(j)).empty());
  EXPECT_TRUE(ineffective_config_keys(*c, {}).empty());
  // The resolved form writes every key, so every unread one would be named: a run's own
  // config.json is not a list of the user's choices (moe train --resume counts only --set).
  const std::vector<std::string> all = config_keys_set(config_to_json(*c));
  const std::vector<std::string> named = keys_of(ineffective_config_keys(*c, all));
  for (const char* key : {"data.text.bigrams", "model.moe.gate.hard", "model.moe.expert.depth",
                          "training.label_smoothing"})
    EXPECT_NE(std::find(named.begin(), named.end(), key), named.end()) << key;
}

TEST(ConfigWarnings, KeysSetAreLeavesByPath) {
  const json j = json::parse(R"({"data": {"label": ["a", "b"], "split": {}},
                                 "model": {"trunk": {"hidden": [8, 8]},
                                           "moe": [{"k": 1}, {"gate": {"hard": true}}]}})");
  EXPECT_EQ(config_keys_set(j),
            (std::vector<std::string>{"data.label", "model.moe.0.k", "model.moe.1.gate.hard",
                                      "model.trunk.hidden"}));
  EXPECT_EQ(config_keys_set(json(true), "model.dense"), std::vector<std::string>{"model.dense"});
  EXPECT_EQ(
      config_keys_set(json::parse(R"({"kind": "gumbel_softmax", "hard": true})"), "model.moe.gate"),
      (std::vector<std::string>{"model.moe.gate.hard", "model.moe.gate.kind"}));
  // "data.label.0" (a --set of one element) sets data.label.
  Result<Config> idx = parse_config(
      json::parse(
          R"({"data": {"format": "idx", "idx": {"train_images": "i", "train_labels": "l"}}})"),
      "c.json");
  ASSERT_TRUE(idx.is_ok()) << idx.status().message();
  EXPECT_EQ(keys_of(ineffective_config_keys(*idx, {"data.label.0"})),
            std::vector<std::string>{"data.label"});
}

// What --strict refuses: load_config reports the keys of the file and of each --set apart.
TEST(ConfigWarnings, LoadConfigReportsFileAndOverrideKeys) {
  const fs::path dir = fs::temp_directory_path() / "moe_config_warnings_test";
  fs::create_directories(dir);
  const std::string path = (dir / "run.json").string();
  std::ofstream(path) << R"({"data": {"train": "t.csv", "text": {"min_count": 3}},
                             "model": {"moe": {"k": 1}}})";
  ExplicitKeys set;
  Result<Config> c = load_config(path,
                                 {"model.moe.gate={\"kind\": \"topk_softmax\", \"tau_min\": 0.2}",
                                  "training.lr=0.01", "data.train=other.csv"},
                                 &set);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(set.file,
            (std::vector<std::string>{"data.text.min_count", "data.train", "model.moe.k"}));
  EXPECT_EQ(set.overrides,
            (std::vector<std::string>{"model.moe.gate.kind", "model.moe.gate.tau_min",
                                      "training.lr", "data.train"}));
  std::vector<std::string> keys = set.file;
  keys.insert(keys.end(), set.overrides.begin(), set.overrides.end());
  EXPECT_EQ(keys_of(ineffective_config_keys(*c, keys)),
            (std::vector<std::string>{"data.text.min_count", "model.moe.gate.tau_min"}));
  // Resumed from a run's resolved config.json, only the overrides count.
  EXPECT_EQ(keys_of(ineffective_config_keys(*c, set.overrides)),
            std::vector<std::string>{"model.moe.gate.tau_min"});
  fs::remove_all(dir);
}

// The shipped examples set nothing they do not use; the demo's dense baseline
// (--set model.dense=true) makes their gate's balancing loss moot.
TEST(ConfigWarnings, ShippedExamples) {
  int n = 0;
  for (const auto& e : fs::directory_iterator("../examples")) {
    if (e.path().extension() != ".json") continue;
    SCOPED_TRACE(e.path().string());
    ExplicitKeys set;
    Result<Config> c = load_config(e.path().string(), {}, &set);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    EXPECT_EQ(keys_of(ineffective_config_keys(*c, set.file)), std::vector<std::string>{});
    Result<Config> dense = load_config(e.path().string(), {"model.dense=true"}, &set);
    ASSERT_TRUE(dense.is_ok()) << dense.status().message();
    // Every balancing key the example sets is moot in the dense twin.
    std::vector<std::string> balance;
    for (const std::string& k : set.file)
      if (k.rfind("model.moe.balance.", 0) == 0) balance.push_back(k);
    std::sort(balance.begin(), balance.end());
    EXPECT_EQ(keys_of(ineffective_config_keys(*dense, set.file)), balance);
    ++n;
  }
  EXPECT_GE(n, 3);
}

}  // namespace
}  // namespace moe
