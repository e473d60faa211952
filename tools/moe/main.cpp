// The moe command-line tool: a thin client of the library. Subcommands live in cmd_<name>.cpp.
//
// Exit codes: 0 success, 1 failure with one message on stderr, 2 bad usage.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "commands.h"

namespace {

int cli_main(int argc, char** argv) {
  using namespace moe::cli;
  CLI::App app{"moe: train, evaluate and inspect Mixture-of-Experts models on a CPU"};
  app.name("moe");
  app.set_version_flag("--version", std::string("moe ") + MOE_VERSION);
  app.require_subcommand(1);
  Run run;
  add_train_command(app, &run);
  add_eval_command(app, &run);
  add_predict_command(app, &run);
  add_inspect_command(app, &run);
  add_report_command(app, &run);
  add_generate_command(app, &run);
  add_experts_command(app, &run);
  add_translate_command(app, &run);
  add_compress_command(app, &run);
  app.footer("Run `moe COMMAND --help` for a command's options.");  // after: not inherited
  // CLI11 would say only that a subcommand is required; name the word it did not know.
  if (argc > 1 && argv[1][0] != '-') {
    try {
      app.get_subcommand(argv[1]);
    } catch (const CLI::OptionNotFound&) {
      std::fprintf(
          stderr,
          "moe: unknown command '%s' (commands: train, eval, predict, inspect, report, generate, "
          "translate, experts)\n"
          "Run `moe --help` for more information.\n",
          argv[1]);
      return kExitUsage;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0.
    if (e.get_exit_code() == 0) return app.exit(e);
    app.exit(e);
    return kExitUsage;
  }
  int code = kExitUsage;
  try {
    code = run ? run() : kExitUsage;
  } catch (const std::bad_alloc&) {
    // A last resort: sizes are checked before they are allocated (config_budget.h), so this is
    // a bug or a machine already short of memory; say so in words rather than "std::bad_alloc".
    std::fprintf(stderr,
                 "moe: error: out of memory (an allocation failed; the model, the data or the "
                 "command's output is too large for this machine's free memory)\n");
    return kExitFailure;
  } catch (const std::exception& e) {
    // The library reports failures as Status; this catches what escapes from the standard
    // library (a filesystem error) so the user still gets one line, not abort().
    std::fprintf(stderr, "moe: error: %s\n", e.what());
    return kExitFailure;
  }
  // Output the C library buffered is written only now: a full disk must not exit 0.
  if (const moe::Status s = finish_stdout(); !s) return code == kExitOk ? fail(s) : code;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Setting up the command line (CLI11 builds its options on the heap) may throw too; nothing
  // may escape main as an abort.
  try {
    return cli_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe: error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "moe: error: an unexpected failure\n");
  }
  return moe::cli::kExitFailure;
}
