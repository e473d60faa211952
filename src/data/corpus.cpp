// Text files to token streams, splits and windows; the rules are in corpus.h.
//
// Dims: N documents · n tokens · S context · W windows.
#include "moe/data/corpus.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>
#include <utility>

#include "data/file_bytes.h"
#include "moe/core/check.h"

namespace moe {

namespace {

constexpr uint64_t kMaxTextFileBytes = uint64_t{4} << 30;

// "line 3, column 7" of byte `offset` of `text` (columns count bytes, from 1).
std::string line_and_column(std::string_view text, size_t offset) {
  const std::string_view before = text.substr(0, offset);
  const auto line = 1 + std::count(before.begin(), before.end(), '\n');
  const size_t last_newline = before.rfind('\n');
  const size_t column =
      offset - (last_newline == std::string_view::npos ? 0 : last_newline + 1) + 1;
  return fmt::format("line {}, column {}", line, column);
}

Result<std::string> read_text_file(const std::string& path) {
  MOE_ASSIGN_OR_RETURN(std::string text, data_detail::read_data_file(path, kMaxTextFileBytes));
  // A byte order mark says "UTF-8"; it is not text.
  if (text.size() >= 3 && std::memcmp(text.data(), "\xEF\xBB\xBF", 3) == 0) text.erase(0, 3);
  if (text.empty()) return Status::error("{}: empty file (no text)", path);
  if (const size_t at = text.find('\0'); at != std::string::npos) {
    return Status::error("{}: NUL byte at byte {} ({}): not a text file", path, at,
                         line_and_column(text, at));
  }
  if (!data_detail::is_ascii(text)) {
    if (const size_t bad = data_detail::invalid_utf8_at(text); bad != std::string_view::npos)
      return Status::error("{}: invalid UTF-8 at byte {} ({}, byte 0x{:02X})", path, bad,
                           line_and_column(text, bad), static_cast<unsigned char>(text[bad]));
  }
  return text;
}

// The part [from, to) of a stream's cuts as seen by a stream starting at `base`.
std::vector<StreamCut> cuts_between(const std::vector<StreamCut>& cuts, size_t from, size_t to,
                                    StreamCut base) {
  std::vector<StreamCut> out;
  out.reserve(to - from);
  for (size_t i = from; i < to; ++i)
    out.push_back({cuts[i].token - base.token, cuts[i].byte - base.byte, cuts[i].document});
  return out;
}

}  // namespace

Result<TextCorpus> read_text_files(std::span<const std::string> paths) {
  if (paths.empty()) return Status::error("no text files given");
  TextCorpus corpus;
  corpus.source = paths[0];
  if (paths.size() > 1) corpus.source += fmt::format(" and {} more files", paths.size() - 1);
  corpus.documents.reserve(paths.size());
  for (const std::string& path : paths) {
    MOE_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
    corpus.n_bytes += static_cast<int64_t>(text.size());
    corpus.documents.push_back(std::move(text));
  }
  return corpus;
}

TokenStream tokenize(const Tokenizer& tokenizer, const TextCorpus& corpus) {
  TokenStream s;
  s.source = corpus.source;
  // A rough guess (about 4 bytes per token) to spare most reallocations.
  data_detail::reserve_huge(s.tokens, static_cast<size_t>(corpus.n_bytes / 4 + 16));
  for (const std::string& doc : corpus.documents) {
    s.cuts.push_back({static_cast<int64_t>(s.tokens.size()), s.n_bytes, true});
    s.tokens.push_back(tokenizer.bos_id());
    ++s.n_documents;
    std::string_view rest = doc;
    while (!rest.empty()) {
      const size_t eol = rest.find('\n');
      const size_t len = eol == std::string_view::npos ? rest.size() : eol + 1;
      // The first line's cut is the document's (before bos).
      if (rest.data() != doc.data())
        s.cuts.push_back({static_cast<int64_t>(s.tokens.size()), s.n_bytes, false});
      tokenizer.encode(rest.substr(0, len), &s.tokens);
      s.n_bytes += static_cast<int64_t>(len);
      rest.remove_prefix(len);
    }
  }
  return s;
}

Result<StreamSplit> split_stream(const TokenStream& stream, double validation_fraction) {
  if (!(validation_fraction > 0.0 && validation_fraction < 1.0))
    return Status::error("{}: validation fraction {} is outside (0, 1)", stream.source,
                         validation_fraction);
  const auto n = static_cast<int64_t>(stream.tokens.size());
  const double target = static_cast<double>(n) * (1.0 - validation_fraction);
  // The cut strictly inside the stream nearest to the target (the first of two at equal
  // distance); a document start when one is within half the validation share of the target.
  const auto nearest = [&](bool documents_only, size_t* best, double* distance) {
    *distance = -1;
    for (size_t i = 0; i < stream.cuts.size(); ++i) {
      const StreamCut& c = stream.cuts[i];
      if (c.token <= 0 || c.token >= n || (documents_only && !c.document)) continue;
      const double d = std::abs(static_cast<double>(c.token) - target);
      if (*distance < 0 || d < *distance) {
        *best = i;
        *distance = d;
      }
    }
  };
  size_t best = 0;
  double best_distance = -1;
  nearest(true, &best, &best_distance);
  if (best_distance < 0 || best_distance > 0.5 * validation_fraction * static_cast<double>(n))
    nearest(false, &best, &best_distance);
  if (best_distance < 0)
    return Status::error(
        "{}: cannot hold out validation text: the {} tokens have no line start to cut at (give "
        "more lines, or a separate validation file)",
        stream.source, n);
  const StreamCut cut = stream.cuts[best];
  StreamSplit split;
  TokenStream& train = split.train;
  train.source = stream.source + " (training part)";
  train.tokens.assign(stream.tokens.begin(), stream.tokens.begin() + cut.token);
  train.n_bytes = cut.byte;
  train.cuts = cuts_between(stream.cuts, 0, best, StreamCut{});
  TokenStream& validation = split.validation;
  validation.source = stream.source + " (validation part)";
  validation.tokens.assign(stream.tokens.begin() + cut.token, stream.tokens.end());
  validation.n_bytes = stream.n_bytes - cut.byte;
  validation.cuts = cuts_between(stream.cuts, best, stream.cuts.size(), cut);
  for (TokenStream* part : {&train, &validation})
    part->n_documents = std::count_if(part->cuts.begin(), part->cuts.end(),
                                      [](const StreamCut& c) { return c.document; });
  return split;
}

Result<TokenWindows> make_windows(const TokenStream& stream, int64_t context) {
  if (context < 1) return Status::error("{}: context {} is below 1", stream.source, context);
  const auto n = static_cast<int64_t>(stream.tokens.size());
  if (n < context + 1)
    return Status::error(
        "{}: {} tokens are fewer than one window of context + 1 = {} tokens (more text, or a "
        "shorter context)",
        stream.source, n, context + 1);
  TokenWindows w;
  w.context = context;
  w.n_windows = (n - 1) / context;
  w.tokens = &stream.tokens;
  return w;
}

}  // namespace moe
