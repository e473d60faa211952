// Helpers the subcommands share: error reporting and loading a checkpoint with data to run on.
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "commands.h"
#include "moe/train/data_source.h"

namespace moe::cli {

int fail(const Status& status) {
  std::fprintf(stderr, "moe: error: %s\n", status.message().c_str());
  return kExitFailure;
}

Status write_stdout(std::string_view text) {
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), stdout) != text.size())
    return Status::error("standard output: write failed: {}", std::strerror(errno));
  if (std::fflush(stdout) != 0)
    return Status::error("standard output: write failed: {}", std::strerror(errno));
  return Status::ok();
}

Status finish_stdout() {
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  const int e = errno;
  const bool had_error = std::ferror(stdout) != 0;
  const bool closed = std::fclose(stdout) == 0;
  if (flushed && !had_error && closed) return Status::ok();
  const int reason = !flushed || !closed ? (e != 0 ? e : errno) : 0;
  return Status::error("standard output: write failed{}",
                       reason != 0 ? fmt::format(": {}", std::strerror(reason)) : "");
}

namespace {

// An integer ≥ `least`, said in those words.
CLI::Validator integer_at_least(int64_t least) {
  return CLI::Validator(
      [least](std::string& s) -> std::string {
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || v < least)
          return fmt::format("must be an integer ≥ {}, got '{}'", least, s);
        return "";
      },
      fmt::format("INT ≥ {}", least));
}

}  // namespace

CLI::Validator positive_integer() {
  return integer_at_least(1);
}

CLI::Validator non_negative_integer() {
  return integer_at_least(0);
}

const std::vector<std::string>& output_names(const DataSchema& schema) {
  return schema.labels.task == TaskKind::kClassification ? schema.labels.class_names
                                                         : schema.labels.columns;
}

Result<LoadedInput> load_checkpoint_and_data(const std::string& checkpoint_dir,
                                             const std::string& data_path,
                                             const std::string& labels_path, LabelUse labels,
                                             std::string* report) {
  LoadedInput in;
  MOE_ASSIGN_OR_RETURN(in.checkpoint, load_checkpoint(checkpoint_dir));
  const DataSchema& schema = in.checkpoint.schema;
  if (schema.format == DataFormat::kIdx) {
    if (labels_path.empty() && labels == LabelUse::kRequired) {
      return Status::error("{}: IDX images need their labels file: pass --labels FILE", data_path);
    }
  } else if (!labels_path.empty()) {
    return Status::error("--labels is for IDX image files; {} holds its labels in a column",
                         data_path);
  }
  MOE_ASSIGN_OR_RETURN(in.data, load_with_schema(schema, data_path, labels_path, labels, report));
  return in;
}

}  // namespace moe::cli
