#include "data/cells.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <unordered_set>

namespace moe::data_detail {

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_missing(std::string_view cell) {
  cell = trim_blanks(cell);
  return cell.empty() || cell == "NA" || cell == "NaN" || cell == "?";
}

NumberKind parse_number(std::string_view cell, double* out) {
  cell = trim_blanks(cell);
  if (!cell.empty() && cell.front() == '+') cell.remove_prefix(1);
  if (cell.empty()) return NumberKind::kNotANumber;
  const char* end = cell.data() + cell.size();
  const auto [ptr, ec] = std::from_chars(cell.data(), end, *out);
  if (ptr != end) return NumberKind::kNotANumber;
  if (ec == std::errc::result_out_of_range) {
    // Overflow ("1e999") is a number, just not a finite one; underflow ("1e-400") rounds
    // towards zero as strtod does.
    *out = std::strtod(std::string(cell).c_str(), nullptr);
  } else if (ec != std::errc()) {
    return NumberKind::kNotANumber;
  }
  if (!std::isfinite(*out)) return NumberKind::kNonFinite;
  return std::fabs(*out) <= kMaxDataMagnitude ? NumberKind::kFinite : NumberKind::kTooLarge;
}

const char* number_problem(NumberKind k) {
  switch (k) {
    case NumberKind::kNonFinite:
      return "is not a finite number";
    case NumberKind::kTooLarge:
      return "is beyond ±3.4e38, the range of the 32-bit floats moe computes in";
    case NumberKind::kFinite:
    case NumberKind::kNotANumber:
      break;
  }
  return "is not a number";
}

std::string quoted_list(std::span<const std::string> names, size_t max) {
  std::string out;
  const size_t shown = std::min(max, names.size());
  for (size_t i = 0; i < shown; ++i) {
    if (i > 0) out += ", ";
    out += "'" + names[i] + "'";
  }
  if (names.size() > shown) out += fmt::format(", ... ({} more)", names.size() - shown);
  return out;
}

std::vector<int64_t> all_rows(int64_t n) {
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), int64_t{0});
  return rows;
}

Result<int64_t> require_column(const CsvTable& t, const std::string& name, const char* role) {
  const int64_t c = t.find_column(name);
  if (c < 0)
    return Status::error("{}: no {} '{}' (the columns are {})", t.source(), role, name,
                         t.column_list());
  return c;
}

Result<std::vector<std::string>> collect_class_names(const CsvTable& t, int64_t col,
                                                     std::span<const int64_t> rows) {
  std::unordered_set<std::string_view> seen;
  std::vector<std::string> names;
  for (int64_t r : rows) {
    const std::string_view v = t.cell(r, col);
    if (is_missing(v))
      return Status::error("{} line {}, column '{}': missing label", t.source(), t.line(r),
                           t.header()[static_cast<size_t>(col)]);
    const std::string_view name = trim_blanks(v);
    if (seen.insert(name).second) names.emplace_back(name);
  }
  std::sort(names.begin(), names.end());
  if (names.size() < 2)
    return Status::error(
        "{}: label column '{}' has a single class{} in the training rows; "
        "classification needs at least two",
        t.source(), t.header()[static_cast<size_t>(col)],
        names.empty() ? "" : " '" + names[0] + "'");
  return names;
}

Status encode_class_ids(const CsvTable& t, int64_t col, std::span<const int64_t> rows,
                        const LabelSpec& spec, std::vector<int32_t>* out) {
  out->clear();
  out->reserve(rows.size());
  for (int64_t r : rows) {
    const std::string_view v = t.cell(r, col);
    if (is_missing(v))
      return Status::error("{} line {}, column '{}': missing label", t.source(), t.line(r),
                           t.header()[static_cast<size_t>(col)]);
    const int32_t id = spec.class_id(v);
    if (id < 0)
      return Status::error(
          "{} line {}, column '{}': class '{}' does not occur in the training data (classes: {})",
          t.source(), t.line(r), t.header()[static_cast<size_t>(col)], trim_blanks(v),
          quoted_list(spec.class_names));
    out->push_back(id);
  }
  return Status::ok();
}

}  // namespace moe::data_detail
