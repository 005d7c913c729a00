//! The fixed classifier of "Fix your classifier" (Hoffer, Hubara, Soudry, ICLR 2018):
//! `logits = alpha * Q x_hat + b`, `x_hat = x / ||x||`, with `Q` a fixed `C x N` matrix
//! (C classes, N features) of unit rows and a scalar `alpha` (learned or fixed).
//!
//! # Fixed matrices ([`FixedMatrix`])
//! * `orthogonal(c, n, seed)`: QR (f64, CPU, signs fixed by `diag(R) > 0`) of a seeded Gaussian.
//!   `C <= N`: rows are orthonormal. `C > N` (every language model, e.g. 33,278 x 512): the
//!   `C x N` QR factor has orthonormal *columns*; its rows are then scaled to unit norm, after
//!   which the columns are only approximately orthogonal and the rows cannot be mutually
//!   orthogonal (at most `N` orthogonal directions exist); they are spread like uniformly random
//!   unit vectors.
//! * `hadamard(c, n, seed)`: truncated Sylvester-Hadamard, entries +-1/sqrt(N), applied as a
//!   fast transform (stored densely only up to 2^16 entries, where one GEMM is faster:
//!   [`hadamard::hadamard_prefers_dense`], measured per shape).
//!   For `C > N' = next_power_of_two(N)` the rows come in blocks `H_{N'} D_k` (first `N`
//!   columns) with seeded random +-1 diagonals `D_k` (`D_0 = I`), so no two rows are equal
//!   (the plain truncation repeats every row `C/N'` times); non-power-of-two `N` zero-pads `x` to
//!   `N'`, and rows are then only approximately orthogonal. Details in [`hadamard`].
//! * `simplex(c, n)`: simplex equiangular tight frame (`C <= N + 1`), Gram `1` on the diagonal
//!   and `-1/(C-1)` off it; deterministic closed form.
//! * `pretrained(path, vocab, n)`: word vectors aligned to the vocabulary, rows L2-normalized.
//!
//! A [`FixedSpec`] (kind, shape, seed, source file and its SHA-256) regenerates `Q` bit for bit
//! with [`FixedMatrix::build`]; checkpoints store the spec, never `Q`. Random streams are
//! ChaCha8 seeded from `seed` (portable, independent of libtorch's global RNG and device).
//!
//! # Scale `alpha`
//! Default `alpha_init = 10` (the reference LM setting). With unit `x_hat` and unit rows the
//! logits lie in `[-alpha, alpha]`, so the largest probability the correct class can reach is
//! bounded by about `1 / (1 + (C-1) e^{-2 alpha})`: with C = 33,278, alpha = 10 allows p > 0.99
//! while alpha = 1 caps it near 2e-4; for C = 10 or 100 it is also comfortable. Learned (the
//! default) it adapts from there. alpha is applied to the N-wide `x_hat` before projecting
//! (same result as scaling the C-wide logits, less work). Exclude `alpha` from weight decay.
//!
//! # Cosine loss
//! [`cosine_loss`]: `mean over samples of (1 - q_t . x_hat)`, `q_t` the (unit) row of the target
//! class; 0 when `x` points exactly at its class, 2 when opposite. It only needs the target rows
//! (`rows_for`), never the C-wide logits; alpha and the bias get no gradient from it (they keep
//! their initial values), and the prediction is still `argmax_i q_i . x_hat` (the logits'
//! argmax when the bias is zero).
//!
//! # Speed (C = 33,278, N = 512, 700 rows of x, CPU, 2 threads)
//! Dense kinds are one fused `linear` with the contiguous `Q` (239 ms forward, 408 ms forward +
//! backward on the 2-core benchmark machine); Hadamard uses a two-factor fast Walsh-Hadamard
//! transform, 4x faster forward and 2.4x forward + backward (table in [`hadamard`]). Training
//! uses [`FixedClassifier::training_loss`], which differentiates the cross-entropy through the
//! C-wide logits by hand ([`softmax_cross_entropy`], [`FixedMatrix::project_transpose`]).
//! Building the orthogonal `Q` at that size takes about 1.4 s (Gaussian + Cholesky QR in f64),
//! once per run.
pub mod hadamard;
mod head;
mod matrix;
mod pretrained;

pub use head::{Head, HeadConfig, HeadMode};
pub use matrix::{FixedKind, FixedMatrix, FixedSpec};

use crate::error::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// Norms below this are clamped when normalizing `x` (as `F.normalize` does).
pub const NORM_EPS: f64 = 1e-12;

/// The training loss of a fixed classifier.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Softmax cross-entropy on `alpha * Q x_hat + b`.
    #[default]
    CrossEntropy,
    /// `1 - cos(angle between x and the target's row)`, see [`cosine_loss`].
    Cosine,
}

/// `x / ||x||` over the last dimension (norms clamped at [`NORM_EPS`]).
pub fn normalize(x: &Tensor) -> Tensor {
    let norm = x.norm_scalaropt_dim(2.0, [-1i64], true).clamp_min(NORM_EPS);
    x / norm
}

/// The cosine-angle loss `mean(1 - q_t . x_hat)` over all samples, `x [.., N]` (normalized
/// here; an already normalized `x` gives the same result), `targets [..]` class ids.
pub fn cosine_loss(x: &Tensor, targets: &Tensor, matrix: &FixedMatrix) -> Tensor {
    let q_t = matrix.rows_for(targets).to_kind(x.kind());
    let cos = (normalize(x) * q_t).sum_dim_intlist(-1, false, x.kind());
    (1f64 - cos).mean(x.kind())
}

/// A training loss split in two: `value`, the loss itself (detached, for logging and the NaN
/// check), and `objective`, a scalar whose gradient with respect to every trainable tensor is
/// the loss's gradient (its value need not equal the loss). Backpropagate `objective`.
pub struct TrainingLoss {
    pub value: Tensor,
    pub objective: Tensor,
}

impl TrainingLoss {
    /// A loss that autograd differentiates as it is.
    pub fn plain(loss: Tensor) -> Self {
        Self {
            value: loss.detach(),
            objective: loss,
        }
    }
}

/// Mean softmax cross-entropy of `logits [n, C]` against `targets [n]`, and the residual
/// `softmax(logits) - onehot(targets)` (`[n, C]`, the gradient of the *summed* loss with
/// respect to the logits). Consumes `logits`; the residual is built in place in the buffer of
/// the log-probabilities, so at most two `[n, C]` buffers exist at once (autograd's
/// log_softmax + nll_loss keeps the log-probabilities, a zero-filled gradient of the
/// log-probabilities and the gradient of the logits: four with the logits). Call it without a
/// graph (`tch::no_grad`, or on logits computed from detached inputs).
pub fn softmax_cross_entropy(logits: Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let kind = logits.kind();
    let t = targets.reshape([-1, 1]).to_kind(Kind::Int64);
    let mut residual = logits.log_softmax(-1, kind);
    drop(logits);
    let picked = residual.gather(1, &t, false); // log p(target), [n, 1]
    let loss = -picked.mean(kind);
    let _ = residual.exp_();
    let _ = residual.scatter_(1, &t, &(picked.exp() - 1.0));
    (loss, residual)
}

/// `logits = alpha * Q (x / ||x||) + b` with a fixed `Q`.
#[derive(Debug)]
pub struct FixedClassifier {
    matrix: FixedMatrix,
    alpha: Tensor,
    bias: Option<Tensor>,
    learn_alpha: bool,
    loss: LossKind,
}

impl FixedClassifier {
    /// Registers `alpha` (`[1]`; trainable only when `learn_alpha`, but saved either way) and
    /// `bias` (`[C]`, zeros, when enabled) under `p`, and moves `matrix` to `p`'s device.
    /// `cfg` is a validated [`HeadConfig`] ([`HeadConfig::validate`]).
    pub fn new(p: &nn::Path, matrix: FixedMatrix, cfg: &HeadConfig) -> Result<Self> {
        let init = Tensor::from_slice(&[cfg.alpha_init as f32]);
        let alpha = if cfg.learn_alpha {
            p.f_var_copy("alpha", &init)?
        } else {
            let mut a = p.f_zeros_no_train("alpha", &[1])?;
            tch::no_grad(|| a.f_copy_(&init))?;
            a
        };
        let bias = if cfg.bias {
            Some(p.f_zeros("bias", &[matrix.rows()])?)
        } else {
            None
        };
        Ok(Self {
            matrix: matrix.to_device(p.device()),
            alpha,
            bias,
            learn_alpha: cfg.learn_alpha,
            loss: cfg.loss,
        })
    }

    /// `[.., N] -> [.., C]` logits.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let z = normalize(x) * self.alpha.to_kind(x.kind());
        match &self.bias {
            Some(b) if b.kind() != x.kind() => self
                .matrix
                .project_with_bias(&z, Some(&b.to_kind(x.kind()))),
            b => self.matrix.project_with_bias(&z, b.as_ref()),
        }
    }

    /// The configured training loss (mean over all samples): cross-entropy of the logits, or
    /// [`cosine_loss`]. `x [.., N]`, `targets [..]`.
    pub fn loss(&self, x: &Tensor, targets: &Tensor) -> Tensor {
        match self.loss {
            LossKind::CrossEntropy => self
                .forward(x)
                .reshape([-1, self.matrix.rows()])
                .cross_entropy_for_logits(&targets.reshape([-1]).to_kind(Kind::Int64)),
            LossKind::Cosine => cosine_loss(x, targets, &self.matrix),
        }
    }

    /// The configured training loss, [`TrainingLoss`]. Cross-entropy is differentiated by hand
    /// through the C-wide part: the logits are computed without a graph, their gradient
    /// (`softmax - onehot`, [`softmax_cross_entropy`]) is projected back through `Q`
    /// ([`FixedMatrix::project_transpose`]) and summed for the bias, and `objective =
    /// sum(z * dz) + sum(b * db)` with `z = alpha x_hat` hands those gradients to autograd for
    /// the N-wide rest (normalization, alpha, and the network below). The gradient is the
    /// same as autograd's through `loss` (tested); what is saved is memory traffic and two
    /// `[n, C]` buffers per step. The cosine loss is plain autograd.
    pub fn training_loss(&self, x: &Tensor, targets: &Tensor) -> TrainingLoss {
        if self.loss == LossKind::Cosine {
            return TrainingLoss::plain(self.loss(x, targets));
        }
        let kind = x.kind();
        let n_feat = self.matrix.cols();
        let x = x.reshape([-1, n_feat]);
        let z = normalize(&x) * self.alpha.to_kind(kind);
        let n = z.size()[0].max(1) as f64;
        let (value, dz, db) = tch::no_grad(|| {
            let bias = self.bias.as_ref().map(|b| b.detach().to_kind(kind));
            let logits = self.matrix.project_with_bias(&z.detach(), bias.as_ref());
            let (loss, residual) = softmax_cross_entropy(logits, targets);
            let dz = self.matrix.project_transpose(&residual) / n;
            let db = bias.map(|_| residual.sum_dim_intlist(0, false, kind) / n);
            (loss, dz, db)
        });
        let mut objective = (&z * dz).sum(kind);
        if let (Some(b), Some(db)) = (&self.bias, db) {
            objective += (b.to_kind(kind) * db).sum(kind);
        }
        TrainingLoss { value, objective }
    }

    /// The current scale (read from the device: waits for it).
    pub fn alpha(&self) -> f64 {
        self.alpha.double_value(&[0])
    }

    /// The current scale as a `[1]` tensor on the device, detached (nothing is read).
    pub fn alpha_tensor(&self) -> Tensor {
        self.alpha.detach()
    }

    pub fn learns_alpha(&self) -> bool {
        self.learn_alpha
    }

    pub fn loss_kind(&self) -> LossKind {
        self.loss
    }

    pub fn matrix(&self) -> &FixedMatrix {
        &self.matrix
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl nn::Module for FixedClassifier {
    fn forward(&self, xs: &Tensor) -> Tensor {
        FixedClassifier::forward(self, xs)
    }
}

#[cfg(test)]
mod tests {
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
        let ce =
            |l: &Tensor| l.cross_entropy_loss::<Tensor>(&t, None, tch::Reduction::Mean, -100, 0.0);
        let want = ce(&logits).double_value(&[]);
        let l = logits.detach().set_requires_grad(true);
        ce(&l).backward();
        let (loss, residual) = softmax_cross_entropy(logits.copy(), &t);
        assert!((loss.double_value(&[]) - want).abs() < 1e-12);
        let max = (residual / 7.0 - l.grad()).abs().max().double_value(&[]);
        assert!(max < 1e-12, "{max}");
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
            let all_positive =
                |q: &Tensor| q.ge(-1e-7).all_dim(1, false).any().int64_value(&[]) != 0;
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
}
