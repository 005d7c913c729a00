"""gensim Word2Vec (skip-gram, negative sampling) on the same token stream as `fixclf embed
word2vec`: whitespace tokens, `<eos>` after every line, cut into 1000-token sentences, no
min-count. Prints one JSON line with words/s (training only, corpus tokens x epochs / s).
Usage: gensim_word2vec.py CORPUS OUT.npy --dim 512 --window 5 --negative 5 --epochs 1 --threads 2
"""
import argparse, json, time
import numpy as np
from gensim.models import Word2Vec

ap = argparse.ArgumentParser()
ap.add_argument("corpus"); ap.add_argument("out")
ap.add_argument("--dim", type=int, default=512); ap.add_argument("--window", type=int, default=5)
ap.add_argument("--negative", type=int, default=5); ap.add_argument("--epochs", type=int, default=5)
ap.add_argument("--threads", type=int, default=2); ap.add_argument("--sample", type=float, default=1e-3)
ap.add_argument("--alpha", type=float, default=0.025); ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()

tokens = []
with open(a.corpus, encoding="utf-8") as f:
    for line in f:
        tokens.extend(line.split()); tokens.append("<eos>")
sentences = [tokens[i:i + 1000] for i in range(0, len(tokens), 1000)]
m = Word2Vec(vector_size=a.dim, window=a.window, negative=a.negative, hs=0, sg=1, sample=a.sample,
             min_count=1, workers=a.threads, alpha=a.alpha, min_alpha=a.alpha * 1e-4, seed=a.seed)
m.build_vocab(sentences)
t = time.time(); c = time.process_time()
m.train(sentences, total_examples=len(sentences), epochs=a.epochs)
secs = time.time() - t; cpu = time.process_time() - c
wps = len(tokens) * a.epochs / secs
kv = m.wv
np.save(a.out, kv.vectors.astype("<f4"))
with open(a.out[:-4] + ".vocab", "w", encoding="utf-8") as f:
    f.write("\n".join(kv.index_to_key) + "\n")
print(json.dumps({"tool": "gensim", "tokens": len(tokens), "epochs": a.epochs, "seconds": secs, "cpu_seconds": cpu,
                  "words_per_sec": wps, "threads": a.threads, "dim": a.dim}))
