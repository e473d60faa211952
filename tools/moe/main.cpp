// The moe command-line tool: a thin client of the library.
#include <CLI/CLI.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"moe: train, evaluate, inspect and serve Mixture-of-Experts models on a CPU"};
  app.set_version_flag("--version", std::string("moe ") + MOE_VERSION);
  app.require_subcommand(0);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::puts(app.help().c_str());
  return 0;
}
