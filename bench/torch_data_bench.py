#!/usr/bin/env python3
"""torchvision's ImageFolder + DataLoader over a folder of class folders, timed as
`fixclf bench data` times its loader: the training transform RandomResizedCrop(224) +
RandomHorizontalFlip() or the evaluation one Resize(256) + CenterCrop(224), each ending in
PILToTensor() (u8, as fixclf hands u8 batches over and normalizes on the device), batches of
--batch from --workers worker processes, one untimed batch first; one JSON line."""
import argparse
import json
import time

import torch
from torchvision import datasets, transforms

p = argparse.ArgumentParser()
p.add_argument("--dir", required=True)
p.add_argument("--workers", type=int, default=1)
p.add_argument("--batch", type=int, default=256)
p.add_argument("--transform", choices=["train", "eval"], default="train")
p.add_argument("--batches", type=int, default=0)
a = p.parse_args()

if a.transform == "train":
    t = [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip()]
else:
    t = [transforms.Resize(256), transforms.CenterCrop(224)]
ds = datasets.ImageFolder(a.dir, transforms.Compose(t + [transforms.PILToTensor()]))
loader = torch.utils.data.DataLoader(
    ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, persistent_workers=False
)
steps = len(loader)
timed = a.batches or steps - 1
it = iter(loader)
next(it)
t0 = time.perf_counter()
images = 0
for _ in range(timed):
    x, _ = next(it)
    images += x.shape[0]
secs = time.perf_counter() - t0
rate = images / secs
print(json.dumps({
    "batch": a.batch, "bench": "data", "images": images, "images_per_s": rate,
    "images_per_s_per_worker": rate / a.workers, "impl": "torchvision", "seconds": secs,
    "transform": a.transform, "workers": a.workers,
}))
