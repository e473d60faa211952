// Subword tokenisation for language models: a SentencePiece model (Kudo & Richardson 2018), BPE
// (Sennrich et al. 2016) or unigram (Kudo 2018), trained in memory on the training text and saved
// inside checkpoints as its serialized ModelProto. SentencePiece does the work; this wrapper fixes
// the options that make it exact and reproducible, and reports its failures as Status.
//
// Dims: V vocabulary (ids 0 .. V-1) · N documents.
//
// Ids: 0 <unk>, 1 <s> (bos: opens every document of a token stream, so it separates documents),
// 2 </s> (eos: reserved, nothing inserts it), no padding id; then the 256 byte pieces <0x00> ..
// <0xFF> (ids 3 .. 258), then the learned pieces.
//
// Exact round trip, decode(encode(s)) == s for any valid UTF-8 s without U+2581, comes from these
// trainer options:
//   - normalization_rule_name=identity: no NFKC, so compatibility characters (full-width
//     letters, ligatures, no-break spaces) stay as written;
//   - remove_extra_whitespaces=false: leading, trailing and repeated spaces are kept;
//   - add_dummy_prefix=false: no space is invented before the text, so a document's first word
//     is encoded as written and nothing is stripped when decoding;
//   - byte_fallback=true: a character outside the vocabulary is spelled as its UTF-8 bytes, so
//     <unk> never appears;
//   - split_digits=true: every digit is its own piece (numbers do not crowd the vocabulary);
//   - allow_whitespace_only_pieces=true: runs of spaces become pieces ("▁▁▁"), for indentation.
// SentencePiece writes a space as U+2581 "▁", so a U+2581 in the text decodes as a space: the one
// character that does not survive the round trip. Control characters, tabs, CR, and NUL are
// ordinary characters (most as byte pieces). The trainer sees lines: a newline is never inside a
// piece and encodes as <0x0A>. A line longer than 4,096 bytes is cut into pieces for training
// (at a space when there is one) since the trainer would drop it; encoding is unaffected.
//
// Training is deterministic for the same documents and options (thread count included):
// SentencePiece's random generator is seeded with `seed` before it samples sentences.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "moe/core/enum_names.h"
#include "moe/core/status.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace moe {

enum class TokenizerKind { kBpe, kUnigram };
inline constexpr EnumName<TokenizerKind> kTokenizerKindNames[] = {
    {"bpe", TokenizerKind::kBpe}, {"unigram", TokenizerKind::kUnigram}};

// Training options of a subword tokenizer. (data/text.h's TokenizerOptions are the word
// tokenizer's of the TF-IDF reader: a different thing.)
struct SubwordOptions {
  TokenizerKind kind = TokenizerKind::kBpe;
  int64_t vocab_size = 4096;           // V, including the 3 special and 256 byte pieces
  bool byte_fallback = true;           // false: characters outside the vocabulary become <unk>
  double character_coverage = 0.9995;  // share of characters that get pieces of their own
  int64_t max_sentences = 0;           // lines sampled for training (seeded); 0: all
  uint64_t seed = 0;
  int threads = 1;
};

class Tokenizer {
 public:
  using Options = SubwordOptions;
  static constexpr int32_t kUnkId = 0;
  static constexpr int32_t kBosId = 1;
  static constexpr int32_t kEosId = 2;

  // Trains on the documents' lines in memory: no files are written, SentencePiece's logging is
  // silenced. Bad options, no text, or a vocabulary the text cannot fill are errors.
  static Result<Tokenizer> train(std::span<const std::string> documents,
                                 const SubwordOptions& options);
  // A model saved by to_bytes(); `source` names it in messages ("checkpoint best/model.json").
  // Refused: bytes that are not a ModelProto, a model SentencePiece cannot load, a model
  // without <s> and </s>.
  static Result<Tokenizer> from_bytes(std::string_view serialized_model, const std::string& source);

  // The serialized ModelProto, byte for byte what train() produced or from_bytes() read.
  const std::string& to_bytes() const { return model_bytes_; }
  int64_t vocab_size() const;  // V
  int32_t bos_id() const;      // 1
  int32_t eos_id() const;      // 2
  int32_t unk_id() const;      // 0
  TokenizerKind kind() const;
  bool byte_fallback() const;

  // Appends the ids of `text` to *ids. `text` must be valid UTF-8 (the caller checks it with
  // valid_utf8; invalid bytes would be replaced by U+FFFD).
  void encode(std::string_view text, std::vector<int32_t>* ids) const;
  std::vector<int32_t> encode(std::string_view text) const;
  // The text of `ids` (each in [0, V)); special pieces decode to nothing, byte pieces that do
  // not form valid UTF-8 to U+FFFD.
  std::string decode(std::span<const int32_t> ids) const;
  // The piece of `id` in [0, V) as SentencePiece writes it: "▁the", "<0x0A>", "<s>".
  std::string piece(int32_t id) const;

 private:
  Tokenizer() = default;
  static Result<Tokenizer> load(std::string model_bytes, const std::string& source);

  std::string model_bytes_;
  int model_type_ = 2;  // TrainerSpec.model_type: 1 unigram, 2 BPE
  // Immutable after loading, so copies of a Tokenizer share it; encoding is thread-safe.
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> processor_;
};

// True when `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
// U+10FFFF, no truncated sequence). Otherwise false, and *bad_offset (when not null) receives the
// byte offset of the first bad sequence.
bool valid_utf8(std::string_view s, int64_t* bad_offset);

}  // namespace moe
