#!/usr/bin/env python3
"""Regenerates tests/fixtures/pillow/: small images written by Pillow (baseline,
progressive, grayscale and CMYK JPEGs; RGBA and palette PNGs), Pillow's decoded pixels of
each, and Pillow's output of torchvision's transforms on them with given boxes:
img.crop(box).resize((s, s), BILINEAR) (RandomResizedCrop's resized_crop), and
img.resize(Resize(r) size, BILINEAR) then CenterCrop(s) with torchvision's arithmetic.
Run by scripts/golden-pillow.sh (which installs Debian's python3-pil)."""
import json
import math
import os
import sys

from PIL import Image, ImageDraw, features

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/pillow"
os.makedirs(OUT, exist_ok=True)


def scene(w, h, seed):
    """A photograph-like RGB image: gradients, discs, lines."""
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = (
                int(127 + 100 * math.sin(0.07 * x + seed)),
                int(127 + 100 * math.cos(0.05 * y + 0.03 * x + seed)),
                int((x * 3 + y * 5 + seed * 40) % 256),
            )
    d = ImageDraw.Draw(img)
    d.ellipse((w // 4, h // 5, w // 2 + 7, h // 2 + 11), fill=(240, 30, 60))
    d.line((0, h - 1, w - 1, 0), fill=(10, 250, 10), width=3)
    d.rectangle((w - 20, 4, w - 6, 18), fill=(255, 255, 255))
    return img


def resized_size(w, h, r):
    return (r, int(r * h / w)) if w <= h else (int(r * w / h), r)


cases = []
base = scene(97, 71, 1)
sources = [
    ("baseline.jpg", base, dict(format="JPEG", quality=90)),
    ("progressive.jpg", scene(80, 120, 2), dict(format="JPEG", quality=90, progressive=True)),
    ("gray.jpg", base.convert("L"), dict(format="JPEG", quality=90)),
    ("cmyk.jpg", scene(64, 48, 3).convert("CMYK"), dict(format="JPEG", quality=95)),
    ("rgba.png", scene(50, 40, 4).convert("RGBA"), dict(format="PNG")),
    ("palette.png", scene(45, 60, 5).convert("P"), dict(format="PNG")),
]
for name, img, opts in sources:
    path = os.path.join(OUT, name)
    img.save(path, **opts)
    rgb = Image.open(path).convert("RGB")
    w, h = rgb.size
    with open(path + ".rgb", "wb") as f:
        f.write(rgb.tobytes())
    boxes = [(0, 0, h, w), (h // 4, w // 5, h // 2, w // 2), (1, 3, h - 5, w // 3)]
    crops = []
    for k, (top, left, bh, bw) in enumerate(boxes):
        out = rgb.crop((left, top, left + bw, top + bh)).resize((24, 24), Image.BILINEAR)
        fname = f"{name}.crop{k}.rgb"
        with open(os.path.join(OUT, fname), "wb") as f:
            f.write(out.tobytes())
        crops.append({"top": top, "left": left, "height": bh, "width": bw, "size": 24, "file": fname})
    rw, rh = resized_size(w, h, 40)
    resized = rgb.resize((rw, rh), Image.BILINEAR)
    top = int(round((rh - 32) / 2.0))
    left = int(round((rw - 32) / 2.0))
    center = resized.crop((left, top, left + 32, top + 32))
    fname = f"{name}.center.rgb"
    with open(os.path.join(OUT, fname), "wb") as f:
        f.write(center.tobytes())
    cases.append({
        "file": name, "width": w, "height": h, "decoded": name + ".rgb", "crops": crops,
        "center": {"resize": 40, "size": 32, "file": fname},
    })

import PIL
manifest = {
    "pillow": PIL.__version__,
    "libjpeg_turbo": features.version("libjpeg_turbo"),
    "cases": cases,
}
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
print(f"{OUT}: {len(cases)} images, Pillow {PIL.__version__}")
