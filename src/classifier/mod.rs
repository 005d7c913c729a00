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
//! alpha has its own optimizer settings in `[head]` (applied by [`training_params`]):
//! `alpha_lr_scale` (its learning rate is `train.lr` times this), `alpha_clip` (whether its
//! gradient is in the global clipping norm), `alpha_weight_decay`, and `alpha_param`
//! ([`AlphaParam`]: alpha itself, or `log_alpha`, with `alpha = exp(log_alpha)` in the
//! graph). Why they exist (SGD at lr 20 with clipping): `docs/alpha-stability.md`.
//!
//! # Cosine loss
//! [`cosine_loss`]: `mean over samples of (1 - q_t . x_hat)`, `q_t` the (unit) row of the target
//! class; 0 when `x` points exactly at its class, 2 when opposite. It only needs the target rows
//! (`rows_for`), never the C-wide logits; alpha and the bias get no gradient from it (they keep
//! their initial values), and the prediction is still `argmax_i q_i . x_hat` (the logits'
//! argmax when the bias is zero).
//!
//! # Speed
//! Dense kinds are one fused `linear` with the contiguous `Q`; Hadamard uses a two-factor fast
//! Walsh-Hadamard transform ([`hadamard`]; timings in `docs/classifier-speed.md`). Training
//! uses [`FixedClassifier::training_loss`], which differentiates the cross-entropy through the
//! C-wide logits by hand ([`softmax_cross_entropy`], [`FixedMatrix::project_transpose`]).
pub mod hadamard;
mod head;
mod matrix;
mod pretrained;

pub use head::{is_alpha, training_params, Head, HeadConfig, HeadMode, HeadShape};
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

/// How a learned alpha is parameterized (`head.alpha_param`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AlphaParam {
    /// The variable `alpha` is alpha itself.
    #[default]
    Linear,
    /// The variable `log_alpha` is `ln(alpha)`, `alpha = exp(log_alpha)`: alpha stays
    /// positive and a step multiplies it by a factor. Its gradient is `alpha * dL/dalpha`
    /// and weight decay pulls `log_alpha` to 0, i.e. alpha to 1.
    Log,
}

impl AlphaParam {
    /// The name of the variable that holds alpha in the `VarStore` and in checkpoints.
    pub fn var_name(self) -> &'static str {
        match self {
            AlphaParam::Linear => "alpha",
            AlphaParam::Log => "log_alpha",
        }
    }
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
///
/// bf16 or f16 logits (autocast) give an f32 loss and residual: a 16-bit log-softmax over
/// 33,278 words keeps about three digits of the loss, and CUDA autocast computes `exp` in
/// f32 anyway, which a 16-bit residual could not take back in place.
pub fn softmax_cross_entropy(logits: Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let kind = match logits.kind() {
        Kind::BFloat16 | Kind::Half => Kind::Float,
        k => k,
    };
    let t = targets.reshape([-1, 1]).to_kind(Kind::Int64);
    let mut residual = logits.log_softmax(-1, kind);
    drop(logits);
    let picked = residual.gather(1, &t, false); // log p(target), [n, 1]
    let loss = -picked.mean(kind);
    let _ = residual.exp_();
    let _ = residual.scatter_(1, &t, &(picked.exp() - 1.0).to_kind(kind));
    (loss, residual)
}

/// `logits = alpha * Q (x / ||x||) + b` with a fixed `Q`.
#[derive(Debug)]
pub struct FixedClassifier {
    matrix: FixedMatrix,
    /// The variable: alpha, or ln(alpha) ([`AlphaParam`]).
    alpha: Tensor,
    alpha_param: AlphaParam,
    bias: Option<Tensor>,
    learn_alpha: bool,
    loss: LossKind,
}

impl FixedClassifier {
    /// Registers `alpha` (`[1]`; `log_alpha` = ln(alpha) when `head.alpha_param = "log"`;
    /// trainable only when `learn_alpha`, but saved either way) and `bias` (`[C]`, zeros,
    /// when enabled) under `p`, and moves `matrix` to `p`'s device. `cfg` is a validated
    /// [`HeadConfig`] ([`HeadConfig::validate`]).
    pub fn new(p: &nn::Path, matrix: FixedMatrix, cfg: &HeadConfig) -> Result<Self> {
        let value = match cfg.alpha_param {
            AlphaParam::Linear => cfg.alpha_init,
            AlphaParam::Log => cfg.alpha_init.ln(),
        };
        let init = Tensor::from_slice(&[value as f32]);
        let name = cfg.alpha_param.var_name();
        let alpha = if cfg.learn_alpha {
            p.f_var_copy(name, &init)?
        } else {
            let mut a = p.f_zeros_no_train(name, &[1])?;
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
            alpha_param: cfg.alpha_param,
            bias,
            learn_alpha: cfg.learn_alpha,
            loss: cfg.loss,
        })
    }

    /// `[.., N] -> [.., C]` logits.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let z = normalize(x) * self.scale().to_kind(x.kind());
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
    /// the N-wide rest (normalization, alpha, and the network below; with `log_alpha`, alpha
    /// is `exp(log_alpha)` in that graph, so its gradient is `alpha * dL/dalpha`). The gradient is the
    /// same as autograd's through `loss` (tested); what is saved is memory traffic and two
    /// `[n, C]` buffers per step. The cosine loss is plain autograd.
    pub fn training_loss(&self, x: &Tensor, targets: &Tensor) -> TrainingLoss {
        if self.loss == LossKind::Cosine {
            return TrainingLoss::plain(self.loss(x, targets));
        }
        let kind = x.kind();
        let n_feat = self.matrix.cols();
        let x = x.reshape([-1, n_feat]);
        let z = normalize(&x) * self.scale().to_kind(kind);
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

    /// The scale alpha as a `[1]` tensor in the graph of its variable (`exp(log_alpha)` when
    /// alpha is learned in log space).
    pub fn scale(&self) -> Tensor {
        match self.alpha_param {
            AlphaParam::Linear => self.alpha.shallow_clone(),
            AlphaParam::Log => self.alpha.exp(),
        }
    }

    /// The current scale alpha (not its logarithm, whatever the parameterization; read
    /// from the device: waits for it).
    pub fn alpha(&self) -> f64 {
        let v = self.alpha.double_value(&[0]);
        match self.alpha_param {
            AlphaParam::Linear => v,
            AlphaParam::Log => v.exp(),
        }
    }

    /// How alpha is parameterized.
    pub fn alpha_param(&self) -> AlphaParam {
        self.alpha_param
    }

    /// The current scale alpha as a `[1]` tensor on the device, detached (nothing is read).
    pub fn alpha_tensor(&self) -> Tensor {
        self.scale().detach()
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
mod tests;
