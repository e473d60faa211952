// Data source: interim definitions so that code written against data_source.h links.
#include "moe/train/data_source.h"

namespace moe {

DataShape DataSchema::shape() const {
  return {};
}
nlohmann::json DataSchema::to_json() const {
  return {};
}
Result<DataSchema> DataSchema::from_json(const nlohmann::json&, const std::string&) {
  return Status::error("DataSchema: not built yet in this revision");
}
Result<LoadedData> load_data(const DataConfig&) {
  return Status::error("load_data: not built yet in this revision");
}
Result<Dataset> load_with_schema(const DataSchema&, const std::string&, const std::string&,
                                 LabelUse, std::string*) {
  return Status::error("load_with_schema: not built yet in this revision");
}

}  // namespace moe
