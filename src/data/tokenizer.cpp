// The SentencePiece wrapper; the options and id conventions are in tokenizer.h.
//
// Dims: V vocabulary · N documents.
#include "moe/data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <climits>
#include <string>
#include <unordered_map>
#include <utility>

#include "data/file_bytes.h"
#include "moe/core/check.h"

namespace moe {

namespace {

// The trainer drops sentences above max_sentence_length bytes; lines are cut to this size first
// and the limit is set to it, so no text is lost.
constexpr size_t kMaxSentenceBytes = 4096;
constexpr int64_t kMaxVocab = int64_t{1} << 24;
// <unk>, <s>, </s>.
constexpr int64_t kSpecialPieces = 3;

// The training sentences: the documents' non-empty lines, a trailing CR dropped, each cut into
// chunks of at most kMaxSentenceBytes (at the last space of a chunk when it has one, else at a
// character boundary). Views into the documents, held only while training.
std::vector<std::string_view> training_sentences(std::span<const std::string> documents) {
  std::vector<std::string_view> sentences;
  for (const std::string& doc : documents) {
    std::string_view rest = doc;
    while (!rest.empty()) {
      const size_t eol = rest.find('\n');
      std::string_view line = rest.substr(0, eol);
      rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      while (line.size() > kMaxSentenceBytes) {
        size_t cut = line.rfind(' ', kMaxSentenceBytes);
        if (cut == std::string_view::npos || cut == 0) {
          cut = kMaxSentenceBytes;
          while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
          if (cut == 0) cut = kMaxSentenceBytes;  // not UTF-8 at all: any cut will do
        }
        sentences.push_back(line.substr(0, cut));
        line.remove_prefix(cut);
      }
      if (!line.empty()) sentences.push_back(line);
    }
  }
  return sentences;
}

// Feeds the sentences to SentencePiece's trainer without writing them to a file.
class SentenceFeed : public sentencepiece::SentenceIterator {
 public:
  explicit SentenceFeed(const std::vector<std::string_view>* sentences) : sentences_(sentences) {
    load();
  }
  bool done() const override { return next_ > sentences_->size(); }
  void Next() override { load(); }
  const std::string& value() const override { return current_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void load() {
    if (next_ < sentences_->size()) current_.assign((*sentences_)[next_]);
    ++next_;
  }
  const std::vector<std::string_view>* sentences_;
  size_t next_ = 0;  // one past the sentence in current_
  std::string current_;
};

// SentencePiece's messages start with the source location of the failed check
// ("./src/trainer_interface.cc(660) [a == b] Vocabulary size too high ..."): keep what follows,
// or the failed condition when nothing does.
std::string spm_message(const sentencepiece::util::Status& status) {
  const std::string m = status.message();
  const size_t open = m.find(") [");
  const size_t close = m.rfind("] ");
  if (m.find("./src/") != 0 || open == std::string::npos || close == std::string::npos ||
      close < open)
    return m.empty() ? status.ToString() : m;
  const std::string rest = m.substr(close + 2);
  return rest.find_first_not_of(' ') != std::string::npos ? rest
                                                          : m.substr(open + 3, close - open - 3);
}

// SentencePiece's installed headers leave out the protobuf classes, so the model type is read
// from the wire format (protobuf encoding: a key varint field << 3 | wire type, then the value):
// ModelProto field 2 is trainer_spec, TrainerSpec field 3 is model_type (1 unigram, 2 BPE).
constexpr int kModelTypeUnigram = 1;

bool read_varint(std::string_view* s, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !s->empty(); shift += 7) {
    const auto byte = static_cast<unsigned char>(s->front());
    s->remove_prefix(1);
    *v |= uint64_t{byte & 0x7Fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

struct WireField {
  uint64_t number = 0;
  uint64_t varint = 0;     // wire type 0
  std::string_view bytes;  // wire type 2
};

// Reads the next field of the message `*s`; false at the end or on malformed bytes.
bool next_field(std::string_view* s, WireField* f) {
  uint64_t key = 0;
  if (s->empty() || !read_varint(s, &key)) return false;
  *f = WireField();
  f->number = key >> 3;
  uint64_t n = 0;
  switch (key & 7) {
    case 0:
      return read_varint(s, &f->varint);
    case 1:
      n = 8;
      break;
    case 5:
      n = 4;
      break;
    case 2:
      if (!read_varint(s, &n) || n > s->size()) return false;
      f->bytes = s->substr(0, n);
      break;
    default:
      return false;
  }
  if (n > s->size()) return false;
  s->remove_prefix(n);
  return true;
}

// TrainerSpec.model_type of a serialized ModelProto (the last value wins, as in protobuf), or -1.
int64_t model_type_of(std::string_view model) {
  std::string_view trainer_spec;
  for (WireField f; next_field(&model, &f);)
    if (f.number == 2) trainer_spec = f.bytes;
  int64_t model_type = -1;
  for (WireField f; next_field(&trainer_spec, &f);)
    if (f.number == 3) model_type = static_cast<int64_t>(f.varint);
  return model_type;
}

Status check_options(const SubwordOptions& o) {
  const int64_t min_vocab = kSpecialPieces + (o.byte_fallback ? 256 : 0) + 1;
  if (o.vocab_size < min_vocab || o.vocab_size > kMaxVocab)
    return Status::error(
        "vocab_size {} is outside [{}, {}]{}", o.vocab_size, min_vocab, kMaxVocab,
        o.byte_fallback ? " (with byte_fallback, 259 ids are special and bytes)" : "");
  if (!(o.character_coverage > 0.0 && o.character_coverage <= 1.0))
    return Status::error("character_coverage {} is outside (0, 1]", o.character_coverage);
  // SentencePiece refuses to sample 100 sentences or fewer.
  if (o.max_sentences != 0 && (o.max_sentences <= 100 || o.max_sentences > INT32_MAX))
    return Status::error("max_sentences {} is outside [101, {}] (0: all)", o.max_sentences,
                         INT32_MAX);
  if (o.threads < 1 || o.threads > 1024)
    return Status::error("threads {} is outside [1, 1024]", o.threads);
  return Status::ok();
}

std::unordered_map<std::string, std::string> trainer_args(const SubwordOptions& o) {
  const auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  return {
      {"model_type", enum_name(kTokenizerKindNames, o.kind)},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", fmt::format("{}", o.character_coverage)},
      {"byte_fallback", b(o.byte_fallback)},
      {"input_sentence_size", std::to_string(o.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", std::to_string(kMaxSentenceBytes)},
      {"num_threads", std::to_string(o.threads)},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"unk_id", std::to_string(Tokenizer::kUnkId)},
      {"bos_id", std::to_string(Tokenizer::kBosId)},
      {"eos_id", std::to_string(Tokenizer::kEosId)},
      {"pad_id", "-1"},
      // 2: errors only (SentencePiece logs progress to stderr at level 0).
      {"minloglevel", "2"},
  };
}

}  // namespace

Result<Tokenizer> Tokenizer::train(std::span<const std::string> documents,
                                   const SubwordOptions& options) {
  if (Status s = check_options(options); !s) return s.with_context("training the tokenizer");
  const std::vector<std::string_view> sentences = training_sentences(documents);
  if (sentences.empty()) return Status::error("training the tokenizer: the text has no lines");
  // SentencePiece's generator (sentence sampling) is global; -1 is reserved for "random device".
  auto seed = static_cast<unsigned int>(options.seed ^ (options.seed >> 32));
  if (seed == UINT_MAX) seed = 0x9E3779B9u;
  sentencepiece::SetRandomGeneratorSeed(seed);
  SentenceFeed feed(&sentences);
  std::string model;
  const sentencepiece::util::Status status =
      sentencepiece::SentencePieceTrainer::Train(trainer_args(options), &feed, &model);
  if (!status.ok()) return Status::error("training the tokenizer: {}", spm_message(status));
  return load(std::move(model), "the trained tokenizer");
}

Result<Tokenizer> Tokenizer::from_bytes(std::string_view serialized_model,
                                        const std::string& source) {
  return load(std::string(serialized_model), source);
}

Result<Tokenizer> Tokenizer::load(std::string model_bytes, const std::string& source) {
  if (model_bytes.empty()) return Status::error("{}: the tokenizer model is empty", source);
  auto processor = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const sentencepiece::util::Status status = processor->LoadFromSerializedProto(model_bytes);
  if (!status.ok()) {
    const std::string m = spm_message(status);
    return Status::error("{}: not a SentencePiece model ({})", source,
                         m.find("ParseFromArray") != std::string::npos ? "cannot be parsed" : m);
  }
  const int64_t n = processor->GetPieceSize();
  if (n <= kEosId || processor->unk_id() != kUnkId || processor->bos_id() != kBosId ||
      processor->eos_id() != kEosId)
    return Status::error(
        "{}: the tokenizer model has {} pieces with unk, bos, eos ids {}, {}, {} (expected {}, "
        "{}, {})",
        source, n, processor->unk_id(), processor->bos_id(), processor->eos_id(), kUnkId, kBosId,
        kEosId);
  const int64_t model_type = model_type_of(model_bytes);
  if (model_type != 1 && model_type != 2)
    return Status::error("{}: the tokenizer model is neither BPE nor unigram (model type {})",
                         source, model_type);
  Tokenizer t;
  t.model_type_ = static_cast<int>(model_type);
  t.model_bytes_ = std::move(model_bytes);
  t.processor_ = std::move(processor);
  return t;
}

int64_t Tokenizer::vocab_size() const {
  return processor_->GetPieceSize();
}
int32_t Tokenizer::bos_id() const {
  return kBosId;
}
int32_t Tokenizer::eos_id() const {
  return kEosId;
}
int32_t Tokenizer::unk_id() const {
  return kUnkId;
}

TokenizerKind Tokenizer::kind() const {
  return model_type_ == kModelTypeUnigram ? TokenizerKind::kUnigram : TokenizerKind::kBpe;
}

bool Tokenizer::byte_fallback() const {
  return processor_->GetPieceSize() > kSpecialPieces + 255 && processor_->IsByte(kEosId + 1);
}

void Tokenizer::encode(std::string_view text, std::vector<int32_t>* ids) const {
  std::vector<int> out;
  const sentencepiece::util::Status status = processor_->Encode(text, &out);
  MOE_CHECK(status.ok(), "SentencePiece failed to encode: {}", status.ToString());
  ids->insert(ids->end(), out.begin(), out.end());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  encode(text, &ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  const int n = processor_->GetPieceSize();
  std::vector<int> in(ids.begin(), ids.end());
  for (const int id : in) MOE_CHECK(id >= 0 && id < n, "token id {} outside [0, {})", id, n);
  std::string text;
  const sentencepiece::util::Status status = processor_->Decode(in, &text);
  MOE_CHECK(status.ok(), "SentencePiece failed to decode: {}", status.ToString());
  return text;
}

std::string Tokenizer::piece(int32_t id) const {
  MOE_CHECK(id >= 0 && id < processor_->GetPieceSize(), "token id {} outside [0, {})", id,
            processor_->GetPieceSize());
  return processor_->IdToPiece(id);
}

bool valid_utf8(std::string_view s, int64_t* bad_offset) {
  const size_t bad = data_detail::invalid_utf8_at(s);
  if (bad == std::string_view::npos) return true;
  if (bad_offset != nullptr) *bad_offset = static_cast<int64_t>(bad);
  return false;
}

}  // namespace moe
