// The training state beside a model checkpoint (see include/moe/train/train_state.h and
// docs/formats.md).
//
// Dims: P = the ParamStore's arena length.
#include "moe/train/train_state.h"

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint_internal.h"
#include "core/json_fields.h"
#include "core/json_read.h"
#include "moe/core/file_io.h"
#include "moe/io/safetensors.h"
#include "moe/train/checkpoint.h"

namespace moe {

namespace {

using json = nlohmann::json;
using namespace checkpoint_detail;

constexpr const char* kFormatName = "moe-train-state";
constexpr uint64_t kMaxJsonBytes = uint64_t{1} << 30;
constexpr uint64_t kMaxTensorsBytes = uint64_t{1} << 40;
constexpr const char* kBestPrefix = "best.";

// Every tensor the state file holds: the optimizer's state tensors split per parameter (none for
// a frozen one), then the best parameters when there are any. Views into `optimizer` and `best`
// (arena layout, [P]).
std::vector<NamedTensor> state_tensors(const ParamStore& store, const Optimizer& optimizer,
                                       float* best) {
  std::vector<NamedTensor> out;
  for (const NamedTensor& arena : optimizer.state())
    for (ParamId id = 0; id < store.size(); ++id)
      if (!store.frozen(id))
        out.push_back(
            {arena.name + "." + store.info(id).name, optimizer.state_slice(arena.tensor, id)});
  if (best != nullptr) {
    const Tensor arena(best, store.values().shape());
    for (ParamId id = 0; id < store.size(); ++id)
      out.push_back({kBestPrefix + store.info(id).name, param_slice(arena, store.info(id))});
  }
  return out;
}

// A JSON number that must be a finite double (the best value is null before any epoch).
bool finite_number(const json& v) {
  return v.is_number() && std::isfinite(v.get<double>());
}

}  // namespace

Status save_train_state(const std::string& dir, const TrainState& state, const Model& model,
                        const Optimizer& optimizer) {
  const ParamStore& store = model.params();
  MOE_CHECK(state.best_values.empty() ||
                static_cast<int64_t>(state.best_values.size()) == store.values().numel(),
            "save_train_state: best_values has {} values, the arena {}", state.best_values.size(),
            store.values().numel());
  MOE_CHECK(state.epoch_sums.is_object(), "save_train_state: epoch_sums must be an object");
  const std::string model_json = dir + "/" + kCheckpointJsonFile;
  MOE_ASSIGN_OR_RETURN(
      std::vector<uint8_t> model_bytes,
      read_file_bytes<std::vector<uint8_t>>(model_json, kMaxJsonBytes, FileSource::kSaved));
  MOE_ASSIGN_OR_RETURN(
      const json model_j,
      parse_json(
          std::string_view(reinterpret_cast<const char*>(model_bytes.data()), model_bytes.size()),
          model_json));
  if (!model_j.is_object() || !model_j.contains("weights") || !model_j["weights"].is_object())
    return Status::error("{}: not a model checkpoint's JSON", model_json);

  // best_values is only read through the views; the cast lets one helper serve load and save.
  float* best = state.best_values.empty() ? nullptr : const_cast<float*>(state.best_values.data());
  const std::vector<uint8_t> tensors = encode_safetensors(
      state_tensors(store, optimizer, best),
      {{"format", kFormatName}, {"format_version", std::to_string(kTrainStateFormatVersion)}});
  MOE_TRY(write_file_atomic(dir + "/" + kTrainStateTensorsFile, tensors.data(), tensors.size()));

  json j;
  j["format"] = kFormatName;
  j["format_version"] = kTrainStateFormatVersion;
  j["moe_version"] = MOE_VERSION;
  j["model_weights_fnv1a64"] = model_j["weights"].value("fnv1a64", "");
  j["tensors"] = bind_file(kTrainStateTensorsFile, tensors);
  j["position"] = {{"epochs_done", state.epochs_done},
                   {"batches_done", state.batches_done},
                   {"batches_per_epoch", state.batches_per_epoch},
                   {"step", state.step}};
  j["seed"] = state.seed;
  j["optimizer"] = {{"kind", state.optimizer}, {"step", optimizer.step_count()}};
  j["schedule"] = {{"kind", state.schedule}, {"total_steps", state.schedule_total_steps}};
  j["best"] = {{"metric", state.metric},
               {"epoch", state.best_epoch},
               {"value", state.best_epoch > 0 ? json(state.best_value) : json(nullptr)},
               {"since_best", state.since_best},
               {"stopped_early", state.stopped_early},
               {"gates", gates_to_json(state.best_gates)}};
  j["epoch_sums"] = state.epoch_sums;
  if (!state.adapt.empty()) j["adapt"] = state.adapt;
  j["timing"] = {{"train_seconds", state.train_seconds}, {"train_rows", state.train_rows}};
  // Strings that are not UTF-8 are written as U+FFFD rather than thrown out of the dump (the
  // data readers refuse them, so none should reach here): a save never fails half done.
  const std::string text = j.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
  return write_file_atomic(dir + "/" + kTrainStateJsonFile, text.data(), text.size());
}

namespace {

// Reads `key` of `obj` as an integer ≥ 0 (`where` names the object in messages).
Status read_count(const json& obj, const char* key, const std::string& where, int64_t* dst) {
  Status st;
  const json* v = json_require(obj, key, where, &st);
  MOE_TRY(st);
  MOE_TRY(
      json_expect(v->is_number_integer() && v->get<int64_t>() >= 0, where, key, "an integer ≥ 0"));
  *dst = v->get<int64_t>();
  return Status::ok();
}

// Reads `key` of `obj` as a string.
Status read_text(const json& obj, const char* key, const std::string& where, std::string* dst) {
  Status st;
  const json* v = json_require(obj, key, where, &st);
  MOE_TRY(st);
  MOE_TRY(json_expect(v->is_string(), where, key, "a string"));
  *dst = v->get<std::string>();
  return Status::ok();
}

// "position": epochs and batches done, the optimizer step they add up to.
Status read_position(const json& position, const std::string& json_path, TrainState* out) {
  const std::string pos_at = json_path + ": position";
  MOE_TRY(json_expect(position.is_object(), json_path, "position", "an object"));
  MOE_TRY(read_count(position, "epochs_done", pos_at, &out->epochs_done));
  MOE_TRY(read_count(position, "batches_done", pos_at, &out->batches_done));
  MOE_TRY(read_count(position, "batches_per_epoch", pos_at, &out->batches_per_epoch));
  MOE_TRY(read_count(position, "step", pos_at, &out->step));
  if (out->batches_per_epoch == 0 || out->batches_done >= out->batches_per_epoch)
    return Status::error("{}: batches_done {} must be below batches_per_epoch {} (> 0)", pos_at,
                         out->batches_done, out->batches_per_epoch);
  if (out->step != out->epochs_done * out->batches_per_epoch + out->batches_done)
    return Status::error("{}: step {} is not epochs_done × batches_per_epoch + batches_done = {}",
                         pos_at, out->step,
                         out->epochs_done * out->batches_per_epoch + out->batches_done);
  return Status::ok();
}

// "optimizer" and "schedule": what the config of the run gives.
Status read_run_settings(const json& opt, const json& schedule, const std::string& json_path,
                         const Optimizer& optimizer, const TrainingConfig& run, TrainState* out) {
  const std::string pos_at = json_path + ": position";
  const std::string opt_at = json_path + ": optimizer";
  MOE_TRY(json_expect(opt.is_object(), json_path, "optimizer", "an object"));
  MOE_TRY(read_text(opt, "kind", opt_at, &out->optimizer));
  int64_t opt_step = 0;
  MOE_TRY(read_count(opt, "step", opt_at, &opt_step));
  if (out->optimizer != optimizer_kind_name(optimizer.config().kind))
    return Status::error("{}: kind \"{}\", but the config's optimizer is \"{}\"", opt_at,
                         out->optimizer, optimizer_kind_name(optimizer.config().kind));
  if (opt_step != out->step)
    return Status::error("{}: step {} differs from position.step {}", opt_at, opt_step, out->step);

  const std::string sched_at = json_path + ": schedule";
  MOE_TRY(json_expect(schedule.is_object(), json_path, "schedule", "an object"));
  MOE_TRY(read_text(schedule, "kind", sched_at, &out->schedule));
  MOE_TRY(read_count(schedule, "total_steps", sched_at, &out->schedule_total_steps));
  // The run that wrote this state wrote model.json's config beside it: its schedule is the one
  // that config builds (epochs × batches per epoch steps).
  if (out->schedule != schedule_kind_name(run.schedule))
    return Status::error("{}: kind \"{}\", but the config's training.schedule is \"{}\"", sched_at,
                         out->schedule, schedule_kind_name(run.schedule));
  if (out->epochs_done > run.epochs)
    return Status::error("{}: epochs_done {} is more than the config's training.epochs {}", pos_at,
                         out->epochs_done, run.epochs);
  if (out->schedule_total_steps != run.epochs * out->batches_per_epoch)
    return Status::error(
        "{}: total_steps {} is not the config's training.epochs × position.batches_per_epoch = "
        "{} × {}",
        sched_at, out->schedule_total_steps, run.epochs, out->batches_per_epoch);

  return Status::ok();
}

// "best": the best epoch so far, its value and gate states, the early-stopping counter.
Status read_best(const json& best, const std::string& json_path, TrainState* out) {
  Status st;
  const std::string best_at = json_path + ": best";
  MOE_TRY(json_expect(best.is_object(), json_path, "best", "an object"));
  MOE_TRY(read_text(best, "metric", best_at, &out->metric));
  MOE_TRY(read_count(best, "epoch", best_at, &out->best_epoch));
  MOE_TRY(read_count(best, "since_best", best_at, &out->since_best));
  const json* value = json_require(best, "value", best_at, &st);
  const json* stopped = json_require(best, "stopped_early", best_at, &st);
  const json* gates = json_require(best, "gates", best_at, &st);
  MOE_TRY(st);
  if (out->best_epoch > out->epochs_done)
    return Status::error("{}: epoch {} is after the epochs done ({})", best_at, out->best_epoch,
                         out->epochs_done);
  // The early-stopping counter grows by one per epoch without improvement since the best one.
  const int64_t since_limit = out->epochs_done - out->best_epoch;
  if (out->since_best > since_limit)
    return Status::error("{}: since_best {} is more than the {} epochs done since epoch {}",
                         best_at, out->since_best, since_limit, out->best_epoch);
  if (out->best_epoch > 0) {
    MOE_TRY(json_expect(finite_number(*value), best_at, "value", "a finite number"));
    out->best_value = value->get<double>();
  } else {
    MOE_TRY(json_expect(value->is_null(), best_at, "value", "null while epoch is 0"));
  }
  MOE_TRY(json_expect(stopped->is_boolean(), best_at, "stopped_early", "true or false"));
  out->stopped_early = stopped->get<bool>();
  MOE_ASSIGN_OR_RETURN(out->best_gates, parse_gates(*gates, best_at, "gates"));
  return Status::ok();
}

// "epoch_sums" and "timing": the partial epoch's sums and the run's training time and rows.
Status read_progress(const json& sums, const json& timing, const std::string& json_path,
                     TrainState* out) {
  Status st;
  MOE_TRY(json_expect(sums.is_object(), json_path, "epoch_sums", "an object"));
  // The trainer reads the rest of epoch_sums (its tallies); the counts and sums it adds to are
  // checked here.
  const std::string sums_at = json_path + ": epoch_sums";
  if (sums.contains("rows")) {
    int64_t rows = 0;
    MOE_TRY(read_count(sums, "rows", sums_at, &rows));
  }
  if (sums.contains("loss_sum"))
    MOE_TRY(json_expect(finite_number((sums)["loss_sum"]) && (sums)["loss_sum"].get<double>() >= 0,
                        sums_at, "loss_sum", "a finite number ≥ 0"));
  out->epoch_sums = sums;

  const std::string time_at = json_path + ": timing";
  MOE_TRY(json_expect(timing.is_object(), json_path, "timing", "an object"));
  MOE_TRY(read_count(timing, "train_rows", time_at, &out->train_rows));
  const json* secs = json_require(timing, "train_seconds", time_at, &st);
  MOE_TRY(st);
  MOE_TRY(json_expect(finite_number(*secs) && secs->get<double>() >= 0, time_at, "train_seconds",
                      "a finite number ≥ 0"));
  out->train_seconds = secs->get<double>();

  return Status::ok();
}

// The tensors file bound in "tensors", read into the optimizer's state (and the best values).
Status read_state_tensors(const json& tensors_j, const std::string& json_path,
                          const std::string& dir, const Model& model, Optimizer& optimizer,
                          TrainState* out) {
  // The tensors: exactly the optimizer's per-parameter state, plus the best parameters once an
  // epoch has been judged best. Read into place only when all of them check out would need a
  // second copy; instead a failure leaves the optimizer half filled, and the caller discards it.
  MOE_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                       read_bound_file(tensors_j, json_path, dir, kTrainStateTensorsFile, "tensors",
                                       kMaxTensorsBytes));
  const std::string tensors_path = dir + "/" + kTrainStateTensorsFile;
  MOE_ASSIGN_OR_RETURN(SafetensorsFile file,
                       SafetensorsFile::parse(std::move(bytes), tensors_path));
  const ParamStore& store = model.params();
  if (out->best_epoch > 0)
    out->best_values.assign(static_cast<size_t>(store.values().numel()), 0.0f);
  std::set<std::string> expected;
  for (const NamedTensor& t : state_tensors(
           store, optimizer, out->best_values.empty() ? nullptr : out->best_values.data())) {
    expected.insert(t.name);
    MOE_TRY(read_tensor_strict(file, t.name, t.tensor, "the config gives"));
    // Adam's second moments are running means of squared gradients: a negative one would make
    // the update's square root NaN.
    if (t.name.rfind("adam.v.", 0) == 0) {
      const float* v = t.tensor.f32();
      for (int64_t i = 0; i < t.tensor.numel(); ++i)
        if (v[i] < 0.0f)
          return Status::error(
              "{}: tensor {} element {} is {}, but a second moment (a mean of squares) is never "
              "negative",
              tensors_path, t.name, i, v[i]);
    }
  }
  for (const SafetensorsEntry& e : file.entries())
    if (expected.count(e.name) == 0)
      return Status::error(
          "{}: unexpected tensor {} (neither the optimizer nor the best model "
          "has it)",
          tensors_path, e.name);
  return Status::ok();
}

}  // namespace

Result<TrainState> load_train_state(const std::string& dir, const Model& model,
                                    const std::string& weights_fnv1a64, Optimizer& optimizer,
                                    const TrainingConfig& run) {
  const std::string json_path = dir + "/" + kTrainStateJsonFile;
  MOE_ASSIGN_OR_RETURN(
      std::vector<uint8_t> json_bytes,
      read_file_bytes<std::vector<uint8_t>>(json_path, kMaxJsonBytes, FileSource::kSaved));
  MOE_ASSIGN_OR_RETURN(
      json j, parse_json_object(json_bytes, json_path,
                                {"format", "format_version", "moe_version", "model_weights_fnv1a64",
                                 "tensors", "position", "seed", "optimizer", "schedule", "best",
                                 "epoch_sums", "timing", "adapt"}));
  Status st;
  const json* format = json_require(j, "format", json_path, &st);
  const json* version = json_require(j, "format_version", json_path, &st);
  const json* model_hash = json_require(j, "model_weights_fnv1a64", json_path, &st);
  const json* tensors_j = json_require(j, "tensors", json_path, &st);
  const json* position = json_require(j, "position", json_path, &st);
  const json* seed = json_require(j, "seed", json_path, &st);
  const json* opt = json_require(j, "optimizer", json_path, &st);
  const json* schedule = json_require(j, "schedule", json_path, &st);
  const json* best = json_require(j, "best", json_path, &st);
  const json* sums = json_require(j, "epoch_sums", json_path, &st);
  const json* timing = json_require(j, "timing", json_path, &st);
  MOE_TRY(st);
  MOE_TRY(check_format(*format, *version, json_path, kFormatName, kTrainStateFormatVersion));
  MOE_TRY(json_expect(model_hash->is_string(), json_path, "model_weights_fnv1a64", "a string"));
  if (model_hash->get<std::string>() != weights_fnv1a64)
    return Status::error(
        "{}: written for model weights with hash {}, but {}/{} records {} (the files are from "
        "different saves)",
        json_path, model_hash->get<std::string>(), dir, kCheckpointJsonFile, weights_fnv1a64);

  TrainState out;
  MOE_TRY(read_position(*position, json_path, &out));
  MOE_TRY(json_expect(seed->is_number_unsigned(), json_path, "seed", "an integer ≥ 0"));
  out.seed = seed->get<uint64_t>();
  MOE_TRY(read_run_settings(*opt, *schedule, json_path, optimizer, run, &out));
  MOE_TRY(read_best(*best, json_path, &out));
  MOE_TRY(read_progress(*sums, *timing, json_path, &out));
  // Adaptive training's counts: an object the trainer checks against the model (train/adapt.h).
  if (const auto a = j.find("adapt"); a != j.end()) {
    MOE_TRY(json_expect(a->is_object(), json_path, "adapt", "an object"));
    out.adapt = *a;
  }
  MOE_TRY(read_state_tensors(*tensors_j, json_path, dir, model, optimizer, &out));
  optimizer.set_step_count(out.step);
  return out;
}

}  // namespace moe
