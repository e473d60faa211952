#!/usr/bin/env bash
# The language model's training step against PyTorch, in one run: for each configuration, each
# round runs bench_lm (ours, MoE then its dense twin) and ../shared/bench/torch_lm_baseline.py in
# its tuned environment (the peer to beat: OpenMP OpenBLAS with its own kernels, tcmalloc; MoE then
# dense), alternating so that a burst of load from elsewhere hits every column. Writes a table —
# tokens/s, useful GFLOP/s, MFU against the fp32 FMA peak, ours/PyTorch — into docs/benchmarks.md
# between <!-- compare_torch_lm:begin --> and <!-- compare_torch_lm:end --> (appended when absent).
#
# Usage: bench/compare_torch_lm.sh [--build DIR | --bench PATH] [--configs "L:D:H:E:K:F:S:B:V ..."]
#                                  [--rounds N] [--steps N] [--threads N] [--peak GFLOPS]
#                                  [--no-write]
# Defaults: build/rel, "4:256:4:8:2:512:256:8:4096 8:512:8:8:2:1024:512:8:8192" (a small
# configuration, then the issue's), 2 rounds of 3 timed steps each, 2 threads, a peak of 32 fp32
# FLOPs per cycle per core (AVX2: two 8-lane FMA pipes, 2 FLOPs an FMA) at /proc/cpuinfo's clock. Installs python3-torch, libopenblas0-openmp and libtcmalloc-minimal4 with apt
# when run as root; without torch it says so and exits 0.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build/rel
bench=
configs="4:256:4:8:2:512:256:8:4096 8:512:8:8:2:1024:512:8:8192"
rounds=2
steps=3
threads=2
peak=
write=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --bench) bench=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --peak) peak=$2; shift 2 ;;
    --no-write) write=0; shift ;;
    *) echo "compare_torch_lm.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

baseline=${TORCH_BASELINE:-$root/../shared/bench/torch_lm_baseline.py}
bench=${bench:-$build/bench/bench_lm}
py=/usr/bin/python3
openblas_omp=/usr/lib/x86_64-linux-gnu/openblas-openmp
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

[[ -x $bench ]] || { echo "compare_torch_lm.sh: $bench not built (cmake --build ... --target bench_lm)" >&2; exit 1; }
[[ -f $baseline ]] || { echo "compare_torch_lm.sh: no $baseline; skipping" >&2; exit 0; }

install() {
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null || true
  elif command -v sudo >/dev/null; then
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null || true
  fi
}
if ! $py -c 'import torch' 2>/dev/null; then install python3-torch; fi
if ! $py -c 'import torch' 2>/dev/null; then
  echo "compare_torch_lm.sh: PyTorch is not available for $py; skipping the comparison" >&2
  exit 0
fi
[[ -d $openblas_omp && -f $tcmalloc ]] || install libopenblas0-openmp libtcmalloc-minimal4
torch_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE LD_LIBRARY_PATH=$openblas_omp
           LD_PRELOAD=$tcmalloc)
tuned=tuned
if [[ ! -d $openblas_omp || ! -f $tcmalloc ]]; then
  echo "compare_torch_lm.sh: OpenMP OpenBLAS or tcmalloc missing; PyTorch runs untuned" >&2
  torch_env=(env)
  tuned=default
fi

mhz=$(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
if [[ -z $peak ]]; then
  peak=$(awk -v m="$mhz" -v t="$threads" 'BEGIN { printf "%.0f", m * 1e-3 * 32 * t }')
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

for cfg in $configs; do
  IFS=: read -r l d h e k f s b v <<<"$cfg"
  ours_args=(--layers "$l" --d-model "$d" --heads "$h" --experts "$e" --topk "$k" --ffn "$f"
             --context "$s" --batch "$b" --vocab "$v" --steps "$steps")
  torch_args=(--threads "$threads" --layers "$l" --d-model "$d" --heads "$h" --experts "$e"
              --topk "$k" --ffn "$f" --context "$s" --batch "$b" --vocab "$v" --steps "$steps")
  for ((r = 1; r <= rounds; ++r)); do
    echo "== L=$l D=$d H=$h E=$e k=$k F=$f S=$s B=$b V=$v, round $r of $rounds" >&2
    OMP_NUM_THREADS=$threads "$bench" "${ours_args[@]}" --jsonl "$work/ours.jsonl" >&2
    OMP_NUM_THREADS=$threads "$bench" "${ours_args[@]}" --dense --jsonl "$work/ours.jsonl" >&2
    "${torch_env[@]}" $py "$baseline" "${torch_args[@]}" --jsonl "$work/torch.jsonl" >&2
    "${torch_env[@]}" $py "$baseline" "${torch_args[@]}" --dense --jsonl "$work/torch.jsonl" >&2
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
isa=$(grep -m1 -o -w 'avx512f' /proc/cpuinfo || true)
isa=${isa:+AVX-512}
isa=${isa:-AVX2/FMA, no AVX-512}
command_line="bench/compare_torch_lm.sh --bench ${bench#"$root"/} --configs \"$configs\" --rounds $rounds --steps $steps --threads $threads"
table=$($py - "$work" "$started" "$cpu" "$isa" "$mhz" "$threads" "$peak" "$tuned" "$command_line" \
  "$load_before" "$load_after" <<'EOF'
import json, statistics, sys
work, started, cpu, isa, mhz, threads, peak, tuned, command, load_before, load_after = sys.argv[1:12]
peak = float(peak)

def load(name):
    try:
        with open(f"{work}/{name}.jsonl") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []

def key(r):
    return (r["layers"], r["d_model"], r["topk"], r["ffn"], r["context"], r["batch"], r["vocab"])

# Per (configuration, kind): the rounds' tokens/s and GFLOP/s; the table gives their best round
# (the least disturbed by other load) and the spread.
runs = {}
for r in load("ours"):
    kind = "ours dense" if r["impl"] == "moe-dense" else "ours MoE"
    runs.setdefault((key(r), kind), []).append((r["tokens_per_s"], r["gflops"], r.get("experts")))
for r in load("torch"):
    kind = "torch dense" if r["impl"] == "torch-dense" else "torch MoE"
    runs.setdefault((key(r), kind), []).append((r["tokens_per_s"], r["gflops"], r.get("experts")))

def best(k, kind):
    v = runs.get((k, kind))
    return None if not v else max(v)

print(f"Run {started} on {threads} threads of a {cpu} ({isa}, {mhz} MHz); fp32 peak taken as "
      f"{peak:.0f} GFLOP/s (32 FLOPs per cycle per core: two 8-lane FMA pipes); PyTorch in the "
      f"{tuned} environment; "
      f"load average before {load_before}, after {load_after} (1, 5, 15 min) — a shared machine, "
      f"so only the ratios within this run mean much.")
print()
print("```")
print(command)
print("```")
print()
print("Each row: the best of the rounds (tokens/s of the median step of each), and the range over "
      "rounds in tokens/s. Useful FLOPs as torch_lm_baseline.py counts them.")
print()
print("| L | D | E | k | F | S | B | V | model | ours tok/s (range) | torch tok/s (range) | "
      "ours GFLOP/s | torch GFLOP/s | ours MFU | torch MFU | ours / torch |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for k in sorted({k for (k, _) in runs}):
    l, d, topk, f, s, b, v = k
    for model, ours_kind, torch_kind in (("MoE", "ours MoE", "torch MoE"),
                                         ("dense", "ours dense", "torch dense")):
        o, t = best(k, ours_kind), best(k, torch_kind)
        if o is None and t is None:
            continue
        e = (o or t)[2] if model == "MoE" else 0
        def rng(kind):
            vals = [x[0] for x in runs.get((k, kind), [])]
            return "—" if not vals else f"{max(vals):.0f} ({min(vals):.0f}–{max(vals):.0f})"
        fmt = lambda x, i: "—" if x is None else f"{x[i]:.1f}"
        mfu = lambda x: "—" if x is None else f"{100 * x[1] / peak:.1f}%"
        ratio = "—" if o is None or t is None else f"{o[0] / t[0]:.2f}"
        print(f"| {l} | {d} | {e} | {topk} | {f} | {s} | {b} | {v} | {model} | {rng(ours_kind)} | "
              f"{rng(torch_kind)} | {fmt(o, 1)} | {fmt(t, 1)} | {mfu(o)} | {mfu(t)} | {ratio} |")
EOF
)
echo "$table"
[[ $write -eq 1 ]] || exit 0

doc=$root/docs/benchmarks.md
$py - "$doc" "$table" <<'EOF'
import sys
doc, table = sys.argv[1], sys.argv[2]
begin, end = "<!-- compare_torch_lm:begin -->", "<!-- compare_torch_lm:end -->"
text = open(doc).read()
block = f"{begin}\n{table}\n{end}"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + block + rest.split(end, 1)[1]
else:
    text = text.rstrip("\n") + "\n\n### The language model's training step against PyTorch\n\n" + block + "\n"
open(doc, "w").write(text)
EOF
echo "compare_torch_lm.sh: table written to docs/benchmarks.md" >&2
