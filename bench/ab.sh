#!/usr/bin/env bash
# Speed of two fixclf builds, interleaved mode by mode so that drifts in machine speed hit
# both (e.g. before and after a change): bench/ab.sh OLD_BINARY NEW_BINARY [--repeats N]
# [--steps N] [--threads N] [--modes learned,tied,fixed-orthogonal] [--optimizer sgd|adam].
# Prints best and median training step per mode and binary (every timed step, all repeats).
set -euo pipefail
old=$1 new=$2; shift 2
threads=2 steps=10 optimizer=sgd modes=learned,tied,fixed-orthogonal repeats=2
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --optimizer) optimizer=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    *) echo "bench/ab.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
out=$(mktemp)
for _ in $(seq "$repeats"); do
  for mode in ${modes//,/ }; do
    for which in old new; do
      bin=$old; [ "$which" = new ] && bin=$new
      "$bin" bench lm --modes "$mode" --threads "$threads" --steps "$steps" --optimizer "$optimizer" \
        | sed "s/^{/{\"build\":\"$which\",/" | tee -a "$out"
    done
  done
done
python3 - "$out" <<'PY'
import collections, json, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("{"):
        d = json.loads(line)
        runs[(d["mode"], d["build"])].extend(d["train_step_ms_all"])
print("| mode | build | steps | best (ms) | median (ms) |")
print("|---|---|--:|--:|--:|")
for (mode, build), t in sorted(runs.items()):
    print(f"| {mode} | {build} | {len(t)} | {min(t):.0f} | {statistics.median(t):.0f} |")
PY
