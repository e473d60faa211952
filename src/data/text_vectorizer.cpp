// Vocabulary, TF-IDF weights and text data sets; the formulas are in text.h.
#include <algorithm>
#include <cmath>
#include <new>
#include <unordered_set>

#include "core/json_fields.h"
#include "data/cells.h"
#include "moe/data/text.h"

namespace moe {

namespace {

using json = nlohmann::json;

// Ids are int32 (the EmbeddingBag's id type); a bound far below that keeps tables sane.
constexpr int64_t kMaxBigramBuckets = int64_t{1} << 26;

Status check_options(const TextOptions& o) {
  if (o.min_count < 1)
    return Status::error("text: min_count must be at least 1, not {}", o.min_count);
  if (o.max_vocab < 0) return Status::error("text: max_vocab must be 0 (no limit) or positive");
  if (o.bigram_buckets < 0 || o.bigram_buckets > kMaxBigramBuckets)
    return Status::error("text: bigram_buckets must be in [0, {}], not {}", kMaxBigramBuckets,
                         o.bigram_buckets);
  if (o.bigrams && o.bigram_buckets > 0)
    return Status::error(
        "text: bigrams (vocabulary bigrams) and bigram_buckets {} (hashed bigrams) exclude each "
        "other; set one",
        o.bigram_buckets);
  return Status::ok();
}

// The vocabulary entry of the bigram (a, b): "a b".
void join_bigram(std::string_view a, std::string_view b, std::string* out) {
  out->assign(a);
  out->push_back(' ');
  out->append(b);
}

}  // namespace

bool TextVectorizer::is_stop_word(std::string_view w) const {
  return std::binary_search(stop_words_.begin(), stop_words_.end(), w,
                            [](std::string_view a, std::string_view b) { return a < b; });
}

int32_t TextVectorizer::word_id(std::string_view word) const {
  const auto it = index_.find(word);
  return it == index_.end() ? -1 : it->second;
}

void TextVectorizer::finish() {
  index_.clear();
  index_.reserve(words_.size());
  for (size_t i = 0; i < words_.size(); ++i) index_.emplace(words_[i], static_cast<int32_t>(i));
  idf_.resize(doc_freq_.size());
  const double n = static_cast<double>(n_docs_);
  for (size_t i = 0; i < doc_freq_.size(); ++i)
    idf_[i] =
        static_cast<float>(std::log((1.0 + n) / (1.0 + static_cast<double>(doc_freq_[i]))) + 1.0);
}

void TextVectorizer::document_ids(std::string_view doc, std::string* normalized,
                                  std::vector<std::string_view>* tokens,
                                  std::vector<int32_t>* ids) const {
  tokenize(doc, tokenizer_, normalized, tokens);
  if (!stop_words_.empty())
    std::erase_if(*tokens, [this](std::string_view w) { return is_stop_word(w); });
  ids->clear();
  for (std::string_view w : *tokens) {
    const int32_t id = word_id(w);
    if (id >= 0) ids->push_back(id);
  }
  if (bigrams_) {
    std::string pair;
    for (size_t i = 1; i < tokens->size(); ++i) {
      join_bigram((*tokens)[i - 1], (*tokens)[i], &pair);
      const int32_t id = word_id(pair);
      if (id >= 0) ids->push_back(id);
    }
  }
  if (bigram_buckets_ > 0)
    for (size_t i = 1; i < tokens->size(); ++i)
      ids->push_back(
          static_cast<int32_t>(n_words() + bigram_bucket((*tokens)[i - 1], (*tokens)[i],
                                                         static_cast<uint32_t>(bigram_buckets_))));
}

Result<TextVectorizer> TextVectorizer::fit(std::span<const std::string_view> docs,
                                           const TextOptions& o) {
  MOE_TRY(check_options(o));
  if (docs.empty()) return Status::error("text: no training documents");
  TextVectorizer v;
  v.text_column_ = o.text_column;
  v.tokenizer_ = o.tokenizer;
  v.sublinear_tf_ = o.sublinear_tf;
  v.min_count_ = o.min_count;
  v.max_vocab_ = o.max_vocab;
  v.bigrams_ = o.bigrams;
  v.bigram_buckets_ = o.bigram_buckets;
  v.n_docs_ = static_cast<int64_t>(docs.size());
  if (o.builtin_stop_words) v.stop_words_ = builtin_english_stop_words();
  if (!o.stop_words_file.empty()) {
    MOE_ASSIGN_OR_RETURN(std::vector<std::string> extra,
                         read_stop_words(o.stop_words_file, o.tokenizer.lowercase));
    v.stop_words_.insert(v.stop_words_.end(), extra.begin(), extra.end());
  }
  std::sort(v.stop_words_.begin(), v.stop_words_.end());
  v.stop_words_.erase(std::unique(v.stop_words_.begin(), v.stop_words_.end()), v.stop_words_.end());

  // Document frequencies of words (and vocabulary bigrams) and of bigram buckets.
  std::unordered_map<std::string, int64_t, Hash, std::equal_to<>> df;
  const auto count = [&df](std::string_view w) {
    const auto it = df.find(w);
    if (it == df.end()) {
      df.emplace(std::string(w), 1);
    } else {
      ++it->second;
    }
  };
  std::vector<int64_t> bucket_df(static_cast<size_t>(o.bigram_buckets), 0);
  std::string normalized;
  std::vector<std::string_view> tokens;
  std::unordered_set<std::string_view> seen;
  std::unordered_set<std::string> seen_pairs;
  std::string pair;
  std::vector<uint32_t> buckets;
  for (std::string_view doc : docs) {
    tokenize(doc, v.tokenizer_, &normalized, &tokens);
    if (!v.stop_words_.empty())
      std::erase_if(tokens, [&v](std::string_view w) { return v.is_stop_word(w); });
    seen.clear();
    for (std::string_view w : tokens)
      if (seen.insert(w).second) count(w);
    if (o.bigrams) {
      seen_pairs.clear();
      for (size_t i = 1; i < tokens.size(); ++i) {
        join_bigram(tokens[i - 1], tokens[i], &pair);
        if (seen_pairs.insert(pair).second) count(pair);
      }
    }
    if (o.bigram_buckets > 0) {
      buckets.clear();
      for (size_t i = 1; i < tokens.size(); ++i)
        buckets.push_back(
            bigram_bucket(tokens[i - 1], tokens[i], static_cast<uint32_t>(o.bigram_buckets)));
      std::sort(buckets.begin(), buckets.end());
      buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
      for (uint32_t b : buckets) ++bucket_df[b];
    }
  }

  std::vector<std::pair<std::string, int64_t>> kept;
  for (auto& [w, n] : df)
    if (n >= o.min_count) kept.emplace_back(w, n);
  // Most documents first; ties bytewise, so the order never depends on the hash table.
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (o.max_vocab > 0 && static_cast<int64_t>(kept.size()) > o.max_vocab)
    kept.resize(static_cast<size_t>(o.max_vocab));
  for (auto& [w, n] : kept) {
    v.words_.push_back(std::move(w));
    v.doc_freq_.push_back(n);
  }
  if (v.words_.empty())
    return Status::error(
        "text: the {} training documents hold no word that is kept (check the "
        "text column, stop words and min_count {})",
        docs.size(), o.min_count);
  v.doc_freq_.insert(v.doc_freq_.end(), bucket_df.begin(), bucket_df.end());
  v.finish();
  return v;
}

void TextVectorizer::transform(std::string_view doc, std::vector<int32_t>* ids,
                               std::vector<float>* weights) const {
  std::string normalized;
  std::vector<std::string_view> tokens;
  std::vector<int32_t> raw;
  document_ids(doc, &normalized, &tokens, &raw);
  std::sort(raw.begin(), raw.end());
  const size_t first = ids->size();
  double sum_sq = 0;
  for (size_t i = 0; i < raw.size();) {
    size_t j = i;
    while (j < raw.size() && raw[j] == raw[i]) ++j;
    const double count = static_cast<double>(j - i);
    const double tf = sublinear_tf_ ? 1.0 + std::log(count) : count;
    const double w = tf * idf_[static_cast<size_t>(raw[i])];
    ids->push_back(raw[i]);
    weights->push_back(static_cast<float>(w));
    sum_sq += w * w;
    i = j;
  }
  if (sum_sq > 0) {
    const double inv = 1.0 / std::sqrt(sum_sq);
    for (size_t k = first; k < weights->size(); ++k)
      (*weights)[k] = static_cast<float>((*weights)[k] * inv);
  }
}

json TextVectorizer::to_json() const {
  const auto split = doc_freq_.begin() + static_cast<ptrdiff_t>(words_.size());
  return json{{"text_column", text_column_},
              {"lowercase", tokenizer_.lowercase},
              {"strip_html", tokenizer_.strip_html},
              {"sublinear_tf", sublinear_tf_},
              {"min_count", min_count_},
              {"max_vocab", max_vocab_},
              {"bigrams", bigrams_},
              {"bigram_buckets", bigram_buckets_},
              {"n_docs", n_docs_},
              {"stop_words", stop_words_},
              {"words", words_},
              {"doc_freq", std::vector<int64_t>(doc_freq_.begin(), split)},
              {"bigram_doc_freq", std::vector<int64_t>(split, doc_freq_.end())}};
}

Result<TextVectorizer> TextVectorizer::from_json(const json& j, const std::string& source) {
  const std::string where = source + ": vocabulary";
  TextVectorizer v;
  MOE_TRY(json_field(j, "text_column", where, &v.text_column_));
  MOE_TRY(json_field(j, "lowercase", where, &v.tokenizer_.lowercase));
  MOE_TRY(json_field(j, "strip_html", where, &v.tokenizer_.strip_html));
  MOE_TRY(json_field(j, "sublinear_tf", where, &v.sublinear_tf_));
  MOE_TRY(json_field(j, "min_count", where, &v.min_count_));
  MOE_TRY(json_field(j, "max_vocab", where, &v.max_vocab_));
  // Vocabularies written before vocabulary bigrams existed have no "bigrams": they had none.
  if (j.contains("bigrams")) MOE_TRY(json_field(j, "bigrams", where, &v.bigrams_));
  MOE_TRY(json_field(j, "bigram_buckets", where, &v.bigram_buckets_));
  MOE_TRY(json_field(j, "n_docs", where, &v.n_docs_));
  MOE_TRY(json_field(j, "stop_words", where, &v.stop_words_));
  MOE_TRY(json_field(j, "words", where, &v.words_));
  std::vector<int64_t> bigram_df;
  MOE_TRY(json_field(j, "doc_freq", where, &v.doc_freq_));
  MOE_TRY(json_field(j, "bigram_doc_freq", where, &bigram_df));
  TextOptions o;
  o.min_count = v.min_count_;
  o.max_vocab = v.max_vocab_;
  o.bigrams = v.bigrams_;
  o.bigram_buckets = v.bigram_buckets_;
  MOE_TRY(check_options(o).with_context(where));
  if (v.n_docs_ < 1) return Status::error("{}: 'n_docs' must be positive", where);
  if (v.words_.empty()) return Status::error("{}: 'words' is empty", where);
  if (v.doc_freq_.size() != v.words_.size())
    return Status::error("{}: {} words but {} 'doc_freq' entries", where, v.words_.size(),
                         v.doc_freq_.size());
  if (static_cast<int64_t>(bigram_df.size()) != v.bigram_buckets_)
    return Status::error("{}: {} bigram buckets but {} 'bigram_doc_freq' entries", where,
                         v.bigram_buckets_, bigram_df.size());
  v.doc_freq_.insert(v.doc_freq_.end(), bigram_df.begin(), bigram_df.end());
  for (int64_t n : v.doc_freq_)
    if (n < 0 || n > v.n_docs_)
      return Status::error("{}: a document frequency of {} is outside [0, n_docs = {}]", where, n,
                           v.n_docs_);
  if (!std::is_sorted(v.stop_words_.begin(), v.stop_words_.end()))
    return Status::error("{}: 'stop_words' must be sorted", where);
  std::unordered_set<std::string_view> distinct(v.words_.begin(), v.words_.end());
  if (distinct.size() != v.words_.size())
    return Status::error("{}: 'words' holds a word twice", where);
  v.finish();
  return v;
}

Result<Dataset> encode_text(const CsvTable& t, std::span<const int64_t> rows,
                            const TextVectorizer& vectorizer, const LabelSpec& labels,
                            LabelUse label_use) {
  MOE_ASSIGN_OR_RETURN(int64_t text_col,
                       data_detail::require_column(t, vectorizer.text_column(), "text column"));
  MOE_CHECK(labels.task == TaskKind::kClassification && labels.columns.size() == 1,
            "encode_text takes a classification LabelSpec with one column");
  int64_t label_col = -1;
  if (label_use != LabelUse::kIgnore) {
    label_col = t.find_column(labels.columns[0]);
    if (label_col < 0 && label_use == LabelUse::kRequired)
      return data_detail::require_column(t, labels.columns[0], "label column").status();
  }
  Dataset d;
  d.source = t.source();
  d.kind = FeatureKind::kSparse;
  d.n_rows = static_cast<int64_t>(rows.size());
  d.n_features = vectorizer.n_features();
  d.task = TaskKind::kClassification;
  d.n_classes = labels.n_classes();
  try {
    d.offsets.reserve(rows.size() + 1);
    d.offsets.push_back(0);
    for (int64_t r : rows) {
      vectorizer.transform(t.cell(r, text_col), &d.ids, &d.weights);
      d.offsets.push_back(static_cast<int64_t>(d.ids.size()));
      d.source_rows.push_back(t.line(r));
    }
  } catch (const std::bad_alloc&) {
    return Status::error("{}: out of memory while encoding {} documents", t.source(), rows.size());
  }
  if (label_col >= 0) {
    d.has_labels = true;
    MOE_TRY(data_detail::encode_class_ids(t, label_col, rows, labels, &d.labels));
  }
  return d;
}

Result<Dataset> encode_text(const CsvTable& table, const TextVectorizer& vectorizer,
                            const LabelSpec& labels, LabelUse label_use) {
  const std::vector<int64_t> rows = data_detail::all_rows(table.n_rows());
  return encode_text(table, rows, vectorizer, labels, label_use);
}

namespace {

Result<TextVectorizer> fit_on_rows(const CsvTable& t, std::span<const int64_t> rows,
                                   const TextOptions& o) {
  MOE_ASSIGN_OR_RETURN(int64_t text_col,
                       data_detail::require_column(t, o.text_column, "text column"));
  std::vector<std::string_view> docs;
  docs.reserve(rows.size());
  for (int64_t r : rows) docs.push_back(t.cell(r, text_col));
  Result<TextVectorizer> v = TextVectorizer::fit(docs, o);
  if (!v.is_ok()) return v.status().with_context(t.source());
  return v;
}

LabelSpec class_spec(const TextOptions& o, std::vector<std::string> names) {
  LabelSpec s;
  s.task = TaskKind::kClassification;
  s.columns = {o.label_column};
  s.class_names = std::move(names);
  return s;
}

}  // namespace

Result<TextData> load_text(const CsvTable& table, const TextOptions& options,
                           const SplitOptions& split) {
  MOE_TRY(check_options(options));
  {
    const Result<int64_t> text_col =
        data_detail::require_column(table, options.text_column, "text column");
    if (!text_col.is_ok()) return text_col.status();
  }
  MOE_ASSIGN_OR_RETURN(int64_t label_col,
                       data_detail::require_column(table, options.label_column, "label column"));
  const std::vector<int64_t> every = data_detail::all_rows(table.n_rows());
  TextData out;
  MOE_ASSIGN_OR_RETURN(std::vector<std::string> names,
                       data_detail::collect_class_names(table, label_col, every));
  out.labels = class_spec(options, std::move(names));
  std::vector<int32_t> ids;
  MOE_TRY(data_detail::encode_class_ids(table, label_col, every, out.labels, &ids));
  MOE_ASSIGN_OR_RETURN(SplitIndices parts,
                       split_rows(table.n_rows(), ids, out.labels.n_classes(), split));
  MOE_ASSIGN_OR_RETURN(out.vectorizer, fit_on_rows(table, parts.train, options));
  MOE_ASSIGN_OR_RETURN(
      out.train, encode_text(table, parts.train, out.vectorizer, out.labels, LabelUse::kRequired));
  MOE_ASSIGN_OR_RETURN(out.validation, encode_text(table, parts.validation, out.vectorizer,
                                                   out.labels, LabelUse::kRequired));
  MOE_ASSIGN_OR_RETURN(
      out.test, encode_text(table, parts.test, out.vectorizer, out.labels, LabelUse::kRequired));
  return out;
}

Result<TextData> load_text(const CsvTable& train, const CsvTable* validation, const CsvTable* test,
                           const TextOptions& options) {
  MOE_TRY(check_options(options));
  MOE_ASSIGN_OR_RETURN(int64_t label_col,
                       data_detail::require_column(train, options.label_column, "label column"));
  const std::vector<int64_t> every = data_detail::all_rows(train.n_rows());
  TextData out;
  MOE_ASSIGN_OR_RETURN(std::vector<std::string> names,
                       data_detail::collect_class_names(train, label_col, every));
  out.labels = class_spec(options, std::move(names));
  MOE_ASSIGN_OR_RETURN(out.vectorizer, fit_on_rows(train, every, options));
  MOE_ASSIGN_OR_RETURN(out.train,
                       encode_text(train, out.vectorizer, out.labels, LabelUse::kRequired));
  if (validation != nullptr) {
    MOE_ASSIGN_OR_RETURN(out.validation,
                         encode_text(*validation, out.vectorizer, out.labels, LabelUse::kRequired));
  } else {
    out.validation = out.train.subset({});
  }
  if (test != nullptr) {
    MOE_ASSIGN_OR_RETURN(out.test,
                         encode_text(*test, out.vectorizer, out.labels, LabelUse::kRequired));
  } else {
    out.test = out.train.subset({});
  }
  return out;
}

}  // namespace moe
