// Run configuration: defaults, every kind of bad key named by its path, overrides, the resolved
// form round-tripping, and the dense equivalent of an MoE layer.
#include "moe/train/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace moe {
namespace {

using json = nlohmann::json;

json minimal() {
  return json::parse(R"({"data": {"train": "t.csv"}})");
}

std::string parse_error(const json& j) {
  Result<Config> c = parse_config(j, "c.json");
  EXPECT_FALSE(c.is_ok()) << j.dump();
  return c.is_ok() ? std::string() : c.status().message();
}

TEST(ConfigTest, DefaultsFillEverything) {
  Result<Config> c = parse_config(minimal(), "c.json");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->data.format, DataFormat::kCsv);
  EXPECT_EQ(c->data.label, std::vector<std::string>{"label"});
  EXPECT_EQ(c->model.width, 64);
  ASSERT_EQ(c->model.moe.size(), 1u);
  const MoeBlockConfig& b = c->model.moe[0];
  EXPECT_EQ(b.n_experts, 8);
  EXPECT_EQ(b.gate.k, 2);
  EXPECT_EQ(b.expert.kind, ExpertKind::kSwiglu);
  EXPECT_EQ(b.expert.hidden, 128);  // 2 × width
  EXPECT_FLOAT_EQ(b.gate.switch_loss, 0.01f);
  EXPECT_EQ(c->training.optimizer.kind, OptimizerKind::kAdamW);
  EXPECT_EQ(c->training.batch_size, 64);
  EXPECT_EQ(c->output.dir, "runs/run");
}

TEST(ConfigTest, ErrorsNameTheKeyPathAndWhatWasExpected) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {R"({"data": {"train": "t.csv"}, "model": {"moe": {"k": "two"}}})",
       R"(c.json: model.moe.k: expected a positive integer, got "two")"},
      {R"({"data": {"train": "t.csv"}, "model": {"moe": {"kk": 2}}})",
       "c.json: model.moe.kk: unknown key (expected one of: "},
      {R"({"data": {"train": "t.csv"}, "extra": 1})", "c.json: extra: unknown key"},
      {R"({"data": {"train": "t.csv", "format": "xls"}})",
       R"(c.json: data.format: expected one of "csv", "tsv", "text", "idx", "corpus", "pairs", )"
       R"(got "xls")"},
      {R"({"data": {"train": 3}})", "c.json: data.train: expected a string, got 3"},
      {R"({"data": {"train": "t.tsv", "quoting": "auto"}})",
       R"(c.json: data.quoting: expected one of "none", "rfc4180", got "auto")"},
      {R"({"data": {"train": "t.csv"}, "training": {"lr": -1}})",
       "c.json: training.lr: expected a number > 0, got -1"},
      {R"({"data": {"train": "t.csv"}, "training": {"batch_size": 2.5}})",
       "c.json: training.batch_size: expected an integer in [1, 1048576], got 2.5"},
      {R"({"data": {"train": "t.csv"}, "model": {"width": 100000000}})",
       "c.json: model.width: expected an integer in [1, 1048576], got 100000000"},
      {R"({"data": {"train": "t.csv"}, "model": {"dense": "yes"}})",
       R"(c.json: model.dense: expected true or false, got "yes")"},
      {R"({"data": {"train": "t.csv"}, "model": {"trunk": {"hidden": [32, 0]}}})",
       "c.json: model.trunk.hidden.1: expected an integer in [1, 1048576], got 0"},
      {R"({"data": {"train": "t.csv"}, "model": {"moe": [{}, {"gate": {"kind": "best"}}]}})",
       "c.json: model.moe.1.gate.kind: expected one of"},
      {R"({"data": {"train": "t.csv"}, "model": {"moe": {"experts": 4, "k": 5}}})",
       "c.json: model.moe: gate topk_softmax: k must be in [1, 4]"},
      {R"({"data": {"train": "t.csv"}, "model": {"moe": {"gate": {"kind": "hash"},
          "balance": {"switch": 0.1}}}})",
       "c.json: model.moe: gate hash: hash routing has no router"},
      {R"({"data": {"train": "t.csv"}, "model": {"moe": {"experts": 6,
          "hierarchy": {"groups": 4}}}})",
       "c.json: model.moe.hierarchy.groups: 6 experts do not split into 4 equal groups"},
      {R"({"data": {"train": "t.csv"}, "model": {"moe": {"experts": 3,
          "expert_list": [{"hidden": 4}, {"kind": "linear"}]}}})",
       "c.json: model.moe.experts: is 3 but expert_list has 2 entries"},
      {R"({"data": {"train": "t.csv"}, "model": {"moe": {"expert_list": [{"depth": 0}]}}})",
       "c.json: model.moe.expert_list.0.depth: expected an integer in [1, 64], got 0"},
      {R"({"data": {"train": "t.csv", "split": {"validation": 0.6, "test": 0.4}}})",
       "c.json: data.split: validation + test must be below 1"},
      {R"({"data": {"format": "idx"}})",
       "c.json: data.idx: format \"idx\" needs train_images and train_labels"},
      {R"({"data": {}})", "c.json: data.train: a training file is needed"},
      {R"({"data": {"train": "t.csv", "label": ["a", "b"]}})",
       "c.json: data.label: classification takes exactly one label column"},
      {R"({"data": {"train": "t.csv"}, "training": {"early_stopping": {"metric": "r2"}}})",
       "c.json: training.early_stopping.metric: \"r2\" is a regression metric"},
      {R"({"data": {"train": "t.csv", "task": "regression"},
          "training": {"class_weights": "balanced"}})",
       "c.json: training.class_weights: applies to classification only"},
      {R"({"data": {"train": "t.csv"}, "training": {"min_lr": 1}})",
       "c.json: training.min_lr: must not exceed training.lr"},
      {R"({"data": {"train": "t.csv"}, "model": {"moe": 3}})",
       "c.json: model.moe: expected an MoE layer object or an array of them, got 3"},
      {R"({"data": {"train": "t.csv"}, "output": {"checkpoint": []}})",
       "c.json: output.checkpoint: expected an object, got []"},
      {R"([1, 2])", "c.json: the configuration must be a JSON object"},
      // SentencePiece samples no fewer than 101 lines: refused when parsed, not when training
      {R"({"data": {"format": "corpus", "train": "t.txt", "corpus": {"max_sentences": 100}}})",
       "c.json: data.corpus.max_sentences: expected 0 (every line) or an integer in [101, "
       "2147483647], got 100"},
      {R"({"data": {"format": "corpus", "train": "t.txt", "corpus": {"max_sentences": 1}}})",
       "c.json: data.corpus.max_sentences: expected 0 (every line) or an integer in [101, "
       "2147483647], got 1"},
      {R"({"data": {"format": "corpus", "train": "t.txt",
          "corpus": {"max_sentences": 2147483648}}})",
       "c.json: data.corpus.max_sentences: expected 0 (every line) or an integer in [101, "
       "2147483647], got 2147483648"},
  };
  for (const Case& c : cases) {
    const std::string m = parse_error(json::parse(c.json));
    EXPECT_EQ(m.rfind(c.message, 0), 0u) << "got:      " << m << "\nexpected: " << c.message;
  }
}

TEST(ConfigTest, ResolvedFormParsesBackToItself) {
  const json in = json::parse(R"({
    "data": {"format": "text", "train": "a.tsv", "test": "b.tsv", "text": {"bigram_buckets": 64}},
    "model": {"width": 32, "trunk": {"hidden": [48], "norm": "layer"},
              "moe": [{"experts": 4, "k": 1, "gate": {"kind": "noisy_topk"},
                       "balance": {"load": 0.1}},
                      {"expert_list": [{"kind": "mlp", "hidden": 16}, {"kind": "linear"}],
                       "shared": 1, "gate": {"kind": "sigmoid_bias"}, "k": 1},
                      {"experts": 8, "hierarchy": {"groups": 2, "k": 1}}]},
    "training": {"optimizer": "sgd", "momentum": 0.9, "seed": 18446744073709551615,
                 "early_stopping": {"patience": 3, "metric": "auc"}},
    "output": {"dir": "out", "checkpoint": {"every": 100}}})");
  Result<Config> a = parse_config(in, "c.json");
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  const json resolved = config_to_json(*a);
  Result<Config> b = parse_config(resolved, "resolved");
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  EXPECT_EQ(config_to_json(*b), resolved);
  EXPECT_EQ(b->training.seed, 18446744073709551615ull);
  ASSERT_EQ(b->model.moe.size(), 3u);
  EXPECT_EQ(b->model.moe[1].expert_list.size(), 2u);
  EXPECT_EQ(b->model.moe[1].expert_list[0].kind, ExpertKind::kMlp);
  EXPECT_EQ(b->model.moe[1].expert_list[1].kind, ExpertKind::kLinear);
  EXPECT_EQ(b->model.moe[2].n_groups, 2);
  EXPECT_EQ(b->model.moe[2].top_gate.k, 1);
  EXPECT_TRUE(resolved["model"]["moe"].is_array());
  // One layer written as an object stays an object.
  Result<Config> single = parse_config(minimal(), "c.json");
  ASSERT_TRUE(single.is_ok());
  EXPECT_TRUE(config_to_json(*single)["model"]["moe"].is_object());
}

// Top-1 weighs its expert by the gate probability unless renormalize is said (a renormalised
// top-1 weight is always 1 and the router gets no task gradient); K >= 2 renormalises; the
// hierarchy's top gate (K = 1 by default) follows the same rule.
TEST(ConfigTest, RenormalizeDefaultsByK) {
  const auto layers = [](const char* moe) {
    json j = minimal();
    j["model"]["moe"] = json::parse(moe);
    Result<Config> c = parse_config(j, "c.json");
    EXPECT_TRUE(c.is_ok()) << c.status().message();
    return c.is_ok() ? c->model.moe : std::vector<MoeBlockConfig>();
  };
  const std::vector<MoeBlockConfig> m = layers(R"([{"experts": 4, "k": 1}, {"experts": 4},
      {"experts": 4, "k": 1, "gate": {"renormalize": true}},
      {"experts": 4, "k": 2, "gate": {"renormalize": false}},
      {"experts": 8, "hierarchy": {"groups": 2}}])");
  ASSERT_EQ(m.size(), 5u);
  EXPECT_FALSE(m[0].gate.renormalize);
  EXPECT_TRUE(m[1].gate.renormalize);
  EXPECT_TRUE(m[2].gate.renormalize);
  EXPECT_FALSE(m[3].gate.renormalize);
  EXPECT_FALSE(m[4].top_gate.renormalize);
  EXPECT_TRUE(m[4].gate.renormalize);
}

// data.quoting, when not given, is the default of the training file's delimiter (none for a
// tab, rfc4180 otherwise); the resolved form says which, and parses back to it.
TEST(ConfigTest, QuotingDefaultsByDelimiterAndRoundTrips) {
  struct Case {
    const char* data;
    CsvQuoting quoting;
  };
  const Case cases[] = {
      {R"({"train": "t.csv"})", CsvQuoting::kRfc4180},
      {R"({"format": "tsv", "train": "t.csv"})", CsvQuoting::kNone},
      {R"({"format": "text", "train": "t.tsv"})", CsvQuoting::kNone},
      {R"({"format": "text", "train": "T.TAB.gz"})", CsvQuoting::kNone},
      {R"({"format": "text", "train": "t.csv"})", CsvQuoting::kRfc4180},
      {R"({"format": "text", "train": "t.txt", "delimiter": "tab"})", CsvQuoting::kNone},
      {R"({"format": "text", "train": "t.tsv", "delimiter": ";"})", CsvQuoting::kRfc4180},
      {R"({"format": "tsv", "train": "t.tsv", "quoting": "rfc4180"})", CsvQuoting::kRfc4180},
      {R"({"train": "t.csv", "quoting": "none"})", CsvQuoting::kNone},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.data);
    json in = json::object();
    in["data"] = json::parse(c.data);
    Result<Config> a = parse_config(in, "c.json");
    ASSERT_TRUE(a.is_ok()) << a.status().message();
    EXPECT_EQ(a->data.quoting, c.quoting);
    const json resolved = config_to_json(*a);
    EXPECT_EQ(resolved["data"]["quoting"], csv_quoting_name(c.quoting));
    Result<Config> b = parse_config(resolved, "resolved");
    ASSERT_TRUE(b.is_ok()) << b.status().message();
    EXPECT_EQ(b->data.quoting, c.quoting);
    EXPECT_EQ(config_to_json(*b), resolved);
  }
}

// The early-stopping metric "roc_auc" (the name reports use) is canonical; "auc" is its alias
// and resolves to the canonical name.
TEST(ConfigTest, RocAucMetricHasAnAlias) {
  for (const char* name : {"roc_auc", "auc"}) {
    json j = minimal();
    j["training"]["early_stopping"]["metric"] = name;
    Result<Config> c = parse_config(j, "c.json");
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    EXPECT_EQ(c->training.metric, MetricKind::kRocAuc) << name;
    EXPECT_EQ(config_to_json(*c)["training"]["early_stopping"]["metric"], "roc_auc");
  }
  MetricKind m = MetricKind::kLoss;
  EXPECT_TRUE(parse_metric_kind("auc", &m));
  EXPECT_EQ(m, MetricKind::kRocAuc);
  EXPECT_STREQ(metric_kind_name(MetricKind::kRocAuc), "roc_auc");
  json bad = minimal();
  bad["training"]["early_stopping"]["metric"] = "rocauc";
  EXPECT_NE(parse_error(bad).find("\"roc_auc\", \"auc\""), std::string::npos);
}

TEST(ConfigTest, InputL2IsANonNegativeNumber) {
  Result<Config> d = parse_config(minimal(), "c.json");
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->model.input_l2, 0.0f);
  json j = minimal();
  j["model"]["input_l2"] = 0.001;
  Result<Config> c = parse_config(j, "c.json");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_FLOAT_EQ(c->model.input_l2, 0.001f);
  EXPECT_EQ(config_to_json(*c)["model"]["input_l2"], 0.001);
  j["model"]["input_l2"] = -1;
  EXPECT_EQ(parse_error(j), "c.json: model.input_l2: expected a number ≥ 0, got -1");
  j["model"]["input_l2"] = "small";
  EXPECT_EQ(parse_error(j), "c.json: model.input_l2: expected a number ≥ 0, got \"small\"");
}

json pairs() {
  return json::parse(R"({"data": {"format": "pairs", "train": "t.tsv"}})");
}

// Sentence pairs: the translation model with its defaults, the corpus's tokenizer keys, pairs
// read with a tab and without quotes.
TEST(ConfigTest, PairsParseWithDefaults) {
  Result<Config> c = parse_config(pairs(), "c.json");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->data.format, DataFormat::kPairs);
  EXPECT_STREQ(data_format_name(DataFormat::kPairs), "pairs");
  EXPECT_TRUE(c->model.translation_model);
  EXPECT_FALSE(c->model.language_model);
  EXPECT_FALSE(c->data.pairs.drop_long);
  EXPECT_EQ(c->data.quoting, CsvQuoting::kNone);
  EXPECT_EQ(c->data.corpus.tokenizer.vocab_size, SubwordOptions().vocab_size);
  const TranslationConfig& t = c->model.translation;
  const TranslationConfig d;
  EXPECT_EQ(t.encoder_layers, d.encoder_layers);
  EXPECT_EQ(t.decoder_layers, d.decoder_layers);
  EXPECT_EQ(t.heads, d.heads);
  EXPECT_EQ(t.kv_heads, d.kv_heads);
  EXPECT_EQ(t.max_tokens, d.max_tokens);
  EXPECT_EQ(t.tie_embeddings, d.tie_embeddings);
  EXPECT_EQ(t.rope_theta, d.rope_theta);
  EXPECT_EQ(t.encoder_moe, MoeLayers::kEveryOther);
  EXPECT_EQ(t.decoder_moe, MoeLayers::kEveryOther);
  EXPECT_EQ(t.ffn_hidden, d.ffn_hidden);
  EXPECT_EQ(t.norm_eps, d.norm_eps);
  // Every other format: the row model (or the language model), the translation keys unread.
  Result<Config> csv = parse_config(minimal(), "c.json");
  ASSERT_TRUE(csv.is_ok());
  EXPECT_FALSE(csv->model.translation_model);
  json corpus = pairs();
  corpus["data"]["format"] = "corpus";
  Result<Config> lm = parse_config(corpus, "c.json");
  ASSERT_TRUE(lm.is_ok());
  EXPECT_FALSE(lm->model.translation_model);
  EXPECT_TRUE(lm->model.language_model);
}

// Every key of model.translation and data.pairs, off its default, comes back from the resolved
// form, and the resolved form parses back to itself.
TEST(ConfigTest, PairsKeysRoundTrip) {
  const json in = json::parse(R"({
    "data": {"format": "pairs", "train": "t.tsv", "validation": "v.tsv", "test": "e.tsv",
             "pairs": {"drop_long": true},
             "corpus": {"vocab_size": 8000, "tokenizer": "unigram"}},
    "model": {"width": 96,
              "translation": {"encoder_layers": 6, "decoder_layers": 2, "heads": 6,
                              "kv_heads": 2, "max_tokens": 200, "tie_embeddings": false,
                              "rope_theta": 500000, "encoder_moe": "all", "decoder_moe": "none",
                              "ffn_hidden": 320, "norm_eps": 1e-6}}})");
  Result<Config> a = parse_config(in, "c.json");
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  const json resolved = config_to_json(*a);
  for (const auto& [key, value] : in["model"]["translation"].items())
    EXPECT_EQ(resolved["model"]["translation"][key], value) << key;
  EXPECT_EQ(resolved["model"]["translation"].size(), in["model"]["translation"].size());
  EXPECT_EQ(resolved["data"]["pairs"], in["data"]["pairs"]);
  EXPECT_EQ(resolved["data"]["format"], "pairs");
  Result<Config> b = parse_config(resolved, "resolved");
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  EXPECT_EQ(config_to_json(*b), resolved);
  const TranslationConfig& t = b->model.translation;
  EXPECT_EQ(t.encoder_layers, 6);
  EXPECT_EQ(t.decoder_layers, 2);
  EXPECT_EQ(t.heads, 6);
  EXPECT_EQ(t.kv_heads, 2);
  EXPECT_EQ(t.max_tokens, 200);
  EXPECT_FALSE(t.tie_embeddings);
  EXPECT_EQ(t.rope_theta, 500000.0);
  EXPECT_EQ(t.encoder_moe, MoeLayers::kAll);
  EXPECT_EQ(t.decoder_moe, MoeLayers::kNone);
  EXPECT_EQ(t.ffn_hidden, 320);
  EXPECT_FLOAT_EQ(t.norm_eps, 1e-6f);
  EXPECT_TRUE(b->data.pairs.drop_long);
  EXPECT_TRUE(b->model.translation_model);
  EXPECT_EQ(b->data.corpus.tokenizer.vocab_size, 8000);
}

// A bad value is one error naming the key's full path (set by the path, as --set does).
TEST(ConfigTest, PairsBadValuesNameTheKeyPath) {
  struct Case {
    const char* key;
    const char* value;  // JSON
    const char* message;
  };
  const Case cases[] = {
      {"model.translation.encoder_layers", "0",
       "model.translation.encoder_layers: expected an integer in [1, 1024], got 0"},
      {"model.translation.decoder_layers", "1025",
       "model.translation.decoder_layers: expected an integer in [1, 1024], got 1025"},
      {"model.translation.heads", "0",
       "model.translation.heads: expected an integer in [1, 4096], got 0"},
      {"model.translation.kv_heads", "-1",
       "model.translation.kv_heads: expected an integer in [0, 4096] (0: as many as heads), "
       "got -1"},
      {"model.translation.max_tokens", "1",
       "model.translation.max_tokens: expected an integer in [2, 65536], got 1"},
      {"model.translation.max_tokens", "65537",
       "model.translation.max_tokens: expected an integer in [2, 65536], got 65537"},
      {"model.translation.tie_embeddings", "1",
       "model.translation.tie_embeddings: expected true or false, got 1"},
      {"model.translation.rope_theta", "1",
       "model.translation.rope_theta: expected a number > 1, got 1"},
      {"model.translation.encoder_moe", R"("half")",
       R"(model.translation.encoder_moe: expected one of "all", "every_other", "none", got "half")"},
      {"model.translation.decoder_moe", "2",
       R"(model.translation.decoder_moe: expected one of "all", "every_other", "none", got 2)"},
      {"model.translation.ffn_hidden", "-1",
       "model.translation.ffn_hidden: expected an integer in [0, 1048576] (0: auto), got -1"},
      {"model.translation.norm_eps", "0",
       "model.translation.norm_eps: expected a number in (0, 1], got 0"},
      {"model.translation.layers", "2",
       "model.translation.layers: unknown key (expected one of: encoder_layers, "},
      {"model.translation", "[]", "model.translation: expected an object, got []"},
      {"data.pairs.drop_long", R"("yes")",
       R"(data.pairs.drop_long: expected true or false, got "yes")"},
      {"data.pairs.max_tokens", "8",
       "data.pairs.max_tokens: unknown key (expected one of: drop_long)"},
      {"data.task", R"("regression")",
       R"(data.task: format "pairs" is translation: leave data.task out)"},
      {"data.test", R"("t.tsv")", "data.test: is the training file"},
  };
  for (const Case& c : cases) {
    json j = pairs();
    std::string pointer = std::string("/") + c.key;
    std::replace(pointer.begin(), pointer.end(), '.', '/');
    j[json::json_pointer(pointer)] = json::parse(c.value);
    const std::string m = parse_error(j);
    const std::string expected = std::string("c.json: ") + c.message;
    EXPECT_EQ(m.rfind(expected, 0), 0u) << "got:      " << m << "\nexpected: " << expected;
  }
}

TEST(ConfigTest, OverridesSetTranslationKeys) {
  json j = pairs();
  ASSERT_TRUE(apply_override(&j, "model.translation.encoder_layers=6").is_ok());
  ASSERT_TRUE(apply_override(&j, "model.translation.decoder_moe=all").is_ok());  // a string
  ASSERT_TRUE(apply_override(&j, "data.pairs.drop_long=true").is_ok());
  Result<Config> c = parse_config(j, "c.json");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->model.translation.encoder_layers, 6);
  EXPECT_EQ(c->model.translation.decoder_moe, MoeLayers::kAll);
  EXPECT_TRUE(c->data.pairs.drop_long);
  Status st = apply_override(&j, "model.translation.encoder_layer=6");
  EXPECT_EQ(st.message(),
            "--set model.translation.encoder_layer=6: no configuration key "
            "model.translation.encoder_layer");
  ASSERT_TRUE(apply_override(&j, "model.translation.encoder_layers=0").is_ok());
  EXPECT_EQ(parse_error(j),
            "c.json: model.translation.encoder_layers: expected an integer in [1, 1024], got 0");
}

TEST(ConfigTest, OverridesSetKnownKeysAndRejectUnknownOnes) {
  json j = minimal();
  ASSERT_TRUE(apply_override(&j, "model.moe.k=1").is_ok());
  ASSERT_TRUE(apply_override(&j, "model.moe.gate.kind=expert_choice").is_ok());  // a string
  ASSERT_TRUE(apply_override(&j, "training.lr=3e-3").is_ok());
  ASSERT_TRUE(apply_override(&j, "model.trunk.hidden=[16, 8]").is_ok());
  ASSERT_TRUE(apply_override(&j, "data.label=y").is_ok());
  Result<Config> c = parse_config(j, "c.json");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->model.moe[0].gate.k, 1);
  EXPECT_EQ(c->model.moe[0].gate.kind, GateKind::kExpertChoice);
  EXPECT_DOUBLE_EQ(c->training.lr, 3e-3);
  EXPECT_EQ(c->model.trunk.hidden, (std::vector<int64_t>{16, 8}));
  EXPECT_EQ(c->data.label, std::vector<std::string>{"y"});

  Status st = apply_override(&j, "model.moe.kk=1");
  EXPECT_EQ(st.message(), "--set model.moe.kk=1: no configuration key model.moe.kk");
  st = apply_override(&j, "model.widht=1");
  EXPECT_EQ(st.message(), "--set model.widht=1: no configuration key model.widht");
  st = apply_override(&j, "no_equals_sign");
  EXPECT_FALSE(st.is_ok());
  // A value of the wrong type is caught by parsing, with the key path.
  ASSERT_TRUE(apply_override(&j, "model.moe.k=two").is_ok());
  EXPECT_EQ(parse_error(j), R"(c.json: model.moe.k: expected a positive integer, got "two")");

  // Array elements by index.
  json list = json::parse(R"({"data": {"train": "t.csv"}, "model": {"moe": [{}, {}]}})");
  ASSERT_TRUE(apply_override(&list, "model.moe.1.experts=4").is_ok());
  Result<Config> cl = parse_config(list, "c.json");
  ASSERT_TRUE(cl.is_ok());
  EXPECT_EQ(cl->model.moe[1].n_experts, 4);
  EXPECT_FALSE(apply_override(&list, "model.moe.2.experts=4").is_ok());
}

TEST(ConfigTest, OverridesKeepDependentDefaults) {
  // The expert width defaults to 2 × model width: an override of the width moves it along.
  json j = minimal();
  ASSERT_TRUE(apply_override(&j, "model.width=32").is_ok());
  Result<Config> c = parse_config(j, "c.json");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->model.moe[0].expert.hidden, 64);
}

TEST(ConfigTest, FilesReportSyntaxErrorsAndDuplicateKeys) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "moe_config_test";
  std::filesystem::create_directories(dir);
  const auto write = [&](const char* name, const char* text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string bad =
      write("bad.json", "{\n  \"data\": {\n    \"train\": \"t.csv\",\n  }\n}\n");
  Result<json> r = read_json_file(bad);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message().rfind(bad + " line 4 column 3: invalid JSON", 0), 0u)
      << r.status().message();

  const std::string dup = write("dup.json", R"({"data": {"train": "a", "train": "b"}})");
  r = read_json_file(dup);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), dup + ": the key \"train\" appears twice in one object");

  Result<json> missing = read_json_file((dir / "none.json").string());
  EXPECT_FALSE(missing.is_ok());

  const std::string good =
      write("good.json", R"({"data": {"train": "t.csv"}, "model": {"moe": {"k": 2}}})");
  Result<Config> c = load_config(good, {"model.moe.k=1", "output.dir=elsewhere"});
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->model.moe[0].gate.k, 1);
  EXPECT_EQ(c->output.dir, "elsewhere");
  c = load_config(good, {"model.moe.k=0"});
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().message(), "after the --set overrides: " + good +
                                      ": model.moe.k: expected a positive integer, got 0");
  std::filesystem::remove_all(dir);
}

TEST(ConfigTest, DenseEquivalentHasTheActiveWidth) {
  MoeBlockConfig b;
  b.n_experts = 8;
  b.expert = {ExpertKind::kSwiglu, 32, 1, Activation::kGelu, true};
  b.gate.k = 2;
  ExpertConfig d = dense_equivalent(b);
  EXPECT_EQ(d.kind, ExpertKind::kSwiglu);
  EXPECT_EQ(d.hidden, 64);
  b.n_shared = 1;
  b.shared = b.expert;
  b.shared.hidden = 16;
  EXPECT_EQ(dense_equivalent(b).hidden, 80);
  b.n_shared = 0;
  b.gate.kind = GateKind::kDenseSoftmax;  // every expert active
  EXPECT_EQ(dense_equivalent(b).hidden, 256);
  b.gate.kind = GateKind::kExpertChoice;
  b.gate.capacity_factor = 2;
  EXPECT_EQ(dense_equivalent(b).hidden, 64);
  b.gate.kind = GateKind::kTopKSoftmax;
  b.gate.k = 2;
  b.n_groups = 2;
  b.top_gate.k = 1;
  EXPECT_EQ(dense_equivalent(b).hidden, 64);  // 1 group × 2 experts in it
}

}  // namespace
}  // namespace moe
