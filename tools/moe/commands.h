// The moe command's subcommands: each file cmd_<name>.cpp adds one to the CLI11 app and, when
// it is the one on the command line, sets the function main() runs after parsing.
//
// Exit codes: 0 success, 1 failure (one message on stderr), 2 bad usage (CLI11's message and a
// hint to --help).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

#include "moe/core/status.h"
#include "moe/data/dataset.h"
#include "moe/train/checkpoint.h"

namespace moe::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

using Run = std::function<int()>;

void add_train_command(CLI::App& app, Run* run);
void add_eval_command(CLI::App& app, Run* run);
void add_predict_command(CLI::App& app, Run* run);
void add_inspect_command(CLI::App& app, Run* run);
void add_report_command(CLI::App& app, Run* run);
void add_generate_command(CLI::App& app, Run* run);
void add_experts_command(CLI::App& app, Run* run);
void add_translate_command(CLI::App& app, Run* run);
void add_compress_command(CLI::App& app, Run* run);

// Writes RUN_DIR/report.html (moe report) and prints its path; returns the exit code.
int write_run_report(const std::string& run_dir);

// Prints "moe: error: <message>" on stderr and returns kExitFailure.
int fail(const Status& status);

// Writes to standard output, every byte or an error naming the reason (a full disk, /dev/full).
Status write_stdout(std::string_view text);
// Flushes and closes standard output: a write the C library buffered fails only here. main()
// calls it after every command, so no command exits 0 with its output lost.
Status finish_stdout();

// The check of a count option (--batch-size, --top): an integer ≥ 1, said in those words (CLI11's
// PositiveNumber names its bound as a 300-digit number).
CLI::Validator positive_integer();
// The same for a count that may be 0 (--checkpoint-every): an integer ≥ 0.
CLI::Validator non_negative_integer();

// Loads a checkpoint directory and encodes `data` (with `labels_path` for IDX images) with its
// schema; *report receives what encoding did quietly (unknown categories, imputed values).
struct LoadedInput {
  Checkpoint checkpoint;
  Dataset data;
};
Result<LoadedInput> load_checkpoint_and_data(const std::string& checkpoint_dir,
                                             const std::string& data_path,
                                             const std::string& labels_path, LabelUse labels,
                                             std::string* report);

// The names of the model's outputs: class names, or regression target columns.
const std::vector<std::string>& output_names(const DataSchema& schema);

}  // namespace moe::cli
