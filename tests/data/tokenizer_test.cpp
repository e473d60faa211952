// The SentencePiece tokenizer: training on a small built-in text, exact round trips of random
// UTF-8, saving and loading, refusal of damaged models, determinism; and the UTF-8 check.
//
// Dims: V vocabulary.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "moe/data/tokenizer.h"

namespace moe {
namespace {

// A few KB of English: the opening of Pride and Prejudice, then sentences drawn from its words
// (seeded), so the trainer has repeated words and sub-words to merge.
std::vector<std::string> small_text() {
  std::string opening =
      "It is a truth universally acknowledged, that a single man in possession of a good\n"
      "fortune, must be in want of a wife.\n\n"
      "However little known the feelings or views of such a man may be on his first entering a\n"
      "neighbourhood, this truth is so well fixed in the minds of the surrounding families, that\n"
      "he is considered the rightful property of some one or other of their daughters.\n\n"
      "\"My dear Mr. Bennet,\" said his lady to him one day, \"have you heard that Netherfield\n"
      "Park is let at last?\"\n\nMr. Bennet replied that he had not.\n";
  std::vector<std::string> words;
  for (size_t i = 0; i < opening.size();) {
    const size_t j = opening.find_first_of(" \n", i);
    if (j != i) words.push_back(opening.substr(i, j - i));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  std::mt19937 rng(7);
  std::string generated;
  for (int sentence = 0; sentence < 200; ++sentence) {
    const int n = 6 + static_cast<int>(rng() % 10);
    for (int w = 0; w < n; ++w) generated += words[rng() % words.size()] + (w + 1 < n ? " " : "");
    generated += sentence % 4 == 3 ? "\n\n" : "\n";
  }
  return {opening, generated, "Numbers: 1811, 1813, 42 and 2024.\n"};
}

SubwordOptions small_options(TokenizerKind kind = TokenizerKind::kBpe) {
  SubwordOptions o;
  o.kind = kind;
  o.vocab_size = 400;
  return o;
}

Tokenizer trained(TokenizerKind kind = TokenizerKind::kBpe) {
  const std::vector<std::string> docs = small_text();
  Result<Tokenizer> t = Tokenizer::train(docs, small_options(kind));
  EXPECT_TRUE(t.is_ok()) << t.status().message();
  return std::move(t).value();
}

// Appends code point cp as UTF-8.
void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A random string of code points from every range that troubles a tokenizer: ASCII words, control
// characters (NUL, tab, CR, newline), runs of spaces, Latin-1 and compatibility characters,
// CJK, emoji, anything else valid (no surrogates, no U+2581, which decodes as a space).
std::string random_utf8(std::mt19937* rng, int n_chars) {
  std::string s;
  for (int i = 0; i < n_chars; ++i) {
    const uint32_t r = (*rng)();
    uint32_t cp = 0;
    switch (r % 9) {
      case 0:
      case 1:
        cp = 'a' + (r >> 8) % 26;
        break;
      case 2:
        cp = (r >> 8) % 32;  // controls, NUL included
        break;
      case 3:
        s.append(1 + (r >> 8) % 5, ' ');
        continue;
      case 4:
        cp = 0xA0 + (r >> 8) % 0x60;  // no-break space, Latin-1
        break;
      case 5:
        cp = 0x4E00 + (r >> 8) % 0x5200;  // CJK
        break;
      case 6:
        cp = 0x1F600 + (r >> 8) % 0x50;  // emoji
        break;
      case 7:
        cp = 0xFF01 + (r >> 8) % 0x5E;  // full-width forms (NFKC would change them)
        break;
      default:
        cp = (r >> 8) % 0x110000;
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0x2581) cp = '?';
        break;
    }
    append_utf8(cp, &s);
  }
  return s;
}

TEST(SubwordTokenizer, TrainsWithTheDocumentedIds) {
  for (const TokenizerKind kind : {TokenizerKind::kBpe, TokenizerKind::kUnigram}) {
    const Tokenizer t = trained(kind);
    EXPECT_EQ(t.vocab_size(), 400);
    EXPECT_EQ(t.kind(), kind);
    EXPECT_TRUE(t.byte_fallback());
    EXPECT_EQ(t.unk_id(), 0);
    EXPECT_EQ(t.bos_id(), 1);
    EXPECT_EQ(t.eos_id(), 2);
    EXPECT_EQ(t.piece(0), "<unk>");
    EXPECT_EQ(t.piece(1), "<s>");
    EXPECT_EQ(t.piece(2), "</s>");
    EXPECT_EQ(t.piece(3), "<0x00>");
    EXPECT_EQ(t.piece(3 + 0x0A), "<0x0A>");
    EXPECT_EQ(t.piece(258), "<0xFF>");
    // Learned pieces make common text shorter than its bytes; a newline is its byte piece.
    const std::string text = "Mr. Bennet replied that he had not.\n";
    const std::vector<int32_t> ids = t.encode(text);
    EXPECT_LT(ids.size(), text.size() * 2 / 3) << enum_name(kTokenizerKindNames, kind);
    EXPECT_EQ(ids.back(), 3 + 0x0A);
    EXPECT_EQ(t.decode(ids), text);
  }
}

TEST(SubwordTokenizer, RandomUtf8RoundTripsExactlyWithoutUnk) {
  for (const TokenizerKind kind : {TokenizerKind::kBpe, TokenizerKind::kUnigram}) {
    const Tokenizer t = trained(kind);
    std::mt19937 rng(11);
    for (int trial = 0; trial < 200; ++trial) {
      const std::string s = random_utf8(&rng, 1 + trial % 60);
      ASSERT_TRUE(valid_utf8(s, nullptr));
      const std::vector<int32_t> ids = t.encode(s);
      for (const int32_t id : ids) ASSERT_NE(id, t.unk_id()) << "trial " << trial;
      ASSERT_EQ(t.decode(ids), s) << "trial " << trial;
    }
    // Leading, trailing and repeated whitespace, CRLF, an empty string.
    for (const std::string s : {"  two  spaces  ", "\tTab\r\nCRLF\n\n\n", "", " ", "\n"})
      EXPECT_EQ(t.decode(t.encode(s)), s);
    EXPECT_TRUE(t.encode("").empty());
  }
}

TEST(SubwordTokenizer, SavedBytesLoadToTheSameTokenizer) {
  const Tokenizer t = trained();
  Result<Tokenizer> loaded = Tokenizer::from_bytes(t.to_bytes(), "model");
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_EQ(loaded->to_bytes(), t.to_bytes());
  EXPECT_EQ(loaded->vocab_size(), t.vocab_size());
  EXPECT_EQ(loaded->kind(), t.kind());
  const std::string text = "Mr. Bennet replied that he had not 1234 times. \xE4\xB8\xAD\n";
  EXPECT_EQ(loaded->encode(text), t.encode(text));
  const Tokenizer copy = *loaded;  // copies share the loaded model
  EXPECT_EQ(copy.decode(copy.encode(text)), text);
}

TEST(SubwordTokenizer, DamagedModelsAreRefused) {
  const Tokenizer t = trained();
  const std::string& bytes = t.to_bytes();
  Result<Tokenizer> empty = Tokenizer::from_bytes("", "ckpt/tokenizer");
  ASSERT_FALSE(empty.is_ok());
  EXPECT_NE(empty.status().message().find("ckpt/tokenizer"), std::string::npos);
  Result<Tokenizer> half = Tokenizer::from_bytes(bytes.substr(0, bytes.size() / 2), "half");
  ASSERT_FALSE(half.is_ok());
  EXPECT_NE(half.status().message().find("half"), std::string::npos);
  // Every cut, and random bytes: an error or a loadable model, never a crash.
  int refused = 0, cuts = 0;
  for (size_t n = 1; n < bytes.size(); n += 1 + n / 16, ++cuts)
    refused += Tokenizer::from_bytes(bytes.substr(0, n), "cut").is_ok() ? 0 : 1;
  EXPECT_GT(refused, cuts * 9 / 10);
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::string junk(1 + rng() % 300, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    EXPECT_FALSE(Tokenizer::from_bytes(junk, "junk").is_ok()) << trial;
  }
  // A model whose bytes were flipped in the middle.
  std::string flipped = bytes;
  for (size_t i = flipped.size() / 3; i < flipped.size() / 3 + 64; ++i) flipped[i] ^= 0x5A;
  Result<Tokenizer> f = Tokenizer::from_bytes(flipped, "flipped");
  if (f.is_ok()) {
    EXPECT_GT(f->vocab_size(), 0);
  }
}

TEST(SubwordTokenizer, TrainingIsDeterministic) {
  const std::vector<std::string> docs = small_text();
  for (const TokenizerKind kind : {TokenizerKind::kBpe, TokenizerKind::kUnigram}) {
    SubwordOptions o = small_options(kind);
    o.max_sentences = 120;  // of ~200 lines, sampled: the seed decides which
    o.seed = 5;
    Result<Tokenizer> a = Tokenizer::train(docs, o);
    Result<Tokenizer> b = Tokenizer::train(docs, o);
    ASSERT_TRUE(a.is_ok() && b.is_ok()) << a.status().message();
    EXPECT_EQ(a->to_bytes(), b->to_bytes());
    o.max_sentences = 0;
    Result<Tokenizer> c = Tokenizer::train(docs, o);
    Result<Tokenizer> d = Tokenizer::train(docs, o);
    ASSERT_TRUE(c.is_ok() && d.is_ok());
    EXPECT_EQ(c->to_bytes(), d->to_bytes());
  }
}

TEST(SubwordTokenizer, LongLinesAreKeptForTraining) {
  // One 40 KB line with no newline: the trainer drops lines over 4,192 bytes, so it is cut.
  std::string line;
  std::mt19937 rng(1);
  const char* words[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"};
  while (line.size() < 40000) line += std::string(words[rng() % 6]) + " ";
  std::string no_spaces(9000, 'x');
  const std::vector<std::string> docs = {line, no_spaces};
  SubwordOptions o = small_options();
  o.vocab_size = 300;  // six words have few pieces to learn
  Result<Tokenizer> t = Tokenizer::train(docs, o);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_LE(t->encode("gamma").size(), 2U);
}

TEST(SubwordTokenizer, BadOptionsAndTextAreErrors) {
  const std::vector<std::string> docs = small_text();
  SubwordOptions o = small_options();
  o.vocab_size = 100;
  Result<Tokenizer> small = Tokenizer::train(docs, o);
  ASSERT_FALSE(small.is_ok());
  EXPECT_NE(small.status().message().find("vocab_size 100"), std::string::npos);
  o = small_options();
  o.character_coverage = 0;
  EXPECT_FALSE(Tokenizer::train(docs, o).is_ok());
  o = small_options();
  o.max_sentences = 50;  // SentencePiece samples no fewer than 101
  EXPECT_FALSE(Tokenizer::train(docs, o).is_ok());
  o = small_options();
  o.threads = 0;
  EXPECT_FALSE(Tokenizer::train(docs, o).is_ok());
  const std::vector<std::string> blank = {"", "\n\n"};
  Result<Tokenizer> none = Tokenizer::train(blank, small_options());
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("no lines"), std::string::npos);
  // More pieces than the text has: SentencePiece's own message, without its source location.
  o = small_options(TokenizerKind::kUnigram);
  o.vocab_size = 5000;
  Result<Tokenizer> big = Tokenizer::train(docs, o);
  ASSERT_FALSE(big.is_ok());
  EXPECT_NE(big.status().message().find("Vocabulary size too high"), std::string::npos)
      << big.status().message();
  EXPECT_EQ(big.status().message().find(".cc("), std::string::npos) << big.status().message();
}

TEST(SubwordTokenizer, Utf8Check) {
  struct Case {
    std::string bytes;
    int64_t bad;  // -1: valid
  };
  const Case cases[] = {
      {"", -1},
      {"plain ascii\n", -1},
      {"caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF", -1},  // up to U+10FFFF
      {std::string("nul\0ok", 6), -1},
      {"ab\xC0\x80", 2},        // overlong NUL
      {"\xC1\xBF", 0},          // overlong 2-byte
      {"x\xE0\x80\xAF", 1},     // overlong 3-byte
      {"\xF0\x80\x80\xAF", 0},  // overlong 4-byte
      {"ok\xED\xA0\x80", 2},    // surrogate U+D800
      {"\xED\xBF\xBF", 0},      // surrogate U+DFFF
      {"\xF4\x90\x80\x80", 0},  // above U+10FFFF
      {"\xF5\x80\x80\x80", 0},
      {"abc\xFF", 3},
      {"\xFE", 0},
      {"end\xE2\x82", 3},   // truncated at the end
      {"\xE2\x82x", 0},     // truncated before ASCII
      {"\x80", 0},          // lone continuation byte
      {"\xC3\xA9\xA9", 2},  // one continuation too many
  };
  for (const Case& c : cases) {
    int64_t bad = -7;
    EXPECT_EQ(valid_utf8(c.bytes, &bad), c.bad < 0) << c.bytes;
    EXPECT_EQ(bad, c.bad < 0 ? -7 : c.bad) << c.bytes;
  }
}

}  // namespace
}  // namespace moe
