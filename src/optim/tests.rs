//! The optimizers against their reference formulas (PyTorch's).
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
    Vec::<f32>::try_from(&t.detach().reshape([-1])).unwrap()
}

#[test]
fn sgd_with_clipping_matches_the_formula() {
    let mut opt = opt(OptimizerKind::Sgd, 0.5, 1.0, vec![param(&[1.0, 2.0])]);
    let w = opt.params()[0].tensor.shallow_clone();
    let stats = opt.backward_step(&linear_loss(&w, &[3.0, 4.0])).unwrap(); // norm 5
    assert!((stats.norm.double_value(&[]) - 5.0).abs() < 1e-6);
    assert_eq!(stats.applied.double_value(&[]), 1.0);
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
            opt.backward_step(&linear_loss(&w, g)).unwrap();
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
            opt.backward_step(&linear_loss(&w, g)).unwrap();
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
        assert_eq!(opt.state_numel(), 8, "two moments per weight, two powers");
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
    opt.backward_step(&linear_loss(&w, &[2.0])).unwrap();
    assert_eq!(values(&w), [-1.0]);
    assert_eq!(values(&opt.params()[1].tensor), [10.0]);
}

#[test]
fn learning_rate_is_read_and_set() {
    let mut opt = opt(OptimizerKind::Sgd, 0.5, 0.0, vec![param(&[1.0])]);
    assert_eq!(opt.learning_rate(), 0.5);
    opt.set_learning_rate(0.25);
    let w = opt.params()[0].tensor.shallow_clone();
    opt.backward_step(&linear_loss(&w, &[2.0])).unwrap();
    assert_eq!(values(&w), [0.5]);
}

/// A non-finite loss (the guard) or gradient leaves every parameter and momentum buffer as
/// it was, on the device, and the next finite step updates as usual.
#[test]
fn non_finite_steps_are_masked_without_a_host_check() {
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        for momentum in [0.0, 0.9] {
            let cfg = OptimizerConfig {
                kind,
                lr: 0.1,
                clip: 1.0,
                momentum,
                nesterov: false,
            };
            let mut p = param(&[1.0, -2.0]);
            p.weight_decay = 0.01;
            let mut opt = build(&cfg, vec![p]);
            let w = opt.params()[0].tensor.shallow_clone();
            opt.backward_step(&linear_loss(&w, &[0.5, 0.5])).unwrap();
            let (before, state) = (values(&w), opt.state_numel());
            let bufs: Vec<Vec<f32>> = opt.state_tensors().iter().map(|(_, t)| values(t)).collect();
            // A NaN gradient.
            let s = opt
                .backward_step(&linear_loss(&w, &[f32::NAN, 1.0]))
                .unwrap();
            assert!(s.norm.double_value(&[]).is_nan());
            assert_eq!(s.applied.double_value(&[]), 0.0);
            assert_eq!(values(&w), before, "{kind:?} {momentum}");
            // A finite gradient with a NaN guard (the logged loss).
            let guard = Tensor::from(f32::NAN);
            let s = opt
                .step_guarded(&linear_loss(&w, &[1.0, 1.0]), 1.0, Some(&guard))
                .unwrap();
            assert_eq!(s.applied.double_value(&[]), 0.0);
            assert_eq!(values(&w), before, "{kind:?} {momentum}");
            if kind == OptimizerKind::Sgd {
                let after: Vec<Vec<f32>> =
                    opt.state_tensors().iter().map(|(_, t)| values(t)).collect();
                assert_eq!(after, bufs, "momentum buffers unchanged");
            }
            assert_eq!(opt.state_numel(), state);
            opt.backward_step(&linear_loss(&w, &[0.5, 0.5])).unwrap();
            assert!(values(&w).iter().zip(&before).all(|(a, b)| a < b));
        }
    }
}

/// Adam skips a masked step entirely, as PyTorch's `GradScaler` skips `step()`: its moments
/// and its bias-correction count stay as they were, so a run with masked steps (the first one
/// included) continues exactly as the run without them.
#[test]
fn adam_masked_steps_leave_moments_and_count_unchanged() {
    let grads = [[0.5f32, -0.1], [0.4, 0.3], [-0.2, 0.2]];
    for kind in [OptimizerKind::Adam, OptimizerKind::Adamw] {
        let run = |masked_at: &[usize]| -> (Vec<f32>, Vec<Vec<f32>>) {
            let mut p = param(&[0.3, -1.2]);
            p.weight_decay = 0.1;
            let mut opt = opt(kind, 0.01, 1.0, vec![p]);
            let w = opt.params()[0].tensor.shallow_clone();
            let mut next = 0;
            for k in 0.. {
                if masked_at.contains(&k) {
                    let s = opt
                        .backward_step(&linear_loss(&w, &[f32::NAN, 1.0]))
                        .unwrap();
                    assert_eq!(s.applied.double_value(&[]), 0.0);
                } else if next < grads.len() {
                    opt.backward_step(&linear_loss(&w, &grads[next])).unwrap();
                    next += 1;
                } else {
                    break;
                }
            }
            let state = opt.state_tensors().iter().map(|(_, t)| values(t)).collect();
            (values(&w), state)
        };
        let straight = run(&[]);
        assert_eq!(run(&[0, 2, 3]), straight, "{kind:?}");
    }
}

/// A checkpoint written before Adam kept its powers resumes with the host's step count.
#[test]
fn adam_resumes_an_older_checkpoint_from_the_step_count() {
    let grads = [[0.5f32, -0.1], [0.4, 0.3], [-0.2, 0.2]];
    let mut straight = opt(OptimizerKind::Adam, 0.01, 0.0, vec![param(&[0.3, -1.2])]);
    let w = straight.params()[0].tensor.shallow_clone();
    for g in &grads[..2] {
        straight.backward_step(&linear_loss(&w, g)).unwrap();
    }
    let mut tensors: HashMap<String, Tensor> = straight
        .state_tensors()
        .into_iter()
        .filter(|(n, _)| !n.contains("beta"))
        .map(|(n, t)| (n, t.copy()))
        .collect();
    assert_eq!(tensors.len(), 2);
    tensors.insert("w".into(), w.copy());
    let mut resumed = opt(OptimizerKind::Adam, 0.01, 0.0, vec![param(&[0.0, 0.0])]);
    let mut w2 = resumed.params()[0].tensor.shallow_clone();
    tch::no_grad(|| w2.copy_(&tensors["w"]));
    resumed
        .load_state(&tensors, std::path::Path::new("old.safetensors"), 2)
        .unwrap();
    straight.backward_step(&linear_loss(&w, &grads[2])).unwrap();
    resumed.backward_step(&linear_loss(&w2, &grads[2])).unwrap();
    // The powers of the count are rounded once instead of step by step: equal to a few ulps.
    let close = |a: Vec<f32>, b: Vec<f32>| {
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| (x - y).abs() <= 1e-6 * y.abs().max(1.0)),
            "{a:?} vs {b:?}"
        )
    };
    close(values(&w2), values(&w));
    let state = |o: &dyn Optimizer| -> Vec<f32> {
        o.state_tensors()
            .iter()
            .flat_map(|(_, t)| values(t))
            .collect()
    };
    close(state(resumed.as_ref()), state(straight.as_ref()));
}

/// A parameter outside clipping (alpha's option) keeps its whole gradient and its own
/// learning rate while the others are clipped by their own norm.
#[test]
fn lr_scale_and_clip_exclusion_per_parameter() {
    let cfg = OptimizerConfig {
        kind: OptimizerKind::Sgd,
        lr: 1.0,
        clip: 1.0,
        momentum: 0.0,
        nesterov: false,
    };
    let mut alpha = param(&[10.0]);
    alpha.clipped = false;
    alpha.lr_scale = 0.5;
    let mut opt = build(&cfg, vec![param(&[0.0, 0.0]), alpha]);
    let (w, a) = (
        opt.params()[0].tensor.shallow_clone(),
        opt.params()[1].tensor.shallow_clone(),
    );
    let loss = linear_loss(&w, &[3.0, 4.0]) + linear_loss(&a, &[8.0]);
    let s = opt.backward_step(&loss).unwrap();
    assert!(
        (s.norm.double_value(&[]) - 5.0).abs() < 1e-5,
        "alpha not in the norm"
    );
    let got = values(&w);
    assert!(
        (got[0] + 0.6).abs() < 1e-5 && (got[1] + 0.8).abs() < 1e-5,
        "{got:?}"
    );
    assert_eq!(values(&a), [6.0], "10 - 0.5 x 8, unclipped");
}
