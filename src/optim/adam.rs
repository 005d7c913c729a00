//! Adam (L2 weight decay on the gradient) or AdamW (decoupled weight decay), betas 0.9 and
//! 0.999, eps 1e-8, as PyTorch's. The bias corrections come from the host's step count.
use super::{Bucket, Optimizer, ParamGroup, Step};
use crate::error::Result;
use crate::native;
use tch::Tensor;

pub(super) struct Adam {
    c: ParamGroup,
    decoupled: bool,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Adam {
    pub(super) fn new(c: ParamGroup, decoupled: bool) -> Self {
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
        native::lerp_(&m, &grads, 1.0 - BETA1)?;
        native::mul_scalar_(&v, BETA2)?;
        native::addcmul_(&v, &grads, &grads, 1.0 - BETA2)?;
        let t = self.c.steps as f64;
        let (bc1, bc2) = (1.0 - BETA1.powf(t), 1.0 - BETA2.powf(t));
        // w += (-lr / bc1) m / (sqrt(v / bc2) + eps)
        let denom = native::sqrt(&v)?;
        let denom: Vec<&Tensor> = denom.iter().collect();
        native::mul_scalar_(&denom, 1.0 / bc2.sqrt())?;
        native::add_scalar_(&denom, EPS)?;
        let ratio: Vec<Tensor> = m.iter().map(|t| t.copy()).collect();
        let ratio: Vec<&Tensor> = ratio.iter().collect();
        native::div_(&ratio, &denom)?;
        native::add_scaled_from_scratch_(&weights, &ratio, &(neg_lr / bc1))
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
