"""The scipy reference PPMI + SVD pipeline (Levy, Goldberg & Dagan 2015 / hyperwords):
co-occurrence counts over a symmetric window with numpy, PPMI with context-distribution
smoothing (cds 0.75), `scipy.sparse.linalg.svds(k=dim)`, vectors U * S^p.
Usage: scipy_pmi.py CORPUS OUT.npy --dim 512 --window 5 --threads 2
"""
import argparse, json, os, time
ap = argparse.ArgumentParser()
ap.add_argument("corpus"); ap.add_argument("out")
ap.add_argument("--dim", type=int, default=512); ap.add_argument("--window", type=int, default=5)
ap.add_argument("--cds", type=float, default=0.75); ap.add_argument("--eig-p", type=float, default=0.5)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = str(a.threads)
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

t0 = time.time()
words = []
with open(a.corpus, encoding="utf-8") as f:
    for line in f:
        words.extend(line.split()); words.append("<eos>")
vocab, inv, counts = np.unique(np.array(words, dtype=object), return_inverse=True, return_counts=True)
order = np.argsort(-counts, kind="stable")  # frequency order (ties: alphabetical here)
rank = np.empty_like(order); rank[order] = np.arange(len(order))
ids = rank[inv].astype(np.int64); V = len(vocab); vocab = vocab[order]
rows, cols = [], []
for d in range(1, a.window + 1):
    rows += [ids[:-d], ids[d:]]; cols += [ids[d:], ids[:-d]]
r = np.concatenate(rows); c = np.concatenate(cols)
M = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(V, V))
M.sum_duplicates()
t1 = time.time()
sum_w = np.asarray(M.sum(axis=1)).ravel(); sum_c = np.asarray(M.sum(axis=0)).ravel() ** a.cds
total = sum_c.sum()
P = M.tocoo()
vals = np.log(P.data.astype(np.float64) * total / (sum_w[P.row] * sum_c[P.col]))
keep = vals > 0
P = sp.csr_matrix((vals[keep].astype(np.float32), (P.row[keep], P.col[keep])), shape=(V, V))
t2 = time.time()
u, s, vt = svds(P, k=a.dim)
o = np.argsort(-s); u, s = u[:, o], s[o]
W = np.ascontiguousarray((u * s ** a.eig_p).astype("<f4"))
t3 = time.time()
np.save(a.out, W)
with open(a.out[:-4] + ".vocab", "w", encoding="utf-8") as f:
    f.write("\n".join(vocab) + "\n")
print(json.dumps({"tool": "scipy", "vocab": V, "count_nnz": int(M.nnz), "ppmi_nnz": int(P.nnz),
                  "seconds_counts": t1 - t0, "seconds_ppmi": t2 - t1, "seconds_svd": t3 - t2,
                  "seconds": t3 - t0, "top_singular_values": s[:5].tolist(),
                  "last_singular_value": float(s[-1])}))
