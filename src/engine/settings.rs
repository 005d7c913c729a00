//! The engine's own settings: the `[train]` section of a config (optimizer, schedule,
//! epochs, batch sizes, device, precision), whatever the task. The learning-rate policy is
//! [`Schedule`]'s: what to set before a step and after an epoch.
use crate::error::{Error, Result};
use crate::optim::OptimizerKind;
use serde::{Deserialize, Serialize};

/// How the learning rate changes over epochs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Divide by `lr_decay` after an epoch whose validation loss is not the best so far
    /// (PyTorch's word_language_model).
    Plateau,
    /// Divide by `lr_decay` after each epoch listed in `milestones` (He et al.'s CIFAR regime).
    MultiStep,
    /// Cosine annealing from `lr` towards 0 over all the steps of `epochs`, set before each
    /// step (a function of the step, so a resumed run follows the same curve).
    Cosine,
    /// Never change it.
    Constant,
}

/// What the trainer does with a step whose loss or gradient norm is NaN or infinite.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnNonFinite {
    /// Stop with the step number; `last.safetensors` is the last good checkpoint.
    #[default]
    Stop,
    /// Leave the weights as they were and go on (counted in the metrics); stop anyway after
    /// [`MAX_CONSECUTIVE_SKIPS`] skipped steps in a row.
    Skip,
}

/// The arithmetic of training and evaluation (`train.precision`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// float32 everywhere.
    #[default]
    Fp32,
    /// float32 tensors, matrix products and cuDNN on TF32 tensor cores (10-bit mantissa
    /// inputs, float32 sums). CUDA only: the CPU computes in float32 all the same.
    Tf32,
    /// Autocast to bfloat16 for the forward pass (products, LSTM; reductions and the
    /// softmax stay float32), weights and optimizer in float32.
    Bf16,
}

/// Consecutive non-finite steps after which `on_nonfinite = "skip"` stops all the same.
pub const MAX_CONSECUTIVE_SKIPS: u64 = 10;

/// The `[train]` section: what the engine needs, whatever the task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub optimizer: OptimizerKind,
    /// Initial learning rate (the LM recipe: 20 for SGD; use about 1e-3 for Adam).
    pub lr: f64,
    /// SGD momentum (0: plain SGD).
    pub momentum: f64,
    /// Nesterov momentum (SGD with momentum > 0).
    pub nesterov: bool,
    pub schedule: Schedule,
    /// Divisor of the learning rate at each decay of the schedule (plateau, multi-step).
    pub lr_decay: f64,
    /// Epochs after which `multi-step` divides the learning rate.
    pub milestones: Vec<usize>,
    /// Gradient-norm clipping (0: off).
    pub clip: f64,
    /// Weight decay on the trained weights (L2 for sgd and adam, decoupled for adamw).
    pub weight_decay: f64,
    pub epochs: usize,
    /// Stop each epoch after this many steps (0: the whole training set). The next epoch
    /// continues where this one stopped, so short epochs still walk through the data.
    pub max_steps_per_epoch: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub seed: u64,
    /// Log every this many steps.
    pub log_interval: usize,
    /// Also write `last.safetensors` every this many steps (0: at epoch ends only).
    pub checkpoint_interval: usize,
    /// `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// CPU threads for libtorch (0: libtorch's default).
    pub threads: usize,
    /// `stop` (default) or `skip` a step whose loss or gradient is NaN or infinite.
    pub on_nonfinite: OnNonFinite,
    /// `fp32` (default), `tf32` (CUDA tensor cores) or `bf16` (autocast).
    pub precision: Precision,
    /// On CUDA, capture the whole training step (forward, loss, backward, clipping, SGD
    /// update) in a CUDA graph per input shape and replay it: one launch instead of
    /// hundreds. Used for SGD on tasks whose steps read fixed buffers (the LM) while no
    /// NT-ASGD average is kept; other steps run eagerly. No effect on the CPU.
    pub cuda_graph: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Sgd,
            lr: 20.0,
            momentum: 0.0,
            nesterov: false,
            schedule: Schedule::Plateau,
            lr_decay: 4.0,
            milestones: Vec::new(),
            clip: 0.25,
            weight_decay: 0.0,
            epochs: 40,
            max_steps_per_epoch: 0,
            batch_size: 20,
            eval_batch_size: 10,
            seed: 1111,
            log_interval: 200,
            checkpoint_interval: 0,
            device: "auto".into(),
            threads: 0,
            on_nonfinite: OnNonFinite::Stop,
            precision: Precision::Fp32,
            cuda_graph: true,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self, origin: &str) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(origin, field, msg));
        for (field, v) in [
            ("train.epochs", self.epochs),
            ("train.batch_size", self.batch_size),
            ("train.eval_batch_size", self.eval_batch_size),
            ("train.log_interval", self.log_interval),
        ] {
            if v == 0 {
                return err(field, "must be a positive integer, got 0".into());
            }
        }
        for (field, v) in [("train.lr", self.lr), ("train.lr_decay", self.lr_decay)] {
            if !(v.is_finite() && v > 0.0) {
                return err(field, format!("must be a positive number, got {v}"));
            }
        }
        for (field, v) in [
            ("train.clip", self.clip),
            ("train.weight_decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return err(field, format!("must be zero or positive, got {v}"));
            }
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return err(
                "train.momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            );
        }
        if self.momentum > 0.0 && self.optimizer != OptimizerKind::Sgd {
            return err(
                "train.momentum",
                format!(
                    "momentum is an SGD setting; set it to 0 for optimizer {}",
                    self.optimizer.name()
                ),
            );
        }
        if self.nesterov && !(self.optimizer == OptimizerKind::Sgd && self.momentum > 0.0) {
            return err(
                "train.nesterov",
                "Nesterov needs optimizer = \"sgd\" and momentum > 0".into(),
            );
        }
        if self.schedule == Schedule::MultiStep && self.milestones.is_empty() {
            return err(
                "train.milestones",
                "the multi-step schedule needs epochs to decay after, e.g. [81, 122]".into(),
            );
        }
        if self.schedule != Schedule::MultiStep && !self.milestones.is_empty() {
            return err(
                "train.milestones",
                "only the multi-step schedule uses milestones; set schedule = \"multi-step\" \
                 or remove them"
                    .into(),
            );
        }
        let d = self.device.as_str();
        let cuda_n = d
            .strip_prefix("cuda:")
            .is_some_and(|i| i.parse::<usize>().is_ok());
        if !(["auto", "cpu", "cuda"].contains(&d) || cuda_n) {
            return err(
                "train.device",
                format!("`{d}`: use auto, cpu, cuda or cuda:N"),
            );
        }
        Ok(())
    }
}

impl Schedule {
    /// The learning rate to set before step `epoch_step` (0-based) of `epoch` (1-based) with
    /// `steps` steps an epoch, or None to leave it. Cosine annealing only: a function of the
    /// settings and the step alone, so a resumed run follows the curve of the uninterrupted
    /// one. Per step rather than per epoch: short runs (a few epochs) anneal smoothly instead
    /// of in a few large drops.
    pub fn lr_before_step(
        self,
        t: &TrainConfig,
        epoch: usize,
        epoch_step: usize,
        steps: usize,
    ) -> Option<f64> {
        if self != Schedule::Cosine {
            return None;
        }
        let done = (epoch - 1) * steps + epoch_step;
        let progress = done as f64 / (t.epochs * steps).max(1) as f64;
        Some(t.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
    }

    /// The learning rate after validating `epoch` (1-based), from the current one: plateau
    /// divides by `lr_decay` when validation did not improve (and NT-ASGD is not averaging),
    /// multi-step after each milestone.
    pub fn lr_after_epoch(
        self,
        t: &TrainConfig,
        lr: f64,
        epoch: usize,
        improved: bool,
        averaging: bool,
    ) -> f64 {
        match self {
            Schedule::Plateau if !improved && !averaging => lr / t.lr_decay,
            Schedule::MultiStep if t.milestones.contains(&epoch) => lr / t.lr_decay,
            _ => lr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_anneals_from_lr_to_zero_over_all_steps() {
        let t = TrainConfig {
            schedule: Schedule::Cosine,
            lr: 2.0,
            epochs: 2,
            ..TrainConfig::default()
        };
        let at = |e, s| Schedule::Cosine.lr_before_step(&t, e, s, 10).unwrap();
        assert_eq!(at(1, 0), 2.0);
        assert!((at(2, 0) - 1.0).abs() < 1e-12);
        assert!(at(2, 9) < 0.03 && at(2, 9) > 0.0);
        assert_eq!(Schedule::Plateau.lr_before_step(&t, 1, 0, 10), None);
    }

    #[test]
    fn plateau_and_multi_step_decay_after_an_epoch() {
        let t = TrainConfig {
            lr_decay: 4.0,
            milestones: vec![2],
            ..TrainConfig::default()
        };
        let p = Schedule::Plateau;
        assert_eq!(p.lr_after_epoch(&t, 20.0, 1, false, false), 5.0);
        assert_eq!(p.lr_after_epoch(&t, 20.0, 1, true, false), 20.0);
        assert_eq!(p.lr_after_epoch(&t, 20.0, 1, false, true), 20.0);
        let m = Schedule::MultiStep;
        assert_eq!(m.lr_after_epoch(&t, 1.0, 1, false, false), 1.0);
        assert_eq!(m.lr_after_epoch(&t, 1.0, 2, true, false), 0.25);
        assert_eq!(
            Schedule::Constant.lr_after_epoch(&t, 1.0, 2, false, false),
            1.0
        );
    }
}
