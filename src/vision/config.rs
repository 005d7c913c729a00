//! The `[vision]` section: the image data set (`[vision.data]`), the backbone
//! (`[vision.model]`) and the augmentation.
use super::data::{DatasetKind, SyntheticSpec};
use super::models::{MemoryFormat, ModelConfig};
use crate::classifier::{HeadConfig, HeadMode};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VisionConfig {
    pub data: VisionDataConfig,
    pub model: ModelConfig,
    /// Random crop with this much zero padding (0: no crop), on whole batches.
    pub crop_padding: i64,
    /// Random horizontal flips (not for digits or clothes whose sides matter less: still the
    /// CIFAR recipe's default).
    pub flip: bool,
    /// Neural-collapse diagnostics of the training features ([`super::collapse`]) also every
    /// this many epochs (0: only after the last epoch, where they always run: one forward
    /// pass over the training set).
    pub collapse_every: usize,
    /// The diagnostics also on the test split (same weights, the test split's class means):
    /// NC1-NC4, the classifier's accuracy per class and per many / medium / few-shot group.
    pub collapse_test: bool,
    /// The diagnostics' global mean: `weighted` (the mean of all samples, Papyan et al.) or
    /// `unweighted` (the mean of the class means); they differ on imbalanced data.
    pub collapse_global_mean: GlobalMean,
    /// The layout of images and convolution weights: `contiguous` (NCHW) or
    /// `channels-last` (NHWC; see [`MemoryFormat`]). Only speed depends on it.
    pub memory_format: MemoryFormat,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            data: VisionDataConfig::default(),
            model: ModelConfig::default(),
            crop_padding: 4,
            flip: true,
            collapse_every: 0,
            collapse_test: true,
            collapse_global_mean: GlobalMean::Weighted,
            memory_format: MemoryFormat::Contiguous,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VisionDataConfig {
    pub dataset: DatasetKind,
    /// Folder with the data set's files (IDX `*-ubyte.gz`, CIFAR `*.bin`).
    pub dir: PathBuf,
    /// Use only the first N training images (0: all). For quick runs.
    pub train_images: usize,
    /// Use only the first N test images (0: all).
    pub test_images: usize,
    /// Hold out the last N training images for validation (0: validate on the test split,
    /// as the paper's CIFAR curves do).
    pub valid_images: usize,
    /// The synthetic data set's shape (dataset = "synthetic").
    pub synthetic: SyntheticSpec,
    /// Long-tailed training split: class `c` keeps `floor(n_max rho^(c/(C-1)))` images
    /// (rho in (0, 1]; 1: as loaded; 0.01: the CIFAR-LT benchmarks' 100:1). See
    /// [`super::long_tail`].
    pub imbalance: f64,
    /// Classes with more training images than this are many-shot.
    pub many_shot: i64,
    /// Classes with fewer training images than this are few-shot (the rest: medium).
    pub few_shot: i64,
}

/// The global mean of the neural-collapse diagnostics.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum GlobalMean {
    Weighted,
    Unweighted,
}

impl Default for VisionDataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::FashionMnist,
            dir: "data/fashion-mnist".into(),
            train_images: 0,
            test_images: 0,
            valid_images: 0,
            synthetic: SyntheticSpec::default(),
            imbalance: 1.0,
            many_shot: 100,
            few_shot: 20,
        }
    }
}

impl VisionConfig {
    /// Checks the section and how it combines with `[head]`.
    pub fn validate(&self, origin: &str, head: &HeadConfig) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(origin, field, msg));
        self.model.validate(origin)?;
        if !(0..=16).contains(&self.crop_padding) {
            return err(
                "vision.crop_padding",
                format!("must be between 0 and 16 pixels, got {}", self.crop_padding),
            );
        }
        let d = &self.data;
        if !(d.imbalance > 0.0 && d.imbalance <= 1.0) {
            return err(
                "vision.data.imbalance",
                format!(
                    "must lie in (0, 1] (the smallest class's share of the largest; 1: as \
                     loaded, 0.01: 100:1), got {}",
                    d.imbalance
                ),
            );
        }
        if d.few_shot < 0 || d.many_shot < d.few_shot {
            return err(
                "vision.data.few_shot",
                format!(
                    "needs 0 <= few_shot <= many_shot, got few_shot {} and many_shot {}",
                    d.few_shot, d.many_shot
                ),
            );
        }
        if self.model.fixdim && !matches!(head.mode, HeadMode::Learned | HeadMode::FixedSimplex) {
            return err(
                "vision.model.fixdim",
                format!(
                    "is Zhu et al.'s learned or fixed simplex head on N = C features, not {}",
                    head.mode
                ),
            );
        }
        if head.mode == HeadMode::Tied {
            return err(
                "head.mode",
                "tied needs an input embedding; image models have none: use learned or a \
                 fixed mode"
                    .into(),
            );
        }
        if head.mode.needs_embeddings() {
            return err(
                "head.mode",
                format!(
                    "{} takes word vectors; image classes have none: use fixed-orthogonal, \
                     fixed-hadamard or fixed-simplex",
                    head.mode
                ),
            );
        }
        Ok(())
    }
}
