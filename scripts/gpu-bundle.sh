#!/usr/bin/env bash
# Prepares the GPU check for a machine without Rust or internet (the lent device of
# ../shared/docs/gpu.md): builds fixclf with --features cuda here against the full torch
# wheel, and puts in gpu-bundle/ (git-ignored) the binary, the PyTorch reference bench and
# run.sh, which runs scripts/gpu-check.sh there with that machine's own torch libraries.
# Carry `gpu-bundle` and `data/wikitext-2` (about 30 MB together) and run
# `bash gpu-bundle/run.sh` there; the results come back as $OUT/gpu-check.tar.gz and
# $OUT/summary.md.
#
# Environment: CARGO_TARGET_DIR (default target/cuda).
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
cat >gpu-bundle/run.sh <<'RUN'
#!/usr/bin/env bash
# Runs on the GPU machine, from the work tree's root or anywhere: the GPU check with the
# binary of this folder and the machine's own torch (CUDA, cuDNN) libraries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SP=$(python3 -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')
LD_LIBRARY_PATH="$SP/torch/lib:$(find "$SP/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')${LD_LIBRARY_PATH:-}"
export LD_LIBRARY_PATH
results=${OUT:-/tmp}/gpu-check
mkdir -p "$results"
status=0
OUT="$results" FIXCLF_BIN=gpu-bundle/fixclf FIXCLF_PYTHON=python3 \
  FIXCLF_TORCH_BENCH=gpu-bundle/torch_lm_bench.py scripts/gpu-check.sh "$@" || status=$?
# Few files come back from the device: one archive (runs without their checkpoints) and the summary.
tar -czf "$results.tar.gz" --exclude='*.safetensors' -C "$(dirname "$results")" gpu-check
cp "$results/summary.md" "$(dirname "$results")/summary.md" 2>/dev/null || true
rm -rf "$results"
exit "$status"
RUN
chmod +x gpu-bundle/run.sh
du -sh gpu-bundle data/wikitext-2
echo "gpu-bundle: ready; carry gpu-bundle and data/wikitext-2, run: bash gpu-bundle/run.sh"
