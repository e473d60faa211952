// From a DataConfig to data sets through the data layer's readers, and the schema that encodes
// new files the way training did. See include/moe/train/data_source.h.
//
// Dims: N rows · D dense feature width · V text id range · C classes or targets.
#include "moe/train/data_source.h"

#include <string>
#include <utility>
#include <vector>

#include "core/json_read.h"
#include "moe/data/csv.h"
#include "moe/data/idx.h"
#include "train/corpus_source.h"
#include "train/pairs_source.h"

namespace moe {

namespace {

using json = nlohmann::json;

std::string delimiter_name(char d) {
  if (d == '\0') return "auto";
  if (d == '\t') return "tab";
  return std::string(1, d);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The delimiter for reading `path`: its extension when it says (.csv, .tsv, .tab, optionally
// .gz after them), else the one training used, else comma.
char delimiter_for(const std::string& path, char trained) {
  // Extensions compare with ASCII letters lower-cased, as "auto" does when training.
  std::string p = path;
  for (char& ch : p)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  if (ends_with(p, ".gz")) p.resize(p.size() - 3);
  if (ends_with(p, ".tsv") || ends_with(p, ".tab")) return '\t';
  if (ends_with(p, ".csv")) return ',';
  return trained == '\0' ? ',' : trained;
}

char format_delimiter(const DataConfig& c) {
  switch (c.format) {
    case DataFormat::kCsv:
      return ',';
    case DataFormat::kTsv:
      return '\t';
    default:
      return c.delimiter;
  }
}

Result<CsvTable> read_table(const std::string& path, char delimiter, CsvQuoting quoting) {
  CsvOptions options;
  options.delimiter = delimiter;
  options.quoting = quoting;
  return CsvTable::read(path, options);
}

TabularOptions tabular_options(const DataConfig& c) {
  TabularOptions o;
  o.task = c.task;
  o.label_columns = c.label;
  o.ignore_columns = c.ignore_columns;
  o.categorical_columns = c.categorical_columns;
  o.impute_missing = c.missing == MissingPolicy::kImpute;
  o.standardize_targets = c.task == TaskKind::kRegression && c.standardize_targets;
  o.max_categories = c.max_categories;
  return o;
}

TextOptions text_options(const DataConfig& c) {
  TextOptions o;
  o.text_column = c.text.column;
  o.label_column = c.label.empty() ? std::string("label") : c.label[0];
  o.tokenizer.lowercase = c.text.lowercase;
  o.tokenizer.strip_html = c.text.strip_html;
  o.builtin_stop_words = c.text.stop_words;
  o.stop_words_file = c.text.stop_words_file;
  o.min_count = c.text.min_count;
  o.max_vocab = c.text.max_vocab;
  o.bigrams = c.text.bigrams;
  o.bigram_buckets = c.text.bigram_buckets;
  o.sublinear_tf = c.text.sublinear_tf;
  return o;
}

SplitOptions split_options(const DataConfig& c, bool validation_from_split, bool test_from_split) {
  SplitOptions s;
  s.validation = validation_from_split ? c.split.validation : 0.0;
  s.test = test_from_split ? c.split.test : 0.0;
  s.stratify = c.split.stratify && c.task == TaskKind::kClassification;
  s.seed = c.split.seed;
  return s;
}

Result<LoadedData> load_table_data(const DataConfig& c) {
  const char delimiter = format_delimiter(c);
  const bool text = c.format == DataFormat::kText;
  MOE_ASSIGN_OR_RETURN(CsvTable train, read_table(c.train, delimiter, c.quoting));
  std::optional<CsvTable> validation, test;
  if (!c.validation.empty()) {
    MOE_ASSIGN_OR_RETURN(validation, read_table(c.validation, delimiter, c.quoting));
  }
  if (!c.test.empty()) {
    MOE_ASSIGN_OR_RETURN(test, read_table(c.test, delimiter, c.quoting));
  }

  // Parts without a file of their own come from the training file by ratio. When neither has a
  // file, one split makes both; when one has, the training file gives only the other.
  LoadedData out;
  out.schema.format = c.format;
  out.schema.delimiter = delimiter;
  out.schema.quoting = c.quoting;
  const bool split_validation = !validation && c.split.validation > 0;
  const bool split_test = !test && c.split.test > 0;
  if (text) {
    const TextOptions options = text_options(c);
    Result<TextData> r =
        (split_validation || split_test)
            ? load_text(train, options, split_options(c, split_validation, split_test))
            : load_text(train, nullptr, nullptr, options);
    if (!r.is_ok()) return r.status();
    TextData& d = r.value();
    if (validation) {
      MOE_ASSIGN_OR_RETURN(d.validation,
                           encode_text(*validation, d.vectorizer, d.labels, LabelUse::kRequired));
    }
    if (test) {
      MOE_ASSIGN_OR_RETURN(d.test, encode_text(*test, d.vectorizer, d.labels, LabelUse::kRequired));
    }
    out.schema.labels = d.labels;
    out.schema.text = std::move(d.vectorizer);
    out.train = std::move(d.train);
    out.validation = std::move(d.validation);
    out.test = std::move(d.test);
    return out;
  }

  const TabularOptions options = tabular_options(c);
  Result<TabularData> r =
      (split_validation || split_test)
          ? load_tabular(train, options, split_options(c, split_validation, split_test))
          : load_tabular(train, nullptr, nullptr, options);
  if (!r.is_ok()) return r.status();
  TabularData& d = r.value();
  if (validation) {
    MOE_ASSIGN_OR_RETURN(d.validation,
                         encode_tabular(*validation, d.schema, LabelUse::kRequired, &d.report));
  }
  if (test) {
    MOE_ASSIGN_OR_RETURN(d.test, encode_tabular(*test, d.schema, LabelUse::kRequired, &d.report));
  }
  out.report = d.report.summary(c.train);
  out.schema.labels = d.schema.labels;
  out.schema.features = std::move(d.schema.features);
  out.train = std::move(d.train);
  out.validation = std::move(d.validation);
  out.test = std::move(d.test);
  return out;
}

Result<LoadedData> load_idx_data(const DataConfig& c) {
  IdxImageOptions options;
  options.n_classes = c.idx.n_classes;
  MOE_ASSIGN_OR_RETURN(Dataset all,
                       load_idx_images(c.idx.train_images, c.idx.train_labels, options));
  LoadedData out;
  out.schema.format = DataFormat::kIdx;
  out.schema.labels = integer_label_spec(c.idx.n_classes);
  out.schema.image_size = all.n_features;

  const bool split_validation = c.idx.validation_images.empty() && c.split.validation > 0;
  const bool split_test = c.idx.test_images.empty() && c.split.test > 0;
  if (split_validation || split_test) {
    MOE_ASSIGN_OR_RETURN(SplitIndices parts,
                         split_rows(all.n_rows, all.labels, all.n_classes,
                                    split_options(c, split_validation, split_test)));
    out.validation = all.subset(parts.validation);
    out.test = all.subset(parts.test);
    out.train = all.subset(parts.train);
  } else {
    out.train = std::move(all);
  }
  const auto load_part = [&](const std::string& images, const std::string& labels,
                             Dataset* part) -> Status {
    if (images.empty()) return Status::ok();
    MOE_ASSIGN_OR_RETURN(*part, load_idx_images(images, labels, options));
    if (part->n_features != out.schema.image_size)
      return Status::error("{}: images of {} pixels, but {} has images of {}", images,
                           part->n_features, c.idx.train_images, out.schema.image_size);
    return Status::ok();
  };
  MOE_TRY(load_part(c.idx.validation_images, c.idx.validation_labels, &out.validation));
  MOE_TRY(load_part(c.idx.test_images, c.idx.test_labels, &out.test));
  return out;
}

// The token fields of a schema: the tokenizer file's record and the length.
// A corpus schema: {"format", "tokenizer" {"file", "vocab_size", "bytes", "fnv1a64"},
// "context"}, nothing else; a pairs schema the same with "max_tokens" for "context". The first
// builds of the language model also wrote "delimiter" and "quoting", which mean nothing for
// plain text: accepted, and ignored.
Result<DataSchema> corpus_schema_from_json(const json& j, const std::string& source, DataSchema s) {
  const char* length_key = s.format == DataFormat::kCorpus ? "context" : "max_tokens";
  for (const auto& [key, value] : j.items()) {
    if (key != "format" && key != "delimiter" && key != "quoting" && key != "tokenizer" &&
        key != length_key)
      return Status::error("{}: unexpected field '{}' for format \"{}\"", source, key,
                           data_format_name(s.format));
  }
  const auto tok = j.find("tokenizer");
  if (tok == j.end() || !tok->is_object())
    return Status::error("{}: tokenizer must be an object", source);
  for (const auto& [key, value] : tok->items()) {
    if (key != "file" && key != "vocab_size" && key != "bytes" && key != "fnv1a64")
      return Status::error("{}: unexpected field 'tokenizer.{}'", source, key);
  }
  const auto file = tok->find("file");
  if (file == tok->end() || *file != kTokenizerFile)
    return Status::error("{}: tokenizer.file must be \"{}\"", source, kTokenizerFile);
  const auto bytes = tok->find("bytes");
  if (bytes == tok->end() || !bytes->is_number_integer() || bytes->get<int64_t>() < 1 ||
      bytes->get<int64_t>() > (int64_t{1} << 30))
    return Status::error("{}: tokenizer.bytes must be a positive integer", source);
  s.tokenizer_bytes = bytes->get<int64_t>();
  const auto hash = tok->find("fnv1a64");
  if (hash == tok->end() || !hash->is_string() || hash->get<std::string>().size() != 16)
    return Status::error("{}: tokenizer.fnv1a64 must be 16 hex digits", source);
  s.tokenizer_fnv1a64 = hash->get<std::string>();
  const auto ctx = j.find(length_key);
  if (ctx == j.end() || !ctx->is_number_integer() || ctx->get<int64_t>() < 1 ||
      ctx->get<int64_t>() > 65536)
    return Status::error("{}: {} must be an integer in [1, 65536]", source, length_key);
  s.context = ctx->get<int64_t>();
  s.labels.task = TaskKind::kClassification;  // the next token, one of V
  return s;
}

// A table schema's "delimiter": "auto" ('\0'), "tab" or one character.
Result<char> schema_delimiter(const json& j, const std::string& source) {
  const auto it = j.find("delimiter");
  if (it == j.end() || !it->is_string())
    return Status::error("{}: delimiter must be a string", source);
  const std::string d = it->get<std::string>();
  if (d == "auto") return '\0';
  if (d == "tab") return '\t';
  if (d.size() == 1) return d[0];
  return Status::error("{}: delimiter \"{}\" is not \"auto\", \"tab\" or one character", source, d);
}

}  // namespace

DataShape DataSchema::shape() const {
  DataShape s;
  if (format == DataFormat::kCorpus || format == DataFormat::kPairs) {
    // Next-token prediction: a classification over the V token ids.
    s.input = format == DataFormat::kCorpus ? FeatureKind::kTokens : FeatureKind::kPairs;
    s.n_features = tokenizer ? tokenizer->vocab_size() : 0;
    s.task = TaskKind::kClassification;
    s.n_outputs = s.n_features;
    return s;
  }
  s.task = labels.task;
  s.n_outputs = labels.task == TaskKind::kClassification ? labels.n_classes() : labels.n_targets();
  if (text) {
    s.input = FeatureKind::kSparse;
    s.n_features = text->n_features();
  } else if (features) {
    s.input = FeatureKind::kDense;
    s.n_features = features->n_features;
  } else {
    s.input = FeatureKind::kDense;
    s.n_features = image_size;
  }
  return s;
}

json DataSchema::to_json() const {
  json j;
  j["format"] = data_format_name(format);
  if (format == DataFormat::kCorpus || format == DataFormat::kPairs) {
    // Plain text or sentence pairs: no delimiter, no quoting, no labels (the next token is the
    // label). The length is a window's (corpus) or the longest sentence's (pairs).
    j["tokenizer"] = {{"file", kTokenizerFile},
                      {"vocab_size", tokenizer ? tokenizer->vocab_size() : 0},
                      {"bytes", tokenizer_bytes},
                      {"fnv1a64", tokenizer_fnv1a64}};
    j[format == DataFormat::kCorpus ? "context" : "max_tokens"] = context;
    return j;
  }
  j["delimiter"] = delimiter_name(delimiter);
  if (format != DataFormat::kIdx) j["quoting"] = csv_quoting_name(quoting);
  j["labels"] = labels.to_json();
  if (features) j["features"] = features->to_json();
  if (text) {
    j["text"] = text->to_json();
    // The inverse document frequencies the vocabulary implies, written out so that a reader in
    // another language need not recompute them (checked against the vocabulary on load).
    std::vector<float> idf(static_cast<size_t>(text->n_features()));
    for (size_t i = 0; i < idf.size(); ++i) idf[i] = text->idf(static_cast<int32_t>(i));
    j["idf"] = idf;
  }
  if (format == DataFormat::kIdx) j["image_size"] = image_size;
  return j;
}

Result<DataSchema> DataSchema::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) return Status::error("{}: expected an object", source);
  DataSchema s;
  const auto it_format = j.find("format");
  if (it_format == j.end() || !it_format->is_string() ||
      !parse_data_format(it_format->get<std::string>(), &s.format))
    return Status::error(
        "{}: format must be one of \"csv\", \"tsv\", \"text\", \"idx\", \"corpus\", \"pairs\"",
        source);
  if (s.format == DataFormat::kCorpus || s.format == DataFormat::kPairs)
    return corpus_schema_from_json(j, source, std::move(s));
  MOE_ASSIGN_OR_RETURN(s.delimiter, schema_delimiter(j, source));
  // A schema written before the field existed was read with RFC 4180 quoting, whatever the
  // delimiter: it is read so still.
  s.quoting = CsvQuoting::kRfc4180;
  if (const auto it = j.find("quoting"); it != j.end()) {
    if (!it->is_string() || !parse_csv_quoting(it->get<std::string>(), &s.quoting))
      return Status::error("{}: quoting must be \"none\" or \"rfc4180\", got {}", source,
                           json_excerpt(*it));
  }
  if (!j.contains("labels")) return Status::error("{}: missing field 'labels'", source);
  MOE_ASSIGN_OR_RETURN(s.labels, LabelSpec::from_json(j["labels"], source));

  // Exactly the fields of the format, nothing else.
  const bool tabular = s.format == DataFormat::kCsv || s.format == DataFormat::kTsv;
  const bool text = s.format == DataFormat::kText;
  const bool idx = s.format == DataFormat::kIdx;
  for (const auto& [key, value] : j.items()) {
    const bool known = key == "format" || key == "delimiter" || key == "labels" ||
                       ((tabular || text) && key == "quoting") || (tabular && key == "features") ||
                       (text && (key == "text" || key == "idf")) || (idx && key == "image_size");
    if (!known)
      return Status::error("{}: unexpected field '{}' for format \"{}\"", source, key,
                           data_format_name(s.format));
  }
  if (tabular) {
    if (!j.contains("features")) return Status::error("{}: missing field 'features'", source);
    MOE_ASSIGN_OR_RETURN(FeatureStats f, FeatureStats::from_json(j["features"], source));
    s.features = std::move(f);
  } else if (text) {
    if (!j.contains("text")) return Status::error("{}: missing field 'text'", source);
    MOE_ASSIGN_OR_RETURN(TextVectorizer v, TextVectorizer::from_json(j["text"], source));
    const auto it = j.find("idf");
    if (it == j.end() || !it->is_array() || static_cast<int64_t>(it->size()) != v.n_features())
      return Status::error("{}: idf must be an array of {} numbers (one per text id)", source,
                           v.n_features());
    for (size_t i = 0; i < it->size(); ++i) {
      const json& x = (*it)[i];
      if (!x.is_number() || static_cast<float>(x.get<double>()) != v.idf(static_cast<int32_t>(i)))
        return Status::error("{}: idf {} is {}, the vocabulary's document frequencies give {}",
                             source, i, json_excerpt(x), v.idf(static_cast<int32_t>(i)));
    }
    s.text = std::move(v);
  } else {
    const auto it = j.find("image_size");
    if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 1 ||
        it->get<int64_t>() > (int64_t{1} << 30))
      return Status::error("{}: image_size must be a positive integer", source);
    s.image_size = it->get<int64_t>();
  }
  if (s.labels.task == TaskKind::kClassification && s.labels.n_classes() < 2)
    return Status::error("{}: labels: a classifier needs at least 2 classes, the schema has {}",
                         source, s.labels.n_classes());
  if (s.labels.task == TaskKind::kRegression && s.labels.n_targets() < 1)
    return Status::error("{}: labels: regression needs at least one target column", source);
  if ((text || idx) && s.labels.task != TaskKind::kClassification)
    return Status::error("{}: format \"{}\" is for classification", source,
                         data_format_name(s.format));
  return s;
}

Result<LoadedData> load_data(const DataConfig& config, int64_t context) {
  if (config.format == DataFormat::kIdx) return load_idx_data(config);
  if (config.format == DataFormat::kCorpus) return corpus_detail::load_corpus_data(config, context);
  if (config.format == DataFormat::kPairs) return pairs_detail::load_pairs_data(config, context);
  return load_table_data(config);
}

Result<Dataset> load_with_schema(const DataSchema& schema, const std::string& path,
                                 const std::string& labels_path, LabelUse labels,
                                 std::string* report) {
  if (schema.format == DataFormat::kCorpus || schema.format == DataFormat::kPairs) {
    if (!labels_path.empty())
      return Status::error("{}: a separate labels file is for IDX images only", labels_path);
    if (schema.format == DataFormat::kPairs) {
      // Evaluation leaves out what the model cannot read, and says so.
      int64_t dropped = 0;
      MOE_ASSIGN_OR_RETURN(Dataset d, pairs_detail::load_pairs_file(schema, path, true, &dropped));
      if (dropped > 0 && report != nullptr)
        *report = fmt::format("{} pairs of {} longer than max_tokens {} left out", dropped, path,
                              schema.context);
      return d;
    }
    return corpus_detail::load_corpus_file(schema, path);
  }
  if (schema.format == DataFormat::kIdx) {
    IdxImageOptions options;
    options.n_classes = schema.labels.n_classes();
    const std::string lp = labels == LabelUse::kIgnore ? std::string() : labels_path;
    if (lp.empty() && labels == LabelUse::kRequired)
      return Status::error("{}: evaluation needs a labels file beside the images", path);
    MOE_ASSIGN_OR_RETURN(Dataset d, load_idx_images(path, lp, options));
    if (d.n_features != schema.image_size)
      return Status::error("{}: images of {} pixels, the model was trained on {}", path,
                           d.n_features, schema.image_size);
    return d;
  }
  if (!labels_path.empty())
    return Status::error("{}: a separate labels file is for IDX images only", labels_path);
  MOE_ASSIGN_OR_RETURN(CsvTable table,
                       read_table(path, delimiter_for(path, schema.delimiter), schema.quoting));
  if (schema.text) return encode_text(table, *schema.text, schema.labels, labels);
  if (!schema.features)
    return Status::error("{}: the schema has neither feature statistics nor a vocabulary", path);
  TabularSchema tabular{*schema.features, schema.labels};
  TabularReport r;
  MOE_ASSIGN_OR_RETURN(Dataset d, encode_tabular(table, tabular, labels, &r));
  if (report != nullptr) *report = r.summary(path);
  return d;
}

namespace {

// FNV-1a 64 over a sequence of byte ranges.
struct Fnv1a64 {
  uint64_t h = 14695981039346656037ull;
  void add(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < size; ++i) {
      h ^= p[i];
      h *= 1099511628211ull;
    }
  }
  template <typename T>
  void add(const std::vector<T>& v) {
    const uint64_t n = v.size();
    add(&n, sizeof n);  // the length too: [a][bc] and [ab][c] differ
    if (!v.empty()) add(v.data(), v.size() * sizeof(T));
  }
};

void add_dataset(const Dataset& d, Fnv1a64* f) {
  const int64_t dims[] = {d.n_rows, d.n_features, d.n_classes, d.n_targets};
  f->add(dims, sizeof dims);
  f->add(d.dense);
  f->add(d.ids);
  f->add(d.offsets);
  f->add(d.weights);
  f->add(d.labels);
  f->add(d.targets);
  f->add(d.source_rows);
}

}  // namespace

std::string data_fingerprint(const LoadedData& data) {
  Fnv1a64 f;
  add_dataset(data.train, &f);
  add_dataset(data.validation, &f);
  add_dataset(data.test, &f);
  return fmt::format("{:016x}", f.h);
}

}  // namespace moe
