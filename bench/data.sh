#!/usr/bin/env bash
# The image loader's speed, fixclf against torchvision's ImageFolder + DataLoader (Pillow),
# on the same folder, transform, batch and number of workers, interleaved: one JSON line per
# (implementation, transform, repeat), then a table of images/s and images/s per worker.
# torchvision comes from its PyPI wheel, installed (with Pillow) into a venv of the fixclf
# cache that takes torch from the full torch install (FIXCLF_TORCH_FULL=1
# scripts/setup-libtorch.sh, about 4.6 GB, once; bench/vision.sh uses it too).
# Without --dir, a folder of ImageNet-sized photograph-like JPEGs (500x375, quality 90) is
# made once with `fixclf data jpegs` under target/bench-jpegs.
#
#   bench/data.sh [--dir DIR] [--workers 1] [--batch 64] [--transforms train,eval] [--repeats 2]
#                 [--images 1000]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir= workers=1 batch=64 transforms=train,eval repeats=2 images=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --transforms) transforms=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    *) echo "bench/data.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
make -s libtorch >/dev/null
cargo build --release -q
fixclf=./target/release/fixclf
if [ -z "$dir" ]; then
  dir=target/bench-jpegs-$images
  [ -d "$dir" ] || "$fixclf" data jpegs --out "$dir" --classes 10 --per-class $((images / 10)) \
    --width 500 --height 375 --quality 90 >&2
  dir=$dir/train
fi
torch_dir=$(FIXCLF_TORCH_FULL=1 ./scripts/setup-libtorch.sh)
torch_venv="$(dirname "$(dirname "$(dirname "$(dirname "$torch_dir")")")")"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/fixclf/torchvision-bench"
if [ ! -f "$venv/.fixclf-complete" ]; then
  echo "bench/data.sh: installing torchvision into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  torch_site=$("$torch_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  # torch (and its CUDA libraries) from the full install; torchvision, Pillow, numpy here.
  echo "$torch_site" > "$site/fixclf-torch.pth"
  "$venv/bin/python" -m pip --disable-pip-version-check -q install --no-deps torchvision==0.26.0
  "$venv/bin/python" -m pip --disable-pip-version-check -q install pillow numpy \
    typing_extensions filelock sympy networkx jinja2 fsspec
  touch "$venv/.fixclf-complete"
fi
out=${BENCH_OUT:-$(mktemp)}
for r in $(seq "$repeats"); do
  for t in ${transforms//,/ }; do
    args=(--dir "$dir" --workers "$workers" --batch "$batch" --transform "$t")
    if [ $((r % 2)) = 1 ]; then
      "$fixclf" bench data "${args[@]}" | tee -a "$out"
      "$venv/bin/python" bench/torch_data_bench.py "${args[@]}" | tee -a "$out"
    else
      "$venv/bin/python" bench/torch_data_bench.py "${args[@]}" | tee -a "$out"
      "$fixclf" bench data "${args[@]}" | tee -a "$out"
    fi
  done
done
"$venv/bin/python" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("\n| transform | workers | fixclf img/s | torchvision img/s | fixclf / torchvision | fixclf decode share |")
print("|---|---|---|---|---|---|")
for t in sorted({r["transform"] for r in rows}):
    for w in sorted({r["workers"] for r in rows}):
        f = [r for r in rows if r["impl"] == "fixclf" and r["transform"] == t and r["workers"] == w]
        v = [r for r in rows if r["impl"] == "torchvision" and r["transform"] == t and r["workers"] == w]
        if not f or not v:
            continue
        fm = statistics.median(r["images_per_s"] for r in f)
        vm = statistics.median(r["images_per_s"] for r in v)
        share = statistics.median(r["decode_share"] for r in f)
        print(f"| {t} | {w} | {fm:.0f} | {vm:.0f} | {fm / vm:.2f}x | {share:.0%} |")
PY
