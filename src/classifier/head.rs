//! The classifier head on top of any backbone of N features: learned, tied (language model
//! only: the input embedding's weight) or fixed (see [`super::FixedClassifier`]), built from
//! one [`HeadConfig`], the `[head]` section of every config. Its values are checked once,
//! here ([`HeadConfig::validate`]).
use super::{
    AlphaParam, FixedClassifier, FixedKind, FixedMatrix, FixedSpec, LossKind, TrainingLoss,
};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tch::nn::{self, Init};
use tch::{Reduction, Tensor};

/// Which classifier.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum HeadMode {
    /// Own weight `[C, N]` and bias.
    Learned,
    /// The input embedding's weight (Press & Wolf 2017), own bias; language model only.
    Tied,
    /// Fixed random matrix with orthonormal columns (C > N) or rows (C <= N), unit rows.
    FixedOrthogonal,
    /// Fixed truncated Hadamard matrix (fast transform).
    FixedHadamard,
    /// Fixed simplex equiangular tight frame (needs C <= N + 1).
    FixedSimplex,
    /// Fixed word2vec vectors (`head.embeddings`).
    FixedWord2vec,
    /// Fixed PPMI + SVD vectors (`head.embeddings`).
    FixedPmi,
    /// Fixed vectors from any supported file (`head.embeddings`).
    FixedPretrained,
}

impl HeadMode {
    pub const ALL: [HeadMode; 8] = [
        HeadMode::Learned,
        HeadMode::Tied,
        HeadMode::FixedOrthogonal,
        HeadMode::FixedHadamard,
        HeadMode::FixedSimplex,
        HeadMode::FixedWord2vec,
        HeadMode::FixedPmi,
        HeadMode::FixedPretrained,
    ];

    /// The name used in configs, metrics and reports.
    pub fn name(self) -> &'static str {
        match self {
            HeadMode::Learned => "learned",
            HeadMode::Tied => "tied",
            HeadMode::FixedOrthogonal => "fixed-orthogonal",
            HeadMode::FixedHadamard => "fixed-hadamard",
            HeadMode::FixedSimplex => "fixed-simplex",
            HeadMode::FixedWord2vec => "fixed-word2vec",
            HeadMode::FixedPmi => "fixed-pmi",
            HeadMode::FixedPretrained => "fixed-pretrained",
        }
    }

    pub fn parse(s: &str) -> Option<HeadMode> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    pub fn is_fixed(self) -> bool {
        self.fixed_kind().is_some()
    }

    /// The fixed matrix of a fixed mode.
    pub fn fixed_kind(self) -> Option<FixedKind> {
        match self {
            HeadMode::Learned | HeadMode::Tied => None,
            HeadMode::FixedOrthogonal => Some(FixedKind::Orthogonal),
            HeadMode::FixedHadamard => Some(FixedKind::Hadamard),
            HeadMode::FixedSimplex => Some(FixedKind::Simplex),
            HeadMode::FixedWord2vec | HeadMode::FixedPmi | HeadMode::FixedPretrained => {
                Some(FixedKind::Pretrained)
            }
        }
    }

    /// Modes whose matrix comes from an embeddings file (`head.embeddings`).
    pub fn needs_embeddings(self) -> bool {
        self.fixed_kind() == Some(FixedKind::Pretrained)
    }
}

impl std::fmt::Display for HeadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The `[head]` section: which classifier, and the fixed classifier's options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HeadConfig {
    pub mode: HeadMode,
    /// Embeddings file for fixed-word2vec / fixed-pmi / fixed-pretrained
    /// (`.npy` + `.vocab`, word2vec `.txt`/`.bin`, GloVe `.txt`).
    pub embeddings: PathBuf,
    /// Seed of the random fixed matrices (orthogonal, Hadamard sign blocks).
    pub matrix_seed: u64,
    /// Initial value of the scale alpha (inverse softmax temperature); the logits lie in
    /// `[-alpha, alpha]`, so it must be finite and > 0 (10 is a good start).
    pub alpha_init: f64,
    /// Learn alpha (true) or keep it fixed at `alpha_init` (the paper's ablation: 0.1, 1, 10).
    pub learn_alpha: bool,
    /// fixed-hadamard and fixed-simplex: orient the structured matrix at random (seeded by
    /// `matrix_seed`; Hadamard: random column signs, still the fast transform; simplex: a
    /// random rotation into all N features). `Q Q^T` is unchanged, but no row is all
    /// positive: on non-negative features (a ReLU network's pooled features) the canonical
    /// matrices favour their first class. Run folders written before this option read false.
    pub random_orientation: bool,
    /// Weight decay on alpha (the paper uses the classifier's weight decay); with
    /// `alpha_param = "log"` it decays `log_alpha`, pulling alpha towards 1.
    pub alpha_weight_decay: f64,
    /// alpha's learning rate is `train.lr` times this (finite, > 0).
    pub alpha_lr_scale: f64,
    /// alpha's gradient counts in the global gradient norm and is scaled by `train.clip`'s
    /// clipping like every other gradient (false: it is left out of both, so its step is
    /// `lr * alpha_lr_scale * dL/dalpha` whatever the other gradients are).
    pub alpha_clip: bool,
    /// `linear`: the variable `alpha` is learned; `log`: `log_alpha = ln(alpha)` is
    /// (initialized to `ln(alpha_init)`; alpha stays positive and a step multiplies it).
    /// The checkpoints of the two hold different variables, so a run resumes only with its
    /// own parameterization.
    pub alpha_param: AlphaParam,
    /// Learned per-class bias on the fixed classifier's logits.
    pub bias: bool,
    /// Loss of the fixed classifier: `cross-entropy`, or the paper's `cosine` angle loss.
    pub loss: LossKind,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            mode: HeadMode::Learned,
            embeddings: PathBuf::new(),
            matrix_seed: 0,
            alpha_init: 10.0,
            learn_alpha: true,
            random_orientation: true,
            alpha_weight_decay: 0.0,
            alpha_lr_scale: 1.0,
            alpha_clip: true,
            alpha_param: AlphaParam::Linear,
            bias: true,
            loss: LossKind::CrossEntropy,
        }
    }
}

impl HeadConfig {
    /// Checks the values serde cannot; errors name `head.<field>` in `file`.
    pub fn validate(&self, file: &str) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(file, field, msg));
        if !(self.alpha_init.is_finite() && self.alpha_init > 0.0) {
            return err(
                "head.alpha_init",
                format!(
                    "must be a finite number > 0 (the logits lie in [-alpha, alpha]; 10 is a \
                     good start), got {}",
                    self.alpha_init
                ),
            );
        }
        if !(self.alpha_weight_decay.is_finite() && self.alpha_weight_decay >= 0.0) {
            return err(
                "head.alpha_weight_decay",
                format!("must be zero or positive, got {}", self.alpha_weight_decay),
            );
        }
        if !(self.alpha_lr_scale.is_finite() && self.alpha_lr_scale > 0.0) {
            return err(
                "head.alpha_lr_scale",
                format!(
                    "must be a finite number > 0 (alpha's learning rate is train.lr times it; \
                     to keep alpha fixed set head.learn_alpha = false), got {}",
                    self.alpha_lr_scale
                ),
            );
        }
        if self.mode.needs_embeddings() && self.embeddings.as_os_str().is_empty() {
            return err(
                "head.embeddings",
                format!(
                    "mode {} needs an embeddings file (make one with `fixclf embed`)",
                    self.mode
                ),
            );
        }
        if self.loss == LossKind::Cosine && !self.mode.is_fixed() {
            return err(
                "head.loss",
                "the cosine loss needs a fixed head mode".into(),
            );
        }
        Ok(())
    }

    /// The fixed `C x N` matrix of a fixed mode (None for learned and tied). `words`, the
    /// class names in id order, are needed by the pretrained modes.
    pub fn fixed_matrix(
        &self,
        classes: i64,
        features: i64,
        words: Option<&[String]>,
    ) -> Result<Option<FixedMatrix>> {
        let Some(kind) = self.mode.fixed_kind() else {
            return Ok(None);
        };
        let mut spec = FixedSpec::request(kind, classes, features, self.matrix_seed);
        if kind == FixedKind::Pretrained {
            spec.source = Some(self.embeddings.clone());
        }
        spec.random_orientation =
            self.random_orientation && matches!(kind, FixedKind::Hadamard | FixedKind::Simplex);
        // Name the config field behind the failure (`tasks::build` adds the file).
        FixedMatrix::build(&spec, words)
            .map(Some)
            .map_err(|e| match e {
                Error::Arg { msg, .. } if kind != FixedKind::Pretrained => {
                    Error::arg("head.mode", format!("{}: {msg}", self.mode))
                }
                Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                    Error::arg(
                        "head.embeddings",
                        format!(
                            "{}: {source}; compute it with `fixclf embed {} --out {}` or point \
                         head.embeddings at an existing file",
                            path.display(),
                            if self.mode == HeadMode::FixedPmi {
                                "pmi"
                            } else {
                                "word2vec"
                            },
                            path.with_extension("").display()
                        ),
                    )
                }
                e => e,
            })
    }
}

/// A classifier head: `[n, N]` features to `[n, C]` logits.
pub enum Head {
    /// Own weight `[C, N]` and bias `[C]`.
    Learned { weight: Tensor, bias: Tensor },
    /// A weight owned elsewhere (the language model's input embedding), own bias.
    Tied { weight: Tensor, bias: Tensor },
    /// `alpha * Q x_hat + b` with a fixed `Q`.
    Fixed(FixedClassifier),
}

impl Head {
    /// A learned head under `p` (`weight`, `bias`), initialized as the task's reference does
    /// (the language model: uniform +-0.1 and zero bias; PyTorch's `nn.Linear` otherwise).
    pub fn learned(
        p: &nn::Path,
        classes: i64,
        features: i64,
        weight_init: Init,
        bias_init: Init,
    ) -> Head {
        Head::Learned {
            weight: p.var("weight", &[classes, features], weight_init),
            bias: p.var("bias", &[classes], bias_init),
        }
    }

    /// PyTorch's `nn.Linear` initialization (`kaiming_uniform(a = sqrt(5))`): weight and bias
    /// uniform in `+-1/sqrt(N)`.
    pub fn linear_init(features: i64) -> (Init, Init) {
        let b = 1.0 / (features as f64).sqrt();
        let u = Init::Uniform { lo: -b, up: b };
        (u, u)
    }

    /// A head whose weight is `weight` `[C, N]` (shared, e.g. the input embedding), with its
    /// own zero bias under `p`.
    pub fn tied(p: &nn::Path, weight: &Tensor) -> Head {
        Head::Tied {
            weight: weight.shallow_clone(),
            bias: p.var("bias", &[weight.size()[0]], Init::Const(0.0)),
        }
    }

    /// A fixed head under `p` (`alpha`, `bias`) with the matrix of a fixed mode.
    pub fn fixed(p: &nn::Path, matrix: FixedMatrix, cfg: &HeadConfig) -> Result<Head> {
        Ok(Head::Fixed(FixedClassifier::new(p, matrix, cfg)?))
    }

    /// Logits `[n, C]` of features `[n, N]`.
    pub fn logits(&self, x: &Tensor) -> Tensor {
        match self {
            Head::Learned { weight, bias } | Head::Tied { weight, bias } => {
                x.linear(weight, Some(bias))
            }
            Head::Fixed(clf) => clf.forward(x),
        }
    }

    /// Mean cross-entropy of the logits: what perplexity and evaluation measure.
    pub fn cross_entropy(&self, x: &Tensor, targets: &Tensor) -> Tensor {
        self.logits(x)
            .cross_entropy_loss::<Tensor>(targets, None, Reduction::Mean, -100, 0.0)
    }

    /// The training loss of features `[n, N]` against targets `[n]`: a fixed classifier's
    /// configured loss, differentiated by hand through its C-wide logits
    /// ([`FixedClassifier::training_loss`]); learned and tied heads, whose weight gradient
    /// autograd forms anyway, go through autograd as they are.
    pub fn training_loss(&self, x: &Tensor, targets: &Tensor) -> TrainingLoss {
        match self {
            Head::Fixed(clf) => clf.training_loss(x, targets),
            _ => TrainingLoss::plain(self.cross_entropy(x, targets)),
        }
    }

    /// The `C x N` class rows the logits compare features with (detached, f32): the learned
    /// weight, the tied embedding, or the fixed `Q` (materialized for the Hadamard fast
    /// transform too). A fixed head scores `alpha * Q x/|x| + b`; alpha does not change the
    /// rows' directions, and the normalization is of the features, not the rows: the
    /// neural-collapse diagnostics compare these rows with the backbone's features `x`
    /// before normalization, as Papyan et al. (2020) do with the penultimate layer.
    pub fn class_weights(&self) -> Tensor {
        match self {
            Head::Learned { weight, .. } | Head::Tied { weight, .. } => weight.detach(),
            Head::Fixed(clf) => clf.matrix().dense(),
        }
    }

    /// The fixed classifier, if this head is one.
    pub fn fixed_classifier(&self) -> Option<&FixedClassifier> {
        match self {
            Head::Fixed(clf) => Some(clf),
            _ => None,
        }
    }

    /// The fixed classifier's scale alpha, if any.
    pub fn alpha(&self) -> Option<f64> {
        self.fixed_classifier().map(FixedClassifier::alpha)
    }

    /// The fixed classifier's scale alpha as a device tensor, if any (nothing is read).
    pub fn alpha_tensor(&self) -> Option<Tensor> {
        self.fixed_classifier().map(FixedClassifier::alpha_tensor)
    }

    /// How to regenerate the fixed matrix (checkpoint metadata), if any.
    pub fn fixed_spec(&self) -> Option<&FixedSpec> {
        self.fixed_classifier().map(|c| c.matrix().spec())
    }

    /// Values of the fixed matrix (regenerated, never stored or trained).
    pub fn fixed_numel(&self) -> i64 {
        self.fixed_classifier()
            .map_or(0, |c| c.matrix().rows() * c.matrix().cols())
    }
}

/// What a task hands [`Head::build`] besides the `[head]` config.
pub struct HeadShape<'a> {
    /// Classes C (the language model: its vocabulary).
    pub classes: i64,
    /// Features N from the backbone.
    pub features: i64,
    /// The fixed matrix of a fixed mode, when the task has built it already (the language
    /// model shares it with its input layer); else [`Head::build`] builds it.
    pub fixed: Option<FixedMatrix>,
    /// The class names in id order (the pretrained modes look their vectors up by name).
    pub words: Option<&'a [String]>,
    /// The tied mode's weight `[C, N]` (the language model's input embedding).
    pub tied: Option<&'a Tensor>,
    /// A learned head's weight and bias initialization (the task's reference's).
    pub learned_init: (Init, Init),
}

impl Head {
    /// The head of `cfg.mode` under `p`: the one switch from mode to head, for every task
    /// and bench.
    pub fn build(p: &nn::Path, cfg: &HeadConfig, shape: HeadShape) -> Result<Head> {
        let HeadShape {
            classes, features, ..
        } = shape;
        match cfg.mode {
            HeadMode::Learned => {
                let (w, b) = shape.learned_init;
                Ok(Head::learned(p, classes, features, w, b))
            }
            HeadMode::Tied => match shape.tied {
                Some(weight) => Ok(Head::tied(p, weight)),
                None => Err(Error::arg(
                    "head.mode",
                    "tied needs an input embedding to share (the language model's); use \
                     learned or a fixed mode",
                )),
            },
            HeadMode::FixedOrthogonal
            | HeadMode::FixedHadamard
            | HeadMode::FixedSimplex
            | HeadMode::FixedWord2vec
            | HeadMode::FixedPmi
            | HeadMode::FixedPretrained => {
                let matrix = match shape.fixed {
                    Some(q) => q,
                    None => cfg
                        .fixed_matrix(classes, features, shape.words)?
                        .ok_or_else(|| {
                            Error::arg("head.mode", format!("{} has no fixed matrix", cfg.mode))
                        })?,
                };
                Head::fixed(p, matrix, cfg)
            }
        }
    }
}

/// Whether a variable is the fixed classifier's scale (`alpha`, or `log_alpha` in log space).
pub fn is_alpha(name: &str) -> bool {
    name.ends_with("alpha")
}

/// The trainable variables of `vs` with training's weight decay: `weight_decay`, except the
/// fixed classifier's scale alpha (`alpha` or `log_alpha`), which has its own weight decay
/// (`head.alpha_weight_decay`; the paper decays it like the classifier's weights), learning
/// rate multiplier (`head.alpha_lr_scale`) and place in clipping (`head.alpha_clip`). The
/// trainer and the benches build their optimizers from this, so a bench steps exactly what
/// training steps.
pub fn training_params(
    vs: &tch::nn::VarStore,
    weight_decay: f64,
    head: &HeadConfig,
) -> Vec<crate::optim::Param> {
    let mut params = crate::optim::params_of(vs, |_| weight_decay);
    for p in params.iter_mut().filter(|p| is_alpha(&p.name)) {
        p.weight_decay = head.alpha_weight_decay;
        p.lr_scale = head.alpha_lr_scale;
        p.clipped = head.alpha_clip;
    }
    params
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
