#!/usr/bin/env bash
# Runs `fixclf ARGS` as N ranks of one data-parallel run on this machine, with the variables
# torchrun sets (without torchrun, which needs torch's dependencies: docs/distributed.md).
# A Ctrl-C or SIGTERM is passed on once to every rank, as torchrun passes it on, so they
# stop after the same step with the checkpoint written. Exits with the first failing rank's
# code.
#
#   scripts/ranks.sh N train --config configs/lm-wt2.toml --resume
#   scripts/ranks.sh N suite --config configs/wt2-quick.toml
#
# Environment: FIXCLF (the binary; default target/release/fixclf), MASTER_PORT (default: a
# free port), OMP_NUM_THREADS (default 1: one thread per rank, as torchrun sets it).
set -euo pipefail
if [ $# -lt 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/ranks.sh N fixclf-arguments... (N: the number of ranks)" >&2
  exit 2
fi
n=$1
shift
bin=${FIXCLF:-$(dirname "${BASH_SOURCE[0]}")/../target/release/fixclf}
[ -x "$bin" ] || { echo "scripts/ranks.sh: $bin is missing; run cargo build --release" >&2; exit 2; }
port=${MASTER_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}

pids=()
for ((rank = 0; rank < n; rank++)); do
  # A process group (setsid) of its own: the terminal's Ctrl-C reaches the ranks once, through the trap
  # below, not twice (a second signal stops a rank at once, without its checkpoint).
  RANK=$rank WORLD_SIZE=$n LOCAL_RANK=$rank LOCAL_WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 \
    MASTER_PORT=$port OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} setsid "$bin" "$@" &
  pids+=($!)
done
forwarded=
forward() {
  [ -n "$forwarded" ] && return
  forwarded=1
  kill "-$1" "${pids[@]}" 2>/dev/null || true
}
trap 'forward INT' INT
trap 'forward TERM' TERM

rc=0
for pid in "${pids[@]}"; do
  while true; do
    code=0
    wait "$pid" || code=$?
    # A trapped signal interrupts `wait`: the rank still runs, wait for it again.
    if [ "$code" -gt 128 ] && kill -0 "$pid" 2>/dev/null; then
      continue
    fi
    break
  done
  if [ "$code" != 0 ] && [ "$rc" = 0 ]; then
    rc=$code
  fi
done
exit "$rc"
