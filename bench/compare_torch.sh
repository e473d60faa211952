#!/usr/bin/env bash
# The MoE layer against PyTorch on the same configurations, in one run: for each configuration
# in turn, bench_moe (ours: MoE and the dense FFN of equal active FLOPs), then
# ../shared/bench/torch_moe_baseline.py in its tuned environment (the peer to beat: OpenMP
# OpenBLAS with its AVX-512 kernels, tcmalloc) and then in the machine's default environment, for
# reference. Alternating per configuration lets a burst of load from elsewhere hit every column.
# Writes a table with ours/PyTorch ratios into docs/benchmarks.md, between the markers
# <!-- compare_torch:begin --> and <!-- compare_torch:end --> (appended when absent).
#
# Usage: bench/compare_torch.sh [--build DIR | --bench PATH] [--configs "E:K:T ..."] [--modes fwd,fwdbwd]
#                               [--threads N] [--no-default-env] [--no-write]
# Defaults: build/release, "8:1:8192 8:2:8192 64:1:8192 64:2:2048 64:2:8192 256:2:8192",
# fwdbwd, 2 threads. Installs python3-torch, libopenblas0-openmp and libtcmalloc-minimal4 with
# apt when run as root; without torch it says so and exits 0.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build/release
bench=
configs="8:1:8192 8:2:8192 64:1:8192 64:2:2048 64:2:8192 256:2:8192"
modes=fwdbwd
threads=2
default_env=1
write=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --bench) bench=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --no-default-env) default_env=0; shift ;;
    --no-write) write=0; shift ;;
    *) echo "compare_torch.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

baseline=${TORCH_BASELINE:-$root/../shared/bench/torch_moe_baseline.py}
bench=${bench:-$build/bench/bench_moe}
py=/usr/bin/python3
openblas_omp=/usr/lib/x86_64-linux-gnu/openblas-openmp
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

[[ -x $bench ]] || { echo "compare_torch.sh: $bench not built (make build)" >&2; exit 1; }
[[ -f $baseline ]] || { echo "compare_torch.sh: no $baseline; skipping" >&2; exit 0; }

install() {
  if [[ $(id -u) -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null || true
  elif command -v sudo >/dev/null; then
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null || true
  fi
}
if ! $py -c 'import torch' 2>/dev/null; then install python3-torch; fi
if ! $py -c 'import torch' 2>/dev/null; then
  echo "compare_torch.sh: PyTorch is not available for $py; skipping the comparison" >&2
  exit 0
fi
[[ -d $openblas_omp && -f $tcmalloc ]] || install libopenblas0-openmp libtcmalloc-minimal4
tuned=1
if [[ ! -d $openblas_omp || ! -f $tcmalloc ]]; then
  echo "compare_torch.sh: OpenMP OpenBLAS or tcmalloc missing; no tuned PyTorch column" >&2
  tuned=0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

for cfg in $configs; do
  IFS=: read -r e k t <<<"$cfg"
  echo "== E=$e K=$k T=$t" >&2
  OMP_NUM_THREADS=$threads "$bench" --experts "$e" --topk "$k" --tokens "$t" --no-fine \
    --modes "$modes" --reps 3 --min-time 1 --jsonl "$work/ours.jsonl" >&2
  args=(--threads "$threads" --experts "$e" --topk "$k" --tokens "$t" --modes "$modes"
        --impls mixtral,switch,dense)
  if [[ $tuned -eq 1 ]]; then
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE LD_LIBRARY_PATH=$openblas_omp \
      LD_PRELOAD=$tcmalloc $py "$baseline" "${args[@]}" --jsonl "$work/tuned.jsonl" >/dev/null
  fi
  if [[ $default_env -eq 1 ]]; then
    $py "$baseline" "${args[@]}" --jsonl "$work/default.jsonl" >/dev/null
  fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
touch "$work/tuned.jsonl" "$work/default.jsonl"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
command_line="bench/compare_torch.sh --bench ${bench#"$root"/} --configs \"$configs\" --modes $modes --threads $threads"
table=$($py - "$work" "$started" "$cpu" "$threads" "$command_line" "$load_before" "$load_after" <<'EOF'
import json, sys
work, started, cpu, threads, command, load_before, load_after = sys.argv[1:8]

def load(name):
    out = []
    try:
        with open(f"{work}/{name}.jsonl") as fh:
            out = [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        pass
    return out

ours = {}
for r in load("ours"):
    ours[(r["impl"], r["mode"], r["experts"], r["topk"], r["tokens"])] = r["gflops"]
torch = {}
for env in ("tuned", "default"):
    for r in load(env):
        if r.get("kind") != "moe":
            continue
        e = r["E"] if r["impl"] != "dense" else None
        # Its fastest repetition, as ours is reported: useful FLOPs / t_min.
        best = r["useful_gflops"] * r["t_med"] / r["t_min"]
        torch[(env, r["impl"], r["mode"], e, r["k"], r["T"])] = best
        if r["impl"] == "dense":  # the dense FFN does not depend on E: file it under every E
            torch[(env, "dense", r["mode"], "any", r["k"], r["T"])] = best

def fmt(v):
    return "—" if v is None else f"{v:.0f}"

def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"

keys = sorted({(m, e, k, t) for (impl, m, e, k, t) in ours if impl == "moe"},
              key=lambda x: (x[0], x[1], x[2], x[3]))
print(f"Run {started} on {threads} threads of a {cpu}; load average before {load_before}, "
      f"after {load_after} (1, 5, 15 min).")
print()
print("```")
print(command)
print("```")
print()
print("Useful GFLOP/s (T·K·6·D·F forward, three times that for forward+backward; D = 512, "
      "F = 2048), each from the fastest repetition (PyTorch's t_min, our best step).")
print()
print("| E | K | T | mode | ours MoE | ours dense | torch mixtral tuned | torch switch tuned | "
      "torch dense tuned | mixtral default env | switch default env | ours / mixtral tuned | "
      "ours / switch tuned | ours / torch dense tuned |")
print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for (m, e, k, t) in keys:
    o = ours.get(("moe", m, e, k, t))
    od = ours.get(("dense", m, e, k, t))
    mt = torch.get(("tuned", "mixtral", m, e, k, t))
    st = torch.get(("tuned", "switch", m, e, k, t))
    dt = torch.get(("tuned", "dense", m, "any", k, t))
    md = torch.get(("default", "mixtral", m, e, k, t))
    sd = torch.get(("default", "switch", m, e, k, t))
    mode = "fwd+bwd" if m == "fwdbwd" else m
    print(f"| {e} | {k} | {t} | {mode} | {fmt(o)} | {fmt(od)} | {fmt(mt)} | {fmt(st)} | {fmt(dt)} | "
          f"{fmt(md)} | {fmt(sd)} | {ratio(o, mt)} | {ratio(o, st)} | {ratio(o, dt)} |")
EOF
)
echo "$table"
[[ $write -eq 1 ]] || exit 0

doc=$root/docs/benchmarks.md
$py - "$doc" "$table" <<'EOF'
import sys
doc, table = sys.argv[1], sys.argv[2]
begin, end = "<!-- compare_torch:begin -->", "<!-- compare_torch:end -->"
text = open(doc).read()
block = f"{begin}\n{table}\n{end}"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + block + rest.split(end, 1)[1]
else:
    text = text.rstrip("\n") + "\n\n### Against PyTorch\n\n" + block + "\n"
open(doc, "w").write(text)
EOF
echo "compare_torch.sh: table written to docs/benchmarks.md" >&2
