#!/usr/bin/env python3
"""Evaluates a fixclf run's best.safetensors (learned or tied mode) in PyTorch, with the
module of PyTorch's word_language_model example (Embedding -> LSTM -> Linear), on the run's
own split and token limit, and prints the perplexity next to the one fixclf recorded in
summary.json. Checks that a fixclf checkpoint means the same model in PyTorch.

Needs torch, numpy and safetensors importable (the full torch install:
FIXCLF_TORCH_FULL=1 scripts/setup-libtorch.sh, then pip install numpy safetensors in that venv).

Example: python3 bench/pytorch_eval.py runs/wt2-quick/learned [test|valid]
"""
import json, math, os, sys, tomllib

import torch
import torch.nn as nn
from safetensors.torch import load_file


class RNNModel(nn.Module):
    """The example's RNNModel('LSTM', ...), without dropout (evaluation)."""

    def __init__(self, ntoken, ninp, nhid, nlayers, tie):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie:
            self.decoder.weight = self.encoder.weight

    def forward(self, x, hidden):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out), hidden


def main():
    run = sys.argv[1]
    split = sys.argv[2] if len(sys.argv) > 2 else "test"
    cfg = tomllib.load(open(os.path.join(run, "config.toml"), "rb"))
    data, model_cfg, train = cfg["data"], cfg["model"], cfg["train"]
    mode = cfg["output"]["mode"]
    if mode not in ("learned", "tied"):
        sys.exit(f"{run}: mode {mode}: only learned and tied checkpoints hold every weight")
    tok_path = data["tokenizer"] or os.path.join(
        data["cache_dir"], os.path.basename(os.path.normpath(data["dir"])) + "-tokenizer.json")
    vocab = json.load(open(tok_path))["model"]["vocab"]
    ids = []
    with open(os.path.join(data["dir"], f"{split}.txt"), encoding="utf-8") as f:
        for line in f:
            ids += [vocab[w] for w in line.split()] + [vocab["<eos>"]]
    limit = data.get(f"{split}_tokens", 0)
    if limit:
        ids = ids[:limit]
    bsz, bptt = train["eval_batch_size"], train["bptt"]
    nb = len(ids) // bsz
    source = torch.tensor(ids[: nb * bsz]).view(bsz, -1).t().contiguous()

    model = RNNModel(len(vocab), model_cfg["emb_size"], model_cfg["hidden_size"],
                     model_cfg["layers"], mode == "tied")
    sd = load_file(os.path.join(run, "best.safetensors"))
    sd = {k: v for k, v in sd.items() if not k.startswith(("optimizer.", "asgd."))}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert missing == (["decoder.weight"] if mode == "tied" else []), missing
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        z = torch.zeros(model_cfg["layers"], bsz, model_cfg["hidden_size"])
        hidden = (z, z.clone())
        for i in range(0, source.size(0) - 1, bptt):
            n = min(bptt, source.size(0) - 1 - i)
            x, y = source[i:i + n], source[i + 1:i + 1 + n].reshape(-1)
            logits, hidden = model(x, hidden)
            total += n * nn.functional.cross_entropy(logits.view(-1, len(vocab)), y).item()
            count += n
    ppl = math.exp(total / count)
    summary = json.load(open(os.path.join(run, "summary.json")))
    print(json.dumps({"run": run, "split": split, "pytorch_ppl": round(ppl, 4),
                      "fixclf_test_ppl": round(summary["test_ppl"], 4)}))


if __name__ == "__main__":
    main()
