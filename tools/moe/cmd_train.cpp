// moe train CONFIG [--set key=value ...] [--out DIR] [--init CHECKPOINT] [--checkpoint-every N]
//                  [--quiet] [--strict]
// moe train --resume DIR [CONFIG] [--set key=value ...] [--checkpoint-every N] [--quiet]
//                  [--strict]
//
// Reads the config (with overrides), warns on stderr about each key that was set but has no
// effect (ineffective_config_keys; with --strict they are an error before anything runs), loads
// and encodes the data, builds the model and trains it (trainer.h), then prints the best
// epoch's validation metrics and the test metrics. Everything the run produces goes to the
// output directory: config.json, metrics.jsonl, best/, last/, summary.json.
//
// --resume DIR continues the run in DIR from DIR/last: the config is DIR/config.json (or CONFIG
// when given) with the overrides applied, the output stays DIR, and only the keys
// check_resume_config allows may differ from the checkpoint's (trainer.h).
//
// --init CHECKPOINT (training.init) starts a fresh run from a trained model's parameters
// (warm_start.h) and prints what was loaded, reinitialised and ignored.
//
// Under `mpirun -np N` the N processes are one data-parallel job (docs/distributed.md): each
// trains its part of every batch, rank 0 alone prints and writes the run's files, and a rank that
// fails ends the job (mpirun then stops the others).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "moe/dist/communicator.h"
#include "moe/kernels/bf16.h"
#include "moe/train/config.h"
#include "moe/train/data_source.h"
#include "moe/train/progress.h"
#include "moe/train/trainer.h"
#include "moe/train/warm_start.h"

namespace moe::cli {

namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string out;
  std::string resume;
  std::string init;               // --init: overrides training.init
  int64_t checkpoint_every = -1;  // -1: as the config says
  bool quiet = false;
  bool overwrite = false;  // --overwrite: replace a run already in --out
  bool strict = false;     // --strict: a key that has no effect is an error
  bool report = false;     // --report: write <out>/report.html at the end (moe report)
};

std::string describe_data(const LoadedData& d) {
  const DataShape shape = d.schema.shape();
  if (shape.input == FeatureKind::kTokens) {
    std::string s = fmt::format("data: {} training tokens ({} windows of {})", d.train.ids.size(),
                                d.train.n_rows, d.train.context);
    if (d.validation.n_rows > 0)
      s += fmt::format(", {} validation tokens", d.validation.ids.size());
    if (d.test.n_rows > 0) s += fmt::format(", {} test tokens", d.test.ids.size());
    return s + fmt::format("; a vocabulary of {} subwords", shape.n_features);
  }
  if (shape.input == FeatureKind::kPairs) {
    std::string s = fmt::format("data: {} training pairs ({} source and {} target tokens)",
                                d.train.n_rows, d.train.ids.size(), d.train.target_ids.size());
    if (d.validation.n_rows > 0) s += fmt::format(", {} validation pairs", d.validation.n_rows);
    if (d.test.n_rows > 0) s += fmt::format(", {} test pairs", d.test.n_rows);
    return s + fmt::format("; a vocabulary of {} subwords for both sides", shape.n_features);
  }
  std::string s = fmt::format("data: {} training rows", d.train.n_rows);
  if (d.validation.n_rows > 0) s += fmt::format(", {} validation", d.validation.n_rows);
  if (d.test.n_rows > 0) s += fmt::format(", {} test", d.test.n_rows);
  s += shape.input == FeatureKind::kSparse ? fmt::format("; text, {} ids", shape.n_features)
                                           : fmt::format("; {} features", shape.n_features);
  if (shape.task == TaskKind::kClassification) {
    s += fmt::format(
        "; {} classes ({})", shape.n_outputs,
        fmt::join(d.schema.labels.class_names.begin(),
                  d.schema.labels.class_names.begin() + std::min<int64_t>(shape.n_outputs, 10),
                  ", "));
    if (shape.n_outputs > 10) s += ", ...";
  } else {
    s += fmt::format("; regression on {}", fmt::join(d.schema.labels.columns, ", "));
  }
  return s;
}

// Prints "moe: warning: <key>: has no effect: <reason>" for each key set in the file or by --set
// that does nothing; under --strict they are one error instead. A run's own config.json (resumed
// without CONFIG) is the resolved form, every key written: only the overrides count there.
Status check_config_keys(const Config& config, const std::string& config_path,
                         const TrainArgs& args, const ExplicitKeys& set, bool print) {
  std::vector<std::string> keys = set.overrides;
  if (!args.config.empty() || args.resume.empty())
    keys.insert(keys.end(), set.file.begin(), set.file.end());
  const std::vector<ConfigWarning> warnings = ineffective_config_keys(config, keys);
  if (warnings.empty()) return Status::ok();
  if (!args.strict) {
    for (const ConfigWarning& w : warnings)
      if (print) std::fprintf(stderr, "moe: warning: %s\n", w.message().c_str());
    return Status::ok();
  }
  std::string messages;
  for (const ConfigWarning& w : warnings) messages += (messages.empty() ? "" : "; ") + w.message();
  return Status::error("{}: --strict: {} key{} with no effect: {}", config_path, warnings.size(),
                       warnings.size() == 1 ? "" : "s", messages);
}

// bf16 still runs without bf16 matrix instructions, on widened fp32 copies (moe/kernels/bf16.h),
// but slower than fp32: one note says so.
void note_bf16_without_native(const Config& config) {
  const std::vector<MoeBlockConfig>& blocks = config.model.moe;
  const bool bf16 = std::any_of(blocks.begin(), blocks.end(), [](const MoeBlockConfig& b) {
    return b.precision == Precision::kBF16;
  });
  if (bf16 && !bf16_is_native())
    std::fprintf(stderr,
                 "moe: note: model.moe.precision = \"bf16\": this CPU has no bf16 matrix "
                 "instructions (AVX512-BF16 or AMX); bf16 products run as fp32 on widened copies, "
                 "slower than fp32\n");
}

int run_train(const TrainArgs& args, Communicator* comm) {
  const std::string config_path = args.config.empty() ? args.resume + "/config.json" : args.config;
  if (!args.resume.empty() && !std::filesystem::is_directory(args.resume))
    return fail(Status::error("{}: no such run directory to resume", args.resume));
  ExplicitKeys set;
  Result<Config> config = load_config(config_path, args.overrides, &set);
  if (!config) return fail(config.status());
  if (!args.init.empty()) config->training.init = args.init;
  // Warnings and notes once per job: rank 0's (errors come from every rank that has them).
  const Status keys = check_config_keys(*config, config_path, args, set, comm->is_root());
  if (!keys.is_ok()) return fail(keys);
  if (comm->is_root()) note_bf16_without_native(*config);
  if (!args.out.empty()) config->output.dir = args.out;
  if (!args.resume.empty()) config->output.dir = args.resume;
  if (args.checkpoint_every >= 0) config->output.checkpoint_every = args.checkpoint_every;
  std::FILE* log = args.quiet || !comm->is_root() ? nullptr : stdout;
  // A warm start's checkpoint is read before the data, so a wrong path fails at once.
  std::optional<Checkpoint> init;
  if (args.resume.empty() && !config->training.init.empty()) {
    Result<Checkpoint> ck = load_init_checkpoint(config->training.init);
    if (!ck) return fail(ck.status());
    init = std::move(ck.value());
  }

  Result<LoadedData> data = load_data(config->data, config->data.format == DataFormat::kPairs
                                                        ? config->model.translation.max_tokens
                                                        : config->model.lm.context);
  if (!data) return fail(data.status());
  if (log) {
    std::fprintf(log, "%s\n", describe_data(*data).c_str());
    if (!data->report.empty()) std::fprintf(log, "note: %s\n", data->report.c_str());
  }

  TrainOptions options;
  options.log = log;
  options.comm = comm;
  options.write_files = comm->is_root();
  options.terminal = log && stream_is_terminal(log);
  options.overwrite = args.overwrite;
  Result<std::unique_ptr<Trainer>> trainer = Trainer::create(*config, *data, options);
  if (!trainer) return fail(trainer.status());
  if (!args.resume.empty()) {
    const std::string last = args.resume + "/last";
    if (!std::filesystem::is_directory(last))
      return fail(
          Status::error("{}: no training checkpoint to resume from (the run wrote none "
                        "yet; start it again without --resume)",
                        last));
    const Status resumed = (*trainer)->resume(last);
    if (!resumed.is_ok()) return fail(resumed);
    if (log) std::fprintf(log, "resuming from %s\n", last.c_str());
  } else if (!config->training.init.empty()) {
    Result<WarmStartReport> warm = warm_start((*trainer)->model(), data->schema,
                                              config->training.init, config->training.init_exclude);
    if (!warm) return fail(warm.status());
    if (log) std::fprintf(log, "%s", warm->to_text().c_str());
  }
  if (log) {
    const Model& model = (*trainer)->model();
    const std::string kind =
        model.n_moe_layers() > 0
            ? fmt::format("{} block(s), {} of them MoE", model.n_blocks(), model.n_moe_layers())
            : fmt::format("{} dense block(s)", model.n_blocks());
    const int64_t trainable = model.params().n_trainable_elements();
    const std::string frozen =
        trainable == model.n_params()
            ? ""
            : fmt::format(", {} trainable ({} frozen)", trainable, model.n_params() - trainable);
    std::fprintf(log, "model: %s, %lld parameters, %lld active per row%s\n", kind.c_str(),
                 static_cast<long long>(model.n_params()),
                 static_cast<long long>(model.n_active_params()), frozen.c_str());
    std::fflush(log);
  }
  Result<TrainResult> result = (*trainer)->run();
  if (!result) return fail(result.status());
  if (!comm->is_root()) return kExitOk;

  const std::vector<std::string>& names = output_names(data->schema);
  const TrainResult& r = *result;
  if (log) std::printf("\n");
  // A language model's row is a window of S tokens: its speed is in tokens.
  const bool tokens = data->schema.format == DataFormat::kCorpus;
  std::printf(
      "trained %lld epochs (%lld steps) in %.1f s, %.0f %s/s on %d thread%s (%s)%s\n",
      static_cast<long long>(r.epochs), static_cast<long long>(r.steps), r.seconds,
      tokens ? r.rows_per_second * static_cast<double>(data->schema.context) : r.rows_per_second,
      tokens                                      ? "tokens"
      : data->schema.format == DataFormat::kPairs ? "pairs"
                                                  : "rows",
      r.threads, r.threads == 1 ? "" : "s", r.threads_reason.c_str(),
      r.stopped_early ? ", stopped early" : "");
  if (r.ranks > 1)
    std::printf(
        "data parallel over %s: %.1f s of %.1f s of training steps in collectives on rank 0 "
        "(%.0f%%)\n",
        r.ranks_via.c_str(), r.collective_seconds, r.train_seconds,
        r.train_seconds > 0 ? 100.0 * r.collective_seconds / r.train_seconds : 0.0);
  std::printf("best epoch %lld by %s: %.4f\n", static_cast<long long>(r.best_epoch),
              r.metric.c_str(), r.best_value);
  if (r.has_validation)
    std::printf("\nvalidation (best epoch)\n%s", r.validation.to_text(names).c_str());
  if (r.has_test) std::printf("\ntest (best model)\n%s", r.test.to_text(names).c_str());
  std::fflush(stdout);
  for (const std::string& w : r.warnings) std::fprintf(stderr, "moe: warning: %s\n", w.c_str());
  std::printf("\noutput: %s (best/, last/, metrics.jsonl, summary.json)\n",
              config->output.dir.c_str());
  if (args.report) return write_run_report(config->output.dir);
  return kExitOk;
}

}  // namespace

void add_train_command(CLI::App& app, Run* run) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model from a JSON config");
  cmd->add_option("CONFIG", args->config,
                  "The run's JSON config (docs/config.md); with --resume, defaults to "
                  "DIR/config.json");
  cmd->add_option("--set", args->overrides,
                  "Override a config key: --set model.moe.k=1 (repeatable; the value is JSON, "
                  "or else a string)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  CLI::Option* out = cmd->add_option("--out", args->out, "Output directory (overrides output.dir)")
                         ->type_name("DIR");
  cmd->add_option("--resume", args->resume,
                  "Continue the run in DIR from its last checkpoint (DIR/last), bit-identical to "
                  "an uninterrupted run with the same seed and thread count")
      ->type_name("DIR")
      ->excludes(out);
  cmd->add_option("--init", args->init,
                  "Start from the parameters of the trained model in CHECKPOINT (a best/ or last/ "
                  "directory) where names, shapes and the data's meaning match (overrides "
                  "training.init)")
      ->type_name("CHECKPOINT")
      ->excludes("--resume");
  cmd->add_option("--checkpoint-every", args->checkpoint_every,
                  "Write DIR/last every N optimizer steps as well as at each epoch end "
                  "(overrides output.checkpoint.every; 0: epoch ends only)")
      ->type_name("N")
      ->check(non_negative_integer());
  cmd->add_flag("--quiet,-q", args->quiet, "Print only the final result");
  cmd->add_flag("--overwrite", args->overwrite,
                "Replace the run already in the output directory (its checkpoints, metrics and "
                "summary); without it such a directory is refused")
      ->excludes("--resume");
  cmd->add_flag("--strict", args->strict,
                "Refuse a config that sets a key with no effect in it (a Gumbel option on a "
                "top-k gate, a text option on tabular data, ...) instead of warning");
  cmd->add_flag("--report", args->report,
                "Also write the run's HTML report, <out>/report.html (moe report)");
  cmd->callback([args, run] {
    // CONFIG is required unless --resume names a run (whose config.json is then the default).
    if (args->config.empty() && args->resume.empty()) throw CLI::RequiredError("CONFIG");
    *run = [args] {
      if (!launched_by_mpi()) {
        const std::unique_ptr<Communicator> one = solo_communicator();
        return run_train(*args, one.get());
      }
      Result<std::unique_ptr<Communicator>> job = mpi_communicator();
      if (!job) return fail(job.status());
      const int code = run_train(*args, job->get());
      if (code != kExitOk && (*job)->size() > 1) {
        // The other ranks may be waiting in a collective: leave without MPI's goodbye, and
        // mpirun ends them (a rank that failed before training fails alike everywhere).
        std::fflush(stdout);
        std::fflush(stderr);
        std::_Exit(code);
      }
      return code;
    };
  });
}

}  // namespace moe::cli
