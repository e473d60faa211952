#!/usr/bin/env bash
# One fuzz target under ctest -L fuzz: replays the committed corpus, then fuzzes for a bounded
# time. New inputs go to a scratch corpus in the build directory (the committed one is only
# read); a crash is saved under <build>/artifacts/ and fails the test.
#
# Usage: run_fuzzer.sh FUZZER CORPUS_DIR BUILD_DIR SECONDS [RUNS]
#   With RUNS the fuzzing stops after RUNS executions instead (the long runs, `make
#   test-fuzz-long`), and SECONDS is only an upper bound.
set -euo pipefail

fuzzer=${1:?usage: run_fuzzer.sh FUZZER CORPUS_DIR BUILD_DIR SECONDS [RUNS]}
corpus=${2:?} build=${3:?} seconds=${4:?} runs=${5:-}
name=$(basename "$fuzzer")
scratch="$build/corpus-$name"
mkdir -p "$build/artifacts" "$scratch"

# rss/malloc limits: an input that makes a parser allocate by an unchecked number is a bug.
flags=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10
       "-artifact_prefix=$build/artifacts/$name-" -print_final_stats=1)
echo "== $name: replaying $(find "$corpus" -type f | wc -l) committed inputs"
"$fuzzer" "${flags[@]}" -runs=0 "$corpus"
if [ -n "$runs" ]; then
  echo "== $name: fuzzing for $runs executions (at most $seconds s)"
  "$fuzzer" "${flags[@]}" -runs="$runs" -max_total_time="$seconds" "$scratch" "$corpus"
else
  echo "== $name: fuzzing for $seconds s"
  "$fuzzer" "${flags[@]}" -max_total_time="$seconds" "$scratch" "$corpus"
fi
