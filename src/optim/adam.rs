//! Adam (L2 weight decay on the gradient) or AdamW (decoupled weight decay), betas 0.9 and
//! 0.999, eps 1e-8, as PyTorch's.
//!
//! The bias corrections come from `beta1^t` and `beta2^t` kept as 0-dim device tensors and
//! multiplied by the betas on every applied step, so `t` counts the applied steps only: a
//! masked step (non-finite loss or gradient) leaves the moments and the count as they were,
//! as PyTorch's `GradScaler` does by not calling `step()`, and the host never has to know
//! which steps were masked (nothing is read back, and the step reads no host number that
//! changes from step to step).
use super::{Bucket, Optimizer, ParamGroup, Step};
use crate::error::Result;
use crate::native;
use tch::{Kind, Tensor};

pub(super) struct Adam {
    c: ParamGroup,
    decoupled: bool,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    /// `beta1^t`, `beta2^t` with `t` the applied steps, 0-dim on the parameters' device.
    beta1_power: Tensor,
    beta2_power: Tensor,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;
/// Checkpoint names of the powers; a checkpoint without them (written before they were
/// kept) resumes with `t` the host's step count.
const BETA1_POWER: &str = "optimizer.adam.beta1_power";
const BETA2_POWER: &str = "optimizer.adam.beta2_power";

impl Adam {
    pub(super) fn new(c: ParamGroup, decoupled: bool) -> Self {
        let (exp_avg, exp_avg_sq) = (c.zeros(), c.zeros());
        let one = Tensor::ones([], (Kind::Float, c.device));
        Self {
            decoupled,
            exp_avg,
            exp_avg_sq,
            beta1_power: one.copy(),
            beta2_power: one,
            c,
        }
    }
}

/// `1 - (1 - beta) applied`: beta on an applied step, 1 on a masked one.
fn decay(step: &Step, beta: f64) -> Tensor {
    &step.applied * (beta - 1.0) + 1.0
}

impl Optimizer for Adam {
    fn update_bucket(&self, step: &Step, b: &Bucket) -> Result<()> {
        let grads = step.grads_of(b);
        let weights = self.c.params_of(b);
        let pick = |v: &[Tensor]| -> Vec<Tensor> {
            b.members.iter().map(|&i| v[i].shallow_clone()).collect()
        };
        let (m, v) = (pick(&self.exp_avg), pick(&self.exp_avg_sq));
        let (m, v): (Vec<&Tensor>, Vec<&Tensor>) = (m.iter().collect(), v.iter().collect());
        let neg_lr = &step.neg_lr * b.lr_scale;
        if let Some(coef) = step.coef_for(b) {
            native::mul_tensor_(&grads, coef)?;
        }
        if b.weight_decay > 0.0 {
            if self.decoupled {
                // w *= 1 - lr wd (1 on a masked step: neg_lr is 0 there).
                native::mul_tensor_(&weights, &(&neg_lr * b.weight_decay + 1.0))?;
            } else {
                native::add_(&grads, &weights, b.weight_decay)?;
                native::mul_tensor_(&grads, &step.applied)?;
            }
        }
        // m = beta1 m + (1 - beta1) g, v likewise, both unchanged on a masked step (the
        // decay is 1 and the gradients are zero there).
        let (decay1, decay2) = (decay(step, BETA1), decay(step, BETA2));
        native::mul_tensor_(&m, &decay1)?;
        native::add_(&m, &grads, 1.0 - BETA1)?;
        native::mul_tensor_(&v, &decay2)?;
        native::addcmul_(&v, &grads, &grads, 1.0 - BETA2)?;
        // The corrections of this step's count; clamped so that a masked first step (both
        // 0) gives 0 x finite, not 0 / 0.
        let bc1 =
            (&self.beta1_power * &decay1 * -1.0 + 1.0).clamp_min(f64::from(f32::MIN_POSITIVE));
        let bc2 =
            (&self.beta2_power * &decay2 * -1.0 + 1.0).clamp_min(f64::from(f32::MIN_POSITIVE));
        // w += (-lr / bc1) m / (sqrt(v / bc2) + eps)
        let denom = native::sqrt(&v)?;
        let denom: Vec<&Tensor> = denom.iter().collect();
        native::mul_tensor_(&denom, &bc2.rsqrt())?;
        native::add_scalar_(&denom, EPS)?;
        let ratio: Vec<Tensor> = m.iter().map(|t| t.copy()).collect();
        let ratio: Vec<&Tensor> = ratio.iter().collect();
        native::div_(&ratio, &denom)?;
        native::add_scaled_from_scratch_(&weights, &ratio, &(neg_lr / bc1))
    }

    fn end_step(&mut self, step: &Step) -> Result<()> {
        tch::no_grad(|| {
            let _ = self.beta1_power.f_mul_(&decay(step, BETA1))?;
            let _ = self.beta2_power.f_mul_(&decay(step, BETA2))?;
            Ok(())
        })
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
        out.push((BETA1_POWER.into(), self.beta1_power.shallow_clone()));
        out.push((BETA2_POWER.into(), self.beta2_power.shallow_clone()));
        out
    }

    fn load_state(
        &mut self,
        saved: &std::collections::HashMap<String, Tensor>,
        from: &std::path::Path,
        steps: i64,
    ) -> Result<()> {
        self.c.steps = steps;
        let mut state: std::collections::HashMap<_, _> = self.state_tensors().into_iter().collect();
        if !saved.contains_key(BETA1_POWER) && !saved.contains_key(BETA2_POWER) {
            // An older checkpoint: its steps were all counted, masked or not.
            state.remove(BETA1_POWER);
            state.remove(BETA2_POWER);
            let t = i32::try_from(steps).unwrap_or(i32::MAX);
            let _ = self.beta1_power.fill_(BETA1.powi(t));
            let _ = self.beta2_power.fill_(BETA2.powi(t));
        }
        crate::tensor_map::copy_into(saved, &state, from, |_| "")
    }
}
