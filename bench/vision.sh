#!/usr/bin/env bash
# Image-classifier speed, fixclf against the PyTorch reference (../shared/bench/torch_vision_bench.py),
# on this machine, in one run, at the same thread count: CIFAR ResNet-20/56 (option-B
# shortcuts), batch 128, SGD momentum 0.9, weight decay 1e-4, learned vs fixed head; one JSON
# line per (implementation, model, head), then the comparison table (bench/vision_table.py).
# The reference needs the full torch wheel (importable from Python); this script installs it
# into the fixclf cache (FIXCLF_TORCH_FULL=1 scripts/setup-libtorch.sh, about 4.6 GB, once).
#
#   bench/vision.sh [--threads 2] [--steps 10] [--warmup 2] [--depths 20,56] [--heads learned,fixed]
#                   [--batch 128] [--repeats 2] [--device cpu|cuda]
#                   [--memory-format channels-last|contiguous|both]
# --memory-format: the layout of images and convolution weights for both implementations
# (fixclf's vision.memory_format, the reference's --channels-last); default contiguous (both
# implementations' default); `both` runs each layout.
# --device cuda builds fixclf with `--features cuda` against that same full torch, into
# target/cuda (the CPU build in target/ is left alone).
# Runs are interleaved per (depth, head), the implementation that goes first alternating from
# one repeat to the next, so drifts in machine speed hit both; the table shows the best step
# next to the median, over every repeat. BENCH_OUT=FILE keeps the JSON lines.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=2 steps=10 warmup=2 depths=20,56 heads=learned,fixed batch=128 repeats=2 device=cpu formats=
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --depths) depths=$2; shift 2 ;;
    --heads) heads=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --memory-format) formats=$2; shift 2 ;;
    *) echo "bench/vision.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$formats" ] || formats=contiguous
[ "$formats" = both ] && formats="contiguous channels-last"
for f in $formats; do
  case "$f" in contiguous|channels-last) ;; *) echo "bench/vision.sh: --memory-format is channels-last, contiguous or both, got $f" >&2; exit 2 ;; esac
done
ref="${FIXCLF_TORCH_VISION_BENCH:-../shared/bench/torch_vision_bench.py}"
[ -f "$ref" ] || { echo "bench/vision.sh: $ref not found (set FIXCLF_TORCH_VISION_BENCH)" >&2; exit 2; }
torch_dir=$(FIXCLF_TORCH_FULL=1 ./scripts/setup-libtorch.sh)
python="$(dirname "$(dirname "$(dirname "$(dirname "$torch_dir")")")")/bin/python"
if [ "$device" = cpu ]; then
  make -s libtorch >/dev/null
  cargo build --release -q
  fixclf=./target/release/fixclf
else
  LIBTORCH="$torch_dir" CARGO_TARGET_DIR=target/cuda cargo build --release -q --features cuda
  fixclf=./target/cuda/release/fixclf
fi
out=${BENCH_OUT:-$(mktemp)}
args=(--threads "$threads" --steps "$steps" --warmup "$warmup" --batch "$batch" --device "$device")
for r in $(seq "$repeats"); do
  for format in $formats; do
    ref_layout=(); [ "$format" = channels-last ] && ref_layout=(--channels-last)
    for depth in ${depths//,/ }; do
      for head in ${heads//,/ }; do
        order="pytorch fixclf"; [ $((r % 2)) = 0 ] && order="fixclf pytorch"
        for impl in $order; do
          if [ "$impl" = pytorch ]; then
            # torch_ref_steps.py runs the reference unchanged and adds its eval step times.
            "$python" bench/torch_ref_steps.py "$ref" --depths "$depth" --heads "$head" "${args[@]}" "${ref_layout[@]}"
          else
            "$fixclf" bench vision --depths "$depth" --heads "$head" "${args[@]}" --memory-format "$format"
          fi | tee -a "$out"
        done
      done
    done
  done
done
python3 bench/vision_table.py "$out"
