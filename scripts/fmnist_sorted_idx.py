"""Writes a copy of Fashion-MNIST's IDX files with the training set stably sorted by label.

An image folder lists its files class by class (torchvision's ImageFolder order), and
`fixclf data export` (or a Pillow export naming files by their IDX index) keeps the IDX
order inside each class. So this copy's order is the folder's, and the same seed draws the
same images in the same batches from both: the comparison of the two readers is then exact.
The test set is copied as it is (accuracy does not depend on its order).

    python3 scripts/fmnist_sorted_idx.py data/fashion-mnist data/fashion-mnist-sorted
"""
import gzip
import os
import struct
import sys


def read(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    dims = magic & 0xFF
    header = 4 + 4 * dims
    size = 1
    for i in range(1, dims):
        size *= struct.unpack(">I", data[4 + 4 * i : 8 + 4 * i])[0]
    return data[:header], [data[header + k * size : header + (k + 1) * size] for k in range(n)]


def write(path, header, records):
    tmp = path + ".partial"
    with gzip.open(tmp, "wb") as f:
        f.write(header)
        for r in records:
            f.write(r)
    os.replace(tmp, path)


def main(src, out):
    os.makedirs(out, exist_ok=True)
    ih, images = read(os.path.join(src, "train-images-idx3-ubyte.gz"))
    lh, labels = read(os.path.join(src, "train-labels-idx1-ubyte.gz"))
    order = sorted(range(len(labels)), key=lambda k: labels[k][0])  # stable: index order within a class
    write(os.path.join(out, "train-images-idx3-ubyte.gz"), ih, [images[k] for k in order])
    write(os.path.join(out, "train-labels-idx1-ubyte.gz"), lh, [labels[k] for k in order])
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with open(os.path.join(src, name), "rb") as f, open(os.path.join(out, name), "wb") as g:
            g.write(f.read())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: fmnist_sorted_idx.py SRC_DIR OUT_DIR")
    main(sys.argv[1], sys.argv[2])
