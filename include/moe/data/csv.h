// CSV and TSV files: a header row naming the columns, then one record per line.
//
// Dims: R data rows · M columns.
//
// Quoting is RFC 4180 or none (CsvQuoting). Under RFC 4180, a field that starts with a double
// quote may hold the delimiter, line breaks and doubled quotes (""); with none, a quote is an
// ordinary byte wherever it stands and a field ends at the next delimiter or line end. The
// default is none for a tab delimiter (TSV files in the wild hold raw text such as `"Quoted" he
// said`) and RFC 4180 for any other.
//
// Accepted: line ends are LF, CRLF or a lone CR; a UTF-8 byte order mark before the header is
// skipped; lines with nothing on them are skipped; a gzipped file (magic 1f 8b) is decompressed
// first.
// Text must be UTF-8, since it ends up in JSON (model.json, metrics). A quote inside an unquoted
// field is an ordinary character (`5" screen`). Column names are trimmed of spaces and tabs at
// both ends; cells are not (the tabular reader trims what it compares).
//
// Rejected, each with a message naming the file and line: an empty file, a header with two
// columns of one name, a row whose field count differs from the header's ("data.csv line 17:
// 5 fields, header has 6"), a field that is not valid UTF-8 (naming its field and column), a
// header and no data rows, a file above the size limit, and under RFC 4180 a quote left open at
// the end of the file (naming the line it opened on) or a character other than a delimiter or
// line end right after a closing quote (both messages suggest data.quoting = "none", for files
// whose quotes are text).
//
// The whole file is read into memory once; a quoted field is unescaped in place (its value is
// never longer than its quoted form), so a cell is a view into that one buffer: no allocation
// per cell.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "moe/core/check.h"
#include "moe/core/status.h"

namespace moe {

// How a field's quotes are read: kRfc4180, a field whose first byte is `"` is quoted; kNone, a
// quote is an ordinary byte.
enum class CsvQuoting { kNone, kRfc4180 };
const char* csv_quoting_name(CsvQuoting q);  // "none", "rfc4180"
bool parse_csv_quoting(std::string_view s, CsvQuoting* out);
// The default for a delimiter: kNone for a tab, kRfc4180 for anything else.
CsvQuoting default_quoting(char delimiter);

struct CsvOptions {
  // '\0' chooses by extension: .tsv and .tab (also with .gz after them) mean tab, anything
  // else a comma.
  char delimiter = '\0';
  // Unset: default_quoting of the delimiter used.
  std::optional<CsvQuoting> quoting;
  uint64_t max_file_bytes = uint64_t{4} << 30;  // after decompression
};

class CsvTable {
 public:
  // Reads and parses a file; messages name it by `path`.
  static Result<CsvTable> read(const std::string& path, const CsvOptions& options = {});
  // Parses bytes already in memory; `source` names them in messages (a file name, "request").
  static Result<CsvTable> parse(std::string bytes, const std::string& source, char delimiter,
                                CsvQuoting quoting);

  const std::string& source() const { return source_; }
  char delimiter() const { return delimiter_; }
  CsvQuoting quoting() const { return quoting_; }
  const std::vector<std::string>& header() const { return header_; }
  int64_t n_rows() const { return n_rows_; }
  int64_t n_cols() const { return static_cast<int64_t>(header_.size()); }

  // Index of the column named `name`, or -1.
  int64_t find_column(std::string_view name) const;
  // The column names quoted and comma-separated, for messages: "'a', 'b', 'c'" (the first 30).
  std::string column_list() const;

  // Field `col` of data row `row` (0-based, header excluded), quotes removed.
  std::string_view cell(int64_t row, int64_t col) const {
    MOE_CHECK(row >= 0 && row < n_rows_ && col >= 0 && col < n_cols(),
              "cell ({}, {}) of a {}x{} table", row, col, n_rows_, n_cols());
    const Span& s = cells_[static_cast<size_t>(row * n_cols() + col)];
    return std::string_view(bytes_.data() + s.begin, s.length);
  }
  // The 1-based line of the file on which data row `row` starts.
  int64_t line(int64_t row) const { return lines_[static_cast<size_t>(row)]; }

 private:
  struct Span {
    uint64_t begin;
    uint64_t length;
  };
  std::string source_;
  char delimiter_ = ',';
  CsvQuoting quoting_ = CsvQuoting::kRfc4180;
  std::string bytes_;  // the file, quoted fields unescaped in place
  std::vector<std::string> header_;
  std::vector<Span> cells_;     // [R, M]
  std::vector<int64_t> lines_;  // [R]
  int64_t n_rows_ = 0;
};

// The delimiter CsvOptions{'\0'} picks for a path: '\t' for .tsv/.tab (optionally .gz), else ','.
char delimiter_for_path(const std::string& path);

}  // namespace moe
