//! SGD as PyTorch's `torch.optim.SGD` (dampening 0): `d = g + wd w`, `buf = m buf + d`,
//! `w -= lr (d + m buf)` with Nesterov, `w -= lr buf` without; every update a few
//! multi-tensor (`_foreach_*`) calls per bucket of parameters.
use super::{Bucket, Optimizer, ParamGroup, Step};
use crate::error::Result;
use crate::native;
use tch::Tensor;

pub(super) struct Sgd {
    c: ParamGroup,
    momentum: f64,
    nesterov: bool,
    /// Momentum buffers (empty without momentum).
    buffers: Vec<Tensor>,
}

impl Sgd {
    pub(super) fn new(c: ParamGroup, momentum: f64, nesterov: bool) -> Self {
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

    /// `d = coef g + wd w` in place of the gradients (masked: zero on a masked step).
    fn direction(&self, step: &Step, b: &Bucket, grads: &[&Tensor]) -> Result<()> {
        if let Some(coef) = step.coef_for(b) {
            native::mul_tensor_(grads, coef)?;
        }
        if b.weight_decay > 0.0 {
            native::add_(grads, &self.c.params_of(b), b.weight_decay)?;
            // The decay term is not zero on a masked step: mask the sum.
            native::mul_tensor_(grads, &step.applied)?;
        }
        Ok(())
    }
}

impl Optimizer for Sgd {
    fn update_bucket(&self, step: &Step, b: &Bucket) -> Result<()> {
        let grads = step.grads_of(b);
        let weights = self.c.params_of(b);
        let neg_lr = if b.lr_scale == 1.0 {
            step.neg_lr.shallow_clone()
        } else {
            &step.neg_lr * b.lr_scale
        };
        if self.momentum == 0.0 {
            // w += d * (-lr): the clipping coefficient folded into the step when there is
            // no decay term to add first.
            let scale = match (step.coef_for(b), b.weight_decay > 0.0) {
                (Some(coef), false) => coef * &neg_lr,
                _ => {
                    self.direction(step, b, &grads)?;
                    neg_lr
                }
            };
            return native::add_scaled_from_scratch_(&weights, &grads, &scale);
        }
        self.direction(step, b, &grads)?;
        let bufs: Vec<&Tensor> = b.members.iter().map(|&i| &self.buffers[i]).collect();
        if self.c.steps == 1 {
            // PyTorch starts the buffer at the first direction.
            for (buf, d) in bufs.iter().zip(&grads) {
                buf.shallow_clone().copy_(d);
            }
        } else {
            // buf = m buf + d, and unchanged on a masked step (d is zero there too).
            let keep = &step.applied * (self.momentum - 1.0) + 1.0;
            native::mul_tensor_(&bufs, &keep)?;
            native::add_(&bufs, &grads, 1.0)?;
        }
        if self.nesterov {
            native::add_(&grads, &bufs, self.momentum)?;
            native::add_scaled_from_scratch_(&weights, &grads, &neg_lr)
        } else {
            native::add_scaled_(&weights, &bufs, &neg_lr)
        }
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
