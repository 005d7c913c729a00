//! What a fixed classifier does to the backbone's features before its matrix `Q`, in order:
//!
//! 1. `head.projection`: a learned linear layer `N -> d` (PyTorch's `nn.Linear` init), so a
//!    polytope of `d` dimensions sits on any backbone (Pernici et al.'s `fc` before their
//!    fixed layer).
//! 2. `head.batch_norm`: BatchNorm1d over the features (affine, momentum 0.1, eps 1e-5),
//!    Yang et al.'s `ETF_Classifier.BN_H` (weight 1, bias 0 at start, as PyTorch).
//! 3. `head.normalize_features` (default true): `x / ||x||` (the paper's `x_hat`; Yang et al.
//!    clamp the norm at 1e-8, here at [`super::NORM_EPS`]); false feeds the features to `Q`
//!    as they are (Pernici et al.'s convention).
use super::{normalize, HeadConfig};
use crate::error::{Error, Result};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// The layers between the backbone and `Q`; empty by default (only the normalization).
#[derive(Debug)]
pub struct FeatureInput {
    projection: Option<nn::Linear>,
    batch_norm: Option<nn::BatchNorm>,
    normalize: bool,
}

impl FeatureInput {
    /// The layers of `cfg` under `p` (`projection`, `bn`) for `features` backbone outputs and
    /// a matrix of `cols` columns. Without a projection the two must be equal.
    pub fn new(p: &nn::Path, cfg: &HeadConfig, features: i64, cols: i64) -> Result<Self> {
        if !cfg.projection && features != cols {
            return Err(Error::arg(
                "head.projection",
                format!(
                    "the fixed matrix has {cols} columns but the backbone gives {features} \
                     features; set head.projection = true for a learned {features} -> {cols} \
                     layer"
                ),
            ));
        }
        let projection = cfg
            .projection
            .then(|| nn::linear(p / "projection", features, cols, Default::default()));
        // PyTorch's BatchNorm1d: weight 1, bias 0 (tch's default weight is uniform).
        let bn_cfg = nn::BatchNormConfig {
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        let batch_norm = cfg
            .batch_norm
            .then(|| nn::batch_norm1d(p / "bn", cols, bn_cfg));
        Ok(Self {
            projection,
            batch_norm,
            normalize: cfg.normalize_features,
        })
    }

    /// Projection and BatchNorm (`train`: batch statistics, and the running ones updated).
    pub fn pre_normalize(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = match &self.projection {
            Some(l) => x.apply(l),
            None => x.shallow_clone(),
        };
        if let Some(bn) = &self.batch_norm {
            let shape = h.size();
            let flat = h.reshape([-1, *shape.last().unwrap_or(&1)]);
            h = bn.forward_t(&flat, train).reshape(shape);
        }
        h
    }

    /// Everything, the normalization included: the `h` that `Q` multiplies.
    pub fn apply(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.pre_normalize(x, train);
        if self.normalize {
            normalize(&h)
        } else {
            h
        }
    }

    /// Whether there is a layer that behaves differently in training (BatchNorm).
    pub fn has_batch_norm(&self) -> bool {
        self.batch_norm.is_some()
    }
}
