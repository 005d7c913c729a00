#!/usr/bin/env bash
# Prepares a GPU run on a machine without Rust or internet access: builds fixclf with
# --features cuda here against the full torch wheel, and puts in gpu-bundle/ (git-ignored)
# the binary, the PyTorch references (the bench, and pytorch/examples' word_language_model
# when FIXCLF_WLM_DIR names its folder) and run.sh, which runs there, with that machine's
# own torch libraries, the GPU check (scripts/gpu-check.sh) and then the paper suite
# (scripts/gpu-suite.sh) for the time left.
# Carry `gpu-bundle` and `data/wikitext-2` (about 30 MB together) and run
# `bash gpu-bundle/run.sh` there; results land in $OUT: summary.md (the check's
# table), replay.md (graph against eager steps), vision.md (the image step, NCHW and NHWC),
# probe.md (runs at once, MPS), results.md (the suite's table so far), and two archives with
# everything else (no checkpoints).
#
# Environment: CARGO_TARGET_DIR (default target/cuda), FIXCLF_WLM_DIR. run.sh reads
# GPU_BUDGET_S (seconds for all of it, default 540), GPU_SUITE_CONFIG (default
# configs/wt2-paper.toml) and the variables of both scripts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=${CARGO_TARGET_DIR:-target/cuda}
torch_dir=$(FIXCLF_TORCH_FULL=1 ./scripts/setup-libtorch.sh)
LIBTORCH="$torch_dir" CARGO_TARGET_DIR="$target" cargo build --release --features cuda --bin fixclf
./data/fetch.sh
rm -rf gpu-bundle
mkdir -p gpu-bundle
cp "$target/release/fixclf" gpu-bundle/
ref=${FIXCLF_TORCH_BENCH:-../shared/bench/torch_lm_bench.py}
[ -f "$ref" ] && cp "$ref" gpu-bundle/torch_lm_bench.py
vref=${FIXCLF_TORCH_VISION_BENCH:-../shared/bench/torch_vision_bench.py}
[ -f "$vref" ] && cp "$vref" gpu-bundle/torch_vision_bench.py
if [ -n "${FIXCLF_WLM_DIR:-}" ]; then
  mkdir -p gpu-bundle/word_language_model
  cp "$FIXCLF_WLM_DIR"/{main.py,model.py,data.py} gpu-bundle/word_language_model/
fi
cat >gpu-bundle/run.sh <<'RUN'
#!/usr/bin/env bash
# Runs on the GPU machine: the GPU check, then the paper suite until GPU_BUDGET_S (default
# 540) seconds are spent, with the binary of this folder and the machine's own torch (CUDA,
# cuDNN) libraries. Results in $OUT (default /tmp).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$(date +%s)
budget=${GPU_BUDGET_S:-540}
SP=$(python3 -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')
LD_LIBRARY_PATH="$SP/torch/lib:$(find "$SP/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')${LD_LIBRARY_PATH:-}"
export LD_LIBRARY_PATH FIXCLF_BIN=${FIXCLF_BIN:-gpu-bundle/fixclf} FIXCLF_PYTHON=${FIXCLF_PYTHON:-python3}
export FIXCLF_TORCH_BENCH=gpu-bundle/torch_lm_bench.py FIXCLF_TORCH_VISION_BENCH=gpu-bundle/torch_vision_bench.py
# FIXCLF_WLM_DIR= (set, empty): no reference epoch.
[ -z "${FIXCLF_WLM_DIR+set}" ] && [ -f gpu-bundle/word_language_model/main.py ] && export FIXCLF_WLM_DIR=gpu-bundle/word_language_model
# The check's epochs with graphs only (the bench's lines are the eager steps), to leave the
# suite more of the budget.
export GPU_CHECK_RUNS=${GPU_CHECK_RUNS:-"learned:fp32 fixed-orthogonal:fp32 learned:tf32 fixed-orthogonal:tf32 fixed-orthogonal:bf16"}
dest=${OUT:-/tmp}
status=0
# GPU_CHECK=0: the suite only (e.g. a second command on a warm machine, which keeps runs/).
[ "${GPU_CHECK:-1}" = 1 ] && { OUT="$dest/gpu-check" scripts/gpu-check.sh || status=$?; }
[ "$status" = 2 ] && exit 2 # no GPU, or the binary does not see it
# The suite gets what is left, less a minute for its runs to stop and the archives.
left=$((budget - ($(date +%s) - start) - 60))
if [ -f "$dest/gpu-check/graph-failed" ]; then
  export GPU_SUITE_SET="${GPU_SUITE_SET:-} train.cuda_graph=false"
  echo "run.sh: a captured step failed in the check; the suite runs eagerly"
fi
if [ "$left" -gt 90 ]; then
  OUT="$dest/gpu-suite" GPU_SUITE_SECONDS=$left scripts/gpu-suite.sh ${GPU_SUITE_CONFIG:-} || status=$?
else
  echo "run.sh: no time left for the suite ($left s)"
fi
# At most 8 files come back from the device: the tables, and one archive per part.
for part in gpu-check gpu-suite; do
  [ -d "$dest/$part" ] || continue
  tar -czf "$dest/$part.tar.gz" --exclude='*.safetensors' --exclude='*.pt' -C "$dest" "$part"
done
cp "$dest/gpu-check/summary.md" "$dest/summary.md" 2>/dev/null
cp "$dest/gpu-check/replay.md" "$dest/replay.md" 2>/dev/null
cp "$dest/gpu-check/vision.md" "$dest/vision.md" 2>/dev/null
cp "$dest/gpu-suite/probe.md" "$dest/probe.md" 2>/dev/null
cp "$dest/gpu-suite/report/results.md" "$dest/results.md" 2>/dev/null
rm -rf "$dest/gpu-check" "$dest/gpu-suite"
echo "run.sh: done in $(($(date +%s) - start)) s, status $status"
exit "$status"
RUN
chmod +x gpu-bundle/run.sh
du -sh gpu-bundle data/wikitext-2
echo "gpu-bundle: ready; carry gpu-bundle and data/wikitext-2, run: bash gpu-bundle/run.sh"
