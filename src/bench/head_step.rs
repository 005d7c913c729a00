//! One classifier head on random features, stepped through the functions training uses:
//! [`Head::logits`] for the forward pass, [`Head::training_loss`] (the fixed heads'
//! hand-differentiated cross-entropy, autograd's for the learned head) and the trainer's
//! optimizer ([`crate::classifier::training_params`]) for a step.
//!
//! The features come from a stand-in backbone, `x0 * s` with `x0` a fixed `[B, N]` random
//! batch and `s` a trainable scalar (`backbone.scale`, initialized to 1): a head inside a
//! network must also return the gradient of its input, and autograd only computes the
//! gradients that a trainable tensor needs, so a constant input would let the learned head
//! skip its `g W` product and the fixed heads their projection back through `Q`. The scalar
//! costs one `[B, N]` multiply and reduction, the same for every head, and one float of
//! optimizer state, which [`HeadBench::optimizer_state_floats`] leaves out.
use crate::classifier::{training_params, FixedMatrix, Head, HeadConfig, HeadMode, HeadShape};
use crate::error::{Error, Result};
use crate::optim::{self, Optimizer, OptimizerConfig, OptimizerKind};
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

/// Which head a bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeadKind {
    /// `x W^T + b`, weight and bias learned (PyTorch's `nn.Linear` initialization).
    Learned,
    /// Fixed, `Q` stored densely: one GEMM each way. Built as the dense Hadamard matrix,
    /// which costs what any stored `Q` costs (orthogonal, simplex, pretrained) and, unlike
    /// the orthogonal QR, can be built in seconds at a million classes.
    FixedDense,
    /// Fixed Hadamard applied as the fast transform (`Q` never stored).
    FixedHadamard,
}

impl HeadKind {
    pub const ALL: [HeadKind; 3] = [
        HeadKind::Learned,
        HeadKind::FixedDense,
        HeadKind::FixedHadamard,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Learned => "learned",
            HeadKind::FixedDense => "fixed-dense",
            HeadKind::FixedHadamard => "fixed-hadamard",
        }
    }

    /// Parses a comma-separated list given to `flag`.
    pub fn parse_list(flag: &str, list: &str) -> Result<Vec<HeadKind>> {
        list.split(',')
            .map(|s| {
                let s = s.trim();
                Self::ALL
                    .into_iter()
                    .find(|k| k.name() == s)
                    .ok_or_else(|| {
                        Error::arg(
                            flag,
                            format!("unknown head `{s}`; use learned, fixed-dense, fixed-hadamard"),
                        )
                    })
            })
            .collect()
    }

    /// Bytes this head needs at `C x N`, batch `B`, while it is built and stepped (f32):
    /// what decides whether a point of a sweep fits in memory before anything is allocated.
    /// Counted from the tensors the code makes (see each arm); libtorch's workspaces and
    /// the allocator's slack come on top, hence the margin the sweep keeps.
    pub fn estimate_bytes(self, c: i64, n: i64, batch: i64) -> u64 {
        let (c, n, b) = (c as u64, n as u64, batch as u64);
        let padded = n.next_power_of_two();
        let k = c.div_ceil(padded);
        let floats = match self {
            // Weight, its gradient, the momentum buffer and the weight-decay term `w * wd`
            // of the SGD update; logits, log-probabilities and two gradients of them.
            HeadKind::Learned => 4 * c * n + 4 * b * c,
            // Building: the Kronecker rows `[C, N']`, the signed rows, the contiguous copy
            // and the stored `Q`; a step: the logits and the residual, `[B, C]` each.
            HeadKind::FixedDense => (4 * c * padded).max(c * n + 2 * b * c),
            // A step: the signed batch and two transform products, `[B, K, N']` each, the
            // logits and the residual; the back projection reuses as much again.
            HeadKind::FixedHadamard => 6 * b * k * padded + 2 * b * c,
        };
        // Features, their gradient and the stand-in backbone's terms, `[B, N]` each.
        (floats + 6 * b * n) * 4
    }
}

/// A head ready to be timed: its variables, optimizer, random features and targets.
pub struct HeadBench {
    pub kind: HeadKind,
    pub classes: i64,
    pub features: i64,
    pub device: Device,
    vs: nn::VarStore,
    head: Head,
    scale: Tensor,
    x0: Tensor,
    targets: Tensor,
    opt: Box<dyn Optimizer>,
}

/// The benches' optimizer (`bench classifier`, `bench heads`, and `bench vision` as the
/// PyTorch reference has it): SGD, lr 0.1, momentum 0.9, no clipping, weight decay 1e-4 (the
/// paper's CIFAR setting) on every parameter but alpha, which keeps its own as in training.
pub const OPTIMIZER: OptimizerConfig = OptimizerConfig {
    kind: OptimizerKind::Sgd,
    lr: 0.1,
    clip: 0.0,
    momentum: 0.9,
    nesterov: false,
};
pub const WEIGHT_DECAY: f64 = 1e-4;

impl HeadBench {
    /// Builds the head `kind` for `C` classes on `N` features, with a `[batch, N]` batch.
    pub fn new(kind: HeadKind, c: i64, n: i64, batch: i64, device: Device) -> Result<Self> {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(device);
        let cfg = HeadConfig {
            mode: match kind {
                HeadKind::Learned => HeadMode::Learned,
                HeadKind::FixedDense | HeadKind::FixedHadamard => HeadMode::FixedHadamard,
            },
            ..Default::default()
        };
        let p = vs.root() / "head";
        // The Hadamard matrix in its canonical orientation, as the fast transform or (the
        // dense variant) multiplied as a dense product, whatever the shape would prefer.
        let fixed = match kind {
            HeadKind::Learned => None,
            HeadKind::FixedDense | HeadKind::FixedHadamard => {
                let dense = kind == HeadKind::FixedDense;
                Some(FixedMatrix::hadamard_as(c, n, cfg.matrix_seed, dense)?)
            }
        };
        let head = Head::build(
            &p,
            &cfg,
            HeadShape {
                classes: c,
                features: n,
                fixed,
                words: None,
                tied: None,
                learned_init: Head::linear_init(n),
            },
        )?;
        let scale = (vs.root() / "backbone").var("scale", &[1], Init::Const(1.0));
        let params = training_params(&vs, WEIGHT_DECAY, &cfg);
        let opt = optim::build(&OPTIMIZER, params);
        Ok(Self {
            kind,
            classes: c,
            features: n,
            device,
            x0: Tensor::randn([batch, n], (Kind::Float, device)),
            targets: Tensor::randint(c, [batch], (Kind::Int64, device)),
            vs,
            head,
            scale,
            opt,
        })
    }

    fn features(&self) -> Tensor {
        &self.x0 * &self.scale
    }

    /// The logits, without a graph (inference).
    pub fn forward(&self) -> Tensor {
        tch::no_grad(|| self.head.logits(&self.x0))
    }

    /// Forward, loss and the gradients of every trainable tensor (the input's included,
    /// through the stand-in backbone), without an update.
    pub fn forward_backward(&self) -> Vec<Tensor> {
        let loss = self.head.training_loss(&self.features(), &self.targets);
        let params = self.vs.trainable_variables();
        Tensor::run_backward(&[&loss.objective], &params, false, false)
    }

    /// One training step: forward, loss, backward and the SGD-momentum update.
    pub fn step(&mut self) -> crate::error::Result<()> {
        let loss = self.head.training_loss(&self.features(), &self.targets);
        self.opt.backward_step(&loss.objective).map(drop)
    }

    /// The head's optimizer state (momentum buffers), in floats; the stand-in backbone's
    /// scalar is not part of the head.
    pub fn optimizer_state_floats(&self) -> i64 {
        self.opt
            .state_tensors()
            .iter()
            .filter(|(name, _)| name.contains(".head."))
            .map(|(_, t)| t.numel() as i64)
            .sum()
    }

    /// Bytes of tensor data the head adds to a checkpoint (`best.safetensors`: its variables,
    /// saved as f32; a fixed `Q` is rebuilt from its spec, never saved).
    pub fn checkpoint_bytes(&self) -> i64 {
        self.vs
            .variables()
            .iter()
            .filter(|(name, _)| name.starts_with("head."))
            .map(|(_, t)| 4 * t.numel() as i64)
            .sum()
    }

    /// The same plus its optimizer state, as `last.safetensors` stores it for resuming.
    pub fn resume_checkpoint_bytes(&self) -> i64 {
        self.checkpoint_bytes() + 4 * self.optimizer_state_floats()
    }

    /// Values of the fixed matrix held in memory (0 for the learned head and the fast
    /// transform, which keeps only its sign blocks).
    pub fn stored_matrix_floats(&self) -> i64 {
        match self.kind {
            HeadKind::FixedDense => self.head.fixed_numel(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_bench_steps_every_head_and_counts_its_state() {
        let (c, n, b) = (40, 16, 8);
        for kind in HeadKind::ALL {
            let mut h = HeadBench::new(kind, c, n, b, Device::Cpu).unwrap();
            assert_eq!(h.forward().size(), [b, c]);
            let grads = h.forward_backward();
            assert!(grads.iter().all(|g| g.defined()), "{kind:?}");
            let before = h.forward();
            h.step().unwrap();
            assert!(
                !h.forward().equal(&before),
                "{kind:?}: the step moved nothing"
            );
            let (state, bytes) = match kind {
                HeadKind::Learned => (c * n + c, 4 * (c * n + c)),
                _ => (1 + c, 4 * (1 + c)), // alpha and the bias
            };
            assert_eq!(h.optimizer_state_floats(), state, "{kind:?}");
            assert_eq!(h.checkpoint_bytes(), bytes, "{kind:?}");
            assert_eq!(h.resume_checkpoint_bytes(), 2 * bytes, "{kind:?}");
        }
        assert_eq!(
            HeadKind::parse_list("--heads", "learned,fixed-hadamard").unwrap(),
            [HeadKind::Learned, HeadKind::FixedHadamard]
        );
        assert!(HeadKind::parse_list("--heads", "fixed")
            .unwrap_err()
            .to_string()
            .starts_with("--heads: "));
        // Learned at a million classes and N = 2048 needs weight, gradient, momentum and the
        // decay term: 32 GB; the fast transform only [B, C]-sized buffers, about 8 GB.
        let gb = |k: HeadKind| k.estimate_bytes(1_000_000, 2048, 256) as f64 / 1e9;
        assert!(gb(HeadKind::Learned) > 32.0 && gb(HeadKind::FixedHadamard) < 10.0);
    }
}
