// The run configuration: parsing with a message per bad key, defaults, overrides, and the
// resolved form. See include/moe/train/config.h and docs/config.md.
//
// Dims: D model width · F expert hidden width · E experts · K experts per token · G groups.
#include "moe/train/config.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace moe {

namespace {

using json = nlohmann::json;

constexpr int64_t kMaxWidth = int64_t{1} << 20;  // widths, counts: far beyond any CPU model
constexpr uint64_t kMaxConfigBytes = uint64_t{16} << 20;

// A float config value as the shortest decimal that reads back as the same float (0.01, not
// 0.009999999776482582), so the resolved config is readable and still exact.
json real(float v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
}

// A JSON value for a message, cut short when long.
std::string show(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

template <typename E>
struct Choice {
  const char* name;
  E value;
};

template <typename E, size_t N>
std::string choice_list(const Choice<E> (&options)[N]) {
  std::string s = "one of";
  for (size_t i = 0; i < N; ++i) s += fmt::format("{} \"{}\"", i ? "," : "", options[i].name);
  return s;
}

template <typename E, size_t N>
const char* choice_name(const Choice<E> (&options)[N], E v) {
  for (const Choice<E>& c : options)
    if (c.value == v) return c.name;
  return "unknown";
}

constexpr Choice<DataFormat> kFormats[] = {{"csv", DataFormat::kCsv},
                                           {"tsv", DataFormat::kTsv},
                                           {"text", DataFormat::kText},
                                           {"idx", DataFormat::kIdx}};
constexpr Choice<TaskKind> kTasks[] = {{"classification", TaskKind::kClassification},
                                       {"regression", TaskKind::kRegression}};
constexpr Choice<MissingPolicy> kMissing[] = {{"error", MissingPolicy::kError},
                                              {"impute", MissingPolicy::kImpute}};
constexpr Choice<NormChoice> kNorms[] = {
    {"rms", NormChoice::kRms}, {"layer", NormChoice::kLayer}, {"none", NormChoice::kNone}};
constexpr Choice<InputBag> kBags[] = {
    {"weighted_sum", InputBag::kWeightedSum}, {"sum", InputBag::kSum}, {"mean", InputBag::kMean}};
constexpr Choice<ExpertKind> kExpertKinds[] = {
    {"linear", ExpertKind::kLinear}, {"mlp", ExpertKind::kMlp}, {"swiglu", ExpertKind::kSwiglu}};
constexpr Choice<Activation> kActivations[] = {
    {"relu", Activation::kRelu},          {"gelu", Activation::kGelu},
    {"gelu_tanh", Activation::kGeluTanh}, {"silu", Activation::kSilu},
    {"sigmoid", Activation::kSigmoid},    {"tanh", Activation::kTanh}};
constexpr Choice<GateKind> kGateKinds[] = {{"dense_softmax", GateKind::kDenseSoftmax},
                                           {"gumbel_softmax", GateKind::kGumbelSoftmax},
                                           {"topk_softmax", GateKind::kTopKSoftmax},
                                           {"noisy_topk", GateKind::kNoisyTopK},
                                           {"sigmoid_bias", GateKind::kSigmoidBias},
                                           {"expert_choice", GateKind::kExpertChoice},
                                           {"hash", GateKind::kHash},
                                           {"sinkhorn", GateKind::kSinkhorn}};
constexpr Choice<OptimizerKind> kOptimizers[] = {
    {"sgd", OptimizerKind::kSgd}, {"adam", OptimizerKind::kAdam}, {"adamw", OptimizerKind::kAdamW}};
constexpr Choice<ScheduleKind> kSchedules[] = {{"constant", ScheduleKind::kConstant},
                                               {"cosine", ScheduleKind::kCosine},
                                               {"step", ScheduleKind::kStep}};
constexpr Choice<MetricKind> kMetrics[] = {
    {"loss", MetricKind::kLoss},  {"accuracy", MetricKind::kAccuracy}, {"f1", MetricKind::kF1},
    {"auc", MetricKind::kRocAuc}, {"mse", MetricKind::kMse},           {"mae", MetricKind::kMae},
    {"r2", MetricKind::kR2}};
constexpr Choice<ClassWeights> kClassWeights[] = {{"none", ClassWeights::kNone},
                                                  {"balanced", ClassWeights::kBalanced}};
constexpr Choice<RegressionLoss> kLosses[] = {{"mse", RegressionLoss::kMse},
                                              {"huber", RegressionLoss::kHuber}};

// One JSON object of the configuration at `path`. Every getter registers its key (so finish()
// can name unknown ones) and leaves the default in place when the key is absent. The first
// error is kept in *status; later calls do nothing.
class Section {
 public:
  Section(const json* j, std::string path, Status* status)
      : j_(j), path_(std::move(path)), status_(status) {
    if (j_ != nullptr && !j_->is_object() && status_->is_ok())
      *status_ = Status::error("{}: expected an object, got {}", path_, show(*j_));
  }

  bool ok() const { return status_->is_ok(); }
  Status* status() const { return status_; }
  const std::string& path() const { return path_; }
  std::string at(const std::string& key) const { return join_path(path_, key); }
  bool has(const char* key) {
    know(key);
    return j_ != nullptr && j_->is_object() && j_->contains(key);
  }

  // The value of `key`, or null when absent or after an error.
  const json* take(const char* key) {
    know(key);
    if (!ok() || j_ == nullptr || !j_->is_object()) return nullptr;
    const auto it = j_->find(key);
    return it == j_->end() ? nullptr : &*it;
  }

  void fail(const char* key, const std::string& expected, const json& got) {
    if (ok()) *status_ = Status::error("{}: expected {}, got {}", at(key), expected, show(got));
  }
  void fail_msg(const std::string& key_path, const std::string& message) {
    if (ok()) *status_ = Status::error("{}: {}", key_path, message);
  }

  void integer(const char* key, int64_t* out, int64_t lo, int64_t hi, const char* expected) {
    const json* v = take(key);
    if (v == nullptr) return;
    int64_t x = 0;
    bool good = false;
    if (v->is_number_unsigned()) {
      const uint64_t u = v->get<uint64_t>();
      good = u <= static_cast<uint64_t>(INT64_MAX);
      x = good ? static_cast<int64_t>(u) : 0;
    } else if (v->is_number_integer()) {
      x = v->get<int64_t>();
      good = true;
    } else if (v->is_number_float()) {  // 1e5 is a float in JSON; accept it when integral
      const double d = v->get<double>();
      good = std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15;
      x = good ? static_cast<int64_t>(d) : 0;
    }
    if (!good || x < lo || x > hi) return fail(key, expected, *v);
    *out = x;
  }
  void integer(const char* key, int* out, int lo, int hi, const char* expected) {
    int64_t x = *out;
    integer(key, &x, lo, hi, expected);
    *out = static_cast<int>(x);
  }
  void seed(const char* key, uint64_t* out) {
    const json* v = take(key);
    if (v == nullptr) return;
    if (v->is_number_unsigned()) {
      *out = v->get<uint64_t>();
    } else if (v->is_number_integer() && v->get<int64_t>() >= 0) {
      *out = static_cast<uint64_t>(v->get<int64_t>());
    } else {
      fail(key, "an integer ≥ 0", *v);
    }
  }
  // A finite number in the range [lo, hi], or (lo, hi] when lo_open, [lo, hi) when hi_open.
  void number(const char* key, double* out, double lo, double hi, bool lo_open, bool hi_open,
              const char* expected) {
    const json* v = take(key);
    if (v == nullptr) return;
    const double x = v->is_number() ? v->get<double>() : std::nan("");
    const bool good =
        std::isfinite(x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    if (!good) return fail(key, expected, *v);
    *out = x;
  }
  void number(const char* key, float* out, double lo, double hi, bool lo_open, bool hi_open,
              const char* expected) {
    double x = *out;
    number(key, &x, lo, hi, lo_open, hi_open, expected);
    *out = static_cast<float>(x);
  }
  void boolean(const char* key, bool* out) {
    const json* v = take(key);
    if (v == nullptr) return;
    if (!v->is_boolean()) return fail(key, "true or false", *v);
    *out = v->get<bool>();
  }
  void string(const char* key, std::string* out) {
    const json* v = take(key);
    if (v == nullptr) return;
    if (!v->is_string()) return fail(key, "a string", *v);
    *out = v->get<std::string>();
  }
  // A string, or an array of strings.
  void strings(const char* key, std::vector<std::string>* out, bool allow_single) {
    const json* v = take(key);
    if (v == nullptr) return;
    const char* expected = allow_single ? "a string or an array of strings" : "an array of strings";
    if (allow_single && v->is_string()) {
      *out = {v->get<std::string>()};
      return;
    }
    if (!v->is_array()) return fail(key, expected, *v);
    std::vector<std::string> r;
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string())
        return fail_msg(at(key) + "." + std::to_string(i),
                        fmt::format("expected a string, got {}", show((*v)[i])));
      r.push_back((*v)[i].get<std::string>());
    }
    *out = std::move(r);
  }
  template <typename E, size_t N>
  void choice(const char* key, E* out, const Choice<E> (&options)[N]) {
    const json* v = take(key);
    if (v == nullptr) return;
    if (v->is_string()) {
      for (const Choice<E>& c : options) {
        if (v->get<std::string>() == c.name) {
          *out = c.value;
          return;
        }
      }
    }
    fail(key, choice_list(options), *v);
  }
  Section object(const char* key) { return Section(take(key), at(key), status_); }

  // Unknown keys are errors naming the key and the ones this object knows.
  void finish() {
    if (!ok() || j_ == nullptr || !j_->is_object()) return;
    for (const auto& [k, v] : j_->items()) {
      if (std::find(known_.begin(), known_.end(), k) != known_.end()) continue;
      std::string list;
      for (size_t i = 0; i < known_.size(); ++i) list += (i ? ", " : "") + known_[i];
      fail_msg(at(k), fmt::format("unknown key (expected one of: {})", list));
      return;
    }
  }

 private:
  void know(const char* key) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
  }

  const json* j_;
  std::string path_;
  Status* status_;
  std::vector<std::string> known_;
};

// ---------------------------------------------------------------------------------------------
// data

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
  Section split = s.object("split");
  split.number("validation", &d->split.validation, 0, 1, false, true, "a number in [0, 1)");
  split.number("test", &d->split.test, 0, 1, false, true, "a number in [0, 1)");
  split.seed("seed", &d->split.seed);
  split.boolean("stratify", &d->split.stratify);
  split.finish();
  s.choice("task", &d->task, kTasks);
  s.strings("label", &d->label, true);
  s.strings("ignore_columns", &d->ignore_columns, false);
  s.strings("categorical_columns", &d->categorical_columns, false);
  s.choice("missing", &d->missing, kMissing);
  s.boolean("standardize_targets", &d->standardize_targets);
  s.integer("max_categories", &d->max_categories, 1, kMaxWidth, "a positive integer");

  Section text = s.object("text");
  text.string("column", &d->text.column);
  text.boolean("lowercase", &d->text.lowercase);
  text.boolean("strip_html", &d->text.strip_html);
  text.boolean("stop_words", &d->text.stop_words);
  text.string("stop_words_file", &d->text.stop_words_file);
  text.integer("min_count", &d->text.min_count, 1, INT64_MAX, "a positive integer");
  text.integer("max_vocab", &d->text.max_vocab, 0, int64_t{1} << 30, "an integer ≥ 0");
  text.integer("bigram_buckets", &d->text.bigram_buckets, 0, int64_t{1} << 30, "an integer ≥ 0");
  text.boolean("sublinear_tf", &d->text.sublinear_tf);
  text.finish();

  Section idx = s.object("idx");
  idx.string("train_images", &d->idx.train_images);
  idx.string("train_labels", &d->idx.train_labels);
  idx.string("validation_images", &d->idx.validation_images);
  idx.string("validation_labels", &d->idx.validation_labels);
  idx.string("test_images", &d->idx.test_images);
  idx.string("test_labels", &d->idx.test_labels);
  idx.integer("n_classes", &d->idx.n_classes, 2, 256, "an integer in [2, 256]");
  idx.finish();
  s.finish();
  if (!s.ok()) return;

  // Rules that tie keys together.
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
  if (d->label.empty()) return s.fail_msg("data.label", "at least one label column is needed");
  if (d->task == TaskKind::kClassification && d->label.size() != 1)
    return s.fail_msg("data.label", "classification takes exactly one label column");
  if (d->format == DataFormat::kText) {
    if (d->task != TaskKind::kClassification)
      return s.fail_msg("data.task", "format \"text\" is for classification");
    if (d->text.column.empty()) return s.fail_msg("data.text.column", "must not be empty");
  }
}

json data_to_json(const DataConfig& d) {
  json j;
  j["format"] = choice_name(kFormats, d.format);
  j["train"] = d.train;
  j["validation"] = d.validation;
  j["test"] = d.test;
  j["delimiter"] = d.delimiter == '\0'   ? std::string("auto")
                   : d.delimiter == '\t' ? std::string("tab")
                                         : std::string(1, d.delimiter);
  j["split"] = {{"validation", d.split.validation},
                {"test", d.split.test},
                {"seed", d.split.seed},
                {"stratify", d.split.stratify}};
  j["task"] = choice_name(kTasks, d.task);
  if (d.label.size() == 1) {
    j["label"] = d.label[0];
  } else {
    j["label"] = d.label;
  }
  j["ignore_columns"] = d.ignore_columns;
  j["categorical_columns"] = d.categorical_columns;
  j["missing"] = choice_name(kMissing, d.missing);
  j["standardize_targets"] = d.standardize_targets;
  j["max_categories"] = d.max_categories;
  j["text"] = {{"column", d.text.column},
               {"lowercase", d.text.lowercase},
               {"strip_html", d.text.strip_html},
               {"stop_words", d.text.stop_words},
               {"stop_words_file", d.text.stop_words_file},
               {"min_count", d.text.min_count},
               {"max_vocab", d.text.max_vocab},
               {"bigram_buckets", d.text.bigram_buckets},
               {"sublinear_tf", d.text.sublinear_tf}};
  j["idx"] = {{"train_images", d.idx.train_images},
              {"train_labels", d.idx.train_labels},
              {"validation_images", d.idx.validation_images},
              {"validation_labels", d.idx.validation_labels},
              {"test_images", d.idx.test_images},
              {"test_labels", d.idx.test_labels},
              {"n_classes", d.idx.n_classes}};
  return j;
}

// ---------------------------------------------------------------------------------------------
// model

void parse_expert(Section s, ExpertConfig* e) {
  s.choice("kind", &e->kind, kExpertKinds);
  s.integer("hidden", &e->hidden, 1, kMaxWidth, "a positive integer");
  s.integer("depth", &e->depth, 1, 64, "an integer in [1, 64]");
  s.choice("activation", &e->activation, kActivations);
  s.boolean("bias", &e->bias);
  s.finish();
}

json expert_to_json(const ExpertConfig& e) {
  return {{"kind", choice_name(kExpertKinds, e.kind)},
          {"hidden", e.hidden},
          {"depth", e.depth},
          {"activation", choice_name(kActivations, e.activation)},
          {"bias", e.bias}};
}

// The gate's kind and options ("gate": {...}); K, capacity and balancing sit beside it.
void parse_gate_options(Section s, GateConfig* g) {
  s.choice("kind", &g->kind, kGateKinds);
  s.boolean("renormalize", &g->renormalize);
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
  (*j)["gate"] = {{"kind", choice_name(kGateKinds, g.kind)},
                  {"renormalize", g.renormalize},
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

MoeConfig moe_layer_config(const MoeBlockConfig& b, int64_t width) {
  MoeConfig m;
  m.d_model = width;
  m.experts = b.routed_experts();
  m.shared = repeat_experts(b.shared, b.n_shared);
  m.gate = b.gate;
  m.gate.d_model = width;
  m.gate.n_experts = b.n_groups > 0 ? b.n_experts / b.n_groups : b.n_experts;
  m.hierarchy.n_groups = b.n_groups;
  if (b.n_groups > 0) {
    m.hierarchy.top = b.top_gate;
    m.hierarchy.top.d_model = width;
    m.hierarchy.top.n_experts = b.n_groups;
  }
  return m;
}

namespace {

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
  s.integer("experts", &b->n_experts, 1, INT32_MAX, "a positive integer");
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
  return j;
}

void parse_model(Section s, ModelConfig* m) {
  s.integer("width", &m->width, 1, kMaxWidth, "a positive integer");
  s.number("input_dropout", &m->input_dropout, 0, 1, false, true, "a number in [0, 1)");
  s.number("word_dropout", &m->word_dropout, 0, 1, false, true, "a number in [0, 1)");
  s.choice("bag", &m->bag, kBags);
  Section t = s.object("trunk");
  if (const json* v = t.take("hidden")) {
    if (!v->is_array()) return t.fail("hidden", "an array of positive integers", *v);
    for (size_t i = 0; i < v->size(); ++i) {
      const json& e = (*v)[i];
      if (!e.is_number_integer() || e.get<int64_t>() < 1 || e.get<int64_t>() > kMaxWidth)
        return t.fail_msg(t.at("hidden") + "." + std::to_string(i),
                          fmt::format("expected a positive integer, got {}", show(e)));
      m->trunk.hidden.push_back(e.get<int64_t>());
    }
  }
  t.choice("activation", &m->trunk.activation, kActivations);
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
  s.finish();
}

json model_to_json(const ModelConfig& m) {
  json j;
  j["width"] = m.width;
  j["input_dropout"] = real(m.input_dropout);
  j["word_dropout"] = real(m.word_dropout);
  j["bag"] = choice_name(kBags, m.bag);
  j["trunk"] = {{"hidden", m.trunk.hidden},
                {"activation", choice_name(kActivations, m.trunk.activation)},
                {"norm", choice_name(kNorms, m.trunk.norm)},
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
  return j;
}

// ---------------------------------------------------------------------------------------------
// training, output

void parse_training(Section s, TaskKind task, TrainingConfig* t) {
  s.choice("optimizer", &t->optimizer.kind, kOptimizers);
  s.number("lr", &t->lr, 0, 1e6, true, false, "a number > 0");
  s.number("weight_decay", &t->optimizer.weight_decay, 0, 1e6, false, false, "a number ≥ 0");
  s.number("momentum", &t->optimizer.momentum, 0, 1, false, true, "a number in [0, 1)");
  s.boolean("nesterov", &t->optimizer.nesterov);
  s.number("beta1", &t->optimizer.beta1, 0, 1, false, true, "a number in [0, 1)");
  s.number("beta2", &t->optimizer.beta2, 0, 1, false, true, "a number in [0, 1)");
  s.number("eps", &t->optimizer.eps, 0, 1, true, false, "a number in (0, 1]");
  s.choice("schedule", &t->schedule, kSchedules);
  s.integer("warmup_steps", &t->warmup_steps, 0, INT64_MAX, "an integer ≥ 0");
  s.number("min_lr", &t->min_lr, 0, 1e6, false, false, "a number ≥ 0");
  s.integer("step_size", &t->step_size, 1, INT64_MAX, "a positive integer");
  s.number("gamma", &t->gamma, 0, 1, true, false, "a number in (0, 1]");
  s.integer("batch_size", &t->batch_size, 1, kMaxWidth, "a positive integer");
  s.integer("epochs", &t->epochs, 1, 1000000, "a positive integer");
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
  s.finish();
  if (!s.ok()) return;
  if (t->min_lr > t->lr) return s.fail_msg(s.at("min_lr"), "must not exceed training.lr");
  if (t->optimizer.nesterov && t->optimizer.momentum <= 0)
    return s.fail_msg(s.at("nesterov"), "needs training.momentum > 0");
  const bool classification = task == TaskKind::kClassification;
  const MetricKind m = t->metric;
  if (classification && (m == MetricKind::kMse || m == MetricKind::kMae || m == MetricKind::kR2))
    return s.fail_msg(e.at("metric"), fmt::format("\"{}\" is a regression metric; use one of "
                                                  "\"loss\", \"accuracy\", \"f1\", \"auc\"",
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
  return {
      {"optimizer", choice_name(kOptimizers, t.optimizer.kind)},
      {"lr", t.lr},
      {"weight_decay", t.optimizer.weight_decay},
      {"momentum", t.optimizer.momentum},
      {"nesterov", t.optimizer.nesterov},
      {"beta1", t.optimizer.beta1},
      {"beta2", t.optimizer.beta2},
      {"eps", t.optimizer.eps},
      {"schedule", choice_name(kSchedules, t.schedule)},
      {"warmup_steps", t.warmup_steps},
      {"min_lr", t.min_lr},
      {"step_size", t.step_size},
      {"gamma", t.gamma},
      {"batch_size", t.batch_size},
      {"epochs", t.epochs},
      {"seed", t.seed},
      {"threads", t.threads},
      {"early_stopping", {{"patience", t.patience}, {"metric", choice_name(kMetrics, t.metric)}}},
      {"clip_norm", t.clip_norm},
      {"label_smoothing", t.label_smoothing},
      {"class_weights", choice_name(kClassWeights, t.class_weights)},
      {"loss", choice_name(kLosses, t.loss)},
      {"huber_delta", t.huber_delta}};
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

// Splits "a.b.0.c" at the dots.
std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

bool parse_index(const std::string& s, size_t* out) {
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), ::isdigit)) return false;
  *out = static_cast<size_t>(std::stoul(s));
  return true;
}

// Line and column of a byte offset, for JSON syntax errors.
std::pair<int64_t, int64_t> line_col(const std::string& text, size_t byte) {
  int64_t line = 1, col = 1;
  for (size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// public

const char* data_format_name(DataFormat f) {
  return choice_name(kFormats, f);
}
bool parse_data_format(const std::string& s, DataFormat* out) {
  for (const auto& c : kFormats)
    if (s == c.name) return *out = c.value, true;
  return false;
}
const char* missing_policy_name(MissingPolicy m) {
  return choice_name(kMissing, m);
}
const char* norm_choice_name(NormChoice n) {
  return choice_name(kNorms, n);
}
bool parse_norm_choice(const std::string& s, NormChoice* out) {
  for (const auto& c : kNorms)
    if (s == c.name) return *out = c.value, true;
  return false;
}
const char* metric_kind_name(MetricKind m) {
  return choice_name(kMetrics, m);
}
bool parse_metric_kind(const std::string& s, MetricKind* out) {
  for (const auto& c : kMetrics)
    if (s == c.name) return *out = c.value, true;
  return false;
}
bool metric_higher_is_better(MetricKind m) {
  return m == MetricKind::kAccuracy || m == MetricKind::kF1 || m == MetricKind::kRocAuc ||
         m == MetricKind::kR2;
}

std::vector<ExpertConfig> MoeBlockConfig::routed_experts() const {
  return expert_list.empty() ? repeat_experts(expert, n_experts) : expert_list;
}

double moe_slots_per_token(const MoeBlockConfig& c) {
  const auto slots = [](const GateConfig& g, int64_t n_experts) -> double {
    if (g.kind == GateKind::kExpertChoice)
      return g.capacity_factor > 0 ? static_cast<double>(g.capacity_factor) : 1.0;
    GateConfig sized = g;
    sized.n_experts = n_experts;
    return static_cast<double>(gate_slots_per_token(sized));
  };
  if (c.n_groups > 0)
    return slots(c.top_gate, c.n_groups) * slots(c.gate, c.n_experts / c.n_groups);
  return slots(c.gate, c.n_experts);
}

ExpertConfig dense_equivalent(const MoeBlockConfig& c) {
  const std::vector<ExpertConfig> routed = c.routed_experts();
  double hidden_sum = 0;
  for (const ExpertConfig& e : routed) hidden_sum += static_cast<double>(e.hidden);
  ExpertConfig d = routed.front();
  const double mean_hidden = hidden_sum / static_cast<double>(routed.size());
  d.hidden = std::llround(std::max(1.0, moe_slots_per_token(c)) * mean_hidden) +
             c.n_shared * c.shared.hidden;
  return d;
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

Result<json> read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("{}: cannot open the file", path);
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) return Status::error("{}: cannot read the file", path);
  if (static_cast<uint64_t>(size) > kMaxConfigBytes)
    return Status::error("{}: {} bytes, more than a configuration may have ({})", path, size,
                         kMaxConfigBytes);
  in.seekg(0);
  std::string text(static_cast<size_t>(size), '\0');
  if (!in.read(text.data(), size)) return Status::error("{}: cannot read the file", path);

  // nlohmann keeps the last of two equal keys; a duplicate key is a mistake worth naming.
  std::vector<std::vector<std::string>> keys_at_depth;
  std::string duplicate;
  const json::parser_callback_t check_duplicates = [&](int depth, json::parse_event_t event,
                                                       json& parsed) {
    const auto d = static_cast<size_t>(depth);
    if (event == json::parse_event_t::object_start) {
      if (keys_at_depth.size() <= d) keys_at_depth.resize(d + 1);
      keys_at_depth[d].clear();
    } else if (event == json::parse_event_t::key && d >= 1 && keys_at_depth.size() >= d) {
      std::vector<std::string>& seen = keys_at_depth[d - 1];
      const std::string k = parsed.get<std::string>();
      if (std::find(seen.begin(), seen.end(), k) != seen.end() && duplicate.empty()) duplicate = k;
      seen.push_back(k);
    }
    return true;
  };
  try {
    json j = json::parse(text, check_duplicates);
    if (!duplicate.empty())
      return Status::error("{}: the key \"{}\" appears twice in one object", path, duplicate);
    return j;
  } catch (const json::parse_error& e) {
    const auto [line, col] = line_col(text, e.byte > 0 ? e.byte - 1 : 0);
    std::string what = e.what();
    const size_t colon = what.find("syntax error");
    if (colon != std::string::npos) what = what.substr(colon);
    return Status::error("{} line {} column {}: invalid JSON ({})", path, line, col, what);
  }
}

Status apply_override(json* j, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    return Status::error("--set {}: expected key=value (for example model.moe.k=2)", assignment);
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;

  // The key must exist in the resolved configuration: every key has a value there.
  Result<Config> current = parse_config(*j, "the configuration");
  if (!current.is_ok()) return current.status();
  const json resolved = config_to_json(*current);
  const std::vector<std::string> parts = split_key(key);
  const json* r = &resolved;
  std::string walked;
  for (const std::string& p : parts) {
    walked = join_path(walked, p);
    size_t index = 0;
    if (r->is_object() && r->contains(p)) {
      r = &(*r)[p];
    } else if (r->is_array() && parse_index(p, &index) && index < r->size()) {
      r = &(*r)[index];
    } else {
      return Status::error("--set {}: no configuration key {}", assignment, walked);
    }
  }

  // Write into the configuration as written, creating the objects on the way.
  json* w = j;
  walked.clear();
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const std::string parent = walked;
    walked = join_path(walked, p);
    const bool last = i + 1 == parts.size();
    size_t index = 0;
    if (w->is_array() && parse_index(p, &index) && index < w->size()) {
      w = &(*w)[index];
    } else {
      if (w->is_null()) *w = json::object();
      if (!w->is_object())
        return Status::error("--set {}: {} is not an object in the configuration", assignment,
                             parent);
      if (!last && !w->contains(p)) (*w)[p] = json::object();
      w = &(*w)[p];
    }
  }
  *w = value;
  return Status::ok();
}

Result<Config> load_config(const std::string& path, const std::vector<std::string>& overrides) {
  MOE_ASSIGN_OR_RETURN(json j, read_json_file(path));
  {
    Result<Config> check = parse_config(j, path);  // errors in the file itself come first
    if (!check.is_ok()) return check.status();
  }
  for (const std::string& o : overrides) {
    const Status st = apply_override(&j, o);
    if (!st.is_ok()) return st.with_context(path);
  }
  Result<Config> c = parse_config(j, path);
  if (!c.is_ok() && !overrides.empty()) return c.status().with_context("after the --set overrides");
  return c;
}

}  // namespace moe
