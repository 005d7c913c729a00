#!/usr/bin/env python3
"""Prints the comparison table of bench/lm.sh from its JSON lines (stdin or a file): per mode
and implementation, the best and median training step over all repeats, eval tokens/s (best
step), and fixclf's speed-up over PyTorch on both statistics."""
import collections, fileinput, json, statistics

EVAL_BATCH = 10  # both benchmarks' default (neither prints it)
runs = collections.defaultdict(list)
for line in fileinput.input():
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
        mode = "fixed-orthogonal" if d["mode"] == "fixed" else d["mode"]
        runs[(mode, d["optimizer"], d["impl"])].append(d)

def stats(ds):
    steps = sorted(t for d in ds for t in d["train_step_ms_all"])
    evals = sorted(t for d in ds for t in d["eval_ms_all"])
    tokens = ds[0]["bptt"] * EVAL_BATCH
    return steps[0], statistics.median(steps), tokens / evals[0] * 1e3, len(ds)

print(f"| mode | optimizer | impl | runs | step best (ms) | step median (ms) | eval tokens/s (best) | speed-up best / median |")
print("|---|---|---|--:|--:|--:|--:|--:|")
for (mode, opt) in sorted({(m, o) for m, o, _ in runs}):
    ours, ref = runs.get((mode, opt, "fixclf")), runs.get((mode, opt, "pytorch"))
    for name, ds in (("pytorch", ref), ("fixclf", ours)):
        if not ds:
            continue
        best, med, ev, n = stats(ds)
        up = ""
        if name == "fixclf" and ref:
            rb, rm, _, _ = stats(ref)
            up = f"{rb / best:.2f}x / {rm / med:.2f}x"
        print(f"| {mode} | {opt} | {name} | {n} | {best:.0f} | {med:.0f} | {ev:.0f} | {up} |")
