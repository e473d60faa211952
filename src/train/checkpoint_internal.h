// Helpers the model checkpoint (checkpoint.cpp) and the training state (train_state.cpp) share:
// the format / format_version check, companion files bound by size and hash, gate states, and
// strict loading of a named F32 tensor. Typed fields are read with core/json_fields.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"
#include "moe/core/tensor.h"
#include "moe/io/safetensors.h"
#include "moe/model/model.h"

namespace moe::checkpoint_detail {

// Parses JSON bytes; refuses anything but a well-formed object whose keys are all in `known`.
Result<nlohmann::json> parse_json_object(const std::vector<uint8_t>& bytes,
                                         const std::string& where,
                                         const std::vector<std::string>& known);

// The `format` / `format_version` pair each of moe's JSON files opens with: `format` must be the
// string `name` and `format_version` the integer `version` (no other version is read).
Status check_format(const nlohmann::json& format, const nlohmann::json& format_version,
                    const std::string& where, const char* name, int64_t version);

// Reads the `file` / `bytes` / `fnv1a64` triple that names a companion file, then that file,
// refusing it when its size or hash differs (a file from another save).
Result<std::vector<uint8_t>> read_bound_file(const nlohmann::json& binding,
                                             const std::string& json_path, const std::string& dir,
                                             const char* file_name, const char* key,
                                             uint64_t max_bytes);
// The binding above for bytes about to be written.
nlohmann::json bind_file(const char* file_name, const std::vector<uint8_t>& bytes);

Result<std::vector<GateState>> parse_gates(const nlohmann::json& j, const std::string& where,
                                           const char* key);
nlohmann::json gates_to_json(const std::vector<GateState>& gates);

// Copies tensor `name` into dst: present, F32, dst's shape exactly, every value finite. Messages
// name the file and the tensor; `what` says where the expected shape comes from.
Status read_tensor_strict(const SafetensorsFile& file, const std::string& name, Tensor dst,
                          const char* what);

}  // namespace moe::checkpoint_detail
