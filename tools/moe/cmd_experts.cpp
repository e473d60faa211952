// moe experts DIR add|split|remove|freeze [--layer L] [--expert E] [--noise X] [--gap G]
//                 [--seed S] --out OUT
//
// Changes one MoE layer of a checkpoint directory (model.json) or of a run directory (config.json
// and last/): train/surgery.h says what each operation does and keeps. OUT is new; from a run
// directory it is a run that `moe train --resume OUT` continues.
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "commands.h"
#include "moe/train/surgery.h"

namespace moe::cli {

namespace {

struct ExpertsArgs {
  std::string dir;
  std::string op;
  int64_t layer = -1;
  int64_t expert = -1;
  float noise = 0.0f;
  float gap = 20.0f;
  uint64_t seed = 1;
  std::string out;
};

int run_experts(const ExpertsArgs& args) {
  ExpertSurgery s;
  if (!parse_enum_name(kExpertOpNames, args.op, &s.op))
    return fail(Status::error("{}: not an operation (add, split, remove, freeze)", args.op));
  s.layer = args.layer;
  s.expert = args.expert;
  s.noise = args.noise;
  s.gap = args.gap;
  s.seed = args.seed;
  if (s.op != ExpertOp::kSplit && args.noise != 0.0f)
    return fail(Status::error("--noise: only split perturbs its copies"));
  if (s.op != ExpertOp::kAdd && args.gap != 20.0f)
    return fail(Status::error("--gap: only add places a new expert's logit"));
  namespace fs = std::filesystem;
  const bool is_run = fs::exists(fs::path(args.dir) / "config.json") &&
                      !fs::exists(fs::path(args.dir) / kCheckpointJsonFile);
  if (!is_run && !fs::exists(fs::path(args.dir) / kCheckpointJsonFile))
    return fail(
        Status::error("{}: neither a checkpoint directory ({}) nor a run directory "
                      "(config.json and last/)",
                      args.dir, kCheckpointJsonFile));
  Result<SurgeryResult> r =
      is_run ? operate_on_run(args.dir, s, args.out) : operate_on_checkpoint(args.dir, s, args.out);
  if (!r) return fail(r.status());
  std::string text =
      fmt::format("{}: {} experts, now {}\n", r->layer, r->experts_before, r->experts_after);
  for (const std::string& note : r->notes) text += "  " + note + "\n";
  text += fmt::format("wrote {}{}\n", args.out,
                      is_run ? fmt::format(" (continue it: moe train --resume {})", args.out) : "");
  if (Status st = write_stdout(text); !st) return fail(st);
  return kExitOk;
}

}  // namespace

void add_experts_command(CLI::App& app, Run* run) {
  auto args = std::make_shared<ExpertsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "experts", "Add, split, remove or freeze an expert of a trained checkpoint or run");
  cmd->add_option("DIR", args->dir, "A checkpoint directory (<out>/best) or a run directory")
      ->required();
  cmd->add_option("OPERATION", args->op, "add, split, remove or freeze")->required();
  cmd->add_option("--layer", args->layer, "The MoE layer (0, 1, …; needed when there are several)")
      ->check(non_negative_integer());
  cmd->add_option("--expert", args->expert,
                  "The expert to split, remove or freeze; for add, the one to copy (default: a "
                  "fresh expert)")
      ->check(non_negative_integer());
  cmd->add_option("--noise", args->noise,
                  "split: perturb the two copies by ± this fraction of each weight's RMS");
  cmd->add_option("--gap", args->gap,
                  "add: how far below its source's logit the new expert's starts (default 20)");
  cmd->add_option("--seed", args->seed, "A fresh expert's initialisation, split's perturbation");
  cmd->add_option("--out", args->out, "The new directory to write")->required();
  cmd->callback([args, run] { *run = [args] { return run_experts(*args); }; });
}

}  // namespace moe::cli
