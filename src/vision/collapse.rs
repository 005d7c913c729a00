//! Neural-collapse diagnostics (Papyan, Han & Donoho 2020, "Prevalence of neural collapse
//! during the terminal phase of deep learning training") of a set of features, their labels
//! and the classifier's class rows. With `K` the classes that have samples, `mu_c` their
//! means, `mu_G` the mean of the class means and `M` the centred means `mu_c - mu_G` as rows:
//!
//! - NC1 = `tr(Sw Sb^+) / K`, `Sw` the within-class covariance (over all `S` samples),
//!   `Sb = M^T M / K` the between-class one. `Sb` has rank at most `min(K-1, N)` (below `N`
//!   whenever `K <= N`; above it for CIFAR-100 on 64 features), so its pseudo-inverse keeps
//!   the `min(K-1, N)` largest eigenvalues (Papyan's top `C-1`) that are above `1e-10` of the
//!   largest; the rest is rounding noise whose inverse would dominate the trace.
//! - NC2 equinorm: std / mean (population std) of the norms `||mu_c - mu_G||`.
//! - NC2 equiangularity: the mean over pairs `c != c'` of `|cos(M_c, M_c') + 1/(K-1)|`,
//!   Papyan's Figure 6 (approach to the maximal angle). We report this rather than the std
//!   of the cosines (his Figure 5): the std is zero for any equiangular set, this one only
//!   for the simplex equiangular tight frame, the geometry of the fixed simplex head.
//! - NC3: `|| W/||W||_F - M/||M||_F ||_F^2`, `W` the classifier rows of the same classes.
//! - NCC accuracy: each sample classified by its nearest class mean (Euclidean).
//!
//! A class without samples has no mean: it is left out of every measure (and its classifier
//! row out of NC3); `classes` in the result counts the classes measured. Fewer than two such
//! classes have no between-class spread at all: no result.
//!
//! Everything is computed in f64 on the features' device, in chunks of rows, so the f64
//! copies stay small whatever `S` is; the `N x N` eigendecomposition runs on the CPU.
use crate::engine::Collapse;
use crate::error::{Error, Result};
use tch::{Device, Kind, Tensor};

/// Rows converted to f64 at a time.
const CHUNK: i64 = 8192;
/// Eigenvalues of `Sb` below this fraction of the largest are treated as zero.
const RELATIVE_CUTOFF: f64 = 1e-10;

fn bad(what: &str, msg: String) -> Error {
    Error::arg(format!("neural collapse: {what}"), msg)
}

/// The diagnostics of `features` `[S, N]` (any float kind) with `labels` `[S]` (class ids
/// in `0..C`) against the classifier's class rows `weights` `[C, N]`, after epoch `epoch`.
/// None when fewer than two classes have samples. Errors on shapes or labels that do not
/// fit together.
pub fn neural_collapse(
    features: &Tensor,
    labels: &Tensor,
    weights: &Tensor,
    epoch: usize,
) -> Result<Option<Collapse>> {
    let (fs, ws) = (features.size(), weights.size());
    if fs.len() != 2 || ws.len() != 2 || fs[1] != ws[1] {
        return Err(bad(
            "shapes",
            format!("features must be [S, N] and classifier rows [C, N]; got {fs:?} and {ws:?}"),
        ));
    }
    let (s, n, c) = (fs[0], fs[1], ws[0]);
    if labels.size() != [s] {
        return Err(bad(
            "labels",
            format!(
                "must be [{s}] (one per feature row), got {:?}",
                labels.size()
            ),
        ));
    }
    let dev = features.device();
    let labels = labels.to_device(dev).to_kind(Kind::Int64);
    if s > 0 {
        let (lo, hi) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
        if lo < 0 || hi >= c {
            return Err(bad(
                "labels",
                format!("class ids must lie in 0..{c} (the classifier's rows), got {lo}..={hi}"),
            ));
        }
    }
    Ok(tch::no_grad(|| {
        measure(features, &labels, weights, epoch, (s, n, c))
    }))
}

fn chunks(s: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..s)
        .step_by(CHUNK as usize)
        .map(move |start| (start, CHUNK.min(s - start)))
}

fn measure(
    features: &Tensor,
    labels: &Tensor,
    weights: &Tensor,
    epoch: usize,
    (s, n, c): (i64, i64, i64),
) -> Option<Collapse> {
    let dev = features.device();
    let f64s = (Kind::Double, dev);
    let rows = |start, len| features.narrow(0, start, len).to_kind(Kind::Double);
    // Pass 1: class sums and counts.
    let counts = labels.bincount::<Tensor>(None, c);
    let mut sums = Tensor::zeros([c, n], f64s);
    for (start, len) in chunks(s) {
        let _ = sums.index_add_(0, &labels.narrow(0, start, len), &rows(start, len));
    }
    let present = counts.gt(0).nonzero().squeeze_dim(1);
    let k = present.size()[0];
    if k < 2 {
        return None;
    }
    let means_all = sums / counts.to_kind(Kind::Double).clamp_min(1.0).unsqueeze(1);
    let means = means_all.index_select(0, &present);
    let centred = &means - means.mean_dim(0, true, Kind::Double);
    // Pass 2: within-class scatter around the exact means (no `E[xx^T] - mu mu^T`
    // cancellation), and the nearest class mean of every sample.
    let mut sw = Tensor::zeros([n, n], f64s);
    let mut correct = 0i64;
    // Class id -> its row among the present classes.
    let slot = Tensor::full([c], -1, (Kind::Int64, dev)).index_put(
        &[Some(&present)],
        &Tensor::arange(k, (Kind::Int64, dev)),
        false,
    );
    let mu_sq = (&means * &means).sum_dim_intlist(1, false, Kind::Double);
    for (start, len) in chunks(s) {
        let x = rows(start, len);
        let y = labels.narrow(0, start, len);
        let r = &x - means_all.index_select(0, &y);
        sw += r.tr().mm(&r);
        // ||x - mu||^2 without the ||x||^2 that every class shares.
        let d = mu_sq.unsqueeze(0) - x.mm(&means.tr()) * 2.0;
        correct += d
            .argmin(1, false)
            .eq_tensor(&slot.index_select(0, &y))
            .sum(Kind::Int64)
            .int64_value(&[]);
    }
    let sw = (sw / s as f64).to_device(Device::Cpu);
    let sb = (centred.tr().mm(&centred) / k as f64).to_device(Device::Cpu);
    let norms = centred.norm_scalaropt_dim(2, [1], false);
    let unit = &centred / norms.unsqueeze(1);
    let cos = unit.mm(&unit.tr());
    let off = Tensor::ones([k, k], f64s) - Tensor::eye(k, f64s);
    let equiangular =
        ((cos + 1.0 / (k - 1) as f64).abs() * &off).sum(Kind::Double) / (k * (k - 1)) as f64;
    let w = weights
        .to_device(dev)
        .to_kind(Kind::Double)
        .index_select(0, &present);
    let frob = |t: &Tensor| t / t.norm();
    let nc3 = (frob(&w) - frob(&centred)).square().sum(Kind::Double);
    Some(Collapse {
        epoch,
        nc1: nc1(&sw, &sb, k),
        nc2_equinorm: (norms.std(false) / norms.mean(Kind::Double)).double_value(&[]),
        nc2_equiangular: equiangular.double_value(&[]),
        nc3: nc3.double_value(&[]),
        ncc_acc: correct as f64 / s as f64,
        classes: k,
        samples: s,
    })
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
mod tests {
    use super::*;
    use crate::classifier::FixedMatrix;

    fn cpu(kind: Kind) -> (Kind, Device) {
        (kind, Device::Cpu)
    }

    /// Every sample is its class mean, the means are a simplex ETF (scaled, shifted off the
    /// origin) and the classifier rows are the ETF: collapse in every measure.
    #[test]
    fn collapsed_features_measure_zero() {
        let (c, n, per) = (5, 8, 7);
        let etf = FixedMatrix::simplex(c, n).unwrap().dense();
        let labels = Tensor::arange(c, cpu(Kind::Int64)).repeat([per]);
        let shift = Tensor::randn([1, n], cpu(Kind::Float));
        let features = etf.index_select(0, &labels) * 3.0 + shift;
        let r = neural_collapse(&features, &labels, &etf, 4)
            .unwrap()
            .unwrap();
        assert_eq!((r.epoch, r.classes, r.samples), (4, c, c * per));
        assert!(r.nc1.abs() < 1e-9, "{r:?}");
        assert!(r.nc2_equinorm.abs() < 1e-5, "{r:?}");
        assert!(r.nc2_equiangular.abs() < 1e-5, "{r:?}");
        assert!(r.nc3.abs() < 1e-9, "{r:?}");
        assert_eq!(r.ncc_acc, 1.0);
        // A little within-class noise: NC1 small but no longer zero.
        let noisy = &features + Tensor::randn([c * per, n], cpu(Kind::Float)) * 0.01;
        let r = neural_collapse(&noisy, &labels, &etf, 4).unwrap().unwrap();
        assert!(r.nc1 > 1e-8 && r.nc1 < 1e-2, "{r:?}");
    }

    /// Gaussian features with random labels: within-class spread dwarfs the between-class
    /// one (NC1 about S/C), and the nearest class mean is near chance.
    #[test]
    fn random_features_do_not_collapse() {
        tch::manual_seed(7);
        let (c, n, s) = (10, 32, 2000);
        let features = Tensor::randn([s, n], cpu(Kind::Float));
        let labels = Tensor::randint(c, [s], cpu(Kind::Int64));
        let w = Tensor::randn([c, n], cpu(Kind::Float));
        let r = neural_collapse(&features, &labels, &w, 1).unwrap().unwrap();
        assert!(r.nc1 > 10.0, "{r:?}");
        assert!(r.ncc_acc < 0.25, "chance is 0.1: {r:?}");
        assert!(r.nc2_equiangular > 0.05 && r.nc3 > 0.5, "{r:?}");
        // More classes than features (CIFAR-100 on a narrow network): Sb has full rank N.
        let labels = Tensor::randint(50, [s], cpu(Kind::Int64));
        let w = Tensor::randn([50, n], cpu(Kind::Double));
        let r = neural_collapse(&features, &labels, &w, 1).unwrap().unwrap();
        assert!(r.nc1.is_finite() && r.nc1 > 1.0, "{r:?}");
    }

    /// A class without samples is left out (its classifier row too); one class alone has no
    /// result; shapes and labels that do not fit are errors naming what is wrong.
    #[test]
    fn empty_classes_and_bad_input() {
        let n = 6;
        let etf = FixedMatrix::simplex(3, n).unwrap().dense();
        let labels = Tensor::from_slice(&[0i64, 1, 3, 0, 1, 3]);
        let features = etf.index_select(0, &Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2]));
        let w = Tensor::cat(
            &[
                etf.narrow(0, 0, 2),
                Tensor::ones([1, n], cpu(Kind::Float)),
                etf.narrow(0, 2, 1),
            ],
            0,
        );
        let r = neural_collapse(&features, &labels, &w, 2).unwrap().unwrap();
        assert_eq!(r.classes, 3);
        assert!(
            r.nc1.abs() < 1e-9 && r.nc3.abs() < 1e-9 && r.ncc_acc == 1.0,
            "{r:?}"
        );
        let one = Tensor::zeros([6], cpu(Kind::Int64));
        assert!(neural_collapse(&features, &one, &w, 2).unwrap().is_none());
        let e = neural_collapse(
            &features,
            &Tensor::from_slice(&[0i64, 1, 4, 0, 1, 3]),
            &w,
            2,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("0..4") && e.contains("labels"), "{e}");
        let e = neural_collapse(&features, &labels, &w.narrow(1, 0, 5), 2).unwrap_err();
        assert!(e.to_string().contains("[C, N]"), "{e}");
        let e = neural_collapse(&features, &labels.narrow(0, 0, 5), &w, 2).unwrap_err();
        assert!(e.to_string().contains("[6]"), "{e}");
    }
}
