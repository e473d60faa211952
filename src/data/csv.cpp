#include "moe/data/csv.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <unordered_map>

#include "data/cells.h"
#include "data/file_bytes.h"

namespace moe {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// A printable rendering of one byte for messages.
std::string show_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return fmt::format("'{}'", c);
  return fmt::format("byte 0x{:02x}", u);
}

}  // namespace

const char* csv_quoting_name(CsvQuoting q) {
  return q == CsvQuoting::kNone ? "none" : "rfc4180";
}

bool parse_csv_quoting(std::string_view s, CsvQuoting* out) {
  for (const CsvQuoting q : {CsvQuoting::kNone, CsvQuoting::kRfc4180})
    if (s == csv_quoting_name(q)) return *out = q, true;
  return false;
}

CsvQuoting default_quoting(char delimiter) {
  return delimiter == '\t' ? CsvQuoting::kNone : CsvQuoting::kRfc4180;
}

char delimiter_for_path(const std::string& path) {
  std::string p = lower_ascii(path);
  if (ends_with(p, ".gz")) p.resize(p.size() - 3);
  return ends_with(p, ".tsv") || ends_with(p, ".tab") ? '\t' : ',';
}

int64_t CsvTable::find_column(std::string_view name) const {
  for (size_t i = 0; i < header_.size(); ++i)
    if (header_[i] == name) return static_cast<int64_t>(i);
  return -1;
}

std::string CsvTable::column_list() const {
  constexpr size_t kShown = 30;  // a message stays readable for a table of a thousand columns
  std::string out;
  for (size_t i = 0; i < header_.size() && i < kShown; ++i) {
    if (i > 0) out += ", ";
    out += "'" + header_[i] + "'";
  }
  if (header_.size() > kShown) out += fmt::format(", ... ({} more)", header_.size() - kShown);
  return out;
}

Result<CsvTable> CsvTable::read(const std::string& path, const CsvOptions& options) {
  MOE_ASSIGN_OR_RETURN(std::string bytes,
                       data_detail::read_data_file(path, options.max_file_bytes));
  const char delimiter = options.delimiter != '\0' ? options.delimiter : delimiter_for_path(path);
  return parse(std::move(bytes), path, delimiter,
               options.quoting.value_or(default_quoting(delimiter)));
}

Result<CsvTable> CsvTable::parse(std::string bytes, const std::string& source, char delimiter,
                                 CsvQuoting quoting) {
  if (delimiter == '\n' || delimiter == '\r' || delimiter == '\0' ||
      (delimiter == '"' && quoting == CsvQuoting::kRfc4180))
    return Status::error("{}: {} cannot be a field delimiter", source, show_byte(delimiter));
  const bool rfc4180 = quoting == CsvQuoting::kRfc4180;
  // Under RFC 4180 a quote that is text is the usual reason a file is refused; say how to read
  // such a file instead.
  constexpr const char* kQuotesAsText =
      "; if quotes in this file are text, not quoting, set data.quoting = \"none\"";
  CsvTable t;
  t.source_ = source;
  t.delimiter_ = delimiter;
  t.quoting_ = quoting;
  t.bytes_ = std::move(bytes);
  char* const data = t.bytes_.data();
  const size_t n = t.bytes_.size();
  size_t pos = 0;
  if (n >= 3 && std::memcmp(data, "\xEF\xBB\xBF", 3) == 0) pos = 3;  // UTF-8 byte order mark

  // Text goes into JSON (the schema in model.json, messages, metrics) and must be UTF-8: each
  // field is checked as it is read, unless the whole file is ASCII (the common case, one pass).
  const bool ascii = data_detail::is_ascii(std::string_view(data + pos, n - pos));

  int64_t line = 1;
  // Consumes one line end at `pos` (LF, CRLF or CR), counting it.
  auto consume_line_end = [&]() {
    if (data[pos] == '\r' && pos + 1 < n && data[pos + 1] == '\n') ++pos;
    ++pos;
    ++line;
  };

  try {
    // One cell per delimiter or line end is an upper bound on nothing, but a good first guess.
    const size_t newlines = static_cast<size_t>(std::count(data + pos, data + n, '\n'));
    std::vector<Span> record;
    bool have_header = false;
    int64_t n_cols = 0;
    while (pos < n) {
      if (data[pos] == '\n' || data[pos] == '\r') {  // a blank line
        consume_line_end();
        continue;
      }
      const int64_t record_line = line;
      record.clear();
      for (;;) {
        const int64_t field = static_cast<int64_t>(record.size()) + 1;
        if (rfc4180 && pos < n && data[pos] == '"') {
          const int64_t open_line = line;
          ++pos;
          const size_t begin = pos;
          size_t out = pos;  // unescaped bytes are written here, never ahead of `pos`
          for (;;) {
            const char* q = static_cast<const char*>(std::memchr(data + pos, '"', n - pos));
            const size_t stop = q != nullptr ? static_cast<size_t>(q - data) : n;
            for (size_t i = pos; i < stop; ++i)
              if (data[i] == '\n' || (data[i] == '\r' && (i + 1 == n || data[i + 1] != '\n')))
                ++line;
            if (out != pos) std::memmove(data + out, data + pos, stop - pos);
            out += stop - pos;
            if (q == nullptr)
              return Status::error(
                  "{} line {}: field {} opens a quote that is never closed (the file ends "
                  "inside it){}",
                  source, open_line, field, kQuotesAsText);
            pos = stop + 1;
            if (rfc4180 && pos < n && data[pos] == '"') {  // "" is one quote
              data[out++] = '"';
              ++pos;
              continue;
            }
            break;
          }
          record.push_back({begin, out - begin});
          if (pos < n && data[pos] != delimiter && data[pos] != '\n' && data[pos] != '\r')
            return Status::error(
                "{} line {}: field {}: {} after a closing quote (a quote inside a quoted field "
                "is written \"\"){}",
                source, line, field, show_byte(data[pos]), kQuotesAsText);
        } else {
          const size_t begin = pos;
          while (pos < n && data[pos] != delimiter && data[pos] != '\n' && data[pos] != '\r') ++pos;
          record.push_back({begin, pos - begin});
        }
        if (pos < n && data[pos] == delimiter) {
          ++pos;
          continue;
        }
        if (pos < n) consume_line_end();
        break;
      }

      if (!ascii) {
        for (size_t f = 0; f < record.size(); ++f) {
          const std::string_view cell(data + record[f].begin, record[f].length);
          const size_t bad = data_detail::invalid_utf8_at(cell);
          if (bad == std::string_view::npos) continue;
          const std::string column = !have_header           ? " (the header)"
                                     : f < t.header_.size() ? " (column '" + t.header_[f] + "')"
                                                            : "";
          return Status::error(
              "{} line {}, field {}{}: not valid UTF-8 (byte 0x{:02x} at byte {} of the field); "
              "moe reads text as UTF-8: convert the file first (for example with iconv -f "
              "latin1 -t utf-8)",
              source, record_line, f + 1, column, static_cast<unsigned char>(cell[bad]), bad + 1);
        }
      }
      if (!have_header) {
        have_header = true;
        std::unordered_map<std::string, int64_t> seen;
        for (const Span& s : record) {
          std::string name(data_detail::trim_blanks(std::string_view(data + s.begin, s.length)));
          const auto [it, inserted] =
              seen.emplace(name, static_cast<int64_t>(t.header_.size()) + 1);
          if (!inserted)
            return Status::error("{} line {}: columns {} and {} are both named '{}'", source,
                                 record_line, it->second, t.header_.size() + 1, name);
          t.header_.push_back(std::move(name));
        }
        n_cols = static_cast<int64_t>(t.header_.size());
        data_detail::reserve_huge(t.cells_, (newlines + 1) * static_cast<size_t>(n_cols));
        data_detail::reserve_huge(t.lines_, newlines + 1);
        continue;
      }
      if (static_cast<int64_t>(record.size()) != n_cols)
        return Status::error("{} line {}: {} field{}, header has {}", source, record_line,
                             record.size(), record.size() == 1 ? "" : "s", n_cols);
      t.cells_.insert(t.cells_.end(), record.begin(), record.end());
      t.lines_.push_back(record_line);
      ++t.n_rows_;
    }
    if (!have_header) return Status::error("{}: empty file (a header row is required)", source);
    if (t.n_rows_ == 0) return Status::error("{}: a header and no data rows", source);
  } catch (const std::bad_alloc&) {
    return Status::error("{}: out of memory while parsing the file ({})", source, human_bytes(n));
  }
  return t;
}

}  // namespace moe
