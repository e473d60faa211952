// Reading a run directory for the report (run_data.h).
//
// Dims: N epochs, E experts, C classes, P targets, H x W image pixels.
//
// The checks walk the parsed JSON with small accessors (over core/json_fields.h) that throw
// FieldError naming the field's path ("layers[0].coactivation[2]"); each parse_* entry point
// catches it and returns a Status naming the file, so no exception leaves this file. Fields the
// report does not know are ignored, so the inspect.json and metrics.jsonl writers may add fields
// freely.
#include "moe/report/run_data.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "core/json_fields.h"
#include "core/json_read.h"

namespace moe::report {

namespace {

using nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct FieldError {
  std::string path;
  std::string what;
};

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw FieldError{path, what};
}

std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string index_path(const std::string& path, size_t i) {
  return fmt::format("{}[{}]", path, i);
}

// A number, or NaN for null (JSON has no NaN, so a writer may spell a missing value as null).
double as_number(const json& v, const std::string& path) {
  if (v.is_null()) return kNaN;
  double x = 0.0;
  if (!json_value_as(v, &x)) bad(path, "expected a number");
  return x;
}

double number_field(const json& obj, const char* key, const std::string& path) {
  const json* v = json_find(obj, key);
  return v == nullptr ? kNaN : as_number(*v, join_path(path, key));
}

int64_t count_field(const json& obj, const char* key, const std::string& path) {
  const json* v = json_find(obj, key);
  if (v == nullptr) return 0;
  int64_t n = 0;
  if (!json_value_as(*v, &n) || n < 0) bad(join_path(path, key), "expected a non-negative integer");
  return n;
}

std::string string_field(const json& obj, const char* key, const std::string& path) {
  const json* v = json_find(obj, key);
  if (v == nullptr || v->is_null()) return "";
  std::string text;
  if (!json_value_as(*v, &text)) bad(join_path(path, key), "expected a string");
  return text;
}

const json* object_field(const json& obj, const char* key, const std::string& path) {
  const json* v = json_find(obj, key);
  if (v == nullptr || v->is_null()) return nullptr;
  if (!v->is_object()) bad(join_path(path, key), "expected an object");
  return v;
}

const json* array_field(const json& obj, const char* key, const std::string& path) {
  const json* v = json_find(obj, key);
  if (v == nullptr || v->is_null()) return nullptr;
  if (!v->is_array()) bad(join_path(path, key), "expected an array");
  return v;
}

std::vector<double> as_vector(const json& v, const std::string& path) {
  if (!v.is_array()) bad(path, "expected an array of numbers");
  std::vector<double> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) out.push_back(as_number(v[i], index_path(path, i)));
  return out;
}

std::vector<double> vector_field(const json& obj, const char* key, const std::string& path) {
  const json* v = array_field(obj, key, path);
  return v ? as_vector(*v, join_path(path, key)) : std::vector<double>{};
}

// A matrix whose rows all have `cols` entries (cols < 0: any, but all the same), and `rows`
// rows when rows >= 0.
std::vector<std::vector<double>> matrix_field(const json& obj, const char* key,
                                              const std::string& path, int64_t rows, int64_t cols) {
  const json* v = array_field(obj, key, path);
  if (!v) return {};
  const std::string p = join_path(path, key);
  if (rows >= 0 && static_cast<int64_t>(v->size()) != rows)
    bad(p, fmt::format("expected {} rows, found {}", rows, v->size()));
  std::vector<std::vector<double>> out;
  for (size_t r = 0; r < v->size(); ++r) {
    out.push_back(as_vector((*v)[r], index_path(p, r)));
    if (cols < 0) cols = static_cast<int64_t>(out.back().size());
    if (static_cast<int64_t>(out.back().size()) != cols)
      bad(index_path(p, r), fmt::format("expected {} values, found {}", cols, out.back().size()));
  }
  return out;
}

std::vector<std::string> strings_field(const json& obj, const char* key, const std::string& path) {
  const json* v = array_field(obj, key, path);
  std::vector<std::string> out;
  if (!v) return out;
  out.resize(v->size());
  for (size_t i = 0; i < v->size(); ++i)
    if (!json_value_as((*v)[i], &out[i]))
      bad(index_path(join_path(path, key), i), "expected a string");
  return out;
}

// Scalars of an object, nested objects flattened to "outer.inner"; other values are skipped, and
// so is nesting past 8 levels (the recursion stays bounded whatever the file holds).
void flatten_numbers(const json& obj, const std::string& prefix, NamedValues* out, int depth = 0) {
  for (const auto& [key, value] : obj.items()) {
    const std::string name = join_path(prefix, key);
    if (value.is_number()) {
      out->emplace_back(name, value.get<double>());
    } else if (value.is_object() && depth < 8) {
      flatten_numbers(value, name, out, depth + 1);
    }
  }
}

EpochPoint parse_epoch(const json& line) {
  if (!line.is_object()) bad("", "expected a JSON object");
  EpochPoint p;
  p.epoch = number_field(line, "epoch", "");
  if (!std::isfinite(p.epoch)) bad("epoch", "missing");
  p.train_loss = number_field(line, "train_loss", "");
  p.learning_rate = number_field(line, "learning_rate", "");
  for (const auto& [key, value] : line.items()) {
    if (key.rfind("train_", 0) == 0 && key != "train_loss" && value.is_number())
      p.train_metrics.emplace_back(key.substr(6), value.get<double>());
  }
  if (const json* v = object_field(line, "validation", "")) {
    for (const auto& [key, value] : v->items()) {
      if (value.is_number() && key != "rows") p.validation.emplace_back(key, value.get<double>());
    }
  }
  if (const json* a = object_field(line, "aux_losses", "")) flatten_numbers(*a, "", &p.aux_losses);
  if (const json* l = object_field(line, "expert_load", "")) {
    for (const auto& [layer, load] : l->items())
      p.expert_load.emplace_back(layer, as_vector(load, "expert_load." + layer));
  }
  if (const auto c = line.find("expert_changes"); c != line.end() && c->is_array()) {
    const auto text = [](const json& o, const char* key) {
      const auto it = o.find(key);
      return it == o.end()     ? std::string("?")
             : it->is_string() ? it->get<std::string>()
                               : it->dump();
    };
    for (const json& o : *c)
      if (o.is_object())
        p.expert_changes.push_back(fmt::format("{} {} expert {} (now {} experts): {}",
                                               text(o, "layer"), text(o, "op"), text(o, "expert"),
                                               text(o, "experts"), text(o, "why")));
  }
  // Per-layer gate entropy: {"layer": x} or {"layer": {"mean": x, ...}}.
  for (const char* key : {"gate_entropy", "entropy"}) {
    const json* e = object_field(line, key, "");
    if (!e) continue;
    for (const auto& [layer, value] : e->items()) {
      const std::string path = std::string(key) + "." + layer;
      if (value.is_object()) {
        const double mean = number_field(value, "mean", path);
        const double max = number_field(value, "max", path);
        if (!std::isnan(mean)) p.gate_entropy.emplace_back(layer, mean);
        if (!std::isnan(max)) p.gate_entropy_max.emplace_back(layer, max);
      } else {
        p.gate_entropy.emplace_back(layer, as_number(value, path));
      }
    }
    break;
  }
  return p;
}

InspectLayer parse_layer(const json& l, const std::string& path, const InspectData& doc) {
  if (!l.is_object()) bad(path, "expected an object");
  InspectLayer layer;
  layer.name = string_field(l, "name", path);
  if (layer.name.empty()) bad(join_path(path, "name"), "missing");
  layer.level = string_field(l, "level", path);
  layer.gate = string_field(l, "gate", path);
  layer.k = count_field(l, "k", path);
  layer.load = vector_field(l, "load", path);
  layer.experts = count_field(l, "experts", path);
  if (layer.experts == 0) layer.experts = static_cast<int64_t>(layer.load.size());
  const int64_t e = layer.experts;
  if (e == 0 || static_cast<int64_t>(layer.load.size()) != e)
    bad(join_path(path, "load"), fmt::format("expected {} values (one per expert)", e));
  layer.importance = vector_field(l, "importance", path);
  if (!layer.importance.empty() && static_cast<int64_t>(layer.importance.size()) != e)
    bad(join_path(path, "importance"), fmt::format("expected {} values", e));
  layer.cv_load = number_field(l, "cv_load", path);
  layer.cv_importance = number_field(l, "cv_importance", path);
  layer.max_over_mean_load = number_field(l, "max_over_mean_load", path);
  layer.entropy_mean = number_field(l, "entropy_mean", path);
  layer.entropy_of_mean = number_field(l, "entropy_of_mean", path);
  layer.entropy_max = number_field(l, "entropy_max", path);
  layer.dropped_rate = number_field(l, "dropped_rate", path);
  for (const auto& [key, ids] : {std::pair{"dead", &layer.dead}, {"silent", &layer.silent}}) {
    const json* list = array_field(l, key, path);
    if (list == nullptr) continue;
    for (size_t i = 0; i < list->size(); ++i) {
      int64_t id = 0;
      if (!json_value_as((*list)[i], &id) || id < 0 || id >= e)
        bad(index_path(join_path(path, key), i), "expected an expert id");
      ids->push_back(id);
    }
  }
  if (const json* c = json_find(l, "collapsed"); c != nullptr && !c->is_null()) {
    bool collapsed = false;
    if (!json_value_as(*c, &collapsed)) bad(join_path(path, "collapsed"), "expected true or false");
    layer.collapsed = collapsed;
  }
  layer.coactivation = matrix_field(l, "coactivation", path, e, e);
  const int64_t n_classes = static_cast<int64_t>(doc.classes.size());
  if (const json* ce = object_field(l, "class_expert", path)) {
    const std::string p = join_path(path, "class_expert");
    const int64_t rows = n_classes > 0 ? n_classes : -1;
    layer.class_counts = matrix_field(*ce, "counts", p, rows, e);
    layer.class_shares = matrix_field(*ce, "shares", p, rows, e);
  }
  layer.mutual_information = number_field(l, "mutual_information", path);
  layer.mutual_information_max = number_field(l, "mutual_information_max", path);
  if (const json* reg = object_field(l, "regression", path)) {
    const std::string p = join_path(path, "regression");
    const int64_t cols = doc.targets.empty() ? -1 : static_cast<int64_t>(doc.targets.size());
    layer.regression_mean = matrix_field(*reg, "mean", p, e, cols);
    layer.regression_std = matrix_field(*reg, "std", p, e, cols);
  }
  if (const json* tokens = array_field(l, "tokens", path)) {
    const std::string p = join_path(path, "tokens");
    if (static_cast<int64_t>(tokens->size()) != e) bad(p, fmt::format("expected {} lists", e));
    for (size_t x = 0; x < tokens->size(); ++x) {
      const json& list = (*tokens)[x];
      if (!list.is_array()) bad(index_path(p, x), "expected an array");
      layer.tokens.emplace_back();
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string q = index_path(index_path(p, x), i);
        if (!list[i].is_object()) bad(q, "expected an object");
        layer.tokens.back().push_back({string_field(list[i], "token", q),
                                       number_field(list[i], "count", q),
                                       number_field(list[i], "lift", q)});
      }
    }
  }
  if (const json* features = array_field(l, "features", path)) {
    const std::string p = join_path(path, "features");
    if (static_cast<int64_t>(features->size()) != e) bad(p, fmt::format("expected {} lists", e));
    for (size_t x = 0; x < features->size(); ++x) {
      const json& list = (*features)[x];
      if (!list.is_array()) bad(index_path(p, x), "expected an array");
      layer.features.emplace_back();
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string q = index_path(index_path(p, x), i);
        if (!list[i].is_object()) bad(q, "expected an object");
        layer.features.back().push_back(
            {string_field(list[i], "feature", q), number_field(list[i], "delta", q)});
      }
    }
  }
  if (const json* positions = object_field(l, "positions", path)) {
    const std::string p = join_path(path, "positions");
    layer.position_starts = vector_field(*positions, "starts", p);
    layer.position_load =
        matrix_field(*positions, "load", p, static_cast<int64_t>(layer.position_starts.size()), e);
  }
  layer.switch_rate = number_field(l, "switch_rate", path);
  layer.switch_rate_independent = number_field(l, "switch_rate_independent", path);
  if (const json* images = object_field(l, "mean_images", path)) {
    const std::string p = join_path(path, "mean_images");
    layer.image_height = count_field(*images, "height", p);
    layer.image_width = count_field(*images, "width", p);
    // Images larger than 4096 x 4096 are refused before anything is sized from them.
    if (layer.image_height <= 0 || layer.image_width <= 0 || layer.image_height > 4096 ||
        layer.image_width > 4096)
      bad(p, "height and width must be between 1 and 4096");
    layer.mean_images =
        matrix_field(*images, "pixels", p, e, layer.image_height * layer.image_width);
  }
  return layer;
}

InspectData parse_inspect(const json& doc) {
  if (!doc.is_object()) bad("", "expected a JSON object");
  const std::string format = string_field(doc, "format", "");
  if (format != "moe.inspect") bad("format", "expected \"moe.inspect\"");
  const double version = number_field(doc, "version", "");
  if (version != 1.0) bad("version", "expected 1 (the version this moe reads)");
  InspectData out;
  if (const json* data = object_field(doc, "data", "")) {
    out.data_path = string_field(*data, "path", "data");
    out.rows = count_field(*data, "rows", "data");
    out.task = string_field(*data, "task", "data");
    out.input = string_field(*data, "input", "data");
    out.context = count_field(*data, "context", "data");
    out.classes = strings_field(*data, "classes", "data");
    out.targets = strings_field(*data, "targets", "data");
  }
  const json* layers = array_field(doc, "layers", "");
  if (!layers) bad("layers", "missing");
  for (size_t i = 0; i < layers->size(); ++i)
    out.layers.push_back(parse_layer((*layers)[i], index_path("layers", i), out));
  return out;
}

std::string describe(const FieldError& e) {
  return e.path.empty() ? e.what : fmt::format("field '{}': {}", e.path, e.what);
}

// Reads a whole file; nullopt when it does not exist.
Result<std::optional<std::string>> read_optional(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("{}: cannot open", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::error("{}: read error", path.string());
  return std::optional<std::string>(text.str());
}

Result<json> parse_object(const std::string& text, const std::string& source) {
  MOE_ASSIGN_OR_RETURN(json doc, parse_json(text, source));
  if (!doc.is_object()) return Status::error("{}: expected a JSON object", source);
  return doc;
}

}  // namespace

std::string InspectLayer::display_name() const {
  return level.empty() ? name : fmt::format("{} ({})", name, level);
}

Result<std::vector<EpochPoint>> parse_metrics_jsonl(std::string_view text,
                                                    const std::string& source) {
  std::vector<EpochPoint> epochs;
  size_t line_no = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    MOE_ASSIGN_OR_RETURN(json doc,
                         parse_json(line, source, {.first_line = static_cast<int64_t>(line_no)}));
    try {
      epochs.push_back(parse_epoch(doc));
    } catch (const FieldError& e) {
      return Status::error("{} line {}: {}", source, line_no, describe(e));
    }
  }
  return epochs;
}

Result<InspectData> parse_inspect_json(std::string_view text, const std::string& source) {
  MOE_ASSIGN_OR_RETURN(json doc, parse_json(text, source));
  try {
    return parse_inspect(doc);
  } catch (const FieldError& e) {
    return Status::error("{}: {}", source, describe(e));
  }
}

Result<RunData> load_run(const std::string& run_dir) {
  const std::filesystem::path dir(run_dir);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return Status::error("{}: not a directory", run_dir);
  RunData run;
  run.name = run_dir;
  bool any = false;

  MOE_ASSIGN_OR_RETURN(std::optional<std::string> metrics, read_optional(dir / "metrics.jsonl"));
  if (metrics) {
    any = true;
    MOE_ASSIGN_OR_RETURN(run.epochs,
                         parse_metrics_jsonl(*metrics, (dir / "metrics.jsonl").string()));
  }
  for (const char* name : {"config.json", "summary.json"}) {
    const std::filesystem::path path = dir / name;
    MOE_ASSIGN_OR_RETURN(std::optional<std::string> text, read_optional(path));
    if (!text) continue;
    any = true;
    MOE_ASSIGN_OR_RETURN(json doc, parse_object(*text, path.string()));
    (name[0] == 'c' ? run.config : run.summary) = std::move(doc);
  }
  MOE_ASSIGN_OR_RETURN(std::optional<std::string> inspect, read_optional(dir / "inspect.json"));
  if (inspect) {
    any = true;
    MOE_ASSIGN_OR_RETURN(run.inspect,
                         parse_inspect_json(*inspect, (dir / "inspect.json").string()));
  }
  if (!any) {
    return Status::error(
        "{}: not a run directory (none of metrics.jsonl, config.json, summary.json, "
        "inspect.json)",
        run_dir);
  }
  return run;
}

}  // namespace moe::report
