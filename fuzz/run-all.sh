#!/usr/bin/env bash
# Fuzzes every target for the same time, a few at once, and prints what each ran:
#   fuzz/run-all.sh [SECONDS per target, default 600] [JOBS at once, default 2]
# Starts from corpus/<target>/ and regressions/<target>/; new inputs go to logs/new-<target>/
# (not committed: merge the useful ones with `cargo fuzz cmin`), crashes to
# artifacts/<target>/, output to logs/<target>.log. Exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${1:-600} jobs=${2:-2}
cargo +nightly fuzz build -s none
mkdir -p logs
targets=$(cargo +nightly fuzz list)
run() {
  mkdir -p "logs/new-$1"
  local seeds=("corpus/$1")
  [ -d "regressions/$1" ] && seeds+=("regressions/$1")
  cargo +nightly fuzz run -s none "$1" "logs/new-$1" "${seeds[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 \
    -max_len=8192 -print_final_stats=1 >"logs/$1.log" 2>&1
}
export -f run
export seconds
status=0
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run {}' || status=1
printf '| target | seconds | executions | exec/s | corpus | result |\n|---|--:|--:|--:|--:|---|\n'
for t in $targets; do
  log="logs/$t.log"
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$seconds")
  corpus=$(( $(ls "corpus/$t" | wc -l) + $(ls "logs/new-$t" | wc -l) ))
  result=ok
  grep -q -E 'panicked|deadly signal|ERROR: libFuzzer' "$log" && result="CRASH (see $log)" && status=1
  printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "$secs" "$runs" "$(( runs / (secs > 0 ? secs : 1) ))" "$corpus" "$result"
done
exit $status
