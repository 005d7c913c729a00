//! SGD and Adam over an explicit list of trainable tensors, with gradient-norm clipping.
//!
//! Why not `tch::nn::Optimizer`: its state (Adam's moments) cannot be saved, so a run could
//! not resume exactly, and it pays for more passes over the weights than needed. Here the
//! gradients come from `torch::autograd::grad` (`Tensor::run_backward`) as fresh tensors:
//! nothing accumulates into `.grad`, so nothing has to be zeroed (PyTorch's
//! `zero_grad(set_to_none=True)`), the clipping coefficient is folded into the step size, and
//! SGD's update is one in-place `addcmul_` per parameter. All work stays in libtorch's own
//! thread pool. Only tensors handed to [`Optimizer::new`] are ever touched, so a fixed
//! classifier's matrix has no optimizer state by construction.
use crate::config::OptimizerKind;
use tch::Tensor;

/// One trainable tensor and its weight decay.
pub struct Param {
    pub name: String,
    pub tensor: Tensor,
    pub weight_decay: f64,
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
        })
        .collect()
}

pub struct Optimizer {
    pub kind: OptimizerKind,
    pub lr: f64,
    params: Vec<Param>,
    /// Adam's first and second moments, one pair per parameter.
    moments: Vec<(Tensor, Tensor)>,
    /// Adam's step count.
    pub steps: i64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, lr: f64, params: Vec<Param>) -> Self {
        let moments = match kind {
            OptimizerKind::Adam => params
                .iter()
                .map(|p| (p.tensor.zeros_like(), p.tensor.zeros_like()))
                .collect(),
            OptimizerKind::Sgd => Vec::new(),
        };
        Self {
            kind,
            lr,
            params,
            moments,
            steps: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Number of f32 values of optimizer state (Adam moments; SGD has none).
    pub fn state_numel(&self) -> i64 {
        self.moments
            .iter()
            .map(|(m, v)| m.numel() as i64 + v.numel() as i64)
            .sum()
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

    /// Backpropagates `loss` and updates every parameter, with the gradients scaled so their
    /// global norm is at most `clip` (0: no clipping) and the learning rate multiplied by
    /// `lr_scale` (variable BPTT). Returns the gradient norm before clipping; when it is not
    /// finite nothing is updated (the caller stops training).
    pub fn backward_step(&mut self, loss: &Tensor, clip: f64, lr_scale: f64) -> f64 {
        let grads = self.gradients(loss);
        tch::no_grad(|| self.apply(grads, clip, lr_scale))
    }

    fn apply(&mut self, grads: Vec<Tensor>, clip: f64, lr_scale: f64) -> f64 {
        // A parameter the loss does not reach (alpha under the cosine loss) has an undefined
        // gradient: it is left as it is.
        let norms: Vec<Tensor> = grads
            .iter()
            .filter(|g| g.defined())
            .map(|g| g.norm())
            .collect();
        let norm = if norms.is_empty() {
            0.0
        } else {
            Tensor::stack(&norms, 0).norm().double_value(&[])
        };
        if !norm.is_finite() {
            return norm;
        }
        let coef = if clip > 0.0 && norm > clip {
            clip / (norm + 1e-6)
        } else {
            1.0
        };
        let lr = self.lr * lr_scale;
        self.steps += 1;
        let t = self.steps as f64;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        for (i, (p, mut g)) in self.params.iter().zip(grads).enumerate() {
            if !g.defined() {
                continue;
            }
            let mut w = p.tensor.shallow_clone();
            match self.kind {
                OptimizerKind::Sgd => {
                    if p.weight_decay > 0.0 {
                        let _ = w.g_mul_scalar_(1.0 - lr * p.weight_decay);
                    }
                    // w += g * (-lr * coef): one pass, no temporary.
                    let step = Tensor::from(-lr * coef)
                        .to_kind(w.kind())
                        .to_device(w.device());
                    let _ = w.addcmul_(&g, &step);
                }
                OptimizerKind::Adam => {
                    if coef != 1.0 {
                        let _ = g.g_mul_scalar_(coef);
                    }
                    if p.weight_decay > 0.0 {
                        g += &w * p.weight_decay;
                    }
                    let (m, v) = &self.moments[i];
                    let (mut m, mut v) = (m.shallow_clone(), v.shallow_clone());
                    let _ = m.lerp_(&g, 1.0 - b1);
                    let _ = v.g_mul_scalar_(b2);
                    let _ = g.g_mul_scalar_((1.0 - b2).sqrt());
                    let _ = v.addcmul_(&g, &g);
                    let bc1 = 1.0 - b1.powf(t);
                    let bc2 = 1.0 - b2.powf(t);
                    let step = lr / bc1;
                    // denom = -(sqrt(v / bc2) + eps) / step, so w += m / denom is Adam's update.
                    let mut denom = v.sqrt();
                    let _ = denom.g_mul_scalar_(1.0 / bc2.sqrt());
                    let _ = denom.g_add_scalar_(eps);
                    let _ = denom.g_mul_scalar_(-1.0 / step);
                    let _ = w.addcdiv_(&m, &denom);
                }
            }
        }
        norm
    }

    /// Restores the state saved by [`Optimizer::state_tensors`].
    pub fn load_state(&mut self, ckpt: &crate::run::Checkpoint, steps: i64) -> crate::Result<()> {
        self.steps = steps;
        let mut vars = std::collections::HashMap::new();
        for (name, t) in self.state_tensors() {
            vars.insert(name, t);
        }
        ckpt.copy_into(&vars)
    }

    /// Optimizer state to checkpoint, as `(name, tensor)` pairs.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (p, (m, v)) in self.params.iter().zip(&self.moments) {
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
mod tests {
    use super::*;
    use tch::Kind;

    fn param(values: &[f32]) -> Param {
        Param {
            name: "w".into(),
            tensor: Tensor::from_slice(values).set_requires_grad(true),
            weight_decay: 0.0,
        }
    }

    /// loss = sum(w * g): its gradient is g.
    fn linear_loss(w: &Tensor, g: &[f32]) -> Tensor {
        (w * Tensor::from_slice(g)).sum(Kind::Float)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(&t.detach()).unwrap()
    }

    #[test]
    fn sgd_with_clipping_matches_the_formula() {
        let mut opt = Optimizer::new(OptimizerKind::Sgd, 0.5, vec![param(&[1.0, 2.0])]);
        let w = opt.params()[0].tensor.shallow_clone();
        let norm = opt.backward_step(&linear_loss(&w, &[3.0, 4.0]), 1.0, 1.0); // norm 5
        assert!((norm - 5.0).abs() < 1e-6);
        let got = values(&w);
        // clipped grad = (0.6, 0.8); w - 0.5 * g
        assert!(
            (got[0] - 0.7).abs() < 1e-5 && (got[1] - 1.6).abs() < 1e-5,
            "{got:?}"
        );
        assert!(!w.grad().defined(), "no gradient accumulates in .grad");
    }

    #[test]
    fn adam_matches_the_reference_formula() {
        let init = [0.3f32, -1.2, 2.0];
        let grads = [[0.5f32, -0.1, 2.0], [0.4, 0.3, -1.0], [-0.2, 0.2, 0.1]];
        let lr = 0.01;
        let mut opt = Optimizer::new(OptimizerKind::Adam, lr, vec![param(&init)]);
        let w = opt.params()[0].tensor.shallow_clone();
        let (mut m, mut v, mut x) = ([0f64; 3], [0f64; 3], init.map(f64::from));
        for (t, g) in grads.iter().enumerate() {
            opt.backward_step(&linear_loss(&w, g), 0.0, 1.0);
            let t = (t + 1) as f64;
            for i in 0..3 {
                let gi = g[i] as f64;
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                let mh = m[i] / (1.0 - 0.9f64.powf(t));
                let vh = v[i] / (1.0 - 0.999f64.powf(t));
                x[i] -= lr * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got = values(&w);
        for i in 0..3 {
            assert!((got[i] as f64 - x[i]).abs() < 1e-6, "{got:?} vs {x:?}");
        }
        assert_eq!(opt.state_numel(), 6);
    }

    #[test]
    fn unused_parameter_gets_no_update_and_no_error() {
        let used = param(&[1.0]);
        let unused = Param {
            name: "alpha".into(),
            tensor: Tensor::from_slice(&[10.0f32]).set_requires_grad(true),
            weight_decay: 0.0,
        };
        let mut opt = Optimizer::new(OptimizerKind::Sgd, 1.0, vec![used, unused]);
        let w = opt.params()[0].tensor.shallow_clone();
        opt.backward_step(&linear_loss(&w, &[2.0]), 0.0, 1.0);
        assert_eq!(values(&w), [-1.0]);
        assert_eq!(values(&opt.params()[1].tensor), [10.0]);
    }
}
