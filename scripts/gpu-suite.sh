#!/usr/bin/env bash
# A suite on one CUDA GPU, several runs at once, within a time budget. First a
# concurrency probe: the same short paper-scale training alone, then GPU_SUITE_JOBS copies at
# once, then (where NVIDIA's MPS daemon starts) the copies at once under MPS, which lets
# kernels of different processes share the GPU instead of taking turns; the suite then runs
# under MPS when that was faster. Then `fixclf suite --jobs`, stopped like Ctrl-C when the
# budget is spent (every run keeps its checkpoint; the same command resumes it), and the
# suite's report (so far).
#
#   scripts/gpu-suite.sh [configs/wt2-paper.toml]
#
# Environment: FIXCLF_BIN (default: built with --features cuda into target/cuda), OUT (default
# reports/gpu-suite), GPU_SUITE_SECONDS (budget of the suite, 0 = none; default 0),
# GPU_SUITE_JOBS (runs at once, default 5), GPU_SUITE_ONLY (run names, default the paper's five:
# "learned tied fixed-orthogonal fixed-word2vec fixed-pmi"), GPU_SUITE_SET (space-separated
# KEY=VALUE overrides of every run), GPU_MPS (auto: MPS when the probe found it faster; on:
# MPS, whatever the probe; off: no MPS; default auto), GPU_PROBE_STEPS
# (steps of each probe run, default 1000; 0: no probe, and MPS only when on), GPU_SUITE_PROBE_ONLY (1: the
# probe, whatever the budget, and no suite).
# Results in $OUT: probe.md, suite.log, report/ (table, curves, alpha), runs/<run>/ metrics
# and logs (no checkpoints).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
suite=${1:-configs/wt2-paper.toml}
case "${GPU_MPS:-auto}" in auto | on | off) ;; *) echo "gpu-suite: GPU_MPS is auto, on or off, got '$GPU_MPS'" >&2; exit 2 ;; esac
. scripts/gpu-common.sh
gpu_require gpu-suite "on a CPU: fixclf suite --config $suite"
gpu_binary
out=${OUT:-reports/gpu-suite}
budget=${GPU_SUITE_SECONDS:-0}
jobs=${GPU_SUITE_JOBS:-5}
only=${GPU_SUITE_ONLY:-"learned tied fixed-orthogonal fixed-word2vec fixed-pmi"}
probe_steps=${GPU_PROBE_STEPS:-1000}
mps=${GPU_MPS:-auto}
python=${FIXCLF_PYTHON:-python3}
start=$(date +%s)
gpu_sees_cuda gpu-suite >/dev/null
mkdir -p "$out"
tmp=$(mktemp -d)
say() { echo "gpu-suite: $* ($(($(date +%s) - start)) s)"; }

mps_dirs() {
  export CUDA_MPS_PIPE_DIRECTORY="$tmp/mps-pipe" CUDA_MPS_LOG_DIRECTORY="$tmp/mps-log"
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
}
mps_start() {
  command -v nvidia-cuda-mps-control >/dev/null || { echo "no nvidia-cuda-mps-control here"; return 1; }
  mps_dirs
  timeout 20 nvidia-cuda-mps-control -d
}
mps_stop() {
  [ -n "${CUDA_MPS_PIPE_DIRECTORY:-}" ] || return 0
  echo quit | timeout 20 nvidia-cuda-mps-control >/dev/null 2>&1
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
}
trap 'mps_stop; rm -rf "$tmp"' EXIT

# n copies of a short fixed-orthogonal training at once; prints the steps per second of all
# together, from the middle of their logs (when all of them run).
probe() {
  local n=$1 tag=$2 i extra=()
  for kv in ${GPU_SUITE_SET:-}; do extra+=(--set "$kv"); done
  for i in $(seq 1 "$n"); do
    timeout -s INT -k 10 120 "$bin" train --config configs/lm-wt2.toml --force -q "${extra[@]}" \
      --set name="probe-$tag-$i" --set runs_dir=\""$tmp/probe"\" --set head.mode=fixed-orthogonal \
      --set train.epochs=1 --set train.max_steps_per_epoch="$probe_steps" --set train.log_interval=50 \
      --set lm.data.valid_tokens=20000 --set lm.data.test_tokens=5000 >"$tmp/probe-$tag-$i.log" 2>&1 &
  done
  wait
  "$python" - "$tmp/probe" "$tag" "$n" <<'PY'
import glob, json, statistics, sys
root, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rates = []
for path in sorted(glob.glob(f"{root}/probe-{tag}-*/metrics.jsonl")):
    logs = [e for e in map(json.loads, open(path)) if e.get("event") == "log"]
    mid = logs[len(logs) // 4 : len(logs) - len(logs) // 4] or logs
    if mid:
        rates.append(1000.0 / statistics.median(l["ms_per_batch"] for l in mid))
total = sum(rates) if len(rates) == n else float("nan")
print(f"| {tag} | {n} | {len(rates)} | {total:.0f} | {total / n:.0f} |")
PY
}

use_mps=false
probe_only=${GPU_SUITE_PROBE_ONLY:-0}
if [ "$probe_only" != 1 ] && [ "$budget" -gt 0 ] && [ "$budget" -lt 180 ] && [ "$probe_steps" -gt 0 ]; then
  say "no concurrency probe: a budget of $budget s leaves it no time"
  probe_steps=0
fi
if [ "$probe_steps" -gt 0 ]; then
  {
    echo "Concurrency probe: fixed-orthogonal at paper size, $probe_steps steps per run, steps/s"
    echo "from the middle half of each run's log lines."
    echo
    echo "| how | runs | runs measured | steps/s, all | steps/s, each |"
    echo "|---|--:|--:|--:|--:|"
  } >"$out/probe.md"
  say "concurrency probe"
  probe 1 alone >>"$out/probe.md"
  probe "$jobs" together >>"$out/probe.md"
  if [ "$mps" != off ]; then
    # A client that cannot reach the daemon may hang rather than fail: one short bench first.
    if mps_start >"$tmp/mps-start.log" 2>&1 &&
      timeout -k 5 40 "$bin" bench lm --device cuda --modes fixed --steps 2 >>"$tmp/mps-start.log" 2>&1; then
      probe "$jobs" together-mps >>"$out/probe.md"
      mps_stop
    else
      mps_stop
      echo "MPS: did not start or serve a client ($(tail -n1 "$tmp/mps-start.log"))" >>"$out/probe.md"
    fi
  fi
  # MPS for the suite when it gave at least 10 % more steps per second than without.
  use_mps=$("$python" - "$out/probe.md" <<'PY'
import sys
rows = {l.split("|")[1].strip(): l.split("|")[4].strip() for l in open(sys.argv[1]) if l.startswith("| together")}
try:
    print(str(float(rows["together-mps"]) > 1.1 * float(rows["together"])).lower())
except (KeyError, ValueError):
    print("false")
PY
)
  [ "$mps" = on ] && use_mps=true
  echo "MPS for the suite: $use_mps" >>"$out/probe.md"
  cat "$out/probe.md"
fi
[ "$probe_only" = 1 ] && exit 0

[ "$mps" = on ] && use_mps=true
[ "$use_mps" = true ] && { mps_start || use_mps=false; }
say "the suite, MPS $use_mps"
args=(suite --config "$suite" --jobs "$jobs")
for name in $only; do args+=(--only "$name"); done
for kv in ${GPU_SUITE_SET:-}; do args+=(--set "$kv"); done
status=0
if [ "$budget" -gt 0 ]; then
  left=$((budget - ($(date +%s) - start)))
  [ "$left" -gt 30 ] || left=30
  # SIGINT to the suite's process group: each run saves its checkpoint and stops.
  timeout --preserve-status -s INT -k 90 "$left" "$bin" "${args[@]}" 2>&1 | tee "$out/suite.log" || status=$?
else
  "$bin" "${args[@]}" 2>&1 | tee "$out/suite.log" || status=$?
fi
mps_stop
say "suite exit status $status (130: stopped at the budget, resumable)" | tee -a "$out/suite.log"

# What the runs wrote, without checkpoints; the report the suite wrote (also when stopped).
suite_name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$suite" | head -n1)
runs_dir=$(sed -n 's/^runs_dir *= *"\(.*\)"/\1/p' "$suite" | head -n1); runs_dir=${runs_dir:-runs}
reports_dir=$(sed -n 's/^reports_dir *= *"\(.*\)"/\1/p' "$suite" | head -n1); reports_dir=${reports_dir:-reports}
mkdir -p "$out/runs"
for d in "$runs_dir/$suite_name"/*/ "$runs_dir/$suite_name/.jobs"; do
  [ -d "$d" ] || continue
  mkdir -p "$out/runs/$(basename "$d")"
  find "$d" -maxdepth 1 -type f ! -name '*.safetensors' -exec cp {} "$out/runs/$(basename "$d")/" \;
done
[ -d "$reports_dir/$suite_name" ] && cp -r "$reports_dir/$suite_name" "$out/report"
say "results in $out"
[ "$status" = 0 ] || [ "$status" = 130 ]
