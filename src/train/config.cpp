// The run configuration: parsing with a message per bad key, defaults, overrides, and the
// resolved form. See include/moe/train/config.h and docs/config.md.
//
// Dims: D model width · F expert hidden width · E experts · K experts per token · G groups.
#include "moe/train/config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/config_reader.h"

namespace moe {

namespace {

using namespace config_detail;  // NOLINT(google-build-using-namespace): this file's own helpers

// ---------------------------------------------------------------------------------------------
// data

void parse_text(Section text, TextConfig* t) {
  text.string("column", &t->column);
  text.boolean("lowercase", &t->lowercase);
  text.boolean("strip_html", &t->strip_html);
  text.boolean("stop_words", &t->stop_words);
  text.string("stop_words_file", &t->stop_words_file);
  text.integer("min_count", &t->min_count, 1, INT64_MAX, "a positive integer");
  text.integer("max_vocab", &t->max_vocab, 0, int64_t{1} << 30, "an integer ≥ 0");
  text.boolean("bigrams", &t->bigrams);
  text.integer("bigram_buckets", &t->bigram_buckets, 0, int64_t{1} << 26, "an integer ≥ 0");
  text.boolean("sublinear_tf", &t->sublinear_tf);
  text.finish();
}

void parse_idx(Section idx, IdxConfig* x) {
  idx.string("train_images", &x->train_images);
  idx.string("train_labels", &x->train_labels);
  idx.string("validation_images", &x->validation_images);
  idx.string("validation_labels", &x->validation_labels);
  idx.string("test_images", &x->test_images);
  idx.string("test_labels", &x->test_labels);
  idx.integer("n_classes", &x->n_classes, 2, 256, "an integer in [2, 256]");
  idx.finish();
}

void parse_corpus(Section corpus, CorpusConfig* c) {
  SubwordOptions& t = c->tokenizer;
  corpus.choice("tokenizer", &t.kind, kTokenizerKindNames);
  corpus.integer("vocab_size", &t.vocab_size, 260, int64_t{1} << 20,
                 "an integer in [260, 1048576] (3 special and 256 byte pieces come first)");
  corpus.boolean("byte_fallback", &t.byte_fallback);
  corpus.number("character_coverage", &t.character_coverage, 0, 1, true, false,
                "a number in (0, 1]");
  // SentencePiece samples no fewer than 101 lines (and counts them in an int32): refused here,
  // with the key named, rather than when the tokenizer trains.
  const char* sentences = "0 (every line) or an integer in [101, 2147483647]";
  corpus.integer("max_sentences", &t.max_sentences, 0, INT32_MAX, sentences);
  if (t.max_sentences > 0 && t.max_sentences <= 100)
    corpus.fail("max_sentences", sentences, t.max_sentences);
  corpus.string("tokenizer_model", &c->tokenizer_model);
  corpus.finish();
}

void parse_pairs(Section pairs, PairsConfig* p) {
  pairs.boolean("drop_long", &p->drop_long);
  pairs.finish();
}

// Rules that tie data keys together.
void check_data_rules(Section& s, DataConfig* d) {
  if (d->split.validation + d->split.test >= 1.0)
    return s.fail_msg("data.split", "validation + test must be below 1");
  if (d->format == DataFormat::kIdx) {
    if (!d->train.empty() || !d->validation.empty() || !d->test.empty())
      return s.fail_msg("data.train",
                        "not used with format \"idx\": give data.idx.train_images and "
                        "data.idx.train_labels");
    if (d->idx.train_images.empty() || d->idx.train_labels.empty())
      return s.fail_msg("data.idx", "format \"idx\" needs train_images and train_labels");
    if (d->idx.validation_images.empty() != d->idx.validation_labels.empty())
      return s.fail_msg("data.idx", "validation_images and validation_labels go together");
    if (d->idx.test_images.empty() != d->idx.test_labels.empty())
      return s.fail_msg("data.idx", "test_images and test_labels go together");
    if (d->task != TaskKind::kClassification)
      return s.fail_msg("data.task", "format \"idx\" is for classification");
    return;
  }
  if (d->train.empty()) return s.fail_msg("data.train", "a training file is needed");
  // Token data: the task is the next token (corpus) or the target sentence (pairs).
  if (d->format == DataFormat::kCorpus || d->format == DataFormat::kPairs) {
    if (d->task != TaskKind::kClassification)
      return s.fail_msg("data.task", d->format == DataFormat::kCorpus
                                         ? "format \"corpus\" is language modelling: leave "
                                           "data.task out"
                                         : "format \"pairs\" is translation: leave data.task out");
    if (!d->test.empty() && d->test == d->train)
      return s.fail_msg("data.test", "is the training file");
    return;
  }
  if (d->label.empty()) return s.fail_msg("data.label", "at least one label column is needed");
  if (d->task == TaskKind::kClassification && d->label.size() != 1)
    return s.fail_msg("data.label", "classification takes exactly one label column");
  if (d->format == DataFormat::kText) {
    if (d->task != TaskKind::kClassification)
      return s.fail_msg("data.task", "format \"text\" is for classification");
    if (d->text.column.empty()) return s.fail_msg("data.text.column", "must not be empty");
  }
}

void parse_data(Section s, DataConfig* d) {
  s.choice("format", &d->format, kFormats);
  s.string("train", &d->train);
  s.string("validation", &d->validation);
  s.string("test", &d->test);
  if (const json* v = s.take("delimiter")) {
    const std::string str = v->is_string() ? v->get<std::string>() : std::string("?");
    if (str == "auto") {
      d->delimiter = '\0';
    } else if (str == "tab" || str == "\t") {
      d->delimiter = '\t';
    } else if (str.size() == 1 && str != "\"" && str != "\n" && str != "\r") {
      d->delimiter = str[0];
    } else {
      s.fail("delimiter", "\"auto\", \"tab\" or one character", *v);
    }
  }
  std::optional<CsvQuoting> quoting;
  if (const json* v = s.take("quoting")) {
    CsvQuoting q;
    if (v->is_string() && parse_csv_quoting(v->get<std::string>(), &q)) {
      quoting = q;
    } else {
      s.fail("quoting", "one of \"none\", \"rfc4180\"", *v);
    }
  }
  Section split = s.object("split");
  split.number("validation", &d->split.validation, 0, 1, false, true, "a number in [0, 1)");
  split.number("test", &d->split.test, 0, 1, false, true, "a number in [0, 1)");
  split.seed("seed", &d->split.seed);
  split.boolean("stratify", &d->split.stratify);
  split.finish();
  s.choice("task", &d->task, kTaskKindNames);
  s.strings("label", &d->label, true);
  s.strings("ignore_columns", &d->ignore_columns, false);
  s.strings("categorical_columns", &d->categorical_columns, false);
  s.choice("missing", &d->missing, kMissing);
  s.boolean("standardize_targets", &d->standardize_targets);
  s.integer("max_categories", &d->max_categories, 1, kMaxWidth, "an integer in [1, 1048576]");

  parse_text(s.object("text"), &d->text);
  parse_idx(s.object("idx"), &d->idx);
  parse_corpus(s.object("corpus"), &d->corpus);
  parse_pairs(s.object("pairs"), &d->pairs);
  s.finish();
  if (!s.ok()) return;

  // Unset, quoting follows the delimiter the training file is read with: none for a tab, RFC 4180
  // otherwise. Resolved here, so config_to_json gives what training used. Sentence pairs are
  // tab-separated and never quoted (data/pairs.h).
  const bool tab = d->format == DataFormat::kTsv || d->format == DataFormat::kPairs;
  const char delimiter = tab                              ? '\t'
                         : d->format != DataFormat::kText ? ','
                         : d->delimiter != '\0'           ? d->delimiter
                                                          : delimiter_for_path(d->train);
  d->quoting = quoting.value_or(default_quoting(delimiter));

  check_data_rules(s, d);
}

json data_to_json(const DataConfig& d) {
  json j;
  j["format"] = enum_name(kFormats, d.format);
  j["train"] = d.train;
  j["validation"] = d.validation;
  j["test"] = d.test;
  j["delimiter"] = d.delimiter == '\0'   ? std::string("auto")
                   : d.delimiter == '\t' ? std::string("tab")
                                         : std::string(1, d.delimiter);
  j["quoting"] = csv_quoting_name(d.quoting);
  j["split"] = {{"validation", d.split.validation},
                {"test", d.split.test},
                {"seed", d.split.seed},
                {"stratify", d.split.stratify}};
  j["task"] = enum_name(kTaskKindNames, d.task);
  if (d.label.size() == 1) {
    j["label"] = d.label[0];
  } else {
    j["label"] = d.label;
  }
  j["ignore_columns"] = d.ignore_columns;
  j["categorical_columns"] = d.categorical_columns;
  j["missing"] = enum_name(kMissing, d.missing);
  j["standardize_targets"] = d.standardize_targets;
  j["max_categories"] = d.max_categories;
  j["text"] = {{"column", d.text.column},
               {"lowercase", d.text.lowercase},
               {"strip_html", d.text.strip_html},
               {"stop_words", d.text.stop_words},
               {"stop_words_file", d.text.stop_words_file},
               {"min_count", d.text.min_count},
               {"max_vocab", d.text.max_vocab},
               {"bigrams", d.text.bigrams},
               {"bigram_buckets", d.text.bigram_buckets},
               {"sublinear_tf", d.text.sublinear_tf}};
  j["idx"] = {{"train_images", d.idx.train_images},
              {"train_labels", d.idx.train_labels},
              {"validation_images", d.idx.validation_images},
              {"validation_labels", d.idx.validation_labels},
              {"test_images", d.idx.test_images},
              {"test_labels", d.idx.test_labels},
              {"n_classes", d.idx.n_classes}};
  const SubwordOptions& t = d.corpus.tokenizer;
  j["corpus"] = {{"tokenizer", enum_name(kTokenizerKindNames, t.kind)},
                 {"vocab_size", t.vocab_size},
                 {"byte_fallback", t.byte_fallback},
                 {"character_coverage", t.character_coverage},
                 {"max_sentences", t.max_sentences},
                 {"tokenizer_model", d.corpus.tokenizer_model}};
  j["pairs"] = {{"drop_long", d.pairs.drop_long}};
  return j;
}

// ---------------------------------------------------------------------------------------------
// model

void parse_expert(Section s, ExpertConfig* e) {
  s.choice("kind", &e->kind, kExpertKindNames);
  s.integer("hidden", &e->hidden, 1, kMaxWidth, "an integer in [1, 1048576]");
  s.integer("depth", &e->depth, 1, 64, "an integer in [1, 64]");
  s.choice("activation", &e->activation, kActivationNames, &kNoActivation);
  s.boolean("bias", &e->bias);
  s.finish();
}

json expert_to_json(const ExpertConfig& e) {
  return {{"kind", enum_name(kExpertKindNames, e.kind)},
          {"hidden", e.hidden},
          {"depth", e.depth},
          {"activation", enum_name(kActivationNames, e.activation)},
          {"bias", e.bias}};
}

// The gate's kind and options ("gate": {...}); K, capacity and balancing sit beside it.
void parse_gate_options(Section s, GateConfig* g) {
  s.choice("kind", &g->kind, kGateKindNames);
  s.boolean("renormalize", &g->renormalize);
  s.boolean("router_bias", &g->router_bias);
  s.boolean("softmax_after_topk", &g->softmax_after_topk);
  s.number("tau_start", &g->tau_start, 0, 1e6, true, false, "a number > 0");
  s.number("tau_min", &g->tau_min, 0, 1e6, true, false, "a number > 0");
  s.number("tau_decay", &g->tau_decay, 0, 1e6, false, false, "a number ≥ 0");
  s.boolean("hard", &g->hard);
  s.number("bias_update_rate", &g->bias_update_rate, 0, 1e6, false, false, "a number ≥ 0");
  s.integer("sinkhorn_iterations", &g->sinkhorn_iterations, 1, 10000, "an integer in [1, 10000]");
  s.finish();
}

// k, capacity_factor, min_capacity, gate {...}, balance {...}: the parts every gate config has.
void parse_gate(Section& s, GateConfig* g) {
  s.integer("k", &g->k, 1, INT32_MAX, "a positive integer");
  // Top-1 renormalised always weighs its expert 1, which leaves the router without any gradient
  // from the task (only the balancing loss trains it); so k = 1 defaults to the gate probability
  // as the weight, as Switch Transformer does. Said explicitly, renormalize is kept.
  g->renormalize = g->k > 1;
  parse_gate_options(s.object("gate"), g);
  // The Switch loss is on by default wherever the gate supports it (hash routing has no router).
  g->switch_loss = g->kind == GateKind::kHash ? 0.0f : 0.01f;
  s.number("capacity_factor", &g->capacity_factor, 0, 1e6, false, false,
           "a number ≥ 0 (0: dropless)");
  s.integer("min_capacity", &g->min_capacity, 0, INT32_MAX, "an integer ≥ 0");
  Section b = s.object("balance");
  b.number("switch", &g->switch_loss, 0, 1e6, false, false, "a number ≥ 0");
  b.number("importance", &g->importance_loss, 0, 1e6, false, false, "a number ≥ 0");
  b.number("load", &g->load_loss, 0, 1e6, false, false, "a number ≥ 0");
  b.number("z", &g->z_loss, 0, 1e6, false, false, "a number ≥ 0");
  b.finish();
}

void gate_to_json(const GateConfig& g, json* j) {
  (*j)["k"] = g.k;
  (*j)["gate"] = {{"kind", enum_name(kGateKindNames, g.kind)},
                  {"renormalize", g.renormalize},
                  {"router_bias", g.router_bias},
                  {"softmax_after_topk", g.softmax_after_topk},
                  {"tau_start", real(g.tau_start)},
                  {"tau_min", real(g.tau_min)},
                  {"tau_decay", real(g.tau_decay)},
                  {"hard", g.hard},
                  {"bias_update_rate", real(g.bias_update_rate)},
                  {"sinkhorn_iterations", g.sinkhorn_iterations}};
  (*j)["capacity_factor"] = real(g.capacity_factor);
  (*j)["min_capacity"] = g.min_capacity;
  (*j)["balance"] = {{"switch", real(g.switch_loss)},
                     {"importance", real(g.importance_loss)},
                     {"load", real(g.load_loss)},
                     {"z", real(g.z_loss)}};
}

}  // namespace

namespace {

// model.moe.adapt, its bounds resolved against the layer's expert count and k (read before it).
void parse_adapt(Section a, MoeBlockConfig* b) {
  AdaptConfig& c = b->adapt;
  a.boolean("enabled", &c.enabled);
  a.number("split_above", &c.split_above, 1, 1e6, true, false, "a number > 1");
  a.number("remove_below", &c.remove_below, 0, 1, false, true, "a number in [0, 1)");
  a.integer("epochs", &c.epochs, 1, 1000000, "an integer in [1, 1000000]");
  a.integer("max_experts", &c.max_experts, 0, kMaxWidth,
            "an integer in [0, 1048576] (0: twice the experts)");
  a.integer("min_experts", &c.min_experts, 0, kMaxWidth,
            "an integer in [0, 1048576] (0: k, at least 2)");
  a.number("noise", &c.noise, 0, 1e6, false, false, "a number ≥ 0");
  a.finish();
  if (!a.ok()) return;
  if (c.max_experts == 0) c.max_experts = 2 * b->n_experts;
  if (c.min_experts == 0) c.min_experts = std::max<int64_t>(2, b->gate.k);
  if (!c.enabled) return;
  if (c.max_experts < b->n_experts || c.min_experts > b->n_experts)
    return a.fail_msg(a.path(), fmt::format("min_experts {} and max_experts {} must hold the "
                                            "layer's {} experts",
                                            c.min_experts, c.max_experts, b->n_experts));
  if (b->n_groups > 0 || b->gate.kind == GateKind::kHash)
    return a.fail_msg(a.path(), "needs a flat layer (no hierarchy) with a router (not hash)");
}

void parse_moe_block(Section s, int64_t width, MoeBlockConfig* b) {
  b->expert.kind = ExpertKind::kSwiglu;
  b->expert.hidden = 2 * width;
  parse_expert(s.object("expert"), &b->expert);
  if (const json* list = s.take("expert_list")) {
    if (!list->is_array()) return s.fail("expert_list", "an array of expert objects", *list);
    for (size_t i = 0; i < list->size(); ++i) {
      ExpertConfig e = b->expert;  // each entry starts from "expert" and overrides what it names
      parse_expert(Section(&(*list)[i], s.at("expert_list") + "." + std::to_string(i), s.status()),
                   &e);
      b->expert_list.push_back(e);
    }
  }
  const bool has_count = s.has("experts");
  // Capped like every other count: validation builds the E expert configs, so an unchecked
  // "experts": 2000000000 would allocate by the number itself.
  s.integer("experts", &b->n_experts, 1, kMaxWidth, "an integer in [1, 1048576]");
  if (!b->expert_list.empty()) {
    const auto n = static_cast<int64_t>(b->expert_list.size());
    if (has_count && b->n_experts != n && s.ok())
      return s.fail_msg(s.at("experts"),
                        fmt::format("is {} but expert_list has {} entries", b->n_experts, n));
    b->n_experts = n;
  }
  s.integer("shared", &b->n_shared, 0, 1024, "an integer ≥ 0");
  b->shared = b->expert;
  parse_expert(s.object("shared_expert"), &b->shared);
  parse_gate(s, &b->gate);
  Section h = s.object("hierarchy");
  h.integer("groups", &b->n_groups, 0, INT32_MAX, "an integer ≥ 0 (0: a flat layer)");
  b->top_gate.k = 1;
  parse_gate(h, &b->top_gate);
  h.finish();
  s.choice("precision", &b->precision, kPrecisionNames);
  s.boolean("expert_parallel", &b->expert_parallel);
  parse_adapt(s.object("adapt"), b);
  s.finish();
  if (!s.ok()) return;
  if (b->n_groups > 0 && b->n_experts % b->n_groups != 0)
    return s.fail_msg(h.at("groups"), fmt::format("{} experts do not split into {} equal groups",
                                                  b->n_experts, b->n_groups));
  // The gates first, for messages that say which gate; then the layer as a whole.
  const MoeConfig m = moe_layer_config(*b, width);
  Status st = validate_gate_config(m.gate);
  if (st.is_ok() && b->n_groups > 0) {
    st = validate_gate_config(m.hierarchy.top);
    if (!st.is_ok()) return s.fail_msg(h.path(), st.message());
  }
  if (st.is_ok()) st = validate_moe_config(m);
  if (st.is_ok()) return;
  std::string message = st.message();
  if (message.rfind("moe: ", 0) == 0) message = message.substr(5);
  s.fail_msg(s.path(), message);
}

json moe_block_to_json(const MoeBlockConfig& b) {
  json j;
  j["experts"] = b.n_experts;
  j["expert"] = expert_to_json(b.expert);
  j["expert_list"] = json::array();
  for (const ExpertConfig& e : b.expert_list) j["expert_list"].push_back(expert_to_json(e));
  j["shared"] = b.n_shared;
  j["shared_expert"] = expert_to_json(b.shared);
  gate_to_json(b.gate, &j);
  json h;
  h["groups"] = b.n_groups;
  gate_to_json(b.top_gate, &h);
  j["hierarchy"] = h;
  j["precision"] = enum_name(kPrecisionNames, b.precision);
  j["expert_parallel"] = b.expert_parallel;
  j["adapt"] = {{"enabled", b.adapt.enabled},           {"split_above", b.adapt.split_above},
                {"remove_below", b.adapt.remove_below}, {"epochs", b.adapt.epochs},
                {"max_experts", b.adapt.max_experts},   {"min_experts", b.adapt.min_experts},
                {"noise", real(b.adapt.noise)}};
  return j;
}

void parse_lm(Section lm, LmConfig* l) {
  lm.integer("layers", &l->layers, 1, 1024, "an integer in [1, 1024]");
  lm.integer("heads", &l->heads, 1, 4096, "an integer in [1, 4096]");
  lm.integer("kv_heads", &l->kv_heads, 0, 4096, "an integer in [0, 4096] (0: as many as heads)");
  lm.integer("context", &l->context, 1, 65536, "an integer in [1, 65536]");
  lm.boolean("tie_embeddings", &l->tie_embeddings);
  lm.number("rope_theta", &l->rope_theta, 1, 1e12, true, false, "a number > 1");
  lm.choice("moe_layers", &l->moe_layers, kMoeLayers);
  lm.integer("ffn_hidden", &l->ffn_hidden, 0, kMaxWidth, "an integer in [0, 1048576] (0: auto)");
  lm.number("norm_eps", &l->norm_eps, 0, 1, true, false, "a number in (0, 1]");
  lm.finish();
}

// The ranges of model.lm's keys, and the two stacks' own layer counts and MoE patterns.
void parse_translation(Section tr, TranslationConfig* t) {
  tr.integer("encoder_layers", &t->encoder_layers, 1, 1024, "an integer in [1, 1024]");
  tr.integer("decoder_layers", &t->decoder_layers, 1, 1024, "an integer in [1, 1024]");
  tr.integer("heads", &t->heads, 1, 4096, "an integer in [1, 4096]");
  tr.integer("kv_heads", &t->kv_heads, 0, 4096, "an integer in [0, 4096] (0: as many as heads)");
  tr.integer("max_tokens", &t->max_tokens, 2, 65536, "an integer in [2, 65536]");
  tr.boolean("tie_embeddings", &t->tie_embeddings);
  tr.number("rope_theta", &t->rope_theta, 1, 1e12, true, false, "a number > 1");
  tr.choice("encoder_moe", &t->encoder_moe, kMoeLayers);
  tr.choice("decoder_moe", &t->decoder_moe, kMoeLayers);
  tr.integer("ffn_hidden", &t->ffn_hidden, 0, kMaxWidth, "an integer in [0, 1048576] (0: auto)");
  tr.number("norm_eps", &t->norm_eps, 0, 1, true, false, "a number in (0, 1]");
  tr.finish();
}

void parse_model(Section s, ModelConfig* m) {
  s.integer("width", &m->width, 1, kMaxWidth, "an integer in [1, 1048576]");
  s.number("input_dropout", &m->input_dropout, 0, 1, false, true, "a number in [0, 1)");
  s.number("word_dropout", &m->word_dropout, 0, 1, false, true, "a number in [0, 1)");
  s.choice("bag", &m->bag, kBags);
  s.number("input_l2", &m->input_l2, 0, 1e6, false, false, "a number ≥ 0");
  Section t = s.object("trunk");
  if (const json* v = t.take("hidden")) {
    if (!v->is_array()) return t.fail("hidden", "an array of positive integers", *v);
    for (size_t i = 0; i < v->size(); ++i) {
      const json& e = (*v)[i];
      if (!e.is_number_integer() || e.get<int64_t>() < 1 || e.get<int64_t>() > kMaxWidth)
        return t.fail_msg(t.at("hidden") + "." + std::to_string(i),
                          fmt::format("expected an integer in [1, 1048576], got {}", show(e)));
      m->trunk.hidden.push_back(e.get<int64_t>());
    }
  }
  t.choice("activation", &m->trunk.activation, kActivationNames, &kNoActivation);
  t.choice("norm", &m->trunk.norm, kNorms);
  t.boolean("final_norm", &m->trunk.final_norm);
  t.number("norm_eps", &m->trunk.norm_eps, 0, 1, true, false, "a number in (0, 1]");
  t.number("dropout", &m->trunk.dropout, 0, 1, false, true, "a number in [0, 1)");
  t.finish();
  if (!s.ok()) return;
  const json* moe = s.take("moe");
  if (moe == nullptr) {
    if (s.ok()) {
      m->moe.emplace_back();
      parse_moe_block(Section(nullptr, s.at("moe"), s.status()), m->width, &m->moe.back());
    }
  } else if (moe->is_object()) {
    m->moe.emplace_back();
    parse_moe_block(Section(moe, s.at("moe"), s.status()), m->width, &m->moe.back());
  } else if (moe->is_array()) {
    m->moe_list = true;
    for (size_t i = 0; i < moe->size() && s.ok(); ++i) {
      m->moe.emplace_back();
      parse_moe_block(Section(&(*moe)[i], s.at("moe") + "." + std::to_string(i), s.status()),
                      m->width, &m->moe.back());
    }
  } else {
    s.fail("moe", "an MoE layer object or an array of them", *moe);
  }
  s.boolean("dense", &m->dense);
  parse_lm(s.object("lm"), &m->lm);
  parse_translation(s.object("translation"), &m->translation);
  s.finish();
}

json model_to_json(const ModelConfig& m) {
  json j;
  j["width"] = m.width;
  j["input_dropout"] = real(m.input_dropout);
  j["word_dropout"] = real(m.word_dropout);
  j["bag"] = enum_name(kBags, m.bag);
  j["input_l2"] = real(m.input_l2);
  j["trunk"] = {{"hidden", m.trunk.hidden},
                {"activation", enum_name(kActivationNames, m.trunk.activation)},
                {"norm", enum_name(kNorms, m.trunk.norm)},
                {"final_norm", m.trunk.final_norm},
                {"norm_eps", real(m.trunk.norm_eps)},
                {"dropout", real(m.trunk.dropout)}};
  if (m.moe.size() == 1 && !m.moe_list) {
    j["moe"] = moe_block_to_json(m.moe[0]);
  } else {
    j["moe"] = json::array();
    for (const MoeBlockConfig& b : m.moe) j["moe"].push_back(moe_block_to_json(b));
  }
  j["dense"] = m.dense;
  j["lm"] = {{"layers", m.lm.layers},
             {"heads", m.lm.heads},
             {"kv_heads", m.lm.kv_heads},
             {"context", m.lm.context},
             {"tie_embeddings", m.lm.tie_embeddings},
             {"rope_theta", m.lm.rope_theta},
             {"moe_layers", enum_name(kMoeLayers, m.lm.moe_layers)},
             {"ffn_hidden", m.lm.ffn_hidden},
             {"norm_eps", real(m.lm.norm_eps)}};
  const TranslationConfig& tr = m.translation;
  j["translation"] = {{"encoder_layers", tr.encoder_layers},
                      {"decoder_layers", tr.decoder_layers},
                      {"heads", tr.heads},
                      {"kv_heads", tr.kv_heads},
                      {"max_tokens", tr.max_tokens},
                      {"tie_embeddings", tr.tie_embeddings},
                      {"rope_theta", tr.rope_theta},
                      {"encoder_moe", enum_name(kMoeLayers, tr.encoder_moe)},
                      {"decoder_moe", enum_name(kMoeLayers, tr.decoder_moe)},
                      {"ffn_hidden", tr.ffn_hidden},
                      {"norm_eps", real(tr.norm_eps)}};
  return j;
}

// ---------------------------------------------------------------------------------------------
// training, output

void parse_training(Section s, TaskKind task, TrainingConfig* t) {
  s.choice("optimizer", &t->optimizer.kind, kOptimizerKindNames);
  s.number("lr", &t->lr, 0, 1e6, true, false, "a number > 0");
  s.number("weight_decay", &t->optimizer.weight_decay, 0, 1e6, false, false, "a number ≥ 0");
  s.number("momentum", &t->optimizer.momentum, 0, 1, false, true, "a number in [0, 1)");
  s.boolean("nesterov", &t->optimizer.nesterov);
  s.number("beta1", &t->optimizer.beta1, 0, 1, false, true, "a number in [0, 1)");
  s.number("beta2", &t->optimizer.beta2, 0, 1, false, true, "a number in [0, 1)");
  s.number("eps", &t->optimizer.eps, 0, 1, true, false, "a number in (0, 1]");
  s.choice("schedule", &t->schedule, kScheduleKindNames);
  s.integer("warmup_steps", &t->warmup_steps, 0, INT64_MAX, "an integer ≥ 0");
  s.number("min_lr", &t->min_lr, 0, 1e6, false, false, "a number ≥ 0");
  s.integer("step_size", &t->step_size, 1, INT64_MAX, "a positive integer");
  s.number("gamma", &t->gamma, 0, 1, true, false, "a number in (0, 1]");
  s.integer("batch_size", &t->batch_size, 1, kMaxWidth, "an integer in [1, 1048576]");
  s.integer("epochs", &t->epochs, 1, 1000000, "a positive integer");
  s.integer("max_steps", &t->max_steps, 0, INT64_MAX, "an integer ≥ 0 (0: no limit)");
  s.number("max_minutes", &t->max_minutes, 0, 1e7, false, false, "a number ≥ 0 (0: no limit)");
  s.seed("seed", &t->seed);
  s.integer("threads", &t->threads, 0, 4096, "an integer ≥ 0 (0: every core)");
  Section e = s.object("early_stopping");
  e.integer("patience", &t->patience, 0, 1000000, "an integer ≥ 0 (0: off)");
  e.choice("metric", &t->metric, kMetrics);
  e.finish();
  s.number("clip_norm", &t->clip_norm, 0, 1e12, false, false, "a number ≥ 0 (0: off)");
  s.number("label_smoothing", &t->label_smoothing, 0, 1, false, true, "a number in [0, 1)");
  s.choice("class_weights", &t->class_weights, kClassWeights);
  s.choice("loss", &t->loss, kLosses);
  s.number("huber_delta", &t->huber_delta, 0, 1e12, true, false, "a number > 0");
  s.string("init", &t->init);
  s.strings("init_exclude", &t->init_exclude, false);
  s.strings("frozen", &t->frozen, false);
  s.strings("trainable", &t->trainable, false);
  s.finish();
  if (!s.ok()) return;
  if (t->min_lr > t->lr) return s.fail_msg(s.at("min_lr"), "must not exceed training.lr");
  if (t->optimizer.nesterov && t->optimizer.momentum <= 0)
    return s.fail_msg(s.at("nesterov"), "needs training.momentum > 0");
  const bool classification = task == TaskKind::kClassification;
  const MetricKind m = t->metric;
  if (classification && (m == MetricKind::kMse || m == MetricKind::kMae || m == MetricKind::kR2))
    return s.fail_msg(e.at("metric"), fmt::format("\"{}\" is a regression metric; use one of "
                                                  "\"loss\", \"accuracy\", \"f1\", \"roc_auc\"",
                                                  metric_kind_name(m)));
  if (!classification &&
      (m == MetricKind::kAccuracy || m == MetricKind::kF1 || m == MetricKind::kRocAuc))
    return s.fail_msg(e.at("metric"), fmt::format("\"{}\" is a classification metric; use one "
                                                  "of \"loss\", \"mse\", \"mae\", \"r2\"",
                                                  metric_kind_name(m)));
  if (!classification && t->class_weights != ClassWeights::kNone)
    return s.fail_msg(s.at("class_weights"), "applies to classification only");
  if (!classification && t->label_smoothing > 0)
    return s.fail_msg(s.at("label_smoothing"), "applies to classification only");
}

json training_to_json(const TrainingConfig& t) {
  return {{"optimizer", enum_name(kOptimizerKindNames, t.optimizer.kind)},
          {"lr", t.lr},
          {"weight_decay", t.optimizer.weight_decay},
          {"momentum", t.optimizer.momentum},
          {"nesterov", t.optimizer.nesterov},
          {"beta1", t.optimizer.beta1},
          {"beta2", t.optimizer.beta2},
          {"eps", t.optimizer.eps},
          {"schedule", enum_name(kScheduleKindNames, t.schedule)},
          {"warmup_steps", t.warmup_steps},
          {"min_lr", t.min_lr},
          {"step_size", t.step_size},
          {"gamma", t.gamma},
          {"batch_size", t.batch_size},
          {"epochs", t.epochs},
          {"max_steps", t.max_steps},
          {"max_minutes", t.max_minutes},
          {"seed", t.seed},
          {"threads", t.threads},
          {"early_stopping", {{"patience", t.patience}, {"metric", enum_name(kMetrics, t.metric)}}},
          {"clip_norm", t.clip_norm},
          {"label_smoothing", t.label_smoothing},
          {"class_weights", enum_name(kClassWeights, t.class_weights)},
          {"loss", enum_name(kLosses, t.loss)},
          {"huber_delta", t.huber_delta},
          {"init", t.init},
          {"init_exclude", t.init_exclude},
          {"frozen", t.frozen},
          {"trainable", t.trainable}};
}

void parse_output(Section s, OutputConfig* o) {
  s.string("dir", &o->dir);
  Section c = s.object("checkpoint");
  c.integer("every", &o->checkpoint_every, 0, INT64_MAX, "an integer ≥ 0 (0: epoch ends only)");
  c.integer("keep_last", &o->keep_last, 1, 1000000, "a positive integer");
  c.boolean("best", &o->save_best);
  c.finish();
  s.finish();
  if (s.ok() && o->dir.empty()) s.fail_msg(s.at("dir"), "must not be empty");
}

json output_to_json(const OutputConfig& o) {
  return {{"dir", o.dir},
          {"checkpoint",
           {{"every", o.checkpoint_every}, {"keep_last", o.keep_last}, {"best", o.save_best}}}};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// public

const char* data_format_name(DataFormat f) {
  return enum_name(kFormats, f);
}
bool parse_data_format(const std::string& s, DataFormat* out) {
  return parse_enum_name(kFormats, s, out);
}
const char* norm_choice_name(NormChoice n) {
  return enum_name(kNorms, n);
}
const char* metric_kind_name(MetricKind m) {
  return enum_name(kMetrics, m);
}
bool parse_metric_kind(const std::string& s, MetricKind* out) {
  return parse_enum_name(kMetrics, s, out);
}
bool metric_higher_is_better(MetricKind m) {
  return m == MetricKind::kAccuracy || m == MetricKind::kF1 || m == MetricKind::kRocAuc ||
         m == MetricKind::kR2;
}

LrSchedule TrainingConfig::make_schedule(int64_t total_steps) const {
  switch (schedule) {
    case ScheduleKind::kCosine:
      return LrSchedule::cosine(lr, total_steps, warmup_steps, min_lr);
    case ScheduleKind::kStep:
      return LrSchedule::step_decay(lr, step_size, gamma, warmup_steps);
    case ScheduleKind::kConstant:
      break;
  }
  return LrSchedule::constant(lr, warmup_steps);
}

Result<Config> parse_config(const json& j, const std::string& source) {
  Status status;
  Config c;
  Section root(&j, "", &status);
  if (!status.is_ok())
    return Status::error("{}: the configuration must be a JSON object, got {}", source, show(j));
  parse_data(root.object("data"), &c.data);
  if (status.is_ok()) parse_model(root.object("model"), &c.model);
  c.model.language_model = c.data.format == DataFormat::kCorpus;
  c.model.translation_model = c.data.format == DataFormat::kPairs;
  if (status.is_ok()) parse_training(root.object("training"), c.data.task, &c.training);
  if (status.is_ok()) parse_output(root.object("output"), &c.output);
  root.finish();
  if (!status.is_ok()) return status.with_context(source);
  return c;
}

json config_to_json(const Config& c) {
  json j;
  j["data"] = data_to_json(c.data);
  j["model"] = model_to_json(c.model);
  j["training"] = training_to_json(c.training);
  j["output"] = output_to_json(c.output);
  return j;
}

}  // namespace moe
