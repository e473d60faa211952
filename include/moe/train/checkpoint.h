// Model checkpoints: a directory holding a model's weights and everything needed to use it.
//
//   <dir>/model.safetensors   every parameter by name (Model's names), in store order: F32, or
//                             with the matrices in BF16 or block int8 (WeightFormat below)
//   <dir>/model.json          format version, the resolved config, the data schema, the gate
//                             states, the weights file's size and FNV-1a 64 hash, its weight
//                             format, and a free "info" object (epoch, metrics: whatever the
//                             trainer records)
//
// A training checkpoint (for `moe train --resume`) is the same directory with the training state
// beside it (train_state.h). The trainer writes a whole checkpoint directory under a staging name
// and then swaps it in with commit_directory(), so a run killed at any instant leaves either the
// previous or the new directory, both loadable.
//
// Layout and every field: docs/formats.md. Each file is written atomically (temporary file,
// fsync, rename, fsync of the directory), weights first; model.json names the hash of the
// weights it belongs with, so a directory caught between the two renames is rejected on load
// rather than loaded half old, half new.
//
// Loading trusts nothing: the JSON's fields are typed and checked, the config and schema are
// validated as a user's would be, the model is rebuilt from them, and every tensor it expects
// must be present with its exact shape and dtype, finite, with no tensor left over. Every
// failure is one message naming the file and the field or tensor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "moe/core/enum_names.h"
#include "moe/core/status.h"
#include "moe/model/model.h"
#include "moe/train/config.h"
#include "moe/train/data_source.h"

namespace moe {

inline constexpr int64_t kCheckpointFormatVersion = 1;
inline constexpr const char* kCheckpointWeightsFile = "model.safetensors";
inline constexpr const char* kCheckpointJsonFile = "model.json";

// How model.safetensors stores the weights (model.json's "weights_format"). f32: every parameter
// as trained. bf16 and int8 store every matrix (a parameter of rank 2 or more: experts, router,
// attention, embeddings, head) in fewer bits and keep the vectors (biases, norms) F32: bf16 as
// BF16 (rounded to nearest even), int8 as I8 in blocks of 32 along the last dimension with an F32
// tensor "<name>.q8_scales" [rows, blocks] beside it (moe/kernels/quantize.h). Loading turns
// them back into fp32 parameters: the model computes in fp32 whatever its file stores.
enum class WeightFormat { kF32, kBF16, kInt8 };
inline constexpr EnumName<WeightFormat> kWeightFormatNames[] = {
    {"f32", WeightFormat::kF32}, {"bf16", WeightFormat::kBF16}, {"int8", WeightFormat::kInt8}};
inline constexpr const char* kQ8ScalesSuffix = ".q8_scales";

// Writes the checkpoint into `dir` (created if missing, with its parents). `info` must be a JSON
// object (or null); it is stored as given.
Status save_checkpoint(const std::string& dir, const Model& model, const Config& config,
                       const DataSchema& schema, const nlohmann::json& info = nullptr,
                       WeightFormat format = WeightFormat::kF32);

struct Checkpoint {
  Config config;
  DataSchema schema;
  std::unique_ptr<Model> model;  // weights and gate states loaded, ready for forward
  nlohmann::json info;           // the object save_checkpoint was given ({} if none)
  std::string weights_fnv1a64;   // model.json's weights hash (what a training state binds to)
  WeightFormat weights_format = WeightFormat::kF32;
};

Result<Checkpoint> load_checkpoint(const std::string& dir);

// Puts the complete directory `staged` in the place of `dir` so that `dir` exists at every
// instant and is either the old or the new directory, never a mix nor missing: renameat2 with
// RENAME_EXCHANGE swaps the two names in one step, then the old directory (now at `staged`) is
// renamed to `previous` (keep_last rotation) or deleted when `previous` is empty; finally the
// parent directory is fsynced. `staged` and `dir` must be in the same directory.
Status commit_directory(const std::string& staged, const std::string& dir,
                        const std::string& previous);

// Creates the directory `out`, which must not exist, whole or not at all: `write` fills
// out + ".staging" (cleared first), which is renamed to `out` when `write` succeeds and removed
// when it fails. What `moe experts` and `moe compress` write goes through it.
Status write_new_directory(const std::string& out,
                           const std::function<Status(const std::string& staging)>& write);

// Directories being deleted are first renamed to a name starting with this prefix, so a kill
// during the deletion never leaves a partial checkpoint under a name a loader reads.
inline constexpr const char* kTrashPrefix = ".trash.";

// Deletes a directory crash-safely: one rename out of sight (to kTrashPrefix + name + pid), an
// fsync of the parent, then the deletion. Ok when `dir` does not exist.
Status remove_directory(const std::string& dir);

// keep_last rotation of <parent>/<name>: drops <name>.(keep−1) (remove_directory) and renames
// <name>.i to <name>.(i+1) from the oldest down, each one atomic rename, then fsyncs the parent;
// commit_directory then moves the replaced <name> to <name>.1. A kill between the steps leaves a
// number missing, never a partial directory. Nothing to do when keep ≤ 1.
Status rotate_directories(const std::string& parent, const std::string& name, int64_t keep);

// Before a run writes `run_dir` again (under its lock): deletes what a killed run left half done
// (kTrashPrefix directories, *.staging directories), and when last/ is missing but a complete
// last.old or last.1 exists (a kill inside commit_directory's two-rename fallback), renames that
// back to last/.
Status repair_run_directory(const std::string& run_dir);

// FNV-1a 64 of bytes (offset basis 14695981039346656037, prime 1099511628211), as 16 lower-case
// hex digits: the weights hash model.json records.
std::string fnv1a64_hex(const void* data, size_t size);

}  // namespace moe
