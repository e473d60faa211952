#!/usr/bin/env bash
# The report in a real browser: renders the sample run's report (every chart kind) and a
# synthetic image model's report in headless Chromium, dumps the DOM the browser built and checks
# that every chart is there with content, then takes a screenshot and checks it is not blank.
#
# Chromium is Debian's `chromium` package: installed here when missing (as root, or through
# passwordless sudo); exit 77 (ctest: skipped) when it cannot be.
#
# Usage: tests/report/report_browser_test.sh PATH/TO/moe PATH/TO/report_check [SCREENSHOT.png]
#   With SCREENSHOT.png the sample report's screenshot is also copied there (docs/report.png).
set -uo pipefail

moe=${1:?usage: report_browser_test.sh PATH/TO/moe PATH/TO/report_check [SCREENSHOT.png]}
check=${2:?usage: report_browser_test.sh PATH/TO/moe PATH/TO/report_check [SCREENSHOT.png]}
keep_shot=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

find_chromium() {
  for c in chromium chromium-browser; do
    if command -v "$c" >/dev/null 2>&1; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

if ! browser=$(find_chromium); then
  echo "chromium is missing: installing Debian's chromium package"
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    echo "SKIP: chromium is not installed and this user cannot install packages"
    exit 77
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get install -y --no-install-recommends chromium >"$work/apt.log" 2>&1 ||
    { "${sudo[@]}" apt-get update >>"$work/apt.log" 2>&1 &&
      "${sudo[@]}" apt-get install -y --no-install-recommends chromium >>"$work/apt.log" 2>&1; }
  if ! browser=$(find_chromium); then
    echo "SKIP: could not install chromium: $(tail -n 3 "$work/apt.log")"
    exit 77
  fi
fi

# Headless, no GPU, a throwaway profile; --no-sandbox because the sandbox refuses to run as root.
run_browser() {
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-extensions \
    --no-first-run --hide-scrollbars --user-data-dir="$work/profile" "$@" 2>>"$work/browser.log"
}

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# The DOM and screenshot checks (tests/report/report_check.cpp, built with the tests).
check_dom() { "$check" dom "$1" "$2"; }
check_png() { "$check" png "$1"; }

# 1. The sample run: 8 charts (loss, metrics, auxiliary losses, gate entropy, load over
#    training, final load, co-activation, class x expert).
"$moe" report "$here/data/sample_run" --out "$work/sample.html" >/dev/null || fail "moe report"
run_browser --dump-dom "file://$work/sample.html" >"$work/sample_dom.html" ||
  fail "chromium --dump-dom failed: $(tail -n 3 "$work/browser.log")"
check_dom "$work/sample_dom.html" 8 || fail "sample report: charts missing or empty in the DOM"
run_browser --screenshot="$work/sample.png" --window-size=1280,2400 "file://$work/sample.html" \
  >/dev/null || fail "chromium --screenshot failed: $(tail -n 3 "$work/browser.log")"
check_png "$work/sample.png" || fail "sample report: blank screenshot"

# 2. An image model (mean images as inline BMP data URIs) with no metrics.jsonl: the image grid
#    and the routing charts render, the missing file is a note.
# (tests/report/data/image_run/inspect.json: 3 experts' 8x8 mean images, two classes.)
mkdir -p "$work/images"
cp "$here/data/image_run/inspect.json" "$work/images/"
"$moe" report "$work/images" >/dev/null || fail "moe report (images)"
run_browser --dump-dom "file://$work/images/report.html" >"$work/images_dom.html" ||
  fail "chromium --dump-dom (images) failed"
check_dom "$work/images_dom.html" 4 || fail "image report: charts missing or empty"
grep -q 'No metrics.jsonl' "$work/images_dom.html" || fail "image report: no note for metrics"
run_browser --screenshot="$work/images.png" --window-size=1280,1600 \
  "file://$work/images/report.html" >/dev/null || fail "chromium --screenshot (images) failed"
check_png "$work/images.png" || fail "image report: blank screenshot"

if [ -n "$keep_shot" ]; then cp "$work/sample.png" "$keep_shot"; fi
if [ "$failures" -gt 0 ]; then
  echo "$failures browser check(s) failed" >&2
  exit 1
fi
echo "all browser checks passed"
