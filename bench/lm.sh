#!/usr/bin/env bash
# LM speed, fixclf against the PyTorch reference (../shared/bench/torch_lm_bench.py), on this
# machine, in one run, at the same thread count: one JSON line per (implementation, mode).
# The reference needs the full torch wheel (importable from Python); this script installs it
# into the fixclf cache (FIXCLF_TORCH_FULL=1 scripts/setup-libtorch.sh, about 4.6 GB, once).
#
#   bench/lm.sh [--threads 2] [--steps 10] [--optimizer sgd|adam] [--modes learned,tied,fixed]
#               [--repeats 1]
# The machine this was written on is shared and its speed drifts by 20-30% from minute to
# minute: the table at the end (bench/lm_table.py) therefore shows the best step next to the
# median, over every repeat.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=2 steps=10 optimizer=sgd modes=learned,tied,fixed repeats=1
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --optimizer) optimizer=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    *) echo "bench/lm.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
ref="${FIXCLF_TORCH_BENCH:-../shared/bench/torch_lm_bench.py}"
[ -f "$ref" ] || { echo "bench/lm.sh: $ref not found (set FIXCLF_TORCH_BENCH)" >&2; exit 2; }
torch_dir=$(FIXCLF_TORCH_FULL=1 ./scripts/setup-libtorch.sh)
python="$(dirname "$(dirname "$(dirname "$(dirname "$torch_dir")")")")/bin/python"
make -s build >/dev/null
out=${BENCH_OUT:-$(mktemp)}
# Interleave the two implementations mode by mode, so drifts in machine speed hit both.
for _ in $(seq "$repeats"); do
  for mode in ${modes//,/ }; do
    "$python" bench/torch_ref_steps.py "$ref" --modes "$mode" --threads "$threads" --steps "$steps" \
      --optimizer "$optimizer" | tee -a "$out"
    ./target/release/fixclf bench lm --modes "$mode" --threads "$threads" --steps "$steps" \
      --optimizer "$optimizer" | tee -a "$out"
  done
done
python3 bench/lm_table.py "$out"
