#!/usr/bin/env bash
# The GPU check (issue 15): on a machine with a CUDA GPU, build fixclf with CUDA, show what
# it sees, time its LM step against PyTorch's on the same GPU, and train one paper-scale
# WikiText-2 epoch per setting. Everything lands in $OUT (default reports/gpu-check/):
# info.txt, bench.jsonl (fixclf and PyTorch, one JSON line each), epoch-*.log, summary.md.
#
#   scripts/gpu-check.sh               # build here (Rust + the full torch wheel), then run
#   FIXCLF_BIN=path/to/fixclf scripts/gpu-check.sh
#                                      # a binary built elsewhere with --features cuda
#                                      # (a machine without Rust: see ../shared/docs/gpu.md)
# Environment: FIXCLF_PYTHON (a python with CUDA torch, for the reference; default: the
# cache's full wheel, else python3), GPU_CHECK_STEPS (bench steps, default 100),
# GPU_CHECK_EPOCH_STEPS (steps of each "epoch" run, default 0: the whole epoch, 2,983 steps),
# GPU_CHECK_RUNS (default "learned:fp32 fixed-orthogonal:fp32 learned:tf32
# fixed-orthogonal:tf32 fixed-orthogonal:bf16 learned:fp32:eager").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-reports/gpu-check}
mkdir -p "$out"
steps=${GPU_CHECK_STEPS:-100}
epoch_steps=${GPU_CHECK_EPOCH_STEPS:-0}
runs=${GPU_CHECK_RUNS:-"learned:fp32 fixed-orthogonal:fp32 learned:tf32 fixed-orthogonal:tf32 fixed-orthogonal:bf16 learned:fp32:eager"}

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU here (nvidia-smi finds none); run this on a CUDA machine" >&2
  exit 2
fi
nvidia-smi -L | tee "$out/gpu.txt"

bin=${FIXCLF_BIN:-}
python=${FIXCLF_PYTHON:-}
if [ -z "$bin" ]; then
  torch_dir=$(FIXCLF_TORCH_FULL=1 ./scripts/setup-libtorch.sh)
  LIBTORCH="$torch_dir" CARGO_TARGET_DIR=target/cuda cargo build --release --features cuda --bin fixclf
  bin=target/cuda/release/fixclf
  [ -n "$python" ] || python="$(dirname "$(dirname "$(dirname "$(dirname "$torch_dir")")")")/bin/python"
fi
[ -n "$python" ] || python=python3

"$bin" info | tee "$out/info.txt"
grep -q "cuda available: true" "$out/info.txt" || {
  echo "gpu-check: $bin does not see CUDA (built without --features cuda, or libtorch_cuda not found: see ../shared/docs/gpu.md)" >&2
  exit 2
}

# The step, fixclf (eager, as the reference) and PyTorch, per mode, interleaved.
ref=${FIXCLF_TORCH_BENCH:-../shared/bench/torch_lm_bench.py}
: >"$out/bench.jsonl"
for mode in learned tied fixed-orthogonal; do
  ref_mode=$mode; [ "$mode" = fixed-orthogonal ] && ref_mode=fixed
  if [ -f "$ref" ]; then
    "$python" "$ref" --device cuda --modes "$ref_mode" --steps "$steps" | tee -a "$out/bench.jsonl" \
      || echo "gpu-check: the PyTorch reference failed (is $python's torch built with CUDA?)" >&2
  fi
  for precision in fp32 tf32 bf16; do
    "$bin" bench lm --device cuda --modes "$mode" --steps "$steps" --precision "$precision" --profile \
      | tee -a "$out/bench.jsonl"
  done
done

# One paper-scale epoch per setting (mode:precision[:eager]): time and validation perplexity.
[ -f data/wikitext-2/train.txt ] || ./data/fetch.sh
printf '| run | precision | CUDA graph | epoch s | ms/step | valid ppl |\n|---|---|---|--:|--:|--:|\n' >"$out/summary.md"
for run in $runs; do
  IFS=: read -r mode precision eager <<<"$run"
  graph=true; [ "${eager:-}" = eager ] && graph=false
  name="gpu-check-$mode-$precision-$([ $graph = true ] && echo graph || echo eager)"
  "$bin" train --config configs/lm-wt2.toml --force --set name="$name" --set runs_dir=\""$out/runs"\" \
    --set head.mode="$mode" --set train.epochs=1 --set train.precision=\""$precision"\" \
    --set train.cuda_graph=$graph --set train.max_steps_per_epoch="$epoch_steps" \
    --set train.eval_batch_size=80 2>&1 | tee "$out/epoch-$name.log"
  "$python" - "$out/runs/$name/metrics.jsonl" "$mode" "$precision" "$graph" >>"$out/summary.md" <<'PY'
import json, sys
path, mode, precision, graph = sys.argv[1:]
ev = [json.loads(l) for l in open(path) if l.strip()]
ep = [e for e in ev if e.get("event") == "epoch"][-1]
logs = [e for e in ev if e.get("event") == "log"]
ms = sum(l["ms_per_batch"] for l in logs[1:]) / max(1, len(logs) - 1) if len(logs) > 1 else float("nan")
print(f"| {mode} | {precision} | {graph} | {ep['epoch_s']:.1f} | {ms:.2f} | {ep['val_ppl']:.1f} |")
PY
done
cat "$out/summary.md"
echo "gpu-check: results in $out"
