#!/usr/bin/env bash
# The report in a real browser: renders the sample run's report (every chart kind) and a
# synthetic image model's report in headless Chromium, dumps the DOM the browser built and checks
# that every chart is there with content, then takes a screenshot and checks it is not blank.
#
# Chromium is Debian's `chromium` package: installed here when missing (as root, or through
# passwordless sudo); exit 77 (ctest: skipped) when it cannot be.
#
# Usage: tests/report/report_browser_test.sh PATH/TO/moe [SCREENSHOT.png]
#   With SCREENSHOT.png the sample report's screenshot is also copied there (docs/report.png).
set -uo pipefail

moe=${1:?usage: report_browser_test.sh PATH/TO/moe [SCREENSHOT.png]}
keep_shot=${2:-}
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

# check_dom DOM EXPECTED: every <svg> in the DOM Chromium built holds drawn shapes and text, and
# there are EXPECTED of them.
check_dom() {
  /usr/bin/env python3 - "$1" "$2" <<'PY' || return 1
import sys
from html.parser import HTMLParser

class Charts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.depth = 0
        self.charts = []  # [shapes, text characters] per <svg>

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.depth += 1
            self.charts.append([0, 0])
        elif self.depth and tag in ("rect", "path", "circle", "line", "image"):
            self.charts[-1][0] += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.charts[-1][1] += len(data.strip())

p = Charts()
p.feed(open(sys.argv[1], encoding="utf-8").read())
want = int(sys.argv[2])
empty = [i for i, (shapes, text) in enumerate(p.charts) if shapes < 5 or text < 10]
print(f"{len(p.charts)} charts in the DOM, {len(empty)} without content")
if len(p.charts) != want or empty:
    print(f"expected {want} charts, all with content; empty: {empty}", file=sys.stderr)
    sys.exit(1)
PY
}

# check_png PNG: decodes the screenshot (8-bit RGB/RGBA, no interlace: what Chromium writes) and
# checks that it is not blank: several colours, and a good share of non-white pixels.
check_png() {
  /usr/bin/env python3 - "$1" <<'PY' || return 1
import struct, sys, zlib

data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, width, height, bpp = 8, b"", 0, 0, 0
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
        assert depth == 8 and colour in (2, 6) and interlace == 0, "unexpected PNG format"
        bpp = 3 if colour == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
raw = zlib.decompress(idat)
stride = width * bpp
prev = bytearray(stride)
colours, ink = set(), 0
for y in range(height):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):  # undo the PNG row filter (RFC 2083 section 6)
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    if y % 4 == 0:  # every 4th row and column is plenty to judge blankness
        for x in range(0, width, 4):
            px = bytes(line[x * bpp:x * bpp + 3])
            colours.add(px)
            ink += px != b"\xff\xff\xff"
    prev = line
sampled = ((height + 3) // 4) * ((width + 3) // 4)
print(f"{width}x{height} screenshot: {len(colours)} colours, {100 * ink / sampled:.1f}% not white")
if len(colours) < 16 or ink < 0.05 * sampled:
    print("the screenshot looks blank", file=sys.stderr)
    sys.exit(1)
PY
}

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
mkdir -p "$work/images"
/usr/bin/env python3 - "$work/images/inspect.json" <<'PY'
import json, math, sys
E, H, W = 3, 8, 8
pixels = [[(math.sin(e + r * 0.7) * math.cos(c * 0.5 + e) + 1) / 2 for r in range(H) for c in range(W)]
          for e in range(E)]
layer = {"name": "blocks.0.moe", "experts": E, "k": 1, "gate": "topk_softmax",
         "load": [0.5, 0.3, 0.2], "coactivation": [[0.5, 0, 0], [0, 0.3, 0], [0, 0, 0.2]],
         "class_expert": {"counts": [[40, 5, 5], [10, 25, 15]],
                          "shares": [[0.8, 0.1, 0.1], [0.2, 0.5, 0.3]]},
         "mutual_information": 0.3, "mutual_information_max": 0.69,
         "mean_images": {"height": H, "width": W, "pixels": pixels}}
json.dump({"format": "moe.inspect", "version": 1,
           "data": {"rows": 100, "task": "classification", "classes": ["shirt", "shoe"],
                    "input": "image"}, "layers": [layer]}, open(sys.argv[1], "w"))
PY
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
