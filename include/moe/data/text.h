// Text classification data: a text column and a label column turned into TF-IDF weighted bags of
// word ids, in the CSR form the weighted EmbeddingBag consumes.
//
// Dims: N documents · V = n_words + bigram_buckets (the id range) · NNZ ids over all documents.
//
// Normalisation, in one pass over the bytes:
//   - HTML (when strip_html): a tag, '<' followed by a letter, '/', '!' or '?' up to the next
//     '>', becomes a space; a '<' without that shape ("<3", "a < b") stays. The entities &amp;
//     &lt; &gt; &quot; &#39; &apos; &nbsp; and numeric ones (&#233; &#xE9;) are decoded; an
//     entity decoded to '<' is text, never the start of a tag.
//   - Lower-casing (when lowercase) of ASCII letters only: bytes of other scripts are kept.
//   - Typographic apostrophes U+2018 and U+2019 become "'"; the rest of U+2000–U+203F (dashes,
//     quotation marks, ellipsis, spaces) and U+0080–U+00BF (Latin-1 controls, punctuation and
//     symbols, no-break space) become spaces.
// Tokens are then the maximal runs of ASCII letters, ASCII digits, apostrophes and bytes ≥ 0x80
// (so "café" and "naïve" stay whole), with apostrophes trimmed from both ends of a run and runs
// of apostrophes alone dropped: "Don't stop!!" -> don't, stop;  "'quoted'" -> quoted.
//
// Stop words (optional: a built-in English list and/or a file) are removed before bigrams are
// formed, so a bigram joins two neighbouring kept tokens. Bigrams come in two kinds, one or the
// other. Vocabulary bigrams (`bigrams`): the bigram (a, b) is the vocabulary entry "a b" (tokens
// never hold a space), counted, kept and ordered exactly like a word, so words and bigrams share
// min_count and max_vocab (as in a word-and-bigram TF-IDF model). Hashed bigrams: bigram (a, b) has
// id n_words + FNV-1a-64("a b") mod bigram_buckets (Fowler–Noll–Vo hash, 64-bit offset basis
// 14695981039346656037, prime 1099511628211): the same on every machine and every run.
//
// Vocabulary (training documents only): a word's (or vocabulary bigram's) count is the number of
// training documents that contain it (document frequency); words with count ≥ min_count are kept,
// ordered by count descending then bytewise, the first max_vocab (0 = all) taking ids 0, 1, ... in
// that order. Words outside the vocabulary are dropped when encoding.
//
// TF-IDF per document d and id t:
//   tf(t, d)  = the number of times t occurs in d, or 1 + ln(that) with sublinear_tf
//   idf(t)    = ln((1 + N) / (1 + df(t))) + 1     (smooth idf; N and df from training)
//   w(t, d)   = tf · idf / ‖tf · idf‖₂ over d's ids  (an empty document has no ids)
// Bigram buckets take part like words, with their own document frequencies. A document's ids
// are listed in increasing order, each once.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "moe/core/status.h"
#include "moe/data/csv.h"
#include "moe/data/dataset.h"

namespace moe {

struct TokenizerOptions {
  bool lowercase = true;
  bool strip_html = true;
};

// The normalisation above (HTML, case, punctuation) without the split into tokens.
std::string normalize_text(std::string_view text, const TokenizerOptions& options);
// Tokens of `text` as views into *normalized, which receives the normalised text.
void tokenize(std::string_view text, const TokenizerOptions& options, std::string* normalized,
              std::vector<std::string_view>* tokens);
// The same, as owned strings (tests, tools).
std::vector<std::string> tokenize(std::string_view text, const TokenizerOptions& options);

// The bucket of the bigram (a, b) in [0, n_buckets).
uint32_t bigram_bucket(std::string_view a, std::string_view b, uint32_t n_buckets);

// A small built-in list of English function words. It leaves out negations (no, not, nor,
// never, and n't forms), which carry the sentiment of a review.
const std::vector<std::string>& builtin_english_stop_words();
// A stop-word file: one word per line, blanks trimmed, empty lines and lines starting with '#'
// skipped. Words are lower-cased when `lowercase`.
Result<std::vector<std::string>> read_stop_words(const std::string& path, bool lowercase);

struct TextOptions {
  std::string text_column = "text";
  std::string label_column = "label";
  TokenizerOptions tokenizer;
  bool builtin_stop_words = false;
  std::string stop_words_file;  // optional, added to the built-in list when both are set
  int64_t min_count = 1;        // minimum training document frequency of a word
  int64_t max_vocab = 0;        // 0: no limit
  bool bigrams = false;         // word bigrams as vocabulary entries "a b"
  int64_t bigram_buckets = 0;   // hashed bigrams instead; 0: none
  bool sublinear_tf = false;
};

// Vocabulary, document frequencies and options: everything needed to turn a new document into
// the ids and weights training used. Serialisable to JSON for checkpoints.
class TextVectorizer {
 public:
  // Builds the vocabulary from training documents (reading the stop-word file if given).
  static Result<TextVectorizer> fit(std::span<const std::string_view> docs,
                                    const TextOptions& options);

  int64_t n_words() const { return static_cast<int64_t>(words_.size()); }
  int64_t n_features() const { return n_words() + bigram_buckets_; }  // V
  // The vocabulary by id; with `bigrams`, entries "a b" are bigrams.
  const std::vector<std::string>& words() const { return words_; }
  bool bigrams() const { return bigrams_; }
  const std::vector<int64_t>& doc_freq() const { return doc_freq_; }  // [V]
  int64_t n_train_docs() const { return n_docs_; }
  const std::string& text_column() const { return text_column_; }
  // Id of a normalised word, or -1.
  int32_t word_id(std::string_view word) const;
  float idf(int32_t id) const { return idf_[static_cast<size_t>(id)]; }

  // Appends one document's ids (increasing) and weights.
  void transform(std::string_view doc, std::vector<int32_t>* ids,
                 std::vector<float>* weights) const;

  nlohmann::json to_json() const;
  static Result<TextVectorizer> from_json(const nlohmann::json& j, const std::string& source);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void finish();  // builds the lookup table and idf from words_ and frequencies
  // Ids of a document's kept tokens and bigrams, with repeats, in order.
  void document_ids(std::string_view doc, std::string* normalized,
                    std::vector<std::string_view>* tokens, std::vector<int32_t>* ids) const;
  bool is_stop_word(std::string_view w) const;

  std::string text_column_;
  TokenizerOptions tokenizer_;
  bool sublinear_tf_ = false;
  int64_t min_count_ = 1;
  int64_t max_vocab_ = 0;
  bool bigrams_ = false;
  int64_t bigram_buckets_ = 0;
  int64_t n_docs_ = 0;
  std::vector<std::string> stop_words_;  // sorted
  std::vector<std::string> words_;       // [n_words], by id
  std::vector<int64_t> doc_freq_;        // [V], words then buckets
  std::vector<float> idf_;               // [V]
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> index_;
};

struct TextData {
  TextVectorizer vectorizer;
  LabelSpec labels;
  Dataset train;
  Dataset validation;
  Dataset test;
};

// One table split by ratio, stratified by class (class names from the whole table); the
// vocabulary is built on the training part.
Result<TextData> load_text(const CsvTable& table, const TextOptions& options,
                           const SplitOptions& split);
// Separate files; validation and test may be null. Vocabulary and classes from `train`.
Result<TextData> load_text(const CsvTable& train, const CsvTable* validation, const CsvTable* test,
                           const TextOptions& options);
// Encodes rows `rows` of a table (all rows when called without them) with a fitted vectorizer.
Result<Dataset> encode_text(const CsvTable& table, std::span<const int64_t> rows,
                            const TextVectorizer& vectorizer, const LabelSpec& labels,
                            LabelUse label_use);
Result<Dataset> encode_text(const CsvTable& table, const TextVectorizer& vectorizer,
                            const LabelSpec& labels, LabelUse label_use);

}  // namespace moe
