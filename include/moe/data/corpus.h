// Language-model text: UTF-8 files → documents → one token stream → train / validation parts →
// windows of context + 1 tokens.
//
// Dims: N documents · n tokens in a stream · S context (tokens a window predicts from) ·
// W windows.
//
// Documents: each file is one document; blank lines (paragraphs) stay inside it. A leading
// UTF-8 byte order mark is dropped; everything else is kept byte for byte (CR included), so the
// bytes the tokenizer sees are the file's.
//
// The stream: every document's tokens preceded by bos (Tokenizer::bos_id()), documents one after
// another, so a window may cross from one document into the next and bos tells the model where.
// The stream also records where it may be cut exactly: the start of every line (a document's
// start is its bos), with the number of text bytes before it. A split cuts there, so each part's
// n_bytes counts exactly the UTF-8 bytes of the text it encodes, and bits per byte is
//   bpb = Σ cross-entropy (nats) over the part's targets / (ln 2 · n_bytes).
// (bos targets carry no bytes, so bpb charges the model for them too: a small overestimate,
// one token per document.)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "moe/core/status.h"
#include "moe/data/tokenizer.h"

namespace moe {

struct TextCorpus {
  std::string source;                  // the files, for messages
  std::vector<std::string> documents;  // [N], one per file
  int64_t n_bytes = 0;                 // UTF-8 bytes over all documents
};

// Reads UTF-8 text files (gzip-compressed ones too), one document each. Errors name the file:
// missing or unreadable, empty, a NUL byte or invalid UTF-8 (with its byte offset, line and
// column), larger than 4 GiB.
Result<TextCorpus> read_text_files(std::span<const std::string> paths);

// A place where a stream can be cut: `token` tokens and `byte` text bytes precede it; a document
// start (its bos) or a line start inside a document.
struct StreamCut {
  int64_t token = 0;
  int64_t byte = 0;
  bool document = false;
};

struct TokenStream {
  std::string source;           // what it was read from, for messages
  std::vector<int32_t> tokens;  // [n]
  int64_t n_bytes = 0;          // UTF-8 bytes of the text the tokens encode
  int64_t n_documents = 0;      // bos tokens in it
  // Line starts in increasing order (the first at token 0 unless the part starts mid-line,
  // which splitting never makes).
  std::vector<StreamCut> cuts;
};

// Encodes every document, each preceded by bos. Each line (with its newline) is encoded on its
// own: no piece spans a newline (the tokenizer learns from lines), so this is the same as
// encoding the document whole, and it gives the cuts.
TokenStream tokenize(const Tokenizer& tokenizer, const TextCorpus& corpus);

struct StreamSplit {
  TokenStream train;
  TokenStream validation;
};

// Splits the stream in two contiguous parts, no token in both: validation is the tail from a cut
// near token t = n · (1 − validation_fraction): the document start nearest to t when it is
// within n · validation_fraction / 2 of it (whole documents held out), else the line start
// nearest to t. Deterministic; both parts are non-empty. An error names the source when the
// fraction is outside (0, 1) or the stream has no line start to cut at.
Result<StreamSplit> split_stream(const TokenStream& stream, double validation_fraction);

// Windows of S + 1 tokens starting every S tokens (consecutive windows share one token): window i
// holds tokens[i·S, i·S + S], its input the first S, its target the last S. A final partial
// window is dropped, so W = (n − 1) / S. Views the stream's tokens: the stream must outlive it.
struct TokenWindows {
  int64_t context = 0;    // S
  int64_t n_windows = 0;  // W
  const std::vector<int32_t>* tokens = nullptr;

  int64_t start(int64_t i) const { return i * context; }
  std::span<const int32_t> window(int64_t i) const {  // [S + 1]
    return {tokens->data() + start(i), static_cast<size_t>(context + 1)};
  }
  std::span<const int32_t> input(int64_t i) const { return window(i).first(context); }  // [S]
  std::span<const int32_t> target(int64_t i) const { return window(i).last(context); }  // [S]
};

// An error naming the stream's source when context < 1 or the stream is shorter than one window
// (S + 1 tokens).
Result<TokenWindows> make_windows(const TokenStream& stream, int64_t context);

}  // namespace moe
