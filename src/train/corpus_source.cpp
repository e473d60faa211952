// Language-model data: text files to token windows (see train/corpus_source.h).
//
// Dims: S context · V vocabulary.
#include "train/corpus_source.h"

#include <omp.h>

#include <algorithm>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "moe/core/file_io.h"
#include "moe/data/corpus.h"
#include "moe/train/checkpoint.h"

namespace moe::corpus_detail {

namespace {

// The UTF-8 bytes token `id` stands for in the text: 1 for a byte piece ("<0x0A>"), the length
// of its decoded text otherwise (a piece's "▁" is one space; bos and eos are none). Decoding
// tokens one by one keeps a character spelled in byte pieces and cut by a window boundary
// counted byte for byte.
int64_t token_bytes(const Tokenizer& tokenizer, int32_t id) {
  const std::string p = tokenizer.piece(id);
  if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p.back() == '>') return 1;
  return static_cast<int64_t>(tokenizer.decode(std::span(&id, 1)).size());
}

// A data set of the stream's windows: the tokens, the window length, the text's bytes and the
// bytes the windows cover: the windows end at token W·S, so the text of the last
// (n − 1) mod S tokens is left out, and bits per byte must not count it.
Result<Dataset> windows_of(TokenStream stream, int64_t context, const Tokenizer& tokenizer) {
  MOE_ASSIGN_OR_RETURN(const TokenWindows w, make_windows(stream, context));
  const int64_t vocab = tokenizer.vocab_size();
  int64_t tail_bytes = 0;
  for (size_t i = static_cast<size_t>(w.n_windows * context + 1); i < stream.tokens.size(); ++i)
    tail_bytes += token_bytes(tokenizer, stream.tokens[i]);
  Dataset d;
  d.source = stream.source;
  d.kind = FeatureKind::kTokens;
  d.n_rows = w.n_windows;
  d.n_features = vocab;
  d.task = TaskKind::kClassification;
  d.has_labels = true;
  d.n_classes = vocab;
  d.context = context;
  d.n_bytes = stream.n_bytes;
  d.window_bytes = std::max<int64_t>(stream.n_bytes - tail_bytes, 0);
  d.ids = std::move(stream.tokens);
  d.source_rows.resize(static_cast<size_t>(d.n_rows));
  for (int64_t i = 0; i < d.n_rows; ++i) d.source_rows[static_cast<size_t>(i)] = i * context;
  return d;
}

Result<TokenStream> read_stream(const Tokenizer& tokenizer, const std::string& path) {
  MOE_ASSIGN_OR_RETURN(const TextCorpus corpus, read_text_files(std::span(&path, 1)));
  return tokenize(tokenizer, corpus);
}

// A SentencePiece model given as a file; the same cap as a checkpoint's tokenizer.model.
constexpr uint64_t kMaxTokenizerModelBytes = uint64_t{1} << 30;

}  // namespace

Result<Tokenizer> subword_tokenizer(const DataConfig& c, std::span<const std::string> documents) {
  if (!c.corpus.tokenizer_model.empty()) {
    const std::string& path = c.corpus.tokenizer_model;
    MOE_ASSIGN_OR_RETURN(std::string bytes, read_file_bytes<std::string>(
                                                path, kMaxTokenizerModelBytes, FileSource::kUser));
    Result<Tokenizer> t = Tokenizer::from_bytes(bytes, path);
    if (!t) return t.status().with_context("data.corpus.tokenizer_model");
    return t;
  }
  SubwordOptions options = c.corpus.tokenizer;
  options.seed = c.split.seed;
  options.threads = omp_get_max_threads();
  Result<Tokenizer> trained = Tokenizer::train(documents, options);
  if (!trained.is_ok()) {
    // SentencePiece: "Vocabulary size too high (V). Please set it to a value <= N." — the key
    // to change and the limit, in the config's words.
    const std::string& m = trained.status().message();
    const size_t at = m.find("Please set it to a value <= ");
    if (m.find("Vocabulary size too high") != std::string::npos && at != std::string::npos) {
      std::string limit = m.substr(at + 28);
      while (!limit.empty() && (limit.back() == '.' || limit.back() == ' ')) limit.pop_back();
      return Status::error(
          "data.corpus.vocab_size {} is more pieces than {} supports (at most {}); lower it "
          "or give more text",
          options.vocab_size, c.train, limit);
    }
    return trained.status().with_context(c.train);
  }
  return trained;
}

Result<LoadedData> load_corpus_data(const DataConfig& c, int64_t context) {
  if (context < 1)
    return Status::error("model.lm.context: must be positive for a corpus, got {}", context);
  MOE_ASSIGN_OR_RETURN(const TextCorpus train_text, read_text_files(std::span(&c.train, 1)));

  MOE_ASSIGN_OR_RETURN(Tokenizer trained, subword_tokenizer(c, train_text.documents));
  auto tokenizer = std::make_shared<const Tokenizer>(std::move(trained));
  const int64_t vocab = tokenizer->vocab_size();

  LoadedData out;
  out.schema.format = DataFormat::kCorpus;
  out.schema.labels.task = TaskKind::kClassification;
  out.schema.context = context;
  const std::string& bytes = tokenizer->to_bytes();
  out.schema.tokenizer_bytes = static_cast<int64_t>(bytes.size());
  out.schema.tokenizer_fnv1a64 = fnv1a64_hex(bytes.data(), bytes.size());
  out.schema.tokenizer = tokenizer;

  TokenStream train = tokenize(*tokenizer, train_text);
  if (c.validation.empty() && c.split.validation > 0) {
    MOE_ASSIGN_OR_RETURN(StreamSplit split, split_stream(train, c.split.validation));
    train = std::move(split.train);
    MOE_ASSIGN_OR_RETURN(out.validation,
                         windows_of(std::move(split.validation), context, *tokenizer));
  } else if (!c.validation.empty()) {
    MOE_ASSIGN_OR_RETURN(TokenStream v, read_stream(*tokenizer, c.validation));
    MOE_ASSIGN_OR_RETURN(out.validation, windows_of(std::move(v), context, *tokenizer));
  }
  MOE_ASSIGN_OR_RETURN(out.train, windows_of(std::move(train), context, *tokenizer));
  if (!c.test.empty()) {
    MOE_ASSIGN_OR_RETURN(TokenStream t, read_stream(*tokenizer, c.test));
    MOE_ASSIGN_OR_RETURN(out.test, windows_of(std::move(t), context, *tokenizer));
  }
  out.report =
      c.corpus.tokenizer_model.empty()
          ? fmt::format("a {} tokenizer of {} pieces trained on {} ({} bytes)",
                        enum_name(kTokenizerKindNames, c.corpus.tokenizer.kind), vocab, c.train,
                        train_text.n_bytes)
          : fmt::format("the tokenizer of {} pieces in {}", vocab, c.corpus.tokenizer_model);
  return out;
}

Result<Dataset> load_corpus_file(const DataSchema& schema, const std::string& path) {
  if (!schema.tokenizer) return Status::error("{}: the model has no tokenizer", path);
  MOE_ASSIGN_OR_RETURN(TokenStream s, read_stream(*schema.tokenizer, path));
  return windows_of(std::move(s), schema.context, *schema.tokenizer);
}

}  // namespace moe::corpus_detail
