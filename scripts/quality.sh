#!/usr/bin/env bash
# The quality suite (docs/quality.md): nine public data sets from Debian packages, each split once
# into training and test files; on each, an MoE model with a first-try config taken from the
# closest example in examples/, the dense model of equal active parameters (the same config with
# model.dense=true), and three scikit-learn baselines (tools/quality_baselines.py). Prints one
# table of test-set scores and routing statistics, and writes it to
# data/cache/quality/results.md; per-set results stay in data/cache/quality/results/.
#
# Not part of `make test`: it takes minutes, and its figures are measurements, not pass/fail.
# Usage: scripts/quality.sh [--table] [MOE_BINARY] [SET...]
#   --table     only rebuild the tables from the results already in data/cache/quality
#   MOE_BINARY  default build/release/tools/moe/moe
#   SET         any of austen digits letter satellite glass spam credit diabetes chicago (all)
# Uses one thread throughout (training.threads=1, OMP_NUM_THREADS=1).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
table_only=false
if [ "${1:-}" = --table ]; then
  table_only=true
  shift
fi
moe="${1:-build/release/tools/moe/moe}"
shift || true
all_sets=(austen digits letter satellite glass spam credit diabetes chicago)
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=("${all_sets[@]}")

python=/usr/bin/python3
dir=data/cache/quality
export OMP_NUM_THREADS=1

die() {
  echo "quality: $*" >&2
  exit 1
}
$table_only || [ -x "$moe" ] || die "no moe binary at '$moe' (build it with 'make build', or pass its path)"
$table_only || scripts/fetch_quality_data.sh "$dir"
command -v jq >/dev/null 2>&1 || die "jq is needed (apt-get install jq)"
[ -x "$python" ] || die "$python is needed (apt-get install python3-sklearn)"
mkdir -p "$dir/configs" "$dir/runs" "$dir/results"

# Which example each set's config starts from, and what kind of set it is.
template_of() {
  case "$1" in
    austen) echo text ;;
    diabetes | chicago) echo regression ;;
    *) echo classification ;;
  esac
}

# Writes the first-try config of set $1 to stdout: the example's model and training sections
# unchanged; data paths, label, task and validation split set for this data. Where the task
# changes (ames.json is a regression), the regression-only keys (Huber loss, target
# standardisation, early stopping on r2) give way to classification's defaults and early
# stopping on accuracy. credit has missing cells, which moe reads only with missing = impute.
make_config() {
  local name="$1" train="$dir/${1}_train.csv" test="$dir/${1}_test.csv" out="$dir/runs/$1/moe"
  case "$(template_of "$name")" in
    text)
      jq --arg tr "$train" --arg te "$test" --arg out "$out" '
        .data.train = $tr | .data.test = $te | .data.label = "label"
        | .data.split = {"validation": 0.1, "seed": 1}
        | .training.optimizer = "adamw" | .training.weight_decay = 0.01
        | del(.training.threads) | .output.dir = $out' examples/finefoods.json
      ;;
    regression)
      jq --arg tr "$train" --arg te "$test" --arg out "$out" '
        .data.train = $tr | .data.test = $te | .data.label = "target"
        | .data.split = {"validation": 0.15, "seed": 1} | .output.dir = $out' examples/ames.json
      ;;
    classification)
      jq --arg tr "$train" --arg te "$test" --arg out "$out" --arg name "$name" '
        .data.train = $tr | .data.test = $te | .data.label = "label"
        | .data.task = "classification" | del(.data.standardize_targets)
        | .data.split = {"validation": 0.15, "seed": 1}
        | del(.training.loss) | .training.early_stopping.metric = "accuracy"
        | if $name == "credit" then .data.missing = "impute" else . end
        | .output.dir = $out' examples/ames.json
      ;;
  esac
}

for name in "${sets[@]}"; do
  case " ${all_sets[*]} " in *" $name "*) ;; *) die "unknown set '$name' (sets: ${all_sets[*]})" ;; esac
  $table_only && continue
  echo "== $name"
  if [ ! -s "$dir/${name}_test.csv" ]; then
    "$python" tools/quality_baselines.py split "$dir" "$name"
  fi
  make_config "$name" >"$dir/configs/$name.json"
  for variant in moe dense; do
    run="$dir/runs/$name/$variant"
    extra=(--set training.threads=1 --out "$run" --overwrite)
    [ "$variant" = dense ] && extra+=(--set model.dense=true)
    mkdir -p "$dir/runs/$name"
    if ! "$moe" train "$dir/configs/$name.json" "${extra[@]}" --quiet \
      >"$dir/runs/$name/$variant.log" 2>&1; then
      tail -20 "$dir/runs/$name/$variant.log" >&2
      die "moe train failed on $name ($variant); log: $dir/runs/$name/$variant.log"
    fi
  done
  # Routing of the MoE's best model over the training file (more rows than the validation part
  # that <run>/inspect.json looks at, for steadier statistics).
  "$moe" inspect "$dir/runs/$name/moe/best" "$dir/${name}_train.csv" --json \
    --out "$dir/results/$name.inspect.json"
  "$python" -W ignore tools/quality_baselines.py fit "$dir" "$name" "$dir/results/$name.baselines.json"
done

# The table: one row per set. Classification cells are "accuracy / macro F1", regression cells
# R², all on the test file.
table="$dir/results.md"
{
  echo "| set | kind | train / test rows | classes | MoE | dense | LR / Ridge | MLP | HGB | experts (E, k) | dead | silent | gate entropy per row, % of max | MI label;expert, % of max | warnings MoE / dense |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for name in "${sets[@]}"; do
    b="$dir/results/$name.baselines.json"
    i="$dir/results/$name.inspect.json"
    m="$dir/runs/$name/moe/summary.json"
    d="$dir/runs/$name/dense/summary.json"
    jq -r -n --arg name "$name" --arg kind "$(template_of "$name")" \
      --slurpfile b "$b" --slurpfile i "$i" --slurpfile m "$m" --slurpfile d "$d" '
      def f3: (. * 1000 | round) as $n | ($n | fabs) as $a
              | (if $n < 0 then "-" else "" end) + ($a / 1000 | floor | tostring) + "."
                + ($a % 1000 + 1000 | tostring | .[1:]);
      def cls: if $b[0].task == "classification" then "\(.accuracy | f3) / \(.f1_macro | f3)"
               else (.r2 | f3) end;
      def moe_cls: if $b[0].task == "classification" then "\(.accuracy | f3) / \(.f1 | f3)"
                   else (.r2 | f3) end;
      ($i[0].layers[0]) as $l
      | [$name, (if $kind == "classification" then "tabular" else $kind end),
         "\($b[0].train_rows) / \($b[0].test_rows)",
         ($b[0].classes // "—" | tostring),
         ($m[0].test | moe_cls), ($d[0].test | moe_cls),
         ($b[0].models.linear | cls), ($b[0].models.mlp | cls), ($b[0].models.hgb | cls),
         "\($l.experts), \($l.k)",
         ($l.dead | length | tostring), ($l.silent | length | tostring),
         ($l.entropy_mean / $l.entropy_max * 100 | round | tostring),
         (if $l.mutual_information == null then "—"
          else ($l.mutual_information / $l.mutual_information_max * 100 | round | tostring) end),
         "\($m[0].warnings | length) / \($d[0].warnings | length)"]
      | "| " + join(" | ") + " |"'
  done
  echo
  echo "Seconds to train (moe: the whole run, with its early stopping; scikit-learn: fit and predict):"
  echo
  echo "| set | MoE | dense | LR / Ridge | MLP | HGB | MoE epochs (best) | dense epochs (best) |"
  echo "|---|---|---|---|---|---|---|---|"
  for name in "${sets[@]}"; do
    jq -r -n --arg name "$name" --slurpfile b "$dir/results/$name.baselines.json" \
      --slurpfile m "$dir/runs/$name/moe/summary.json" \
      --slurpfile d "$dir/runs/$name/dense/summary.json" '
      def s1: (. * 10 | round) as $n | "\($n / 10 | floor).\($n % 10)";
      [$name, ($m[0].seconds | s1), ($d[0].seconds | s1),
       ($b[0].models.linear.seconds | s1), ($b[0].models.mlp.seconds | s1),
       ($b[0].models.hgb.seconds | s1),
       "\($m[0].epochs) (\($m[0].best_epoch))", "\($d[0].epochs) (\($d[0].best_epoch))"]
      | "| " + join(" | ") + " |"'
  done
} >"$table.tmp"
mv "$table.tmp" "$table"
cat "$table"
