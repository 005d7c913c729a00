"""Writes Fashion-MNIST's IDX files as a PNG ImageFolder with Pillow, independently of
`fixclf data export`: `<out>/train/<label>/<index>.png` and `<out>/val/<label>/<index>.png`,
the index zero-padded so that the sorted names keep the IDX order within each class.

    /usr/bin/python3 scripts/pillow_export.py data/fashion-mnist data/fashion-mnist-pillow
"""
import gzip
import os
import struct
import sys

from PIL import Image


def load(images_path, labels_path):
    with gzip.open(images_path, "rb") as f:
        data = f.read()
    _, n, rows, cols = struct.unpack(">IIII", data[:16])
    with gzip.open(labels_path, "rb") as f:
        labels = f.read()[8:]
    size = rows * cols
    return [(data[16 + k * size : 16 + (k + 1) * size], labels[k]) for k in range(n)], (cols, rows)


def main(src, out):
    staging = out + ".partial"
    for split, prefix in (("train", "train"), ("val", "t10k")):
        samples, size = load(
            os.path.join(src, f"{prefix}-images-idx3-ubyte.gz"),
            os.path.join(src, f"{prefix}-labels-idx1-ubyte.gz"),
        )
        digits = len(str(len(samples) - 1))
        for k, (pixels, label) in enumerate(samples):
            folder = os.path.join(staging, split, str(label))
            os.makedirs(folder, exist_ok=True)
            Image.frombytes("L", size, pixels).save(os.path.join(folder, f"{k:0{digits}d}.png"))
    os.replace(staging, out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: pillow_export.py SRC_DIR OUT_DIR")
    main(sys.argv[1], sys.argv[2])
