#!/usr/bin/env bash
# The library's folders are floors: each may include its own headers and those of the floors
# below it, never one above (docs/architecture.md). This test reads every #include "moe/<folder>/"
# in src/<folder> and include/moe/<folder> and fails on one that runs upward, naming the file,
# the line and what the folder may include.
#
# Usage: tests/architecture/floors_test.sh [REPO]
set -uo pipefail
repo="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

# What each folder may include (itself and the floors below it).
declare -A may=(
  [core]="core"
  [kernels]="core kernels"
  [io]="core io"
  [dist]="core dist"
  [data]="core io data"
  [optim]="core kernels optim"
  [layers]="core kernels layers"
  [moe]="core kernels dist layers moe"
  [model]="core kernels dist data layers moe model"
  [train]="core kernels io dist data optim layers moe model train"
  [report]="core io data model train report"
)

failures=0
checked=0
for dir in "$repo"/src/* "$repo"/include/moe/*; do
  [ -d "$dir" ] || continue
  folder=$(basename "$dir")
  if [ -z "${may[$folder]+set}" ]; then
    echo "floors_test: $dir: a folder with no floor; add it to this test and docs/architecture.md"
    failures=$((failures + 1))
    continue
  fi
  while IFS=: read -r file line text; do
    checked=$((checked + 1))
    target=$(sed -E 's/.*#include "moe\/([a-z_]+)\/.*/\1/' <<<"$text")
    case " ${may[$folder]} " in
      *" $target "*) ;;
      *)
        echo "floors_test: ${file#"$repo"/}:$line: $folder includes moe/$target/ (it may include: ${may[$folder]})"
        failures=$((failures + 1))
        ;;
    esac
  done < <(grep -rnE '^#include "moe/[a-z_]+/' "$dir" --include='*.h' --include='*.cpp')
done

if [ "$checked" -eq 0 ]; then
  echo "floors_test: no includes found under $repo (wrong path?)"
  exit 1
fi
echo "floors_test: $checked includes checked, $failures running upward"
[ "$failures" -eq 0 ]
