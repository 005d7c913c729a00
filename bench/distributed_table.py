#!/usr/bin/env python3
"""The table of bench/distributed.sh: per head mode, the steady step time of one process,
of one rank alone (the communication code with N = 1), of N ranks and of N ranks with the
all-reduce overlapped with the backward pass, the values and MB all-reduced per step and
the all-reduce time per step, after the pass and (overlapped) not hidden by it (medians
over repeats)."""
import json
import statistics
import sys


def main(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    multi = max(r["ranks"] for r in rows)

    def med(mode, launch_ranks, key, overlap=False):
        vals = [r[key] for r in rows if r["mode"] == mode and r["ranks"] == launch_ranks
                and r.get("overlap", False) == overlap and r[key] is not None]
        return statistics.median(vals) if vals else None

    print(f"| mode | 1 process ms/step | 1 rank alone ms/step | {multi} ranks ms/step | "
          f"{multi} ranks overlapped ms/step | M floats all-reduced / step | MB / step | "
          f"all-reduce ms / step | overlapped: not hidden ms / step |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in modes:
        one, alone, many = (med(mode, n, "ms_per_step") for n in (0, 1, multi))
        over = med(mode, multi, "ms_per_step", True)
        floats = med(mode, multi, "floats_per_step")
        mb = med(mode, multi, "bytes_per_step")
        ar = med(mode, multi, "allreduce_ms_per_step")
        ar_over = med(mode, multi, "allreduce_ms_per_step", True)
        fmt = lambda v, f="{:.0f}": "-" if v is None else f.format(v)
        print(f"| {mode} | {fmt(one)} | {fmt(alone)} | {fmt(many)} | {fmt(over)} | "
              f"{fmt(floats and floats / 1e6, '{:.2f}')} | {fmt(mb and mb / 1e6, '{:.1f}')} | "
              f"{fmt(ar, '{:.1f}')} | {fmt(ar_over, '{:.1f}')} |")


if __name__ == "__main__":
    main(sys.argv[1])
