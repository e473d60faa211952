#!/usr/bin/env bash
# The commands the README and docs/ show, run as a reader would type them, so the documentation
# cannot drift from the tool (as doc tests do in Rust).
#
# Every fenced block whose info string is `sh` in README.md and docs/*.md is run, line by line in
# order, in one bash session: `moe` is the built command, the working directory is a scratch
# directory where `examples/`, `scripts/`, `tools/` and `data/` point into the repository (so
# `runs/` and any output land in the scratch directory), and each line must exit 0. Comment
# lines and the text after ` # ` are the reader's notes and are not run; a line ending in `\`
# continues on the next. Blocks meant as illustration use another info string (`text`, none).
#
# Usage: tests/docs/docs_test.sh PATH/TO/moe [REPO]
set -uo pipefail

moe_bin=$(realpath "${1:?usage: docs_test.sh PATH/TO/moe [REPO]}")
repo=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$repo/data"
for d in examples scripts tools data; do ln -s "$repo/$d" "$work/$d"; done

# The sh blocks of one Markdown file, as "FILE:LINE<TAB>COMMAND" (continuations joined).
extract() {
  awk -v file="$1" '
    /^```/ {
      if (!inb) { inb = 1; run = ($0 ~ /^```sh[ \t]*$/); next }
      inb = 0; run = 0; next
    }
    inb && run {
      line = $0
      sub(/^[ \t]+/, "", line)
      if (cont != "") { line = cont " " line; start = cont_start } else { start = NR }
      if (line ~ /\\$/) { sub(/\\$/, "", line); cont = line; cont_start = start; next }
      cont = ""
      if (line ~ /^#/ || line == "") next
      sub(/[ \t]+#[ \t].*$/, "", line)
      printf "%s:%d\t%s\n", file, start, line
    }' "$1"
}

{
  extract "$repo/README.md"
  for f in "$repo"/docs/*.md; do extract "$f"; done
} >"$work/commands.tsv"

n=$(wc -l <"$work/commands.tsv")
if [ "$n" -eq 0 ]; then
  echo "FAIL: no sh blocks found in README.md or docs/" >&2
  exit 1
fi

failures=0
passed=0
cd "$work" || exit 1
moe() { "$moe_bin" "$@"; }
while IFS=$'\t' read -r where cmd; do
  where=${where#"$repo/"}
  echo "== $where: $cmd"
  t0=$SECONDS
  status=0
  (eval "$cmd") </dev/null >"$work/out" 2>&1 || status=$?
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    echo "   ok ($((SECONDS - t0)) s)"
  else
    failures=$((failures + 1))
    echo "FAIL: $where: exit $status: $cmd" >&2
    tail -n 15 "$work/out" | sed 's/^/   | /' >&2
  fi
done <"$work/commands.tsv"

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
