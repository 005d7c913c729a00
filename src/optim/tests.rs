use super::*;
use tch::Kind;

fn param(values: &[f32]) -> Param {
    Param {
        lr_scale: 1.0,
        clipped: true,
        name: "w".into(),
        tensor: Tensor::from_slice(values).set_requires_grad(true),
        weight_decay: 0.0,
    }
}

fn opt(kind: OptimizerKind, lr: f64, clip: f64, params: Vec<Param>) -> Box<dyn Optimizer> {
    let cfg = OptimizerConfig {
        kind,
        lr,
        clip,
        momentum: 0.0,
        nesterov: false,
    };
    build(&cfg, params)
}

/// loss = sum(w * g): its gradient is g.
fn linear_loss(w: &Tensor, g: &[f32]) -> Tensor {
    (w * Tensor::from_slice(g)).sum(Kind::Float)
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.detach()).unwrap()
}

#[test]
fn sgd_with_clipping_matches_the_formula() {
    let mut opt = opt(OptimizerKind::Sgd, 0.5, 1.0, vec![param(&[1.0, 2.0])]);
    let w = opt.params()[0].tensor.shallow_clone();
    let norm = opt.backward_step(&linear_loss(&w, &[3.0, 4.0])); // norm 5
    assert!((norm - 5.0).abs() < 1e-6);
    let got = values(&w);
    // clipped grad = (0.6, 0.8); w - 0.5 * g
    assert!(
        (got[0] - 0.7).abs() < 1e-5 && (got[1] - 1.6).abs() < 1e-5,
        "{got:?}"
    );
    assert!(!w.grad().defined(), "no gradient accumulates in .grad");
    assert_eq!(opt.state_numel(), 0);
}

/// Momentum and Nesterov follow torch.optim.SGD (dampening 0, weight decay as L2).
#[test]
fn sgd_momentum_and_nesterov_match_pytorch() {
    let grads = [[0.5f32, -1.0], [0.2, 0.4], [-0.3, 0.1]];
    for nesterov in [false, true] {
        let (lr, mu, wd) = (0.1, 0.9, 0.01);
        let cfg = OptimizerConfig {
            kind: OptimizerKind::Sgd,
            lr,
            clip: 0.0,
            momentum: mu,
            nesterov,
        };
        let mut p = param(&[1.0, -2.0]);
        p.weight_decay = wd;
        let mut opt = build(&cfg, vec![p]);
        let w = opt.params()[0].tensor.shallow_clone();
        let (mut x, mut buf) = ([1.0f64, -2.0], [0f64; 2]);
        for (t, g) in grads.iter().enumerate() {
            opt.backward_step(&linear_loss(&w, g));
            for i in 0..2 {
                let d = g[i] as f64 + wd * x[i];
                buf[i] = if t == 0 { d } else { mu * buf[i] + d };
                x[i] -= lr * if nesterov { d + mu * buf[i] } else { buf[i] };
            }
        }
        let got = values(&w);
        for i in 0..2 {
            assert!((got[i] as f64 - x[i]).abs() < 1e-6, "{got:?} vs {x:?}");
        }
        assert_eq!(opt.state_numel(), 2);
    }
}

#[test]
fn adam_and_adamw_match_the_reference_formula() {
    let init = [0.3f32, -1.2, 2.0];
    let grads = [[0.5f32, -0.1, 2.0], [0.4, 0.3, -1.0], [-0.2, 0.2, 0.1]];
    let (lr, wd) = (0.01, 0.1);
    for kind in [OptimizerKind::Adam, OptimizerKind::Adamw] {
        let mut p = param(&init);
        p.weight_decay = wd;
        let mut opt = opt(kind, lr, 0.0, vec![p]);
        let w = opt.params()[0].tensor.shallow_clone();
        let (mut m, mut v, mut x) = ([0f64; 3], [0f64; 3], init.map(f64::from));
        for (t, g) in grads.iter().enumerate() {
            opt.backward_step(&linear_loss(&w, g));
            let t = (t + 1) as f64;
            for i in 0..3 {
                let mut gi = g[i] as f64;
                if kind == OptimizerKind::Adamw {
                    x[i] *= 1.0 - lr * wd;
                } else {
                    gi += wd * x[i];
                }
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                let mh = m[i] / (1.0 - 0.9f64.powf(t));
                let vh = v[i] / (1.0 - 0.999f64.powf(t));
                x[i] -= lr * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got = values(&w);
        for i in 0..3 {
            assert!(
                (got[i] as f64 - x[i]).abs() < 1e-6,
                "{kind:?}: {got:?} vs {x:?}"
            );
        }
        assert_eq!(opt.state_numel(), 6);
    }
}

#[test]
fn unused_parameter_gets_no_update_and_no_error() {
    let used = param(&[1.0]);
    let unused = Param {
        name: "alpha".into(),
        tensor: Tensor::from_slice(&[10.0f32]).set_requires_grad(true),
        weight_decay: 0.0,
        lr_scale: 1.0,
        clipped: true,
    };
    let mut opt = opt(OptimizerKind::Sgd, 1.0, 0.0, vec![used, unused]);
    let w = opt.params()[0].tensor.shallow_clone();
    opt.backward_step(&linear_loss(&w, &[2.0]));
    assert_eq!(values(&w), [-1.0]);
    assert_eq!(values(&opt.params()[1].tensor), [10.0]);
}

#[test]
fn learning_rate_is_read_and_set() {
    let mut opt = opt(OptimizerKind::Sgd, 0.5, 0.0, vec![param(&[1.0])]);
    assert_eq!(opt.learning_rate(), 0.5);
    opt.set_learning_rate(0.25);
    let w = opt.params()[0].tensor.shallow_clone();
    opt.backward_step(&linear_loss(&w, &[2.0]));
    assert_eq!(values(&w), [0.5]);
}

/// A parameter's own learning-rate multiplier, and one left out of clipping: its gradient
/// neither counts in the norm nor is scaled.
#[test]
fn lr_scale_and_unclipped_parameter() {
    for clipped in [true, false] {
        let (w, mut a) = (
            param(&[0.0]),
            Param {
                clipped,
                ..param(&[10.0])
            },
        );
        a.lr_scale = 0.1;
        let mut opt = opt(OptimizerKind::Sgd, 1.0, 1.0, vec![w, a]);
        let (w, a) = (
            opt.params()[0].tensor.shallow_clone(),
            opt.params()[1].tensor.shallow_clone(),
        );
        let loss = linear_loss(&w, &[3.0]) + linear_loss(&a, &[4.0]);
        let norm = opt.backward_step(&loss);
        if clipped {
            // norm 5, coefficient 0.2 for both; alpha at a tenth of the rate.
            assert!((norm - 5.0).abs() < 1e-5);
            assert!((values(&w)[0] + 0.6).abs() < 1e-5, "{:?}", values(&w));
            assert!((values(&a)[0] - (10.0 - 0.1 * 0.8)).abs() < 1e-5);
        } else {
            // norm 3 (w alone), w clipped to 1; alpha's full gradient at a tenth of the rate.
            assert!((norm - 3.0).abs() < 1e-5);
            assert!((values(&w)[0] + 1.0).abs() < 1e-5, "{:?}", values(&w));
            assert!((values(&a)[0] - (10.0 - 0.1 * 4.0)).abs() < 1e-5);
        }
    }
}

/// training_params gives alpha (either variable) the head's options, the rest the defaults.
#[test]
fn training_params_apply_the_head_options_to_alpha() {
    use crate::classifier::{AlphaParam, HeadConfig};
    for param in [AlphaParam::Linear, AlphaParam::Log] {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _w = (vs.root() / "body").var("weight", &[2], tch::nn::Init::Const(0.0));
        let _a = vs
            .root()
            .var(param.var_name(), &[1], tch::nn::Init::Const(1.0));
        let head = HeadConfig {
            alpha_lr_scale: 0.05,
            alpha_clip: false,
            alpha_weight_decay: 1e-5,
            alpha_param: param,
            ..Default::default()
        };
        let params = training_params(&vs, 1e-4, &head);
        assert_eq!(params.len(), 2);
        for p in &params {
            let alpha = p.name == param.var_name();
            assert_eq!(is_alpha(&p.name), alpha, "{}", p.name);
            assert_eq!(p.lr_scale, if alpha { 0.05 } else { 1.0 });
            assert_eq!(p.clipped, !alpha);
            assert_eq!(p.weight_decay, if alpha { 1e-5 } else { 1e-4 });
        }
    }
}
