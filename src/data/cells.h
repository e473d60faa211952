// Cell-level rules shared by the tabular and text readers: blank trimming, missing-value
// tokens, number parsing, class labels. Internal to src/data.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "moe/core/status.h"
#include "moe/data/csv.h"
#include "moe/data/dataset.h"

namespace moe::data_detail {

std::string_view trim_blanks(std::string_view s);

// Empty, NA, NaN or ? once blanks are trimmed.
bool is_missing(std::string_view cell);

// The largest magnitude a data value may have: FLT_MAX, as the model computes in 32-bit floats.
// Bounding it also keeps the column statistics (sums of squares, in double) finite.
inline constexpr double kMaxDataMagnitude = 3.4028234663852886e38;

// kTooLarge: finite, but beyond ±kMaxDataMagnitude ("1e308").
enum class NumberKind { kFinite, kNonFinite, kTooLarge, kNotANumber };
// A decimal number ("3", "-0.5", "+1e-3"), blanks around it allowed, nothing else after it.
NumberKind parse_number(std::string_view cell, double* out);
// "is not a finite number", "is beyond ±3.4e38, the range of the 32-bit floats moe computes
// in", "is not a number": what a value of kind `k` (not kFinite) is, for messages.
const char* number_problem(NumberKind k);

// "'a', 'b', 'c'", or the first `max` of them and "... (N more)".
std::string quoted_list(std::span<const std::string> names, size_t max = 20);

// 0 .. n-1.
std::vector<int64_t> all_rows(int64_t n);

// Finds a column by name or fails naming the columns the table has; `role` says what it is for
// ("label column", "text column").
Result<int64_t> require_column(const CsvTable& t, const std::string& name, const char* role);

// Sorted distinct class names of column `col` over `rows`; a missing label is an error naming
// the line, and so is a single class.
Result<std::vector<std::string>> collect_class_names(const CsvTable& t, int64_t col,
                                                     std::span<const int64_t> rows);

// Class ids of column `col` over `rows`; a missing label or a class the spec does not know is
// an error naming the line.
Status encode_class_ids(const CsvTable& t, int64_t col, std::span<const int64_t> rows,
                        const LabelSpec& spec, std::vector<int32_t>* out);

}  // namespace moe::data_detail
