#!/usr/bin/env bash
# Fashion-MNIST through the image-folder reader against the IDX reader, on the real files:
# the 70,000 images written as a PNG ImageFolder by Pillow (scripts/pillow_export.py, not by
# fixclf), trained with configs/vision/fmnist-png-folder.toml; the IDX files trained with
# configs/vision/fmnist-cnn.toml, once in their own order and once with the training set
# sorted by label (scripts/fmnist_sorted_idx.py), which is the folder's order. Same seed,
# same pixels, same order: the folder run and the sorted-IDX run must agree to the last bit;
# the run in the IDX files' own order differs as another data order does.
# About 3 x 5 epochs of the small CNN: tens of minutes on 2 cores.
#
#   scripts/fmnist-folder-check.sh [--epochs 5] [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=5 sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) epochs=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "scripts/fmnist-folder-check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
make -s data-vision >/dev/null
cargo build --release -q
bin=target/release/fixclf
# Debian's python3-pil is for the system Python, which a pyenv shim may hide.
PY=/usr/bin/python3
if ! $PY -c "import PIL" 2>/dev/null; then
  apt-get update -q && apt-get install -y -q python3-pil
fi
[ -d data/fashion-mnist-sorted ] || $PY scripts/fmnist_sorted_idx.py data/fashion-mnist data/fashion-mnist-sorted
[ -d data/fashion-mnist-pillow ] || $PY scripts/pillow_export.py data/fashion-mnist data/fashion-mnist-pillow
runs=runs/fmnist-folder-check
common=(--force -q --set runs_dir=$runs --set train.epochs=$epochs "${sets[@]}")
for spec in "idx configs/vision/fmnist-cnn.toml data/fashion-mnist" \
            "idx-sorted configs/vision/fmnist-cnn.toml data/fashion-mnist-sorted" \
            "folder configs/vision/fmnist-png-folder.toml data/fashion-mnist-pillow"; do
  read -r name config dir <<<"$spec"
  start=$(date +%s)
  "$bin" train --config "$config" "${common[@]}" --set name=$name --set vision.data.dir=$dir
  echo "$name: $(( $(date +%s) - start )) s" >&2
done
$PY - "$runs" <<'PY'
import json, sys, os
runs = sys.argv[1]
def summary(name):
    with open(os.path.join(runs, name, "summary.json")) as f:
        return json.load(f)
def metrics(name):
    with open(os.path.join(runs, name, "metrics.jsonl")) as f:
        return [l for l in f.read().splitlines() if '"epoch"' in l]
print("| run | reader | training order | test accuracy % | test loss |")
print("|---|---|---|--:|--:|")
for name, reader, order in (("idx", "IDX", "the IDX files'"), ("idx-sorted", "IDX", "sorted by label"),
                            ("folder", "PNG folder (Pillow)", "the folder's (by class)")):
    s = summary(name)
    print(f"| {name} | {reader} | {order} | {100 * s['test_acc']:.2f} | {s['test_loss']:.6f} |")
same = summary("idx-sorted")["test_acc"] == summary("folder")["test_acc"]
print(f"\nfolder vs idx-sorted: test accuracy {'equal' if same else 'DIFFERENT'}")
sys.exit(0 if same else 1)
PY
