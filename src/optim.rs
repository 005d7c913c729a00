//! Optimizers over an explicit list of trainable tensors, with gradient-norm clipping:
//! SGD (momentum, Nesterov), Adam and AdamW, behind one [`Optimizer`] trait shaped like
//! candle's (`backward_step`, `learning_rate`, `set_learning_rate`) plus what resuming needs
//! (state tensors in and out).
//!
//! Why not `tch::nn::Optimizer`: its state (momentum buffers, Adam's moments) cannot be
//! saved, so a run could not resume exactly, and it pays for more passes over the weights
//! than needed. Here the gradients come from `torch::autograd::grad` (`Tensor::run_backward`)
//! as fresh tensors: nothing accumulates into `.grad`, so nothing has to be zeroed (PyTorch's
//! `zero_grad(set_to_none=True)`), the clipping coefficient is folded into the step size, and
//! plain SGD's update is one in-place `addcmul_` per parameter. All work stays in libtorch's
//! own thread pool. Only tensors handed to [`build`] are ever touched, so a fixed
//! classifier's matrix has no optimizer state by construction.
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::Tensor;

/// Which optimizer (`train.optimizer`; also the CLI's `--optimizer`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// SGD, with `train.momentum` and `train.nesterov`; weight decay as L2 on the gradient.
    Sgd,
    /// Adam with L2 weight decay on the gradient (PyTorch's `Adam(weight_decay=...)`).
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter 2019; PyTorch's `AdamW`).
    Adamw,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adamw => "adamw",
        }
    }
}

/// One trainable tensor, its weight decay, its learning-rate multiplier and whether its
/// gradient counts in (and is scaled by) global-norm clipping.
pub struct Param {
    pub name: String,
    pub tensor: Tensor,
    pub weight_decay: f64,
    /// This parameter's learning rate is the group's times this (1: the same).
    pub lr_scale: f64,
    /// Its gradient is part of the global norm and scaled by the clipping coefficient.
    pub clipped: bool,
}

/// The trainable variables of a `VarStore` in name order, each with the weight decay
/// `weight_decay(name)` gives it.
pub fn params_of(vs: &tch::nn::VarStore, weight_decay: impl Fn(&str) -> f64) -> Vec<Param> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter()
        .map(|(name, tensor)| Param {
            weight_decay: weight_decay(&name),
            name,
            tensor,
            lr_scale: 1.0,
            clipped: true,
        })
        .collect()
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
    head: &crate::classifier::HeadConfig,
) -> Vec<Param> {
    let mut params = params_of(vs, |_| weight_decay);
    for p in params.iter_mut().filter(|p| is_alpha(&p.name)) {
        p.weight_decay = head.alpha_weight_decay;
        p.lr_scale = head.alpha_lr_scale;
        p.clipped = head.alpha_clip;
    }
    params
}

/// Whether a variable is the fixed classifier's scale (`alpha`, or `log_alpha` in log space).
pub fn is_alpha(name: &str) -> bool {
    name.ends_with("alpha")
}

/// The settings every optimizer is built from (`[train]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f64,
    /// Global gradient-norm clipping (0: off).
    pub clip: f64,
    /// SGD only.
    pub momentum: f64,
    pub nesterov: bool,
}

/// An optimizer: backpropagates a loss and updates its parameters.
pub trait Optimizer {
    /// Backpropagates `loss` and updates every parameter with the learning rate times
    /// `lr_scale` (variable BPTT scales it per step), the gradients scaled so that their
    /// global norm is at most the clip. Returns the gradient norm before clipping; when it is
    /// not finite nothing is updated (the caller stops training).
    fn backward_step_scaled(&mut self, loss: &Tensor, lr_scale: f64) -> f64;

    /// State to checkpoint as `(name, tensor)` pairs (momentum buffers, moments).
    fn state_tensors(&self) -> Vec<(String, Tensor)>;

    /// The parameters, learning rate, clip and step count.
    fn group(&self) -> &ParamGroup;
    fn group_mut(&mut self) -> &mut ParamGroup;

    /// [`backward_step_scaled`](Self::backward_step_scaled) at the learning rate itself.
    fn backward_step(&mut self, loss: &Tensor) -> f64 {
        self.backward_step_scaled(loss, 1.0)
    }

    fn learning_rate(&self) -> f64 {
        self.group().lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.group_mut().lr = lr;
    }

    fn params(&self) -> &[Param] {
        &self.group().params
    }

    /// Updates taken (Adam's bias correction needs it; saved with the state).
    fn steps(&self) -> i64 {
        self.group().steps
    }

    /// Restores what [`state_tensors`](Self::state_tensors) saved, and the step count.
    fn load_state(&mut self, ckpt: &crate::engine::Checkpoint, steps: i64) -> Result<()> {
        self.group_mut().steps = steps;
        ckpt.copy_into(&self.state_tensors().into_iter().collect::<HashMap<_, _>>())
    }

    /// Number of f32 values of optimizer state.
    fn state_numel(&self) -> i64 {
        self.state_tensors()
            .iter()
            .map(|(_, t)| t.numel() as i64)
            .sum()
    }
}

/// The optimizer of `cfg` over `params`.
pub fn build(cfg: &OptimizerConfig, params: Vec<Param>) -> Box<dyn Optimizer> {
    let common = ParamGroup {
        params,
        lr: cfg.lr,
        clip: cfg.clip,
        steps: 0,
    };
    match cfg.kind {
        OptimizerKind::Sgd => Box::new(Sgd::new(common, cfg.momentum, cfg.nesterov)),
        OptimizerKind::Adam => Box::new(Adam::new(common, false)),
        OptimizerKind::Adamw => Box::new(Adam::new(common, true)),
    }
}

/// What every optimizer has: the parameters, the learning rate, the clip, the step count.
pub struct ParamGroup {
    params: Vec<Param>,
    lr: f64,
    clip: f64,
    steps: i64,
}

/// What every update starts from: the gradients, their norm, the clipping coefficient and
/// this step's learning rate.
struct Step {
    grads: Vec<Tensor>,
    norm: f64,
    coef: f64,
    lr: f64,
}

impl ParamGroup {
    /// Backpropagates `loss` and counts the step; `Err(norm)` when the gradient norm is not
    /// finite (nothing is updated, nothing counted).
    fn begin_step(&mut self, loss: &Tensor, lr_scale: f64) -> std::result::Result<Step, f64> {
        let grads = self.gradients(loss);
        let (norm, coef) = self.norm_and_coef(&grads);
        if !norm.is_finite() {
            return Err(norm);
        }
        self.steps += 1;
        Ok(Step {
            grads,
            norm,
            coef,
            lr: self.lr * lr_scale,
        })
    }

    /// Gradients of `loss` with respect to every parameter (undefined for a parameter the
    /// loss does not reach, e.g. alpha under the cosine loss).
    fn gradients(&self, loss: &Tensor) -> Vec<Tensor> {
        let inputs: Vec<&Tensor> = self.params.iter().map(|p| &p.tensor).collect();
        match Tensor::f_run_backward(&[loss], &inputs, false, false) {
            Ok(grads) => grads,
            Err(_) => {
                // Some parameter is unused: fall back to accumulating into `.grad`.
                loss.backward();
                self.params
                    .iter()
                    .map(|p| {
                        let mut g = p.tensor.grad();
                        if g.defined() {
                            let out = g.detach().copy();
                            let _ = g.zero_();
                            out
                        } else {
                            g
                        }
                    })
                    .collect()
            }
        }
    }

    /// The global gradient norm and the clipping coefficient to multiply gradients by.
    fn norm_and_coef(&self, grads: &[Tensor]) -> (f64, f64) {
        let norms: Vec<Tensor> = grads
            .iter()
            .zip(&self.params)
            .filter(|(g, p)| g.defined() && p.clipped)
            .map(|(g, _)| g.norm())
            .collect();
        let norm = if norms.is_empty() {
            0.0
        } else {
            Tensor::stack(&norms, 0).norm().double_value(&[])
        };
        let coef = if self.clip > 0.0 && norm > self.clip {
            self.clip / (norm + 1e-6)
        } else {
            1.0
        };
        (norm, coef)
    }

    /// One zero buffer per parameter.
    fn zeros(&self) -> Vec<Tensor> {
        self.params.iter().map(|p| p.tensor.zeros_like()).collect()
    }

    fn named<'a>(&'a self, prefix: &'a str, bufs: &'a [Tensor]) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(bufs)
            .map(|(p, b)| (format!("optimizer.{prefix}.{}", p.name), b.shallow_clone()))
            .collect()
    }
}

/// SGD as PyTorch's `torch.optim.SGD` (dampening 0): `d = g + wd w`, `buf = m buf + d`,
/// `w -= lr (d + m buf)` with Nesterov, `w -= lr buf` without.
struct Sgd {
    c: ParamGroup,
    momentum: f64,
    nesterov: bool,
    /// Momentum buffers (empty without momentum).
    buffers: Vec<Tensor>,
}

impl Sgd {
    fn new(c: ParamGroup, momentum: f64, nesterov: bool) -> Self {
        let buffers = if momentum > 0.0 {
            c.zeros()
        } else {
            Vec::new()
        };
        Self {
            c,
            momentum,
            nesterov,
            buffers,
        }
    }
}

impl Optimizer for Sgd {
    fn backward_step_scaled(&mut self, loss: &Tensor, lr_scale: f64) -> f64 {
        let Step {
            grads,
            norm,
            coef,
            lr,
        } = match self.c.begin_step(loss, lr_scale) {
            Ok(step) => step,
            Err(norm) => return norm,
        };
        tch::no_grad(|| {
            for (i, (p, mut g)) in self.c.params.iter().zip(grads).enumerate() {
                if !g.defined() {
                    continue;
                }
                let coef = if p.clipped { coef } else { 1.0 };
                let lr = lr * p.lr_scale;
                let mut w = p.tensor.shallow_clone();
                if self.momentum == 0.0 {
                    if p.weight_decay > 0.0 {
                        let _ = w.g_mul_scalar_(1.0 - lr * p.weight_decay);
                    }
                    // w += g * (-lr * coef): one pass, no temporary.
                    let step = Tensor::from(-lr * coef)
                        .to_kind(w.kind())
                        .to_device(w.device());
                    let _ = w.addcmul_(&g, &step);
                    continue;
                }
                if coef != 1.0 {
                    let _ = g.g_mul_scalar_(coef);
                }
                if p.weight_decay > 0.0 {
                    let _ = g.g_add_(&(&w * p.weight_decay));
                }
                let mut buf = self.buffers[i].shallow_clone();
                if self.c.steps == 1 {
                    // PyTorch starts the buffer at the first gradient.
                    buf.copy_(&g);
                } else {
                    let _ = buf.g_mul_scalar_(self.momentum);
                    let _ = buf.g_add_(&g);
                }
                if self.nesterov {
                    let _ = g.g_add_(&(&buf * self.momentum));
                    let _ = w.g_add_(&(g * -lr));
                } else {
                    let _ = w.g_add_(&(&buf * -lr));
                }
            }
        });
        norm
    }

    fn group(&self) -> &ParamGroup {
        &self.c
    }
    fn group_mut(&mut self) -> &mut ParamGroup {
        &mut self.c
    }
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.c.named("momentum_buffer", &self.buffers)
    }
}

/// Adam (L2 weight decay on the gradient) or AdamW (decoupled weight decay), betas 0.9 and
/// 0.999, eps 1e-8, as PyTorch's.
struct Adam {
    c: ParamGroup,
    decoupled: bool,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Adam {
    fn new(c: ParamGroup, decoupled: bool) -> Self {
        let (exp_avg, exp_avg_sq) = (c.zeros(), c.zeros());
        Self {
            c,
            decoupled,
            exp_avg,
            exp_avg_sq,
        }
    }
}

impl Optimizer for Adam {
    fn backward_step_scaled(&mut self, loss: &Tensor, lr_scale: f64) -> f64 {
        let Step {
            grads,
            norm,
            coef,
            lr,
        } = match self.c.begin_step(loss, lr_scale) {
            Ok(step) => step,
            Err(norm) => return norm,
        };
        let t = self.c.steps as f64;
        tch::no_grad(|| {
            for (i, (p, mut g)) in self.c.params.iter().zip(grads).enumerate() {
                if !g.defined() {
                    continue;
                }
                let coef = if p.clipped { coef } else { 1.0 };
                let lr = lr * p.lr_scale;
                let mut w = p.tensor.shallow_clone();
                if coef != 1.0 {
                    let _ = g.g_mul_scalar_(coef);
                }
                if p.weight_decay > 0.0 {
                    if self.decoupled {
                        let _ = w.g_mul_scalar_(1.0 - lr * p.weight_decay);
                    } else {
                        g += &w * p.weight_decay;
                    }
                }
                let mut m = self.exp_avg[i].shallow_clone();
                let mut v = self.exp_avg_sq[i].shallow_clone();
                let _ = m.lerp_(&g, 1.0 - BETA1);
                let _ = v.g_mul_scalar_(BETA2);
                let _ = g.g_mul_scalar_((1.0 - BETA2).sqrt());
                let _ = v.addcmul_(&g, &g);
                let bc1 = 1.0 - BETA1.powf(t);
                let bc2 = 1.0 - BETA2.powf(t);
                let step = lr / bc1;
                // denom = -(sqrt(v / bc2) + eps) / step, so w += m / denom is Adam's update.
                let mut denom = v.sqrt();
                let _ = denom.g_mul_scalar_(1.0 / bc2.sqrt());
                let _ = denom.g_add_scalar_(EPS);
                let _ = denom.g_mul_scalar_(-1.0 / step);
                let _ = w.addcdiv_(&m, &denom);
            }
        });
        norm
    }

    fn group(&self) -> &ParamGroup {
        &self.c
    }
    fn group_mut(&mut self) -> &mut ParamGroup {
        &mut self.c
    }
    fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (p, (m, v)) in self
            .c
            .params
            .iter()
            .zip(self.exp_avg.iter().zip(&self.exp_avg_sq))
        {
            out.push((format!("optimizer.exp_avg.{}", p.name), m.shallow_clone()));
            out.push((
                format!("optimizer.exp_avg_sq.{}", p.name),
                v.shallow_clone(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
