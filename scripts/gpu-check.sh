#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, build fixclf with CUDA, show what
# it sees, time its LM step against PyTorch's on the same GPU, and train one paper-scale
# WikiText-2 epoch per setting, then the image step in both memory layouts. Everything lands
# in $OUT (default reports/gpu-check/): info.txt, bench.jsonl (fixclf and PyTorch, one JSON
# line each), epoch-*.log, summary.md, vision.jsonl and vision.md.
#
#   scripts/gpu-check.sh               # build here (Rust + the full torch wheel), then run
#   FIXCLF_BIN=path/to/fixclf scripts/gpu-check.sh
#                                      # a binary built elsewhere with --features cuda
#                                      # (a machine without Rust: see scripts/gpu-bundle.sh)
# Environment: FIXCLF_PYTHON (a python with CUDA torch, for the references; default: the
# cache's full wheel, else python3), FIXCLF_WLM_DIR (a folder with pytorch/examples'
# word_language_model, main.py in it: its one-epoch time is the reference epoch; none when
# unset), GPU_CHECK_STEPS (bench steps, default 100), GPU_CHECK_EPOCH_STEPS (steps of each
# "epoch" run, default 0: the whole epoch, 2,983 steps), GPU_CHECK_RUN_TIMEOUT (seconds a
# run may take before it is stopped, default 180), GPU_CHECK_RUNS (default "learned:fp32
# fixed-orthogonal:fp32 learned:tf32 fixed-orthogonal:tf32 fixed-orthogonal:bf16
# learned:fp32:eager"), GPU_CHECK_BENCH_MODES (default "learned tied fixed-orthogonal"),
# GPU_CHECK_PRECISIONS (of the bench, default "fp32 tf32 bf16"), GPU_CHECK_REFERENCE (0: no
# PyTorch bench), GPU_CHECK_REPLAY (0: no replay check), FIXCLF_TORCH_VISION_BENCH (the image
# reference, default ../shared/bench/torch_vision_bench.py), GPU_CHECK_VISION (0: no image
# step). A short rerun of some settings, e.g. bf16 only:
#   GPU_CHECK_BENCH_MODES=fixed-orthogonal GPU_CHECK_PRECISIONS=bf16 GPU_CHECK_REFERENCE=0 \
#   GPU_CHECK_REPLAY=0 GPU_CHECK_VISION=0 GPU_CHECK_RUNS="learned:bf16 fixed-orthogonal:bf16" \
#   FIXCLF_WLM_DIR= scripts/gpu-check.sh
# A failed bench or run is written into summary.md and the check goes on; the exit status
# is 1 when anything failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-reports/gpu-check}
mkdir -p "$out"
steps=${GPU_CHECK_STEPS:-100}
epoch_steps=${GPU_CHECK_EPOCH_STEPS:-0}
run_timeout=${GPU_CHECK_RUN_TIMEOUT:-180}
runs=${GPU_CHECK_RUNS:-"learned:fp32 fixed-orthogonal:fp32 learned:tf32 fixed-orthogonal:tf32 fixed-orthogonal:bf16 learned:fp32:eager"}
bench_modes=${GPU_CHECK_BENCH_MODES:-"learned tied fixed-orthogonal"}
precisions=${GPU_CHECK_PRECISIONS:-"fp32 tf32 bf16"}
failures=0
fail() {
  echo "gpu-check: $*" >&2
  echo "- failed: $*" >>"$out/failures.md"
  failures=$((failures + 1))
}

. scripts/gpu-common.sh
gpu_require gpu-check "run this on a CUDA machine"
nvidia-smi -L | tee "$out/gpu.txt"
gpu_binary
python=${FIXCLF_PYTHON:-}
# A build here: the reference scripts run with the wheel's own python.
[ -n "$python" ] || [ -z "$torch_dir" ] || python="$(dirname "$(dirname "$(dirname "$(dirname "$torch_dir")")")")/bin/python"
[ -n "$python" ] || python=python3
gpu_sees_cuda gpu-check "$out/info.txt"
[ -f data/wikitext-2/train.txt ] || ./data/fetch.sh || exit 2
: >"$out/failures.md"

# The step, fixclf (eager, as the reference) and PyTorch, per mode, interleaved.
ref=${FIXCLF_TORCH_BENCH:-../shared/bench/torch_lm_bench.py}
: >"$out/bench.jsonl"
for mode in $bench_modes; do
  ref_mode=$mode; [ "$mode" = fixed-orthogonal ] && ref_mode=fixed
  if [ "${GPU_CHECK_REFERENCE:-1}" = 1 ] && [ -f "$ref" ]; then
    timeout 120 "$python" "$ref" --device cuda --modes "$ref_mode" --steps "$steps" | tee -a "$out/bench.jsonl" \
      || fail "the PyTorch reference bench, $ref_mode (is $python's torch built with CUDA?)"
  fi
  for precision in $precisions; do
    timeout 120 "$bin" bench lm --device cuda --modes "$mode" --steps "$steps" --precision "$precision" --profile \
      | tee -a "$out/bench.jsonl" || fail "fixclf bench lm $mode $precision"
  done
done

# The reference epoch: PyTorch's word_language_model example at the paper's sizes.
if [ -n "${FIXCLF_WLM_DIR:-}" ]; then
  timeout "$run_timeout" "$python" "$FIXCLF_WLM_DIR/main.py" --accel --emsize 512 --nhid 512 \
    --dropout 0.5 --epochs 1 --data data/wikitext-2 --save "$out/wlm.pt" 2>&1 | tee "$out/epoch-pytorch-example.log" \
    || fail "PyTorch's word_language_model example (log: epoch-pytorch-example.log)"
  rm -f "$out/wlm.pt"
fi

# The graph replays what the eager step computes: 300 steps without dropout both ways
# (the same seed; cuDNN's and the atomics' ordering differ a little) and their losses. When
# a captured step fails, the rest of the check and the suite run eagerly (graph-failed).
replay="true false"; [ "${GPU_CHECK_REPLAY:-1}" = 1 ] || replay=
for graph in $replay; do
  timeout -s INT -k 30 "$run_timeout" "$bin" train --config configs/lm-wt2.toml --force -q \
    --set name="gpu-check-replay-$graph" --set runs_dir=\""$out/runs"\" --set head.mode=fixed-orthogonal \
    --set train.epochs=1 --set train.max_steps_per_epoch=300 --set train.log_interval=50 \
    --set train.cuda_graph=$graph --set lm.model.dropout_input=0.0 --set lm.model.dropout_hidden=0.0 \
    --set lm.model.dropout_output=0.0 --set lm.data.valid_tokens=20000 --set lm.data.test_tokens=5000 \
    >"$out/replay-$graph.log" 2>&1 || {
    fail "the replay check, cuda_graph=$graph (log: replay-$graph.log)"
    [ "$graph" = true ] && grep -qiE 'graph|captur' "$out/replay-$graph.log" && touch "$out/graph-failed"
  }
done
[ -n "$replay" ] && "$python" - "$out/runs" >"$out/replay.md" <<'PY'
import json, sys
def losses(graph):
    try:
        ev = [json.loads(l) for l in open(f"{sys.argv[1]}/gpu-check-replay-{graph}/metrics.jsonl")]
    except OSError:
        return [], None
    val = [e["val_loss"] for e in ev if e.get("event") == "epoch"]
    return [e["loss"] for e in ev if e.get("event") == "log"], (val[-1] if val else None)
(g, gv), (e, ev) = losses("true"), losses("false")
print("Graph replay against the eager step (fixed-orthogonal, no dropout, 300 steps), mean loss per 50 steps:")
print()
print("| | " + " | ".join(str(50 * (i + 1)) for i in range(max(len(g), len(e)))) + " | valid loss |")
print("|---|" + "--:|" * (max(len(g), len(e)) + 1))
for name, l, v in (("graph", g, gv), ("eager", e, ev)):
    print(f"| {name} | " + " | ".join(f"{x:.4f}" for x in l) + f" | {v if v is None else round(v, 4)} |")
if g and e and gv is not None and ev is not None:
    gap = max(abs(a - b) for a, b in zip(g + [gv], e + [ev]))
    print()
    verdict = ("the same within the GPU's reordering of sums" if gap < 0.02
               else "close: reordered sums drift apart at lr 20; compare the epochs below" if gap < 0.1
               else "DIFFERENT: the graph does not replay the eager step")
    print(f"largest difference {gap:.4f}: {verdict}")
PY
[ -n "$replay" ] && cat "$out/replay.md"
if [ -f "$out/graph-failed" ]; then
  echo "gpu-check: a captured step failed; the epochs below run eagerly" | tee -a "$out/replay.md"
  runs=$(echo "$runs" | tr ' ' '\n' | sed 's/:eager$//; s/$/:eager/' | sort -u | tr '\n' ' ')
fi

# One paper-scale epoch per setting (mode:precision[:eager]): time and validation perplexity
# (evaluated at batch 10, as the example does: a wider batch starts more columns from a zero
# state, which changes the perplexity a little).
printf '| run | precision | CUDA graph | epoch s | ms/step | valid ppl |\n|---|---|---|--:|--:|--:|\n' >"$out/summary.md"
if [ -f "$out/epoch-pytorch-example.log" ]; then
  sed -n 's/.*end of epoch *1 | time: *\([0-9.]*\)s .*valid ppl *\([0-9.]*\).*/| PyTorch word_language_model, learned | fp32 | no | \1 | | \2 |/p' \
    "$out/epoch-pytorch-example.log" >>"$out/summary.md"
fi
for run in $runs; do
  IFS=: read -r mode precision eager <<<"$run"
  graph=true; [ "${eager:-}" = eager ] && graph=false
  name="gpu-check-$mode-$precision-$([ $graph = true ] && echo graph || echo eager)"
  timeout -s INT -k 30 "$run_timeout" "$bin" train --config configs/lm-wt2.toml --force \
    --set name="$name" --set runs_dir=\""$out/runs"\" \
    --set head.mode="$mode" --set train.epochs=1 --set train.precision=\""$precision"\" \
    --set train.cuda_graph=$graph --set train.max_steps_per_epoch="$epoch_steps" \
    2>&1 | tee "$out/epoch-$name.log" \
    || fail "run $name (log: epoch-$name.log)"
  "$python" - "$out/runs/$name/metrics.jsonl" "$mode" "$precision" "$graph" >>"$out/summary.md" <<'PY'
import json, sys
path, mode, precision, graph = sys.argv[1:]
try:
    ev = [json.loads(l) for l in open(path) if l.strip()]
except OSError:
    ev = []
epochs = [e for e in ev if e.get("event") == "epoch"]
logs = [e for e in ev if e.get("event") == "log"]
# The first log interval holds the eager warm-up steps and the captures.
ms = sum(l["ms_per_batch"] for l in logs[1:]) / (len(logs) - 1) if len(logs) > 1 else float("nan")
if epochs:
    print(f"| {mode} | {precision} | {graph} | {epochs[-1]['epoch_s']:.1f} | {ms:.2f} | {epochs[-1]['val_ppl']:.1f} |")
else:
    print(f"| {mode} | {precision} | {graph} | failed | {ms:.2f} | |")
PY
done
cat "$out/summary.md"

# The image step: CIFAR ResNet-56 with a learned head, batch 128, fixclf against PyTorch's
# reference, in NCHW and in NHWC (vision.memory_format, the reference's --channels-last):
# whether channels-last should be the default on CUDA too (on the CPU it pays for ResNets on
# 32 x 32 images only). GPU_CHECK_VISION=0 skips it.
vref=${FIXCLF_TORCH_VISION_BENCH:-../shared/bench/torch_vision_bench.py}
if [ "${GPU_CHECK_VISION:-1}" = 1 ]; then
  : >"$out/vision.jsonl"
  for format in contiguous channels-last; do
    ref_layout=(); [ "$format" = channels-last ] && ref_layout=(--channels-last)
    vargs=(--device cuda --depths 56 --heads learned --steps 50)
    if [ -f "$vref" ]; then
      timeout 120 "$python" bench/torch_ref_steps.py "$vref" "${vargs[@]}" "${ref_layout[@]}" >>"$out/vision.jsonl" \
        || fail "the PyTorch vision reference, $format"
    fi
    timeout 120 "$bin" bench vision "${vargs[@]}" --memory-format "$format" >>"$out/vision.jsonl" \
      || fail "fixclf bench vision, $format"
  done
  python3 bench/vision_table.py "$out/vision.jsonl" >"$out/vision.md" || fail "the vision table"
  cat "$out/vision.md"
fi
[ -s "$out/failures.md" ] && cat "$out/failures.md"
echo "gpu-check: results in $out"
[ "$failures" = 0 ]
