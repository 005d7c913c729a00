//! Optimizers over an explicit list of trainable tensors, with gradient-norm clipping:
//! SGD (momentum, Nesterov), Adam and AdamW, behind one [`Optimizer`] trait shaped like
//! candle's (`backward_step`, `learning_rate`, `set_learning_rate`) plus what resuming needs
//! (state tensors in and out).
//!
//! Why not `tch::nn::Optimizer`: its state (momentum buffers, Adam's moments) cannot be
//! saved, so a run could not resume exactly, and it pays for more passes over the weights
//! than needed. Here the gradients come from `torch::autograd::grad` (`Tensor::run_backward`)
//! as fresh tensors: nothing accumulates into `.grad`, so nothing has to be zeroed (PyTorch's
//! `zero_grad(set_to_none=True)`), and the update is a few multi-tensor `_foreach_*` calls
//! per bucket of parameters ([`crate::native`]; one kernel for many tensors on CUDA). The
//! step's numbers (learning rate, clipping coefficient, gradient norm, the mask of a
//! non-finite step) are 0-dim device tensors: a step never waits for the GPU, and can be
//! captured in a CUDA graph. Only tensors handed to [`build`] are ever touched, so a fixed
//! classifier's matrix has no optimizer state by construction.
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

mod adam;
mod sgd;

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

/// Averages the gradients over the ranks of a data-parallel launch, after the backward
/// pass and before the norm, clipping, the non-finite mask and the update (so every rank
/// takes the same step). `guard` (the loss) is averaged with them, in place.
pub trait GradientSync {
    fn average(&self, grads: &mut [Tensor], guard: Option<&Tensor>) -> Result<()>;

    /// A sync that overlaps the all-reduce with the backward pass runs the pass itself:
    /// the averaged gradients of `objective`, one per parameter in the optimizer's order,
    /// `guard` averaged in place. None (the default): the optimizer runs the backward
    /// pass, then [`average`](Self::average).
    fn backward(
        &self,
        _objective: &Tensor,
        _guard: Option<&Tensor>,
    ) -> Option<Result<Vec<Tensor>>> {
        None
    }
}

/// What one step leaves on the device: read them at the log interval, not per step (a
/// read waits for the GPU).
pub struct StepStats {
    /// The global norm of the clipped parameters' gradients before clipping, 0-dim float.
    pub norm: Tensor,
    /// 1 when the update was applied, 0 when it was not (a non-finite loss or gradient):
    /// 0-dim float.
    pub applied: Tensor,
}

/// An optimizer: backpropagates a loss and updates its parameters.
///
/// The update is masked on the device: when the guard (the loss), the gradient norm or an
/// unclipped gradient is not finite, the parameters are left as they were, and so is the
/// optimizer's state (SGD's momentum buffers; Adam's moments and its count of steps). Nothing
/// is read back to the host, so a CUDA step queues its kernels without waiting and can be
/// captured in a graph.
pub trait Optimizer {
    /// Backpropagates `objective` and updates every parameter with the learning rate times
    /// `lr_scale` (variable BPTT scales it per step), the clipped gradients scaled so that
    /// their global norm is at most the clip, unless `guard` or a gradient is not finite.
    fn step_guarded(
        &mut self,
        objective: &Tensor,
        lr_scale: f64,
        guard: Option<&Tensor>,
    ) -> Result<StepStats> {
        let step = self.group_mut().begin_step(objective, lr_scale, guard)?;
        tch::no_grad(|| {
            step.buckets
                .iter()
                .try_for_each(|b| self.update_bucket(&step, b))
        })?;
        self.end_step(&step)?;
        Ok(StepStats {
            norm: step.norm,
            applied: step.applied,
        })
    }

    /// The optimizer's own rule: updates one bucket's parameters from the step's (masked,
    /// not yet clipped) gradients, in place, without autograd.
    fn update_bucket(&self, step: &Step, bucket: &Bucket) -> Result<()>;

    /// What the optimizer updates once per step after its buckets (Adam's step count).
    fn end_step(&mut self, _step: &Step) -> Result<()> {
        Ok(())
    }

    /// State to checkpoint as `(name, tensor)` pairs (momentum buffers, moments).
    fn state_tensors(&self) -> Vec<(String, Tensor)>;

    /// The parameters, learning rate, clip and step count.
    fn group(&self) -> &ParamGroup;
    fn group_mut(&mut self) -> &mut ParamGroup;

    /// Writes the learning rate times `lr_scale` into its device tensor if it changed (the
    /// step does it too; a step captured in a CUDA graph needs it done before the replay).
    fn prepare_step(&mut self, lr_scale: f64) {
        self.group_mut().prepare(lr_scale);
    }

    /// Averages every step's gradients through `sync` (data-parallel training).
    fn set_gradient_sync(&mut self, sync: Box<dyn GradientSync>) {
        self.group_mut().sync = Some(sync);
    }

    /// Counts a step replayed from a CUDA graph (the host ran none of its code).
    fn count_replayed_step(&mut self) {
        self.group_mut().steps += 1;
    }

    /// [`step_guarded`](Self::step_guarded) at the learning rate itself, with no guard.
    fn backward_step(&mut self, objective: &Tensor) -> Result<StepStats> {
        self.step_guarded(objective, 1.0, None)
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

    /// Steps taken (SGD's first momentum step needs it; saved with the state). A masked
    /// step counts too: the host does not know of it.
    fn steps(&self) -> i64 {
        self.group().steps
    }

    /// Restores what [`state_tensors`](Self::state_tensors) saved (read from `from`, which
    /// names the file in errors), and the step count.
    fn load_state(
        &mut self,
        saved: &HashMap<String, Tensor>,
        from: &Path,
        steps: i64,
    ) -> Result<()> {
        self.group_mut().steps = steps;
        let live = self.state_tensors().into_iter().collect::<HashMap<_, _>>();
        crate::tensor_map::copy_into(saved, &live, from, |_| "")
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
    let device = params
        .first()
        .map_or(tch::Device::Cpu, |p| p.tensor.device());
    let common = ParamGroup {
        params,
        lr: cfg.lr,
        clip: cfg.clip,
        steps: 0,
        lr_on_device: Tensor::zeros([], (Kind::Float, device)),
        lr_filled: None,
        device,
        sync: None,
    };
    match cfg.kind {
        OptimizerKind::Sgd => Box::new(sgd::Sgd::new(common, cfg.momentum, cfg.nesterov)),
        OptimizerKind::Adam => Box::new(adam::Adam::new(common, false)),
        OptimizerKind::Adamw => Box::new(adam::Adam::new(common, true)),
    }
}

/// What every optimizer has: the parameters, the learning rate, the clip, the step count.
pub struct ParamGroup {
    params: Vec<Param>,
    lr: f64,
    clip: f64,
    steps: i64,
    /// This step's learning rate (lr x lr_scale) as a 0-dim device tensor: the update reads
    /// it there, so a captured step follows the schedule.
    lr_on_device: Tensor,
    /// The value last written into `lr_on_device` (written again only when it changes).
    lr_filled: Option<f64>,
    device: tch::Device,
    /// Data-parallel gradient averaging, between the backward pass and the norm.
    sync: Option<Box<dyn GradientSync>>,
}

/// The parameters that share a weight decay, a learning-rate multiplier and clipping,
/// updated together by one multi-tensor call.
pub struct Bucket {
    weight_decay: f64,
    lr_scale: f64,
    clipped: bool,
    /// Indices into the group's parameters (those with a gradient this step).
    members: Vec<usize>,
}

/// What every update starts from (the backward pass done, the norm, clipping coefficient
/// and mask computed on the device).
pub struct Step {
    /// One per parameter, undefined where the loss does not reach it; zero where the step
    /// is masked.
    grads: Vec<Tensor>,
    buckets: Vec<Bucket>,
    /// The clipping coefficient (<= 1), 0-dim.
    coef: Tensor,
    /// 1 or 0: whether the update applies, 0-dim.
    applied: Tensor,
    /// `-lr x lr_scale x applied`, 0-dim: the step's signed, masked learning rate.
    neg_lr: Tensor,
    norm: Tensor,
}

impl Step {
    /// The clipping coefficient of a bucket (1 where clipping does not apply).
    fn coef_for(&self, b: &Bucket) -> Option<&Tensor> {
        b.clipped.then_some(&self.coef)
    }
    fn grads_of(&self, b: &Bucket) -> Vec<&Tensor> {
        b.members.iter().map(|&i| &self.grads[i]).collect()
    }
}

impl ParamGroup {
    /// Backpropagates `objective`, computes the norm, the clipping coefficient and the
    /// mask on the device, and counts the step.
    fn begin_step(
        &mut self,
        objective: &Tensor,
        lr_scale: f64,
        guard: Option<&Tensor>,
    ) -> Result<Step> {
        let overlapped = self
            .sync
            .as_ref()
            .and_then(|s| s.backward(objective, guard));
        let mut grads = match overlapped {
            Some(grads) => grads?,
            None => {
                let mut grads = self.gradients(objective);
                if let Some(sync) = &self.sync {
                    sync.average(&mut grads, guard)?;
                }
                grads
            }
        };
        self.prepare(lr_scale);
        let (clipped, unclipped): (Vec<usize>, Vec<usize>) = (0..grads.len())
            .filter(|&i| grads[i].defined())
            .partition(|&i| self.params[i].clipped);
        let norm_of = |idx: &[usize]| -> Result<Tensor> {
            let ts: Vec<&Tensor> = idx.iter().map(|&i| &grads[i]).collect();
            if ts.is_empty() {
                Ok(Tensor::zeros([], (Kind::Float, self.device)))
            } else {
                crate::native::global_norm(&ts)
            }
        };
        let norm = norm_of(&clipped)?;
        let mut finite = norm.isfinite();
        if !unclipped.is_empty() {
            finite = finite.logical_and(&norm_of(&unclipped)?.isfinite());
        }
        if let Some(g) = guard {
            finite = finite.logical_and(&g.isfinite());
        }
        let applied = finite.to_kind(Kind::Float);
        // A NaN gradient times a zero step is still NaN: a masked step zeroes the
        // gradients. On the CPU reading the mask costs nothing, so the pass is taken only
        // when needed; on a GPU always (reading would wait for the step).
        if self.device.is_cuda() || !bool::try_from(&finite).unwrap_or(false) {
            tch::no_grad(|| {
                for g in grads.iter_mut().filter(|g| g.defined()) {
                    let _ = g.nan_to_num_(0.0, 0.0, 0.0);
                }
            });
        }
        let coef = if self.clip > 0.0 {
            // A NaN norm gives a NaN coefficient, and NaN x 0 is NaN: zero it.
            (self.clip / (&norm + 1e-6))
                .clamp_max(1.0)
                .nan_to_num(0.0, 0.0, 0.0)
        } else {
            Tensor::ones([], (Kind::Float, self.device))
        };
        let neg_lr = &self.lr_on_device * &applied * -1.0;
        self.steps += 1;
        let buckets = self.buckets(&grads);
        Ok(Step {
            grads,
            buckets,
            coef,
            applied,
            neg_lr,
            norm,
        })
    }

    fn prepare(&mut self, lr_scale: f64) {
        let lr = self.lr * lr_scale;
        if self.lr_filled != Some(lr) {
            let _ = self.lr_on_device.fill_(lr);
            self.lr_filled = Some(lr);
        }
    }

    /// The parameters with a gradient, grouped by weight decay, lr multiplier and clipping.
    fn buckets(&self, grads: &[Tensor]) -> Vec<Bucket> {
        let mut out: Vec<Bucket> = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if !grads[i].defined() {
                continue;
            }
            match out.iter_mut().find(|b| {
                b.weight_decay == p.weight_decay
                    && b.lr_scale == p.lr_scale
                    && b.clipped == p.clipped
            }) {
                Some(b) => b.members.push(i),
                None => out.push(Bucket {
                    weight_decay: p.weight_decay,
                    lr_scale: p.lr_scale,
                    clipped: p.clipped,
                    members: vec![i],
                }),
            }
        }
        out
    }

    fn params_of(&self, b: &Bucket) -> Vec<&Tensor> {
        b.members.iter().map(|&i| &self.params[i].tensor).collect()
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

#[cfg(test)]
mod tests;
