//! The head's config checks, its construction and its logits.
use super::*;
use tch::{Device, Kind};

#[test]
fn head_config_errors_name_the_field() {
    for (cfg, field) in [
        (
            HeadConfig {
                alpha_init: 0.0,
                ..Default::default()
            },
            "head.alpha_init",
        ),
        (
            HeadConfig {
                alpha_init: f64::NAN,
                ..Default::default()
            },
            "head.alpha_init",
        ),
        (
            HeadConfig {
                alpha_lr_scale: 0.0,
                ..Default::default()
            },
            "head.alpha_lr_scale",
        ),
        (
            HeadConfig {
                alpha_lr_scale: f64::INFINITY,
                ..Default::default()
            },
            "head.alpha_lr_scale",
        ),
        (
            HeadConfig {
                mode: HeadMode::FixedPmi,
                ..Default::default()
            },
            "head.embeddings",
        ),
        (
            HeadConfig {
                loss: LossKind::Cosine,
                ..Default::default()
            },
            "head.loss",
        ),
    ] {
        let e = cfg.validate("c.toml").unwrap_err().to_string();
        assert!(e.contains(field) && e.contains("c.toml"), "{e}");
    }
}

/// Every head maps `[n, N]` to `[n, C]`; only the fixed one has alpha and a spec.
#[test]
fn head_modes_give_logits_of_every_class() {
    let vs = nn::VarStore::new(Device::Cpu);
    let (c, n) = (5, 8);
    let x = Tensor::randn([3, n], (Kind::Float, Device::Cpu));
    let (w, b) = Head::linear_init(n);
    let learned = Head::learned(&(vs.root() / "l"), c, n, w, b);
    let emb = vs.root().var("emb", &[c, n], Init::Const(0.1));
    let tied = Head::tied(&(vs.root() / "t"), &emb);
    for mode in [
        HeadMode::FixedOrthogonal,
        HeadMode::FixedHadamard,
        HeadMode::FixedSimplex,
    ] {
        let cfg = HeadConfig {
            mode,
            ..Default::default()
        };
        let m = cfg.fixed_matrix(c, n, None).unwrap().unwrap();
        let fixed = Head::fixed(&(vs.root() / mode.name()), m, &cfg).unwrap();
        assert_eq!(fixed.logits(&x).size(), [3, c]);
        assert_eq!(fixed.alpha(), Some(10.0));
        assert_eq!(fixed.fixed_spec().unwrap().rows, c);
        assert_eq!(fixed.fixed_numel(), c * n);
        // alpha * x/|x| against the class rows, plus the (zero) bias: the logits.
        let w = fixed.class_weights();
        assert_eq!(w.size(), [c, n]);
        let expect = crate::classifier::normalize(&x).mm(&w.tr()) * 10.0;
        assert!(
            fixed.logits(&x).allclose(&expect, 1e-5, 1e-5, false),
            "{mode}"
        );
    }
    for h in [&learned, &tied] {
        // The class rows are what the logits multiply (bias aside).
        let w = h.class_weights();
        assert_eq!(w.size(), [c, n]);
        let diff = h.logits(&x) - x.mm(&w.tr());
        let off_bias = (&diff - diff.narrow(0, 0, 1)).abs().max();
        assert!(off_bias.double_value(&[]) < 1e-5);
        assert_eq!(h.logits(&x).size(), [3, c]);
        assert!(h.alpha().is_none() && h.fixed_spec().is_none());
    }
    assert!(HeadConfig::default()
        .fixed_matrix(c, n, None)
        .unwrap()
        .is_none());
}

/// training_params gives alpha (either variable) the head's options, the rest the defaults.
#[test]
fn training_params_apply_the_head_options_to_alpha() {
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
