//! Neural-collapse diagnostics (Papyan, Han & Donoho 2020, "Prevalence of neural collapse
//! during the terminal phase of deep learning training") of a set of features, their labels,
//! the classifier's class rows and (for NC4 and accuracy) its predictions. With `K` the
//! classes that have samples, `mu_c` their means, `mu_G` the global mean and `M` the centred
//! means `mu_c - mu_G` as rows, `W` the classifier rows of the same classes:
//!
//! - `mu_G`: the mean of all samples, i.e. the class means weighted by class size (Papyan;
//!   rhubarbwu/neural-collapse's `weighted=True`), or with `weighted_mean = false` the plain
//!   mean of the class means. They differ on imbalanced data; on balanced data they agree.
//! - NC1 = `tr(Sw Sb^+) / K`, `Sw` the within-class covariance (over all `S` samples),
//!   `Sb = M^T M / K` the between-class one. `Sb` has rank at most `min(K-1, N)`, so its
//!   pseudo-inverse keeps the `min(K-1, N)` largest eigenvalues (Papyan's top `C-1`) that are
//!   above `1e-10` of the largest; the rest is rounding noise.
//! - NC2 equinorm: std / mean (population std) of the norms `||mu_c - mu_G||`; of `||w_c||`
//!   for the rows.
//! - NC2 equiangularity: the mean over pairs `c != c'` of `|cos(M_c, M_c') + 1/(K-1)|`,
//!   Papyan's Figure 6; for the rows the same of `cos(w_c, w_c')` (uncentred, as Papyan).
//! - NC2 ETF error (Kothapalli 2023, rhubarbwu's `simplex_etf_error`):
//!   `|| M M^T/||M M^T||_F - (I - 11^T/K)/sqrt(K-1) ||_F`; NC3 duality error
//!   (`self_duality_error`): the same with `W M^T`.
//! - NC3: `|| W/||W||_F - M/||M||_F ||_F^2`.
//! - NC4: the share of samples whose classifier prediction differs from their nearest class
//!   mean (Euclidean, over the K classes); NCC accuracy: that nearest mean's accuracy.
//!
//! A class without samples has no mean: it is left out of every measure (its row too). Fewer
//! than two such classes have no between-class spread at all: no result.
//!
//! Nothing `K x K` or `S x K` is ever held whole: pairwise cosines and nearest means are
//! computed in tiles of at most [`TILE_ELEMENTS`] values, the ETF errors through `N x N`
//! Gram matrices (`||B A^T||_F^2 = <A^T A, B^T B>`), so the measures run at C = 100k. All
//! in f64 on the features' device; the `N x N` eigendecomposition on the CPU.
use crate::engine::{ClassStats, Collapse};
use crate::error::{Error, Result};
use tch::{Device, Kind, Tensor};

/// The most values a tile of pairwise numbers holds (32 MB of f64).
const TILE_ELEMENTS: i64 = 1 << 22;
/// Rows converted to f64 at a time.
const CHUNK: i64 = 8192;
/// Eigenvalues of `Sb` below this fraction of the largest are treated as zero.
const RELATIVE_CUTOFF: f64 = 1e-10;

fn bad(what: &str, msg: String) -> Error {
    Error::arg(format!("neural collapse: {what}"), msg)
}

/// What is measured on: features `[S, N]` (any float kind), labels `[S]` (class ids in
/// `0..C`), the classifier's rows `[C, N]` and, if known, its predictions `[S]`.
pub struct CollapseInput<'a> {
    pub features: &'a Tensor,
    pub labels: &'a Tensor,
    pub weights: &'a Tensor,
    pub predictions: Option<&'a Tensor>,
}

/// The diagnostics after epoch `epoch`, the global mean weighted by class size or not.
/// None when fewer than two classes have samples. Errors on shapes or labels that do not
/// fit together.
pub fn neural_collapse(
    input: &CollapseInput,
    epoch: usize,
    weighted_mean: bool,
) -> Result<Option<Collapse>> {
    let (fs, ws) = (input.features.size(), input.weights.size());
    if fs.len() != 2 || ws.len() != 2 || fs[1] != ws[1] {
        return Err(bad(
            "shapes",
            format!("features must be [S, N] and classifier rows [C, N]; got {fs:?} and {ws:?}"),
        ));
    }
    let (s, c) = (fs[0], ws[0]);
    for (what, t) in [
        ("labels", Some(input.labels)),
        ("predictions", input.predictions),
    ] {
        if let Some(t) = t {
            if t.size() != [s] {
                return Err(bad(
                    what,
                    format!("must be [{s}] (one per feature row), got {:?}", t.size()),
                ));
            }
        }
    }
    let dev = input.features.device();
    let labels = input.labels.to_device(dev).to_kind(Kind::Int64);
    if s > 0 {
        let (lo, hi) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
        if lo < 0 || hi >= c {
            return Err(bad(
                "labels",
                format!("class ids must lie in 0..{c} (the classifier's rows), got {lo}..={hi}"),
            ));
        }
    }
    let predictions = input
        .predictions
        .map(|p| p.to_device(dev).to_kind(Kind::Int64));
    Ok(tch::no_grad(|| {
        measure(input, &labels, predictions.as_ref(), epoch, weighted_mean)
    }))
}

fn chunks(s: i64, chunk: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..s)
        .step_by(chunk.max(1) as usize)
        .map(move |start| (start, chunk.min(s - start)))
}

/// Rows per tile when each row has `width` values.
fn tile_rows(width: i64) -> i64 {
    (TILE_ELEMENTS / width.max(1)).clamp(1, CHUNK)
}

/// Class sums and counts of pass 1.
struct Sums {
    sums: Tensor,
    counts: Tensor,
}

fn class_sums(features: &Tensor, labels: &Tensor, c: i64) -> Sums {
    let (s, n) = (features.size()[0], features.size()[1]);
    let mut sums = Tensor::zeros([c, n], (Kind::Double, features.device()));
    for (start, len) in chunks(s, CHUNK) {
        let x = features.narrow(0, start, len).to_kind(Kind::Double);
        let _ = sums.index_add_(0, &labels.narrow(0, start, len), &x);
    }
    Sums {
        sums,
        counts: labels.bincount::<Tensor>(None, c),
    }
}

/// Pass 2's results: within-class scatter, NCC hits, NC4 mismatches, per-class hits.
struct Pass2 {
    sw: Tensor,
    ncc_correct: i64,
    mismatch: i64,
    class_hits: Option<Tensor>,
}

/// Within-class scatter around the exact means (no `E[xx^T] - mu mu^T` cancellation), the
/// nearest class mean of every sample, and its agreement with the classifier.
fn pass2(
    features: &Tensor,
    labels: &Tensor,
    predictions: Option<&Tensor>,
    means_all: &Tensor,
    present: &Tensor,
) -> Pass2 {
    let (s, n) = (features.size()[0], features.size()[1]);
    let c = means_all.size()[0];
    let dev = features.device();
    let means = means_all.index_select(0, present);
    let mu_sq = (&means * &means).sum_dim_intlist(1, false, Kind::Double);
    let mut out = Pass2 {
        sw: Tensor::zeros([n, n], (Kind::Double, dev)),
        ncc_correct: 0,
        mismatch: 0,
        class_hits: predictions.map(|_| Tensor::zeros([c], (Kind::Int64, dev))),
    };
    for (start, len) in chunks(s, tile_rows(present.size()[0])) {
        let x = features.narrow(0, start, len).to_kind(Kind::Double);
        let y = labels.narrow(0, start, len);
        let r = &x - means_all.index_select(0, &y);
        out.sw += r.tr().mm(&r);
        // ||x - mu||^2 without the ||x||^2 that every class shares.
        let d = mu_sq.unsqueeze(0) - x.mm(&means.tr()) * 2.0;
        let ncc = present.index_select(0, &d.argmin(1, false));
        out.ncc_correct += ncc.eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
        if let (Some(p), Some(hits)) = (predictions, out.class_hits.as_mut()) {
            let p = p.narrow(0, start, len);
            out.mismatch += p.ne_tensor(&ncc).sum(Kind::Int64).int64_value(&[]);
            let _ = hits.index_add_(0, &y, &p.eq_tensor(&y).to_kind(Kind::Int64));
        }
    }
    out.sw /= s as f64;
    out
}

fn measure(
    input: &CollapseInput,
    labels: &Tensor,
    predictions: Option<&Tensor>,
    epoch: usize,
    weighted_mean: bool,
) -> Option<Collapse> {
    let features = input.features;
    let (s, c) = (features.size()[0], input.weights.size()[0]);
    let dev = features.device();
    let Sums { sums, counts } = class_sums(features, labels, c);
    let present = counts.gt(0).nonzero().squeeze_dim(1);
    let k = present.size()[0];
    if k < 2 {
        return None;
    }
    let means_all = &sums / counts.to_kind(Kind::Double).clamp_min(1.0).unsqueeze(1);
    let means = means_all.index_select(0, &present);
    let mu_g = if weighted_mean {
        sums.sum_dim_intlist(0, true, Kind::Double) / s as f64
    } else {
        means.mean_dim(0, true, Kind::Double)
    };
    let centred = &means - mu_g;
    let p2 = pass2(features, labels, predictions, &means_all, &present);
    let sb = (centred.tr().mm(&centred) / k as f64).to_device(Device::Cpu);
    let norms = centred.norm_scalaropt_dim(2, [1], false);
    let w = input
        .weights
        .to_device(dev)
        .to_kind(Kind::Double)
        .index_select(0, &present);
    let w_norms = w.norm_scalaropt_dim(2, [1], false);
    let frob = |t: &Tensor| t / t.norm();
    let nc3 = (frob(&w) - frob(&centred)).square().sum(Kind::Double);
    let cv = |t: &Tensor| (t.std(false) / t.mean(Kind::Double)).double_value(&[]);
    let counts_all = Vec::<i64>::try_from(&counts).unwrap_or_default();
    let mean_norm_all = Tensor::full([c], f64::NAN, (Kind::Double, dev)).index_put(
        &[Some(&present)],
        &norms,
        false,
    );
    let with_samples = |v: Vec<f64>| -> Vec<Option<f64>> {
        v.into_iter()
            .zip(&counts_all)
            .map(|(x, &n)| (n > 0 && x.is_finite()).then_some(x))
            .collect()
    };
    let acc_per_class = p2.class_hits.as_ref().map(|h| {
        let rate = h.to_kind(Kind::Double) / counts.to_kind(Kind::Double).clamp_min(1.0);
        with_samples(Vec::<f64>::try_from(&rate).unwrap_or_default())
    });
    let all_row_norms = input
        .weights
        .to_kind(Kind::Double)
        .norm_scalaropt_dim(2, [1], false);
    let predicted = predictions.is_some();
    let rate = |n: i64| {
        if predicted {
            n as f64 / s as f64
        } else {
            f64::NAN
        }
    };
    let hits: i64 = p2
        .class_hits
        .as_ref()
        .map_or(0, |h| h.sum(Kind::Int64).int64_value(&[]));
    Some(Collapse {
        epoch,
        nc1: nc1(&p2.sw.to_device(Device::Cpu), &sb, k),
        nc2_equinorm: cv(&norms),
        nc2_equiangular: mean_abs_cos_offset(&(&centred / norms.unsqueeze(1))),
        nc3: nc3.double_value(&[]),
        ncc_acc: p2.ncc_correct as f64 / s as f64,
        classes: k,
        samples: s,
        nc2_w_equinorm: cv(&w_norms),
        nc2_w_equiangular: mean_abs_cos_offset(&(&w / w_norms.unsqueeze(1))),
        nc2_etf_error: structure_error(&centred, &centred),
        nc3_duality_error: structure_error(&centred, &w),
        nc4: rate(p2.mismatch),
        acc: rate(hits),
        split: "train".into(),
        weighted_mean,
        per_class: Some(ClassStats {
            count: counts_all.clone(),
            mean_norm: with_samples(Vec::<f64>::try_from(&mean_norm_all).unwrap_or_default()),
            row_norm: Vec::<f64>::try_from(&all_row_norms).unwrap_or_default(),
            acc: acc_per_class.unwrap_or_default(),
        }),
        shots: None,
        test: None,
    })
}

/// The mean over ordered pairs `i != j` of `|u_i . u_j + 1/(K-1)|` for unit rows `u`
/// `[K, N]`, a tile of rows against all at a time.
fn mean_abs_cos_offset(unit: &Tensor) -> f64 {
    mean_abs_cos_offset_in(unit, tile_rows(unit.size()[0]))
}

/// [`mean_abs_cos_offset`] with `rows` rows a tile.
fn mean_abs_cos_offset_in(unit: &Tensor, rows: i64) -> f64 {
    let k = unit.size()[0];
    let shift = 1.0 / (k - 1) as f64;
    let mut total = 0.0;
    for (start, len) in chunks(k, rows) {
        let cos = unit.narrow(0, start, len).mm(&unit.tr());
        total += (cos + shift).abs().sum(Kind::Double).double_value(&[]);
    }
    // Take the diagonal (`|u_i . u_i + shift|`) back out.
    let diag = ((unit * unit).sum_dim_intlist(1, false, Kind::Double) + shift)
        .abs()
        .sum(Kind::Double)
        .double_value(&[]);
    (total - diag) / (k * (k - 1)) as f64
}

/// `|| B A^T/||B A^T||_F - (I - 11^T/K)/sqrt(K-1) ||_F` (rhubarbwu's `structure_error(A, B)`)
/// for `A`, `B` `[K, N]`, without the `K x K` matrix: with `S = B A^T` and `E` the ideal,
/// `||E||_F = 1`, `<S, E> = (tr S - (1^T B)(A^T 1)/K) / sqrt(K-1)` and
/// `||S||_F^2 = <A^T A, B^T B>`, so the error is `sqrt(2 - 2 <S, E> / ||S||_F)`.
fn structure_error(a: &Tensor, b: &Tensor) -> f64 {
    let k = a.size()[0] as f64;
    let s_norm = (a.tr().mm(a) * b.tr().mm(b))
        .sum(Kind::Double)
        .double_value(&[])
        .max(0.0)
        .sqrt();
    let trace = (a * b).sum(Kind::Double).double_value(&[]);
    let total = (a.sum_dim_intlist(0, false, Kind::Double)
        * b.sum_dim_intlist(0, false, Kind::Double))
    .sum(Kind::Double)
    .double_value(&[]);
    let inner = (trace - total / k) / (k - 1.0).sqrt();
    (2.0 - 2.0 * inner / s_norm).max(0.0).sqrt()
}

/// `tr(Sw Sb^+) / K` over the eigenvectors of `Sb` kept by the pseudo-inverse; NaN when
/// `Sb` is zero (all class means equal: NC1 is undefined, not perfect).
fn nc1(sw: &Tensor, sb: &Tensor, k: i64) -> f64 {
    let (evals, evecs) = sb.linalg_eigh("L");
    let evals = Vec::<f64>::try_from(evals).unwrap_or_default();
    let n = evals.len();
    let top = evals.last().copied().unwrap_or(0.0);
    if top.is_nan() || top <= 0.0 {
        return f64::NAN;
    }
    let rank = ((k - 1) as usize).min(n);
    // Ascending order: the largest `rank` are the last ones.
    let mut trace = 0.0;
    for (j, &lambda) in evals.iter().enumerate().skip(n - rank) {
        if lambda > RELATIVE_CUTOFF * top {
            let v = evecs.select(1, j as i64);
            trace += v.dot(&sw.mv(&v)).double_value(&[]) / lambda;
        }
    }
    trace / k as f64
}

#[cfg(test)]
#[path = "collapse_tests.rs"]
mod tests;
