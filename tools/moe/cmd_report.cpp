// moe report RUN_DIR [--out FILE]
//
// Writes the run's training report: one self-contained HTML file (inline SVG, no scripts, no
// network) with the verdict on routing, training curves, the best model's routing per MoE layer
// and the run's summary and config (moe/report/report.h). Default output: RUN_DIR/report.html.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "commands.h"
#include "moe/core/file_io.h"
#include "moe/report/report.h"

namespace moe::cli {

namespace {

struct ReportArgs {
  std::string run_dir;
  std::string out;
};

int run_report(const ReportArgs& args) {
  const std::string out =
      args.out.empty() ? (std::filesystem::path(args.run_dir) / "report.html").string() : args.out;
  if (Status s = check_output_file(out); !s) return fail(s);
  const Status written = report::write_report(args.run_dir, out);
  if (!written) return fail(written);
  std::printf("report: %s\n", out.c_str());
  return kExitOk;
}

}  // namespace

int write_run_report(const std::string& run_dir) {
  return run_report(ReportArgs{run_dir, ""});
}

void add_report_command(CLI::App& app, Run* run) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Write a run's HTML report: routing verdict, training curves, routing charts");
  cmd->add_option("RUN_DIR", args->run_dir,
                  "A run's output directory (metrics.jsonl, summary.json, config.json, "
                  "inspect.json)")
      ->required();
  cmd->add_option("--out", args->out, "Output file (default RUN_DIR/report.html)")
      ->type_name("FILE");
  cmd->callback([args, run] { *run = [args] { return run_report(*args); }; });
}

}  // namespace moe::cli
