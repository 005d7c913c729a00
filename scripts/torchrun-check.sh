#!/usr/bin/env bash
# fixclf under PyTorch's own torchrun, on this machine, with tiny configs (a few minutes on
# 2 cores): (a) 2 ranks train to the end; (b) a SIGINT to torchrun (as Ctrl-C) stops both
# ranks after the same step with last.safetensors written, and the same command resumes to
# the uninterrupted run's numbers; (c) with --max-restarts 1, one rank killed by SIGKILL:
# the group restarts (TORCHELASTIC_RESTART_COUNT=1) from the last checkpoint and finishes;
# (d) a suite under torchrun stopped by SIGINT, resumed by the same command, then again
# (its finished runs reused). Each step prints PASS
# or FAIL with the reason; the script exits 1 when one failed. Not part of `make test`.
#
#   scripts/torchrun-check.sh      (or make torchrun-check; logs in runs/torchrun-check/)
#
# torchrun comes with torch; the light libtorch that `make setup` installs has the torch
# package but not what `import torch` loads (its dependencies were left out: the CUDA
# libraries that torch/_C links against, and the Python packages). They are installed
# once, from PyPI with pip, into a venv of their own (about 3.4 GB), which reuses the light
# install's torch through a .pth file; the light install is not changed.
#
# Environment: FIXCLF_CACHE (default ~/.cache/fixclf), FIXCLF (the binary; default
# target/release/fixclf, built when missing).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/runs/torchrun-check
bin=${FIXCLF:-$root/target/release/fixclf}
failed=0

say() { echo "torchrun-check: $*"; }
pass() { echo "PASS $1: $2"; }
fail() { echo "FAIL $1: $2"; failed=1; }
die() { echo "torchrun-check: $*" >&2; exit 2; }
[ $# = 0 ] || die "takes no arguments (usage: scripts/torchrun-check.sh)"

# --- torchrun: the light install's torch plus its dependencies, in a venv of its own ---
torch_dir=$(scripts/setup-libtorch.sh) || die "scripts/setup-libtorch.sh failed"
site=$(dirname "$torch_dir")
light_python=$(cd "$site/../../.." && pwd)/bin/python
version=$(sed -n 's/^Version: //p' "$site"/torch-*.dist-info/METADATA | head -n1)
cache=${FIXCLF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fixclf}
venv=$cache/torchrun-$version
if [ ! -f "$venv/.fixclf-complete" ]; then
  say "installing torch $version's dependencies into $venv (once)"
  rm -rf "$venv"
  "$light_python" -m venv "$venv" || die "cannot create $venv"
  vsite=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$site" >"$vsite/fixclf-light-torch.pth"
  # torch's own requirements (not its extras), as `pip install torch` would bring them.
  sed -n 's/^Requires-Dist: //p' "$site"/torch-*.dist-info/METADATA | grep -v 'extra ==' \
    >"$venv/requirements.txt"
  "$venv/bin/python" -m pip --disable-pip-version-check -q install -r "$venv/requirements.txt" \
    || die "pip install of torch's requirements failed (see above); remove $venv and rerun"
  touch "$venv/.fixclf-complete"
fi
torchrun=("$venv/bin/python" -m torch.distributed.run)
"$venv/bin/python" -c 'import torch.distributed.run' 2>/dev/null \
  || die "import torch.distributed.run fails in $venv; remove it and rerun"
[ -x "$bin" ] || cargo build --release -q || die "cargo build --release failed"
torch_version=$("$venv/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null)
say "torch $torch_version, $(uptime | sed 's/.*load/load/')"

# --- tiny data and configs ---
rm -rf "$work"
mkdir -p "$work/data" "$work/rc"
(
  cd "$work/data"
  subjects=("the cat" "a dog" "the bird" "my fish")
  verbs=(sees likes eats finds)
  objects=("the mat" "a ball" "some food" "the tree")
  for ((i = 0; i < 240; i++)); do
    echo "${subjects[i % 4]} ${verbs[(i / 4) % 4]} ${objects[(i / 16) % 4]} ."
  done >train.txt
  head -n 60 train.txt >valid.txt
  sed -n 61,120p train.txt >test.txt
)
lm_sections() {
  cat <<EOF
[lm]
bptt = 10

[lm.data]
dir = "$work/data"
cache_dir = "$work/cache"

[lm.model]
emb_size = 16
hidden_size = 16
layers = 2
dropout_input = 0.0
dropout_hidden = 0.0
dropout_output = 0.0
EOF
}
train_section() {
  cat <<EOF
[train]
optimizer = "sgd"
lr = 1.0
clip = 0.25
epochs = $1
batch_size = 4
eval_batch_size = 4
log_interval = 1
checkpoint_interval = 10
threads = 1
EOF
}
{
  printf 'name = "lm"\nruns_dir = "%s"\n\n' "$work/runs"
  lm_sections
  echo
  train_section 25
} >"$work/lm.toml"
{
  printf 'name = "suite"\nruns_dir = "%s"\nreports_dir = "%s"\n\n' "$work/runs" "$work/reports"
  lm_sections | sed 's/^\[lm/[base.lm/'
  echo
  train_section 25 | sed 's/^\[train/[base.train/'
  printf '\n[[runs]]\nname = "learned"\nset = ["head.mode=learned"]\n'
  printf '\n[[runs]]\nname = "fixed"\nset = ["head.mode=fixed-orthogonal"]\n'
} >"$work/suite.toml"
# Each worker through a wrapper that keeps its exit code per rank and restart attempt
# (torchrun does not report them when it is stopped by a signal). torchrun signals the
# worker's whole process group: fixclf handles the signal, the wrapper waits for it.
cat >"$work/rank.sh" <<EOF
#!/usr/bin/env bash
trap : INT TERM
"$bin" "\$@"
rc=\$?
echo \$rc >"$work/rc/\$1-\$RUN-rank\$RANK-attempt\${TORCHELASTIC_RESTART_COUNT:-0}"
exit \$rc
EOF
chmod +x "$work/rank.sh"

# torchrun NAME ARGS...: 2 workers of `fixclf ARGS` (RUN=NAME), each worker's output in
# $work/logs/NAME/<run id>/attempt_<k>/<rank>/{stdout,stderr}.log, torchrun's in NAME.log.
start_torchrun() {
  local name=$1
  shift
  RUN=$name "${torchrun[@]}" --standalone --nproc-per-node 2 --no-python \
    --log-dir "$work/logs/$name" --redirects 3 "$@" >"$work/$name.log" 2>&1 &
  tr_pid=$!
}
worker_log() { # NAME ATTEMPT RANK stdout|stderr
  cat "$work/logs/$1"/*/attempt_"$2/$3/$4.log" 2>/dev/null
}
rc_of() { cat "$work/rc/$1-$2-rank$3-attempt$4" 2>/dev/null || echo none; }
summary_value() { # RUN KEY
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
    "$work/runs/$1/summary.json" "$2" 2>/dev/null
}
checkpoint_step() { # safetensors metadata: the TrainState's step
  python3 - "$1" <<'PY' 2>/dev/null
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
print(json.loads(json.loads(b[8:8 + n])["__metadata__"]["state"])["step"])
PY
}
past_step() { # RUN STEPS: that many log lines in its metrics (one a step)
  local n
  n=$(grep -c '"event":"log"' "$work/runs/$1/metrics.jsonl" 2>/dev/null)
  [ "${n:-0}" -ge "$2" ]
}
checkpointed() { [ -f "$work/runs/$1/last.safetensors" ] && past_step "$1" "$2"; }
restarted() { # a worker of torchrun carries TORCHELASTIC_RESTART_COUNT=1
  local w
  for w in $(pgrep -P "$tr_pid"); do
    tr '\0' '\n' 2>/dev/null <"/proc/$w/environ" | grep -qx 'TORCHELASTIC_RESTART_COUNT=1' && return 0
  done
  return 1
}
# wait_until SECONDS CONDITION...: polls until CONDITION holds, torchrun ends or time runs out.
wait_until() {
  local limit=$1 start=$SECONDS
  shift
  until "$@"; do
    kill -0 "$tr_pid" 2>/dev/null || return 1
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 0.2
  done
}
same_numbers() { # RUN REF: best validation and test loss equal to the last digit
  local k a b
  for k in best_val_loss test_loss; do
    a=$(summary_value "$1" $k) b=$(summary_value "$2" $k)
    [ -n "$a" ] && [ "$a" = "$b" ] || { why="$k $a vs $b"; return 1; }
  done
  why="best_val_loss $(summary_value "$1" best_val_loss), test_loss $(summary_value "$1" test_loss)"
}

# --- (a) to the end ---
start_torchrun ref "$work/rank.sh" train --config "$work/lm.toml" --set name=ref --resume
wait "$tr_pid"
code=$?
if [ $code = 0 ] && [ -f "$work/runs/ref/summary.json" ] && grep -q '"world_size": *2' "$work/runs/ref/distributed.json"; then
  pass a "torchrun exit 0, 2 ranks trained $(summary_value ref steps) steps (distributed.json: world_size 2), test loss $(summary_value ref test_loss)"
else
  fail a "torchrun exit $code; see $work/ref.log and $work/logs/ref"
fi

# --- (b) SIGINT to torchrun, then the same command resumes ---
args=("$work/rank.sh" train --config "$work/lm.toml" --set name=int --resume)
start_torchrun int "${args[@]}"
if wait_until 120 past_step int 300; then
  kill -INT "$tr_pid"
  wait "$tr_pid"
  code=$?
  sent=$(grep -o 'closing signal SIG[A-Z]*' "$work/int.log" | sort -u | tr '\n' ' ')
  e0=$(worker_log int 0 0 stderr) e1=$(worker_log int 0 1 stderr)
  s0=$(grep -o 'interrupted by SIG[A-Z]* at epoch [0-9]* step [0-9]*' <<<"$e0")
  s1=$(grep -o 'interrupted by SIG[A-Z]* at epoch [0-9]* step [0-9]*' <<<"$e1")
  step=$(checkpoint_step "$work/runs/int/last.safetensors")
  r0=$(rc_of train int 0 0) r1=$(rc_of train int 1 0)
  detail="torchrun sent: ${sent:-nothing}; torchrun exit $code; rank exits $r0 / $r1; rank 0: '$s0', rank 1: '$s1'; last.safetensors at step ${step:-none}"
  if [ -n "$s0" ] && [ "$s0" = "$s1" ] && [ "${s0##* step }" = "$step" ] && [ "$r0" = 130 ] && [ "$r1" = 130 ]; then
    pass b1 "$detail"
  else
    fail b1 "$detail"
  fi
  start_torchrun int-resume "${args[@]}"
  wait "$tr_pid"
  code=$?
  if [ $code = 0 ] && grep -q "resuming .* at epoch" <(worker_log int-resume 0 0 stdout) && same_numbers int ref; then
    pass b2 "resumed from step $step, torchrun exit 0; equal to the uninterrupted run: $why"
  else
    fail b2 "torchrun exit $code; ${why:-}; see $work/int-resume.log and $work/logs/int-resume"
  fi
else
  kill -TERM "$tr_pid" 2>/dev/null
  wait "$tr_pid"
  fail b "the run ended or stalled before 300 steps; see $work/int.log"
fi

# --- (c) one worker killed, the group restarted once ---
start_torchrun restart --max-restarts 1 "$work/rank.sh" train --config "$work/lm.toml" \
  --set name=restart --resume
if wait_until 120 checkpointed restart 300; then
  stopped=$(checkpoint_step "$work/runs/restart/last.safetensors")
  # Rank 1's fixclf: the child of its wrapper (torchrun's worker process).
  victim=
  for w in $(pgrep -P "$tr_pid"); do
    if tr '\0' '\n' 2>/dev/null <"/proc/$w/environ" | grep -qx 'RANK=1'; then
      victim=$(pgrep -P "$w" | head -n1)
    fi
  done
  if [ -n "$victim" ]; then
    kill -KILL "$victim"
    # The restarted workers carry the next restart count.
    restarted=
    wait_until 60 restarted && restarted=yes
    wait "$tr_pid"
    code=$?
    resumed=$(grep -o '"event":"resume"[^}]*' "$work/runs/restart/metrics.jsonl" | head -n1)
    detail="killed rank 1 (pid $victim; last.safetensors was at step $stopped just before); attempt 0 exits $(rc_of train restart 0 0) / $(rc_of train restart 1 0); restarted workers with TORCHELASTIC_RESTART_COUNT=1: ${restarted:-not seen}; attempt 1 exits $(rc_of train restart 0 1) / $(rc_of train restart 1 1); metrics: ${resumed:-no resume event}; torchrun exit $code"
    if [ $code = 0 ] && [ "$restarted" = yes ] && [ -n "$resumed" ] && [ -f "$work/runs/restart/summary.json" ] && same_numbers restart ref; then
      pass c "$detail; equal to the uninterrupted run: $why"
    else
      fail c "$detail; ${why:-}; see $work/restart.log and $work/logs/restart"
    fi
  else
    kill -TERM "$tr_pid" 2>/dev/null
    wait "$tr_pid"
    fail c "rank 1's process not found under torchrun (pid $tr_pid)"
  fi
else
  kill -TERM "$tr_pid" 2>/dev/null
  wait "$tr_pid"
  fail c "no checkpoint after 300 steps; see $work/restart.log"
fi

# --- (d) a suite under torchrun: stopped by SIGINT, resumed, then again ---
suite=("$work/rank.sh" suite --config "$work/suite.toml")
start_torchrun suite "${suite[@]}"
if wait_until 120 past_step suite/learned 300; then
  kill -INT "$tr_pid"
  wait "$tr_pid"
  code=$?
  r0=$(rc_of suite suite 0 0) r1=$(rc_of suite suite 1 0)
  e0=$(worker_log suite 0 0 stderr) e1=$(worker_log suite 0 1 stderr)
  s0=$(grep -o 'interrupted by SIG[A-Z]* at epoch [0-9]* step [0-9]*' <<<"$e0" | head -n1)
  s1=$(grep -o 'interrupted by SIG[A-Z]* at epoch [0-9]* step [0-9]*' <<<"$e1" | head -n1)
  detail="torchrun exit $code; rank exits $r0 / $r1; rank 0: '$s0', rank 1: '$s1'"
  if [ "$r0" = 130 ] && [ "$r1" = 130 ] && [ -n "$s0" ] && [ "$s0" = "$s1" ] \
    && [ -f "$work/runs/suite/learned/last.safetensors" ] && [ ! -e "$work/runs/suite/fixed" ]; then
    pass d1 "$detail; the second run not started"
  else
    fail d1 "$detail; see $work/suite.log and $work/logs/suite"
  fi
else
  kill -TERM "$tr_pid" 2>/dev/null
  wait "$tr_pid"
  fail d1 "the suite's first run ended or stalled before 300 steps; see $work/suite.log"
fi
start_torchrun suite-resume "${suite[@]}"
wait "$tr_pid"
code=$?
out0=$(worker_log suite-resume 0 0 stdout) out1=$(worker_log suite-resume 0 1 stdout)
if [ $code = 0 ] && grep -q "| run learned: resuming" <<<"$out0" && grep -q "| run fixed: training" <<<"$out0" \
  && grep -q "suite suite done .* on 2 ranks" <<<"$out0" && [ -f "$work/runs/suite/fixed/summary.json" ] \
  && [ -f "$work/reports/suite/results.md" ] && [ -z "$out1" ] && same_numbers suite/learned ref; then
  pass d2 "torchrun exit 0; rank 0 resumed the stopped run and trained the other, wrote the report; rank 1 printed nothing; the resumed run equals the uninterrupted one: $why"
else
  fail d2 "torchrun exit $code; ${why:-}; see $work/suite-resume.log and $work/logs/suite-resume"
fi
start_torchrun suite-again "${suite[@]}"
wait "$tr_pid"
code=$?
reused=$(worker_log suite-again 0 0 stdout | grep -c "finished, reused")
if [ $code = 0 ] && [ "$reused" = 2 ]; then
  pass d3 "torchrun exit 0; rank 0 found both runs finished and every rank skipped them"
else
  fail d3 "torchrun exit $code, $reused runs reused (2 expected); see $work/logs/suite-again"
fi

say "logs in $work"
exit $failed
