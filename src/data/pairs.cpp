// TSV files of sentence pairs; the rules are in pairs.h.
//
// Dims: N pairs.
#include "moe/data/pairs.h"

#include <algorithm>
#include <string_view>

#include "data/cells.h"
#include "data/file_bytes.h"

namespace moe {

namespace {

constexpr uint64_t kMaxPairFileBytes = uint64_t{4} << 30;
constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

// Empty, or spaces and tabs only.
bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t") == std::string_view::npos;
}

// The pair on `line` (line `line_no`, starting `at` bytes into the file, its CR dropped)
// appended to *pairs, or an error naming the line. `check_utf8` is false when the whole file is
// ASCII (then every line is UTF-8).
Status add_pair(std::string_view line, int64_t line_no, size_t at, bool check_utf8,
                SentencePairs* pairs) {
  const std::string& path = pairs->source;
  if (const size_t nul = line.find('\0'); nul != std::string_view::npos)
    return Status::error("{}: NUL byte at byte {} (line {}, column {}): not a text file", path,
                         at + nul, line_no, nul + 1);
  if (check_utf8) {
    if (const size_t bad = data_detail::invalid_utf8_at(line); bad != std::string_view::npos)
      return Status::error("{}: invalid UTF-8 at byte {} (line {}, column {}, byte 0x{:02X})", path,
                           at + bad, line_no, bad + 1, static_cast<unsigned char>(line[bad]));
  }
  const auto n_tabs = std::count(line.begin(), line.end(), '\t');
  if (n_tabs == 0)
    return Status::error("{}: line {} has no tab: expected source<TAB>target", path, line_no);
  if (n_tabs > 1)
    return Status::error(
        "{}: line {} has {} tabs: expected source<TAB>target with exactly one tab (a tab inside "
        "a sentence is not allowed)",
        path, line_no, n_tabs);
  // Neither side holds a tab, so trimming blanks trims ASCII spaces only.
  const size_t tab = line.find('\t');
  const std::string_view source = data_detail::trim_blanks(line.substr(0, tab));
  const std::string_view target = data_detail::trim_blanks(line.substr(tab + 1));
  if (source.empty())
    return Status::error(
        "{}: line {} has an empty source (before the tab): expected source<TAB>target", path,
        line_no);
  if (target.empty())
    return Status::error(
        "{}: line {} has an empty target (after the tab): expected source<TAB>target", path,
        line_no);
  pairs->sources.emplace_back(source);
  pairs->targets.emplace_back(target);
  pairs->lines.push_back(line_no);
  pairs->source_bytes += static_cast<int64_t>(source.size());
  pairs->target_bytes += static_cast<int64_t>(target.size());
  return Status::ok();
}

}  // namespace

Result<SentencePairs> read_sentence_pairs(const std::string& path) {
  MOE_ASSIGN_OR_RETURN(const std::string bytes,
                       data_detail::read_data_file(path, kMaxPairFileBytes));
  const std::string_view text = bytes;
  SentencePairs pairs;
  pairs.source = path;
  // A byte order mark says "UTF-8"; it is not text. Byte offsets in messages still count it.
  size_t pos = text.starts_with(kByteOrderMark) ? kByteOrderMark.size() : 0;
  if (pos == text.size()) return Status::error("{}: empty file (no sentence pairs)", path);
  const bool check_utf8 = !data_detail::is_ascii(text.substr(pos));
  const auto n_newlines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  pairs.sources.reserve(n_newlines + 1);
  pairs.targets.reserve(n_newlines + 1);
  pairs.lines.reserve(n_newlines + 1);
  int64_t line_no = 0;
  while (pos < text.size()) {
    ++line_no;
    const size_t eol = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, eol - pos);
    const size_t at = pos;
    pos = eol + 1;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (is_blank(line)) continue;
    MOE_TRY(add_pair(line, line_no, at, check_utf8, &pairs));
  }
  if (pairs.sources.empty())
    return Status::error("{}: no sentence pairs: its {} line{} blank", path, line_no,
                         line_no == 1 ? " is" : "s are all");
  return pairs;
}

}  // namespace moe
