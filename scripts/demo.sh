#!/usr/bin/env bash
# The demo `make demo` runs, given the build directory.
set -euo pipefail
build=${1:-build/release}
exec "$build/examples/moe_synthetic_demo"
