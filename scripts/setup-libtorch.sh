#!/usr/bin/env bash
# Installs the light, CPU-only libtorch that `tch` links against, from the PyPI torch wheel,
# into a cache outside the work tree (reused when present). Prints the LIBTORCH path.
#
# Why not `pip install torch`: that pulls every nvidia-* CUDA library (4.6 GB). The CPU
# build only needs the wheel itself plus the CUDA runtime and CUPTI stubs that
# libtorch_cpu.so links against (see ../shared/docs/libtorch.md): about 1.25 GB.
#
# Environment:
#   FIXCLF_CACHE   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/fixclf)
#   FIXCLF_TORCH_FULL=1   install the full CUDA torch instead (needed for `--features cuda`)
set -euo pipefail

TORCH_VERSION=2.11.0
CUDA_RUNTIME=nvidia-cuda-runtime==13.0.96
CUDA_CUPTI=nvidia-cuda-cupti==13.0.85
# The CUDA headers that cuda_runtime.h includes beyond the runtime's own (crt/host_config.h;
# CCCL's nv/target): the full flavour's `--features cuda` build compiles the CUDA-graph part
# of csrc/fixclf_native.cpp with them.
CUDA_HEADERS=(nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85)

cache="${FIXCLF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fixclf}"
flavour=light
[ "${FIXCLF_TORCH_FULL:-0}" = 1 ] && flavour=full
venv="$cache/torch-$TORCH_VERSION-$flavour"
stamp="$venv/.fixclf-complete"

if [ ! -f "$stamp" ]; then
  python3 -c 'import sys; assert sys.version_info[:2] >= (3, 9)' \
    || { echo "setup-libtorch: python3 >= 3.9 is needed to install the torch wheel" >&2; exit 1; }
  echo "setup-libtorch: installing torch $TORCH_VERSION ($flavour) into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache/wheels"
  python3 -m venv "$venv"
  pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
  if [ "$flavour" = full ]; then
    "${pip[@]}" install "torch==$TORCH_VERSION"
  else
    ls "$cache"/wheels/torch-"$TORCH_VERSION"-*.whl >/dev/null 2>&1 \
      || "${pip[@]}" download --no-deps "torch==$TORCH_VERSION" -d "$cache/wheels"
    "${pip[@]}" install --no-deps "$cache"/wheels/torch-"$TORCH_VERSION"-*.whl
    "${pip[@]}" install --no-deps "$CUDA_RUNTIME" "$CUDA_CUPTI"
  fi
  touch "$stamp"
fi

if [ "$flavour" = full ] && ! ls "$venv"/lib/python3*/site-packages/nvidia/cu*/include/{crt/host_config.h,nv/target} >/dev/null 2>&1; then
  echo "setup-libtorch: adding the CUDA headers the cuda feature compiles with (${CUDA_HEADERS[*]})" >&2
  "$venv/bin/python" -m pip --disable-pip-version-check -q install --no-deps "${CUDA_HEADERS[@]}"
fi

site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -f "$site/torch/lib/libtorch_cpu.so" ] \
  || { echo "setup-libtorch: $site/torch/lib/libtorch_cpu.so missing; remove $venv and rerun" >&2; exit 1; }
echo "$site/torch"
