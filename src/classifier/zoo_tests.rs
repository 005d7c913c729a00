//! The later fixed classifiers: each head's Gram matrix `Q Q^T` and its logits against the
//! reference definition, written out here (the construction of the reference code, not
//! fixclf's own functions).
use super::*;
use tch::Device;

fn cpu() -> (Kind, Device) {
    (Kind::Float, Device::Cpu)
}

fn head(cfg: &HeadConfig, classes: i64, features: i64) -> (nn::VarStore, Head) {
    cfg.validate("t.toml").unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let h = Head::fixed_for(&(vs.root() / "head"), cfg, classes, features, None).unwrap();
    (vs, h)
}

fn close(a: &Tensor, b: &Tensor, tol: f64) -> bool {
    a.allclose(b, tol, tol, false)
}

/// Pernici et al.'s orthoplex with their conventions (rows in the first d features, no
/// normalization, no bias, alpha 1 fixed): the logits are `F.linear(x, vstack(I, -I))`.
#[test]
fn orthoplex_gram_and_logits() {
    let cfg = HeadConfig {
        mode: HeadMode::FixedOrthoplex,
        random_orientation: false,
        normalize_features: false,
        bias: false,
        learn_alpha: false,
        alpha_init: 1.0,
        ..Default::default()
    };
    let (_vs, h) = head(&cfg, 6, 3);
    let q = h.class_weights();
    let gram = q.mm(&q.tr());
    let want_gram = Tensor::from_slice(&[
        1f32, 0., 0., -1., 0., 0., 0., 1., 0., 0., -1., 0., 0., 0., 1., 0., 0., -1., -1., 0., 0.,
        1., 0., 0., 0., -1., 0., 0., 1., 0., 0., 0., -1., 0., 0., 1.,
    ])
    .view([6, 6]);
    assert!(gram.equal(&want_gram), "{gram}");
    let x = Tensor::from_slice(&[3f32, -4., 0.5]).view([1, 3]);
    let want = Tensor::from_slice(&[3f32, -4., 0.5, -3., 4., -0.5]).view([1, 6]);
    assert!(close(&h.logits(&x), &want, 1e-6));
    // The default conventions: alpha x/|x| against the rows, rotated into all N features
    // (the Gram matrix unchanged).
    let cfg = HeadConfig {
        mode: HeadMode::FixedOrthoplex,
        ..Default::default()
    };
    let (_vs, h) = head(&cfg, 7, 16);
    let q = h.class_weights();
    assert_eq!(q.size(), [7, 16]);
    let g = q.mm(&q.tr());
    assert!((g.get(0).get(4).double_value(&[]) + 1.0).abs() < 1e-5);
    assert!(g.get(0).get(1).double_value(&[]).abs() < 1e-5);
    assert!(g.get(6).get(6).double_value(&[]) - 1.0 < 1e-5);
}

/// The d-cube behind a learned projection N -> d: `d = ceil(log2 C)`, rows
/// `(-1)^bits / sqrt(d)`, logits `alpha Q normalize(P x + p) + b`.
#[test]
fn cube_with_projection() {
    let cfg = HeadConfig {
        mode: HeadMode::FixedCube,
        projection: true,
        random_orientation: false,
        ..Default::default()
    };
    let (vs, h) = head(&cfg, 8, 10);
    let q = h.class_weights();
    assert_eq!(q.size(), [8, 3]);
    let g = Vec::<f32>::try_from(q.mm(&q.tr()).flatten(0, -1)).unwrap();
    for i in 0..8usize {
        for j in 0..8usize {
            let ham = ((i ^ j) as u32).count_ones() as f32;
            assert!((g[i * 8 + j] - (1.0 - 2.0 * ham / 3.0)).abs() < 1e-6);
        }
    }
    let vars = vs.variables();
    let (pw, pb) = (
        &vars["head.projection.weight"],
        &vars["head.projection.bias"],
    );
    assert_eq!(pw.size(), [3, 10]);
    let x = Tensor::randn([4, 10], cpu());
    let z = x.linear(pw, Some(pb));
    let z = &z / z.norm_scalaropt_dim(2.0, [1i64], true);
    let s = 1.0 / 3f64.sqrt();
    // Vertex t, coordinate i: (1, -1)[(t >> i) % 2] / sqrt(3), as prototypes.py's dcube.
    let rows: Vec<f32> = (0..8)
        .flat_map(|t| {
            (0..3).map(move |i| {
                if (t >> i) & 1 == 0 {
                    s as f32
                } else {
                    -s as f32
                }
            })
        })
        .collect();
    let want = z.mm(&Tensor::from_slice(&rows).view([8, 3]).tr()) * 10.0;
    assert!(close(&h.logits(&x), &want, 1e-5));
    // The parameters: the projection is learned (3 x 10 + 3), alpha and bias.
    let trainable: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    assert_eq!(trainable, 33 + 1 + 8);
    // Without a projection the features must span d.
    let no_proj = HeadConfig {
        projection: false,
        ..cfg.clone()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let e = Head::fixed_for(&vs.root(), &no_proj, 16, 3, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("head.projection"), "{e}");
}

/// Hoffer's `HadamardProj`: `-scale H[:C, :N] x/|x| + b`, `H` Sylvester of +-1 entries,
/// `scale = 1/sqrt(C)`, bias uniform in +-1/sqrt(C).
#[test]
fn hadamard_in_hoffers_conventions() {
    let cfg = HeadConfig {
        mode: HeadMode::FixedHadamard,
        hadamard_convention: HadamardConvention::Hoffer,
        random_orientation: false,
        ..Default::default()
    };
    let (c, n) = (10i64, 16i64);
    let (vs, h) = head(&cfg, c, n);
    let sylvester: Vec<f32> = (0..c)
        .flat_map(|i| {
            (0..n).map(move |j| {
                if (i & j).count_ones() % 2 == 0 {
                    1.0
                } else {
                    -1.0
                }
            })
        })
        .collect();
    let big_h = Tensor::from_slice(&sylvester).view([c, n]);
    let vars = vs.variables();
    let bias = &vars["head.bias"];
    let bound = 1.0 / (c as f64).sqrt();
    assert!(bias.abs().max().double_value(&[]) <= bound);
    assert!(
        bias.abs().sum(Kind::Float).double_value(&[]) > 0.0,
        "bias not initialized"
    );
    assert!((vars["head.alpha"].double_value(&[0]) - bound).abs() < 1e-7);
    let x = Tensor::randn([3, n], cpu());
    let xn = &x / x.norm_scalaropt_dim(2.0, [1i64], true);
    let want = xn.mm(&big_h.tr()) * -bound + bias;
    assert!(close(&h.logits(&x), &want, 1e-5));
    // Gram of the (negated, unit) rows: C x C identity (orthogonal Hadamard rows).
    let q = h.class_weights();
    assert!(close(&q.mm(&q.tr()), &Tensor::eye(c, cpu()), 1e-6));
    let bad = HeadConfig {
        random_orientation: true,
        ..cfg
    };
    assert!(bad.validate("t.toml").is_err());
}

/// Yang et al.'s ETF + dot regression: features through BatchNorm1d then L2-normalized,
/// the loss `0.5 mean((w_t . h - 1)^2)` (unit rows, unit h), the logits `h M` ordering.
#[test]
fn etf_with_dot_regression() {
    let cfg = HeadConfig {
        mode: HeadMode::FixedSimplex,
        loss: LossKind::DotRegression,
        batch_norm: true,
        bias: false,
        ..Default::default()
    };
    let (c, n) = (4i64, 8i64);
    let (vs, h) = head(&cfg, c, n);
    // The simplex ETF's Gram: 1 on the diagonal, -1/(C-1) off it (Yang's
    // sqrt(C/(C-1)) P (I - 11^T/C), columns unit).
    let q = h.class_weights();
    let ideal = (Tensor::eye(c, cpu()) * (c as f64) - 1.0) / (c - 1) as f64;
    assert!(close(&q.mm(&q.tr()), &ideal, 1e-5));
    let x = Tensor::randn([6, n], cpu()) * 3.0 + 1.0;
    let y = Tensor::from_slice(&[0i64, 1, 2, 3, 0, 1]);
    let tl = h.training_loss(&x, &y);
    // BatchNorm in training mode (batch statistics, biased variance, eps 1e-5; weight 1,
    // bias 0 at init), then x / |x|.
    let mean = x.mean_dim(0, true, Kind::Float);
    let var = (&x - &mean).square().mean_dim(0, true, Kind::Float);
    let bn = (&x - &mean) / (var + 1e-5).sqrt();
    let hh = &bn / bn.norm_scalaropt_dim(2.0, [1i64], true);
    let dot = (&hh * q.index_select(0, &y)).sum_dim_intlist(1, false, Kind::Float);
    let want = ((dot - 1.0).square().mean(Kind::Float) * 0.5).double_value(&[]);
    assert!((tl.value.double_value(&[]) - want).abs() < 1e-5);
    tl.objective.backward();
    let vars = vs.variables();
    assert!(
        vars["head.bn.weight"].grad().defined(),
        "BatchNorm gets no gradient"
    );
    // alpha gets no gradient from it (only the target's row is used).
    let g = vars["head.alpha"].grad();
    assert!(!g.defined() || g.abs().sum(Kind::Float).double_value(&[]) == 0.0);
    // The features the diagnostics see: BatchNorm (running statistics), not normalized.
    assert_eq!(h.features(&x).size(), [6, n]);
}

/// `head.classes`: a fixed head of K >= C rows scores all K; fewer rows than classes is an
/// error naming the field.
#[test]
fn preallocated_classes() {
    let cfg = HeadConfig {
        mode: HeadMode::FixedOrthogonal,
        classes: 12,
        ..Default::default()
    };
    let (_vs, h) = head(&cfg, 10, 16);
    assert_eq!(h.logits(&Tensor::randn([2, 16], cpu())).size(), [2, 12]);
    assert_eq!(h.classes(), 12);
    // The first rows are the same whether built for 10 now or 12 (pre-allocated) later.
    let few = HeadConfig {
        mode: HeadMode::FixedOrthoplex,
        classes: 8,
        ..Default::default()
    };
    let (_v1, a) = head(&few, 6, 16);
    let (_v2, b) = head(&few, 8, 16);
    assert!(a.class_weights().equal(&b.class_weights()));
    let small = HeadConfig {
        classes: 5,
        ..cfg.clone()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let e = Head::fixed_for(&vs.root(), &small, 10, 16, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("head.classes"), "{e}");
    let learned = HeadConfig {
        mode: HeadMode::Learned,
        classes: 12,
        ..Default::default()
    };
    assert!(learned
        .validate("t.toml")
        .unwrap_err()
        .to_string()
        .contains("head.classes"));
}

/// Under Hoffer's convention class 0's row is `-1/sqrt(N)` everywhere, so on non-negative
/// features (a ReLU backbone's pooled output) `logit_i - logit_0 = 2 alpha sum_{j: H_ij = +1}
/// x_hat_j >= 0` for every class i: without the bias, class 0 never wins.
#[test]
fn hoffers_negated_row_zero_never_wins_on_relu_features() {
    let cfg = HeadConfig {
        mode: HeadMode::FixedHadamard,
        hadamard_convention: HadamardConvention::Hoffer,
        random_orientation: false,
        bias: false,
        ..Default::default()
    };
    let (_vs, h) = head(&cfg, 10, 32);
    let x = Tensor::rand([500, 32], cpu());
    let logits = h.logits(&x);
    let best_other = logits.narrow(1, 1, 9).amax([1i64].as_slice(), false);
    let margin = (best_other - logits.select(1, 0)).min().double_value(&[]);
    assert!(margin >= 0.0, "{margin}");
}
