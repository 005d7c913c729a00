#!/usr/bin/env python3
"""Neural-collapse measures of a fixed fixture, by the definitions of
rhubarbwu/neural-collapse (`neural_collapse/measure.py`, `accumulate.py`) and Papyan et al.
(2020), written again in NumPy: the golden numbers of `src/vision/collapse_tests.rs`.

The fixture needs no random generator (both sides build it from the same formulas):
C = 5 classes of 12, 8, 5, 3 and 2 samples (imbalanced, so the weighted and unweighted
global means differ), N = 6 features,
    x[i][j] = 3 sin(0.7 i + 1.3 j) + 2 cos(1.1 (c + 1) (j + 1)),   c = label of sample i
    w[c][j] = cos(0.9 c + 0.4 j) + 0.3 cos(1.1 (c + 1) (j + 1)),
the labels in order 0,0,...,1,... and the linear classifier's decision argmax(x W^T)
(DecAccumulator's `Y_lin`).

    python3 scripts/nc_reference.py    (needs numpy)
"""
import numpy as np

COUNTS = [12, 8, 5, 3, 2]
N = 6


def fixture():
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(COUNTS)])
    i = np.arange(len(labels))[:, None]
    j = np.arange(N)[None, :]
    c = labels[:, None]
    x = 3 * np.sin(0.7 * i + 1.3 * j) + 2 * np.cos(1.1 * (c + 1) * (j + 1))
    cc = np.arange(len(COUNTS))[:, None]
    w = np.cos(0.9 * cc + 0.4 * j) + 0.3 * np.cos(1.1 * (cc + 1) * (j + 1))
    return x, labels, w


def measures(x, labels, w, weighted):
    K = len(COUNTS)
    ns = np.array(COUNTS, dtype=float)
    M = np.stack([x[labels == c].mean(0) for c in range(K)])  # MeanAccumulator
    # accumulate.py compute(): weighted = ns @ avg / ns.sum(), else avg.mean(0)
    mG = ns @ M / ns.sum() if weighted else M.mean(0)
    R = x - M[labels]
    V_intra = R.T @ R / len(labels)  # CovarAccumulator: totals / ns.sum()
    Mc = M - mG
    V_inter = Mc.T @ Mc / K
    nc1 = np.trace(np.linalg.pinv(V_inter) @ V_intra) / K  # covariance_ratio "pinv"

    def structure_error(A, B):  # measure.structure_error
        s = B @ A.T
        s = s / np.linalg.norm(s)
        s = s + 1 / K / np.sqrt(K - 1)
        s[np.diag_indices(K)] -= 1 / np.sqrt(K - 1)
        return np.linalg.norm(s)

    norms = np.linalg.norm(Mc, axis=1)  # mean_norms
    wn = np.linalg.norm(w, axis=1)

    def equiangular(U):
        cos = U @ U.T
        off = ~np.eye(K, dtype=bool)
        return np.abs(cos[off] + 1 / (K - 1)).mean()

    # DecAccumulator: NCC by distances to the means, linear by argmax(x W^T)
    d = (x**2).sum(1)[:, None] + (M**2).sum(1)[None, :] - 2 * x @ M.T
    y_ncc = d.argmin(1)
    y_lin = (x @ w.T).argmax(1)
    agreement = (y_lin == y_ncc).mean()  # clf_ncc_agreement(weighted=True)
    frob = lambda t: t / np.linalg.norm(t)
    return {
        "nc1": nc1,
        "nc2_equinorm": norms.std() / norms.mean(),
        "nc2_equiangular": equiangular(Mc / norms[:, None]),
        "nc2_w_equinorm": wn.std() / wn.mean(),
        "nc2_w_equiangular": equiangular(w / wn[:, None]),
        "nc2_etf_error": structure_error(Mc, Mc),  # simplex_etf_error
        "nc3_duality_error": structure_error(Mc, w),  # self_duality_error
        "nc3": ((frob(w) - frob(Mc)) ** 2).sum(),
        "nc4": 1 - agreement,
        "ncc_acc": (y_ncc == labels).mean(),
        "acc": (y_lin == labels).mean(),
    }


if __name__ == "__main__":
    x, labels, w = fixture()
    for weighted in (True, False):
        print(f"weighted_mean = {weighted}")
        for k, v in measures(x, labels, w, weighted).items():
            print(f"    {k}: {v:.12e}")
