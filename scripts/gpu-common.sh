# Sourced by gpu-check.sh and gpu-suite.sh: what both need before they start.

# Exits 2 unless nvidia-smi sees a GPU. $1: the script's name, $2: what to do without one.
gpu_require() {
  if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "$1: no NVIDIA GPU here (nvidia-smi finds none); $2" >&2
    exit 2
  fi
}

# Sets `bin`: $FIXCLF_BIN, or fixclf built here with --features cuda against the full torch
# wheel (in target/cuda); then `torch_dir` is that wheel's torch folder. Exits 2 if the
# build fails.
gpu_binary() {
  bin=${FIXCLF_BIN:-}
  torch_dir=
  [ -n "$bin" ] && return 0
  torch_dir=$(FIXCLF_TORCH_FULL=1 ./scripts/setup-libtorch.sh) || exit 2
  LIBTORCH="$torch_dir" CARGO_TARGET_DIR=target/cuda cargo build --release --features cuda --bin fixclf || exit 2
  bin=target/cuda/release/fixclf
}

# Exits 2 unless `$bin info` (its output also written to $2 when given) says CUDA is available.
gpu_sees_cuda() {
  local info
  info=$("$bin" info) || true
  echo "$info"
  [ -z "${2:-}" ] || echo "$info" >"$2"
  grep -q "cuda available: true" <<<"$info" || {
    echo "$1: $bin does not see CUDA (built without --features cuda, or libtorch_cuda not found: see ../shared/docs/gpu.md)" >&2
    exit 2
  }
}
