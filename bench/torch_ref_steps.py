#!/usr/bin/env python3
"""Runs a PyTorch reference benchmark (torch_lm_bench.py or torch_vision_bench.py, unchanged)
and adds every timed step to its JSON lines (`train_step_ms_all`, `eval_ms_all`, sorted; for
the vision reference also `memory_format`, from its `--channels-last`), as
`fixclf bench lm` and `fixclf bench vision` report them: on a shared machine the low
quantiles show the cost of the work itself. Both references take the median of the training
steps, then of the evaluation steps, once per JSON line.

    python3 bench/torch_ref_steps.py REFERENCE.py [the reference's arguments]
"""
import contextlib, importlib.util, io, json, statistics, sys

path, args = sys.argv[1], sys.argv[2:]
spec = importlib.util.spec_from_file_location("torch_reference_bench", path)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
samples = []  # the reference takes the median of the train, then the eval times, per line
median = statistics.median
def recording_median(values):
    samples.append(sorted(values))
    return median(values)
ref.statistics.median = recording_median
sys.argv = [path] + args
out = io.StringIO()
with contextlib.redirect_stdout(out):
    ref.main()
lines = out.getvalue().strip().splitlines()
for i, line in enumerate(lines):
    d = json.loads(line)
    d["train_step_ms_all"] = [round(t * 1e3, 1) for t in samples[2 * i]]
    d["eval_ms_all"] = [round(t * 1e3, 1) for t in samples[2 * i + 1]]
    if "image" in d:  # the vision reference: its layout, named as fixclf names it
        d["memory_format"] = "channels-last" if "--channels-last" in args else "contiguous"
    print(json.dumps(d), flush=True)
