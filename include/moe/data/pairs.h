// Translation data: a TSV of parallel sentence pairs, "source<TAB>target" on each line.
//
// Dims: N pairs.
//
// Format: UTF-8 text, one pair a line, no header, no quoting (a '"' is an ordinary character, as
// in the TSV files scripts/fetch_bible_pairs.sh writes). gzip-compressed files are read too.
// Accepted:
//   - lines ending in LF or CRLF (the CR is dropped), and a last line without a newline;
//   - a leading UTF-8 byte order mark (dropped; it is not text);
//   - blank lines (empty, or spaces and tabs only), which are skipped: they hold no pair;
//   - ASCII spaces around either side, which are trimmed ("  la casa \t the house " gives
//     "la casa" and "the house").
// Refused, with an error naming the file and the line (lines count from 1, blank ones included):
//   - a non-blank line with no tab, or with more than one (a tab inside a sentence would make
//     the split ambiguous);
//   - a side that is empty once trimmed (which side is said);
//   - a NUL byte or invalid UTF-8 (RFC 3629), with its byte offset, line and column (columns
//     count bytes, from 1);
//   - a file with no pair at all (empty, or blank lines only);
//   - a missing or unreadable file, a directory, a file (or its decompressed bytes) over 4 GiB.
// Nothing else is changed: sentences are kept byte for byte, so the bytes a tokenizer sees and
// the bytes BLEU and chrF score are the file's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moe/core/status.h"

namespace moe {

struct SentencePairs {
  std::string source;                // the file, for messages
  std::vector<std::string> sources;  // [N] source sentences
  std::vector<std::string> targets;  // [N] target sentences, targets[i] translates sources[i]
  std::vector<int64_t> lines;        // [N] the 1-based line of each pair in the file
  int64_t source_bytes = 0;          // UTF-8 bytes over all source sentences
  int64_t target_bytes = 0;          // UTF-8 bytes over all target sentences
};

// Reads the TSV of sentence pairs at `path` (gzip-compressed or not) by the rules above.
Result<SentencePairs> read_sentence_pairs(const std::string& path);

}  // namespace moe
