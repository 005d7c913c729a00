#!/usr/bin/env python3
"""Prints the comparison table of bench/vision.sh from its JSON lines (stdin or files): per
model, head and implementation, the best and median training step over all repeats, training
images/s at the median step, evaluation images/s at the best step, fixclf's speed-up over
PyTorch on both statistics, and each implementation's fixed-head step against its learned one
(below 1.00x the fixed head is faster). Each layout (`memory_format`: contiguous NCHW or
channels-last NHWC) is compared with the same layout only."""
import collections, fileinput, json, statistics

runs = collections.defaultdict(list)
for line in fileinput.input():
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
        layout = d.get("memory_format", "contiguous")
        runs[(d["model"], d["mode"], d["device"], layout, d["impl"])].append(d)

def stats(ds):
    steps = sorted(t for d in ds for t in d["train_step_ms_all"])
    evals = sorted(t for d in ds for t in d.get("eval_ms_all", []))
    batch = ds[0]["batch"]
    med = statistics.median(steps)
    ev = batch / evals[0] * 1e3 if evals else float(max(d["eval_images_per_s"] for d in ds))
    return steps[0], med, batch / med * 1e3, ev, len(ds)

print("| model | head | device | layout | impl | runs | step best (ms) | step median (ms) | train img/s (median) | eval img/s (best) | speed-up best / median | fixed / learned step (median) |")
print("|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|")
for model, mode, device, layout in sorted({k[:4] for k in runs}, key=lambda k: (int(k[0][6:]), k[3], k[1] != "learned", k[1], k[2])):
    ref = runs.get((model, mode, device, layout, "pytorch"))
    for impl in ("pytorch", "fixclf"):
        ds = runs.get((model, mode, device, layout, impl))
        if not ds:
            continue
        best, med, img, ev, n = stats(ds)
        up = ""
        if impl == "fixclf" and ref:
            rb, rm, _, _, _ = stats(ref)
            up = f"{rb / best:.2f}x / {rm / med:.2f}x"
        vs_learned = ""
        learned = runs.get((model, "learned", device, layout, impl))
        if mode != "learned" and learned:
            vs_learned = f"{med / stats(learned)[1]:.2f}x"
        print(f"| {model} | {mode} | {device} | {layout} | {impl} | {n} | {best:.1f} | {med:.1f} | {img:.0f} | {ev:.0f} | {up} | {vs_learned} |")
