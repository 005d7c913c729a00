#!/usr/bin/env bash
# Data-parallel cost on this machine: for each head mode, the same short training run as one
# process (no c10d), as one rank alone (WORLD_SIZE=1: the communication code with N = 1), as
# N ranks over Gloo on loopback (each with the global batch's B / N) and as N ranks with the
# all-reduce overlapped with the backward pass (distributed.overlap = true), interleaved per
# mode. Per run: the steady step time (the second log interval's ms/batch), and from the
# run's distributed.json the values and bytes all-reduced per step and the all-reduce time
# per step (wall time on rank 0: it includes waiting for the slower rank's backward pass;
# overlapped, only what the backward pass did not hide, from the last gradient to the end
# of the pass, and the loss's all-reduce).
# Then the table (bench/distributed_table.py), and for the LM `fixclf bench allreduce`: the
# all-reduce alone at its three gradient sizes. Ranks are launched with the variables
# torchrun sets (torchrun itself needs the full torch install).
#
#   bench/distributed.sh [--task lm|vision] [--ranks 2] [--threads 1] [--steps 8]
#                        [--modes learned,tied,fixed-orthogonal] [--repeats 1]
# lm: configs/lm-wt2.toml at paper size (WikiText-2, batch 20, BPTT 35; `make setup` fetches
# the data), validation and test cut to a few windows. vision: CIFAR ResNet-20 on synthetic
# 32x32x3 images of 100 classes, batch 128 (`--depth 56` for ResNet-56; modes learned,fixed-orthogonal).
# BENCH_OUT=FILE keeps the JSON lines.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
task=lm ranks=2 threads=1 steps=8 modes= repeats=1 depth=20
while [ $# -gt 0 ]; do
  case "$1" in
    --task) task=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --depth) depth=$2; shift 2 ;;
    *) echo "bench/distributed.sh: unknown option $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
[ "$steps" -ge 2 ] || { echo "bench/distributed.sh: --steps must be at least 2" >&2; exit 2; }
half=$((steps / 2))
cargo build --release -q
bin=target/release/fixclf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${BENCH_OUT:-$work/bench.jsonl}
: >"$out"

case "$task" in
  lm)
    modes=${modes:-learned,tied,fixed-orthogonal}
    config=configs/lm-wt2.toml
    sets=(--set lm.data.valid_tokens=2000 --set lm.data.test_tokens=2000)
    ;;
  vision)
    modes=${modes:-learned,fixed-orthogonal}
    config=$work/resnet.toml
    cat >"$config" <<EOF
name = "resnet"
[vision]
crop_padding = 4
flip = true
[vision.data]
dataset = "synthetic"
[vision.data.synthetic]
classes = 100
train = $((128 * steps))
test = 256
channels = 3
size = 32
[vision.model]
arch = "resnet-cifar"
depth = $depth
[train]
optimizer = "sgd"
lr = 0.1
momentum = 0.9
weight_decay = 1e-4
batch_size = 128
eval_batch_size = 256
EOF
    sets=()
    ;;
  *) echo "bench/distributed.sh: --task lm or vision" >&2; exit 2 ;;
esac

# One run; prints its JSON line. $1: label, $2: mode, $3: ranks (0: no launch at all),
# $4: distributed.overlap (default false).
run() {
  local label=$1 mode=$2 n=$3 overlap=${4:-false}
  local name="bench-$task-$mode-$label"
  local args=(train --config "$config" --quiet --force "${sets[@]}" --set "distributed.overlap=$overlap"
    --set "name=$name" --set "runs_dir=$work/runs" --set "head.mode=$mode"
    --set train.epochs=1 --set "train.max_steps_per_epoch=$steps" --set "train.log_interval=$half"
    --set "train.threads=$threads")
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if [ "$n" = 0 ]; then
    "$bin" "${args[@]}" >/dev/null
  else
    local pids=()
    for ((r = 0; r < n; r++)); do
      RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r LOCAL_WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 \
        MASTER_PORT=$port OMP_NUM_THREADS=$threads "$bin" "${args[@]}" >/dev/null &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
  fi
  python3 - "$work/runs/$name" "$label" "$mode" "$n" "$task" "$threads" <<'EOF'
import json, sys, os
run, label, mode, n, task, threads = sys.argv[1:]
logs = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
logs = [e for e in logs if e.get("event") == "log"]
comm_path = os.path.join(run, "distributed.json")
comm = json.load(open(comm_path)) if os.path.exists(comm_path) else {}
steps = comm.get("steps") or 0
print(json.dumps({
    "task": task, "mode": mode, "launch": label, "ranks": int(n), "threads": int(threads),
    "overlap": bool(comm.get("overlap", False)),
    "ms_per_step": logs[-1]["ms_per_batch"],
    "floats_per_step": comm.get("floats_per_step"),
    "bytes_per_step": comm.get("bytes_per_step"),
    "allreduce_ms_per_step": comm["allreduce_s"] * 1000 / steps if steps else None,
}))
EOF
}

for ((rep = 0; rep < repeats; rep++)); do
  for mode in ${modes//,/ }; do
    run single "$mode" 0 | tee -a "$out"
    run rank-alone "$mode" 1 | tee -a "$out"
    run "$ranks-ranks" "$mode" "$ranks" | tee -a "$out"
    run "$ranks-ranks-overlap" "$mode" "$ranks" true | tee -a "$out"
  done
done
python3 bench/distributed_table.py "$out"
if [ "$task" = lm ]; then
  # The all-reduce alone (the ranks meet at a barrier before each one, so no wait for a
  # slower rank's backward pass is in it), at the paper-size LM's three gradient sizes.
  echo
  FIXCLF=$bin OMP_NUM_THREADS=$threads scripts/ranks.sh "$ranks" bench allreduce --repeats 5 | tee -a "$out"
fi
