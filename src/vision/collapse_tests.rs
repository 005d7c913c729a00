//! Tests of the neural-collapse diagnostics, and the golden fixture of
//! `scripts/nc_reference.py` (rhubarbwu/neural-collapse's definitions in NumPy).
use super::*;
use crate::classifier::FixedMatrix;

/// The diagnostics without predictions, global mean weighted.
fn neural_collapse(
    features: &Tensor,
    labels: &Tensor,
    weights: &Tensor,
    epoch: usize,
) -> Result<Option<Collapse>> {
    let input = CollapseInput {
        features,
        labels,
        weights,
        predictions: None,
    };
    super::neural_collapse(&input, epoch, true)
}

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

/// `scripts/nc_reference.py`'s fixture, built from the same formulas.
fn reference_fixture() -> (Tensor, Tensor, Tensor) {
    let counts = [12i64, 8, 5, 3, 2];
    let n = 6usize;
    let labels: Vec<i64> = counts
        .iter()
        .enumerate()
        .flat_map(|(c, &k)| std::iter::repeat_n(c as i64, k as usize))
        .collect();
    let mut x = Vec::new();
    for (i, &c) in labels.iter().enumerate() {
        for j in 0..n {
            let (i, j, c) = (i as f64, j as f64, c as f64);
            x.push(3.0 * (0.7 * i + 1.3 * j).sin() + 2.0 * (1.1 * (c + 1.0) * (j + 1.0)).cos());
        }
    }
    let mut w = Vec::new();
    for c in 0..counts.len() {
        for j in 0..n {
            let (c, j) = (c as f64, j as f64);
            w.push((0.9 * c + 0.4 * j).cos() + 0.3 * (1.1 * (c + 1.0) * (j + 1.0)).cos());
        }
    }
    let s = labels.len() as i64;
    (
        Tensor::from_slice(&x).view([s, n as i64]),
        Tensor::from_slice(&labels),
        Tensor::from_slice(&w).view([counts.len() as i64, n as i64]),
    )
}

/// Every measure equals rhubarbwu/neural-collapse's definition (scripts/nc_reference.py's
/// output, pasted) to 1e-9 relative, with the global mean weighted and not; NC4 and the
/// accuracy with the linear decision `argmax(x W^T)` of its `DecAccumulator`.
#[test]
fn matches_the_reference_definitions() {
    let (x, labels, w) = reference_fixture();
    let predictions = x.mm(&w.tr()).argmax(1, false);
    #[rustfmt::skip]
    let golden: [(bool, [f64; 11]); 2] = [
        (true, [2.047358825964e+00, 3.781443385178e-01, 4.070400139994e-01,
                1.718467889101e-01, 5.788551442308e-01, 7.607397840474e-01,
                1.418066268341e+00, 1.936237515647e+00, 8.333333333333e-01,
                6.000000000000e-01, 1.333333333333e-01]),
        (false, [2.327183478466e+00, 2.943278438650e-01, 3.841252474276e-01,
                 1.718467889101e-01, 5.788551442308e-01, 7.426034865146e-01,
                 1.418315999049e+00, 2.005630861523e+00, 8.333333333333e-01,
                 6.000000000000e-01, 1.333333333333e-01]),
    ];
    for (weighted, want) in golden {
        let input = CollapseInput {
            features: &x,
            labels: &labels,
            weights: &w,
            predictions: Some(&predictions),
        };
        let r = super::neural_collapse(&input, 1, weighted)
            .unwrap()
            .unwrap();
        let got = [
            r.nc1,
            r.nc2_equinorm,
            r.nc2_equiangular,
            r.nc2_w_equinorm,
            r.nc2_w_equiangular,
            r.nc2_etf_error,
            r.nc3_duality_error,
            r.nc3,
            r.nc4,
            r.ncc_acc,
            r.acc,
        ];
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "weighted {weighted}, measure {i}: {g} vs {w}"
            );
        }
        let pc = r.per_class.unwrap();
        assert_eq!(pc.count, vec![12, 8, 5, 3, 2]);
        assert_eq!(r.weighted_mean, weighted);
    }
}

/// The tiled pairwise measures equal the dense ones, whatever the tile: 300 classes on 4
/// features, tiles of 1, 7 and 299 rows.
#[test]
fn tiles_agree_with_the_dense_formulas() {
    tch::manual_seed(3);
    let k = 300;
    let u = Tensor::randn([k, 4], cpu(Kind::Double));
    let u = &u / u.norm_scalaropt_dim(2, [1], true);
    let cos = u.mm(&u.tr()) + 1.0 / (k - 1) as f64;
    let off = Tensor::ones([k, k], cpu(Kind::Double)) - Tensor::eye(k, cpu(Kind::Double));
    let dense = (cos.abs() * off).sum(Kind::Double).double_value(&[]) / (k * (k - 1)) as f64;
    assert!((mean_abs_cos_offset(&u) - dense).abs() < 1e-12);
    for rows in [1, 7, 299] {
        assert!(
            (mean_abs_cos_offset_in(&u, rows) - dense).abs() < 1e-12,
            "{rows}"
        );
    }
    // At C = 100k a tile is 41 rows of all classes (4M values), never C x C.
    assert_eq!(tile_rows(100_000), 41);
    let a = Tensor::randn([k, 4], cpu(Kind::Double));
    let b = Tensor::randn([k, 4], cpu(Kind::Double));
    let s = b.mm(&a.tr());
    let ideal = (Tensor::eye(k, cpu(Kind::Double)) - 1.0 / k as f64) / ((k - 1) as f64).sqrt();
    let dense = (&s / s.norm() - ideal).norm().double_value(&[]);
    assert!((structure_error(&a, &b) - dense).abs() < 1e-9);
}
