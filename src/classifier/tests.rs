use super::*;
use tch::nn::{Module, OptimizerConfig};
use tch::Device;

fn tiny(cfg: &HeadConfig) -> (nn::VarStore, nn::Linear, FixedClassifier) {
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let body = nn::linear(&root / "body", 6, 8, Default::default());
    let m = FixedMatrix::orthogonal(5, 8, 1).unwrap();
    let clf = FixedClassifier::new(&(&root / "out"), m, cfg).unwrap();
    (vs, body, clf)
}

fn train(vs: &nn::VarStore, body: &nn::Linear, clf: &FixedClassifier, steps: usize) {
    let mut opt = nn::Sgd::default().build(vs, 0.5).unwrap();
    let x = Tensor::randn([32, 6], (Kind::Float, Device::Cpu));
    let y = Tensor::from_slice(&(0..32).map(|i| i % 5).collect::<Vec<i64>>());
    for _ in 0..steps {
        let loss = clf.loss(&body.forward(&x), &y);
        opt.backward_step(&loss);
    }
}

#[test]
fn classifier_q_fixed_alpha_learned() {
    let cfg = HeadConfig::default();
    let (vs, body, clf) = tiny(&cfg);
    let q0 = clf.matrix().dense().copy();
    assert!(clf.learns_alpha());
    train(&vs, &body, &clf, 5);
    let q = clf.matrix().dense();
    assert!(q.equal(&q0), "Q changed");
    assert!(!q.requires_grad());
    assert!(!q.grad().defined(), "Q has a gradient");
    let shapes: Vec<Vec<i64>> = vs.trainable_variables().iter().map(|t| t.size()).collect();
    assert!(!shapes.contains(&vec![5, 8]), "Q is trainable: {shapes:?}");
    assert_eq!(vs.trainable_variables().len(), 4, "{shapes:?}"); // body w, b; alpha; bias
    assert!((clf.alpha() - 10.0).abs() > 1e-6, "alpha did not move");
    let names = vs.variables();
    assert!(names.contains_key("out.alpha") && names.contains_key("out.bias"));
    assert_eq!(names.len(), 4);
}

#[test]
fn classifier_fixed_alpha_stays_and_is_saved() {
    let cfg = HeadConfig {
        alpha_init: 3.5,
        learn_alpha: false,
        ..Default::default()
    };
    let (vs, body, clf) = tiny(&cfg);
    train(&vs, &body, &clf, 5);
    assert_eq!(clf.alpha(), 3.5);
    assert!(!clf.learns_alpha());
    assert_eq!(vs.trainable_variables().len(), 3); // body w, b; bias
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    vs.save(&path).unwrap();
    let (mut vs2, _, clf2) = tiny(&HeadConfig {
        alpha_init: 1.0,
        learn_alpha: false,
        ..Default::default()
    });
    vs2.load(&path).unwrap();
    assert_eq!(clf2.alpha(), 3.5);
}

#[test]
fn classifier_forward_formula_and_no_bias() {
    let cfg = HeadConfig {
        alpha_init: 2.0,
        bias: false,
        ..Default::default()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let m = FixedMatrix::hadamard(20, 6, 0).unwrap();
    let q = m.dense();
    let clf = FixedClassifier::new(&vs.root(), m, &cfg).unwrap();
    assert!(clf.bias().is_none());
    let x = Tensor::randn([3, 4, 6], (Kind::Float, Device::Cpu));
    let want = (&x / x.norm_scalaropt_dim(2.0, [-1i64], true)).matmul(&q.tr()) * 2.0;
    let got = clf.forward(&x);
    assert_eq!(got.size(), vec![3, 4, 20]);
    assert!((got - want).abs().max().double_value(&[]) < 1e-5);
    assert_eq!(vs.variables().len(), 1);
}

#[test]
fn classifier_config_defaults_and_validation() {
    let cfg: HeadConfig = toml::from_str("").unwrap();
    assert_eq!(cfg, HeadConfig::default());
    assert_eq!(cfg.alpha_init, 10.0);
    let cfg: HeadConfig =
        toml::from_str("mode = \"fixed-hadamard\"\nloss = \"cosine\"\nlearn_alpha = false")
            .unwrap();
    assert_eq!(cfg.loss, LossKind::Cosine);
    assert!(toml::from_str::<HeadConfig>("alpha = 3.0").is_err());
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let cfg = HeadConfig {
            alpha_init: bad,
            ..Default::default()
        };
        let err = cfg.validate("run.toml").unwrap_err().to_string();
        assert!(
            err.contains("run.toml") && err.contains("head.alpha_init"),
            "{err}"
        );
    }
}

#[test]
fn classifier_cosine_loss_gradient_check() {
    let m = FixedMatrix::orthogonal(4, 5, 2).unwrap();
    let x = Tensor::randn([3, 5], (Kind::Double, Device::Cpu)).set_requires_grad(true);
    let t = Tensor::from_slice(&[0i64, 3, 1]);
    let loss = cosine_loss(&x, &t, &m);
    loss.backward();
    let grad = x.grad();
    let h = 1e-6;
    let x0 = x.detach();
    for i in 0..3 {
        for j in 0..5 {
            let e = Tensor::zeros([3, 5], (Kind::Double, Device::Cpu));
            let _ = e.get(i).get(j).fill_(h);
            let up = cosine_loss(&(&x0 + &e), &t, &m).double_value(&[]);
            let down = cosine_loss(&(&x0 - &e), &t, &m).double_value(&[]);
            let fd = (up - down) / (2.0 * h);
            let ad = grad.double_value(&[i, j]);
            assert!(
                (fd - ad).abs() < 1e-7,
                "({i},{j}): fd {fd} vs autograd {ad}"
            );
        }
    }
    // Value: 0 when x points at its row, 2 when opposite.
    let q = m.dense().to_kind(Kind::Double);
    let at = q.index_select(0, &t) * 3.0;
    assert!(cosine_loss(&at, &t, &m).double_value(&[]).abs() < 1e-6); // Q is f32
    assert!((cosine_loss(&(-at), &t, &m).double_value(&[]) - 2.0).abs() < 1e-6);
}

#[test]
fn classifier_softmax_cross_entropy_matches_torch() {
    let logits = Tensor::randn([7, 13], (Kind::Double, Device::Cpu)) * 3.0;
    let t = Tensor::from_slice(&[0i64, 12, 5, 5, 1, 7, 3]);
    let ce = |l: &Tensor| l.cross_entropy_loss::<Tensor>(&t, None, tch::Reduction::Mean, -100, 0.0);
    let want = ce(&logits).double_value(&[]);
    let l = logits.detach().set_requires_grad(true);
    ce(&l).backward();
    let (loss, residual) = softmax_cross_entropy(logits.copy(), &t);
    assert!((loss.double_value(&[]) - want).abs() < 1e-12);
    let max = (residual / 7.0 - l.grad()).abs().max().double_value(&[]);
    assert!(max < 1e-12, "{max}");
}

/// bf16 logits (as under autocast) give an f32 loss and residual, close to the f32
/// computation from the same (rounded) logits.
#[test]
fn classifier_softmax_cross_entropy_of_bf16_logits_is_f32() {
    let logits =
        (Tensor::randn([9, 300], (Kind::Float, Device::Cpu)) * 3.0).to_kind(Kind::BFloat16);
    let t = Tensor::from_slice(&[0i64, 299, 5, 5, 1, 7, 3, 150, 42]);
    let (want_loss, want_residual) = softmax_cross_entropy(logits.to_kind(Kind::Float), &t);
    let (loss, residual) = softmax_cross_entropy(logits, &t);
    assert_eq!((loss.kind(), residual.kind()), (Kind::Float, Kind::Float));
    assert!((loss.double_value(&[]) - want_loss.double_value(&[])).abs() < 1e-6);
    let max = (residual - want_residual).abs().max().double_value(&[]);
    assert!(max < 1e-6, "{max}");
}

/// The hand-differentiated cross-entropy gives autograd's loss and gradients for x, alpha
/// and the bias, for a dense and a Hadamard matrix (C > N', N not a power of two), with
/// and without bias.
#[test]
fn classifier_training_loss_gradient_equals_autograd() {
    let cases = [
        (FixedMatrix::orthogonal(37, 6, 3).unwrap(), true),
        (FixedMatrix::orthogonal(37, 6, 3).unwrap(), false),
        (FixedMatrix::hadamard(37, 6, 4).unwrap(), true),
        (FixedMatrix::hadamard(37, 6, 4).unwrap(), false),
        (FixedMatrix::hadamard(64, 16, 4).unwrap(), true),
    ];
    for (m, bias) in cases {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = HeadConfig {
            alpha_init: 2.5,
            bias,
            ..Default::default()
        };
        let c = m.rows();
        let n = m.cols();
        let clf = FixedClassifier::new(&vs.root(), m, &cfg).unwrap();
        if let Some(b) = clf.bias() {
            let mut b = b.shallow_clone();
            tch::no_grad(|| b.copy_(&(Tensor::randn([c], (Kind::Float, Device::Cpu)) * 0.3)));
        }
        let x0 = Tensor::randn([3, 4, n], (Kind::Float, Device::Cpu));
        let t = Tensor::randint(c, [12], (Kind::Int64, Device::Cpu));
        let vars = vs.trainable_variables();
        let grads = |loss: &Tensor, x: &Tensor| {
            let mut inputs = vec![x.shallow_clone()];
            inputs.extend(vars.iter().map(|v| v.shallow_clone()));
            Tensor::run_backward(&[loss], &inputs, false, false)
        };
        let x = x0.copy().set_requires_grad(true);
        let plain = clf.loss(&x, &t);
        let want = grads(&plain, &x);
        let x = x0.copy().set_requires_grad(true);
        let tl = clf.training_loss(&x, &t);
        assert!(!tl.value.requires_grad());
        let diff = (tl.value.double_value(&[]) - plain.double_value(&[])).abs();
        assert!(diff < 1e-5, "loss differs by {diff}");
        let got = grads(&tl.objective, &x);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.size(), w.size());
            let err = (g - w).abs().max().double_value(&[]);
            let scale = w.abs().max().double_value(&[]).max(1e-3);
            assert!(
                err / scale < 1e-4,
                "gradient {i} (bias {bias}): {err} vs {scale}"
            );
        }
    }
}

#[test]
fn classifier_cosine_loss_trains() {
    let cfg = HeadConfig {
        loss: LossKind::Cosine,
        ..Default::default()
    };
    let (vs, body, clf) = tiny(&cfg);
    let x = Tensor::randn([32, 6], (Kind::Float, Device::Cpu));
    let y = Tensor::from_slice(&(0..32).map(|i| i % 5).collect::<Vec<i64>>());
    let before = clf.loss(&body.forward(&x), &y).double_value(&[]);
    let mut opt = nn::Sgd::default().build(&vs, 0.5).unwrap();
    for _ in 0..20 {
        opt.backward_step(&clf.loss(&body.forward(&x), &y));
    }
    let after = clf.loss(&body.forward(&x), &y).double_value(&[]);
    assert!(after < before, "{before} -> {after}");
    assert_eq!(clf.alpha(), 10.0); // no gradient reaches alpha
}

/// The random orientation of the Hadamard and simplex matrices keeps their Gram matrix
/// and leaves no row all positive; specs without it rebuild the canonical matrices.
#[test]
fn random_orientation_keeps_the_gram_matrix() {
    for (kind, c, n) in [
        (FixedKind::Hadamard, 10, 64),
        (FixedKind::Hadamard, 100, 342),
        (FixedKind::Hadamard, 300, 48),
        (FixedKind::Simplex, 10, 128),
        (FixedKind::Simplex, 11, 10),
    ] {
        let mut spec = FixedSpec::request(kind, c, n, 7);
        let plain = FixedMatrix::build(&spec, None).unwrap().dense();
        spec.random_orientation = true;
        let turned = FixedMatrix::build(&spec, None).unwrap();
        assert_eq!(turned.spec(), &spec, "the spec records the orientation");
        let turned = turned.dense();
        let gram = |q: &Tensor| q.matmul(&q.tr());
        let diff = (gram(&plain) - gram(&turned)).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{kind} {c}x{n}: Gram differs by {diff}");
        let all_positive = |q: &Tensor| q.ge(-1e-7).all_dim(1, false).any().int64_value(&[]) != 0;
        assert!(all_positive(&plain), "{kind}: row 0 of the canonical form");
        assert!(!all_positive(&turned), "{kind} {c}x{n}");
        // Deterministic, and another seed turns it another way.
        let again = FixedMatrix::build(&spec, None).unwrap().dense();
        assert!(again.equal(&turned));
        spec.seed = 8;
        let other = FixedMatrix::build(&spec, None).unwrap().dense();
        assert!(!other.equal(&turned));
    }
    // The spec of a canonical matrix is written as before the option existed.
    let json = serde_json::to_string(&FixedSpec::request(FixedKind::Hadamard, 10, 64, 0));
    assert!(!json.unwrap().contains("orientation"));
}

/// alpha = exp(log_alpha): the hand-differentiated loss gives autograd's gradient for
/// `log_alpha` (through `loss`), which is alpha times the linear head's dL/dalpha and matches
/// a finite difference of the loss; everything else is unchanged.
#[test]
fn log_alpha_gradient_is_alpha_times_the_linear_one() {
    let (c, n, alpha) = (37, 6, 2.5);
    let x0 = Tensor::randn([12, n], (Kind::Float, Device::Cpu));
    let t = Tensor::randint(c, [12], (Kind::Int64, Device::Cpu));
    // (training loss value, d/d(alpha variable), d/dx, the head, its alpha variable).
    let run = |param: AlphaParam, hand: bool| {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = HeadConfig {
            alpha_init: alpha,
            alpha_param: param,
            ..Default::default()
        };
        let m = FixedMatrix::orthogonal(c, n, 3).unwrap();
        let clf = FixedClassifier::new(&vs.root(), m, &cfg).unwrap();
        assert_eq!(clf.alpha_param(), param);
        assert!((clf.alpha() - alpha).abs() < 1e-5, "{}", clf.alpha());
        let var = vs.variables()[param.var_name()].shallow_clone();
        let x = x0.copy().set_requires_grad(true);
        let (value, objective) = if hand {
            let tl = clf.training_loss(&x, &t);
            (tl.value.double_value(&[]), tl.objective)
        } else {
            let l = clf.loss(&x, &t);
            (l.double_value(&[]), l)
        };
        let g = Tensor::run_backward(&[objective], &[&var, &x], false, false);
        (
            value,
            g[0].double_value(&[0]),
            g[1].shallow_clone(),
            clf,
            var,
        )
    };
    let (v_lin, g_lin, gx_lin, ..) = run(AlphaParam::Linear, true);
    let (v_log, g_log, gx_log, clf, var) = run(AlphaParam::Log, true);
    let (_, g_auto, ..) = run(AlphaParam::Log, false);
    assert!((v_lin - v_log).abs() < 1e-5);
    let a = clf.alpha();
    assert!(
        (g_log - a * g_lin).abs() < 1e-5 * g_lin.abs().max(1.0),
        "{g_log} vs {a} * {g_lin}"
    );
    assert!(
        (g_log - g_auto).abs() < 1e-5 * g_auto.abs().max(1.0),
        "{g_log} vs {g_auto}"
    );
    assert!((gx_lin - gx_log).abs().max().double_value(&[]) < 1e-5);
    // Central difference of the loss in log_alpha (the variable is f32: a wide step).
    let h = 1e-2;
    let loss_at = |v: f64| {
        let mut w = var.shallow_clone();
        let _ = tch::no_grad(|| w.fill_(v));
        clf.loss(&x0, &t).double_value(&[])
    };
    let l0 = var.double_value(&[0]);
    let fd = (loss_at(l0 + h) - loss_at(l0 - h)) / (2.0 * h);
    assert!(
        (fd - g_log).abs() < 1e-3 * g_log.abs().max(1e-2),
        "fd {fd} vs {g_log}"
    );
}

/// A log-space alpha trains, stays positive, is saved as `log_alpha` and loads back into a
/// head of the same parameterization; a linear head refuses the checkpoint with a hint.
#[test]
fn log_alpha_checkpoint_round_trip() {
    let cfg = HeadConfig {
        alpha_param: AlphaParam::Log,
        alpha_init: 4.0,
        ..Default::default()
    };
    let (vs, body, clf) = tiny(&cfg);
    assert!(vs.variables().contains_key("out.log_alpha"));
    assert!(!vs.variables().contains_key("out.alpha"));
    assert!((vs.variables()["out.log_alpha"].double_value(&[0]) - 4f64.ln()).abs() < 1e-6);
    train(&vs, &body, &clf, 5);
    let trained = clf.alpha();
    assert!((trained - 4.0).abs() > 1e-4 && trained > 0.0, "{trained}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    crate::engine::save_safetensors(&path, &tensors, &Default::default()).unwrap();
    let ckpt = crate::engine::Checkpoint::load(&path).unwrap();
    let (vs2, _, clf2) = tiny(&HeadConfig {
        alpha_init: 1.0,
        ..cfg.clone()
    });
    ckpt.copy_into(&vs2.variables()).unwrap();
    assert_eq!(clf2.alpha(), trained);
    let (vs3, ..) = tiny(&HeadConfig::default());
    let e = ckpt.copy_into(&vs3.variables()).unwrap_err().to_string();
    assert!(
        e.contains("`out.alpha`") && e.contains("alpha_param"),
        "{e}"
    );
}
