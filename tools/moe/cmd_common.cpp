// Helpers the subcommands share: error reporting and loading a checkpoint with data to run on.
#include <cstdio>

#include "commands.h"
#include "moe/train/data_source.h"

namespace moe::cli {

int fail(const Status& status) {
  std::fprintf(stderr, "moe: error: %s\n", status.message().c_str());
  return kExitFailure;
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
