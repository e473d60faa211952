# shellcheck shell=bash
# Sourced by the end-to-end scripts of the moe command (tests/cli, tests/report, tests/interop):
# their temporary directory, failure count, the moe-call checker, the tiny tabular data and the
# tiny English-like corpus.
#
# After `cli_setup PATH/TO/moe` the script has $moe, $work (a fresh directory removed on exit),
# failures=0 (fail counts) and checks=0 (expect counts); it ends with `cli_finish NAME`, which
# exits 1 when any check failed.

cli_setup() {
  moe=${1:?cli_setup: the path of moe}
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  failures=0
  checks=0
}

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect CODE PATTERN -- ARGS...: runs moe ARGS with stdout in $work/out and stderr in $work/err,
# checks the exit code, and that PATTERN (a grep -E expression, empty for none) occurs in stdout
# + stderr. For exit 1 stderr must be one line starting 'moe: error: '.
expect() {
  local code=$1 pattern=$2
  shift 3
  checks=$((checks + 1))
  "$moe" "$@" >"$work/out" 2>"$work/err"
  check_result "$code" "$pattern" "moe $*" $?
}

# with_stdout FILE CODE PATTERN -- ARGS...: expect, with moe's standard output sent to FILE.
with_stdout() {
  local file=$1 code=$2 pattern=$3
  shift 4
  checks=$((checks + 1))
  : >"$work/out"
  "$moe" "$@" >"$file" 2>"$work/err"
  check_result "$code" "$pattern" "moe $* >$file" $?
}

# check_result CODE PATTERN WHAT GOT: the checks of expect for a command run some other way
# (its output in $work/out and $work/err, its exit code GOT).
check_result() {
  local code=$1 pattern=$2 what=$3 got=$4
  if [ "$got" -ne "$code" ]; then
    fail "$what exited $got, expected $code; stderr: $(head -c 500 "$work/err")"
    return
  fi
  # grep reads the files itself: `cat ... | grep -q` under pipefail failed whenever grep matched
  # and exited before cat had written stderr's part (cat then dies of SIGPIPE).
  if [ -n "$pattern" ] && ! grep -qE -- "$pattern" "$work/out" "$work/err"; then
    fail "$what: no match for /$pattern/ in: $(head -c 500 "$work/out" "$work/err")"
  fi
  if [ "$code" -eq 1 ]; then
    local lines
    lines=$(wc -l <"$work/err")
    [ "$lines" -eq 1 ] || fail "$what: $lines lines on stderr, expected one: $(cat "$work/err")"
    grep -q '^moe: error: ' "$work/err" || fail "$what: stderr lacks 'moe: error:'"
  fi
}

# colour_table FILE ROWS SEED SIGN SHIFT [y]: a CSV of ROWS rows x1,x2,colour,label (and y with a
# sixth argument): x1, x2 uniform in [-1, 1), a colour of red, green, blue; with score = x1 +
# SIGN * x2 + (SHIFT for red, -SHIFT for blue, 0 for green), label is yes when score > 0 and
# y = 100 + 30 * score. A fixed LCG seeded with SEED keeps the file the same on every run.
colour_table() {
  awk -v n="$2" -v s="$3" -v sign="$4" -v shift="$5" -v with_y="${6:+1}" 'BEGIN {
    print "x1,x2,colour,label" (with_y ? ",y" : "")
    split("red green blue", colours, " ")
    for (i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) % 2147483648; x1 = s / 2147483648 * 2 - 1
      s = (s * 1103515245 + 12345) % 2147483648; x2 = s / 2147483648 * 2 - 1
      s = (s * 1103515245 + 12345) % 2147483648; c = colours[int(s / 2147483648 * 3) + 1]
      score = x1 + sign * x2 + (c == "red" ? shift : (c == "blue" ? -shift : 0))
      printf "%.4f,%.4f,%s,%s", x1, x2, c, (score > 0 ? "yes" : "no")
      printf (with_y ? ",%.4f\n" : "\n"), 100 + 30 * score
    }
  }' >"$1"
}

# config_file FILE DATA MODEL TRAINING [MORE]: a config whose data, model and training sections
# are the JSON values given, and MORE further top-level members ("output": {...}).
config_file() {
  printf '{"data": %s,\n "model": %s,\n "training": %s%s}\n' "$2" "$3" "$4" "${5:+,
 $5}" >"$1"
}

# tabular_config FILE CSV SPLIT MODEL TRAINING [MORE]: config_file for a CSV whose label column is
# `label`, split as SPLIT ({"validation": ...}) says.
tabular_config() {
  config_file "$1" "{\"train\": \"$2\", \"label\": \"label\", \"split\": $3}" "$4" "$5" "${6:-}"
}

# sentences FILE N SEED: N lines of English-like text (about 40 bytes each).
sentences() {
  awk -v n="$2" -v s="$3" 'BEGIN {
    split("the a her his one every that this", det, " ")
    split("captain lady sister letter house garden morning friend carriage evening", noun, " ")
    split("saw found walked wrote kept left loved heard", verb, " ")
    split("quietly again at last with care in town by the sea", adv, " ")
    for (i = 0; i < n; i++) {
      line = ""
      for (j = 0; j < 2; j++) {
        s = (s * 1103515245 + 12345) % 2147483648; d = int(s / 2147483648 * 8) + 1
        s = (s * 1103515245 + 12345) % 2147483648; a = int(s / 2147483648 * 10) + 1
        s = (s * 1103515245 + 12345) % 2147483648; v = int(s / 2147483648 * 8) + 1
        s = (s * 1103515245 + 12345) % 2147483648; b = int(s / 2147483648 * 10) + 1
        line = line (j ? " and " : "") det[d] " " noun[a] " " verb[v] " " det[(d % 8) + 1] " " noun[b]
      }
      s = (s * 1103515245 + 12345) % 2147483648
      print toupper(substr(line, 1, 1)) substr(line, 2) (s % 3 ? "." : ", " adv[int(s / 2147483648 * 9) + 1] ".")
    }
  }' >"$1"
}

# cli_finish NAME: the closing line, and exit 1 when any check failed.
cli_finish() {
  if [ "$failures" -gt 0 ]; then
    echo "$1: $failures check(s) failed" >&2
    exit 1
  fi
  echo "$1: all checks passed"
}
