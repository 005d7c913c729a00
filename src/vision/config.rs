//! The `[vision]` section: the image data set (`[vision.data]`), the backbone
//! (`[vision.model]`) and the augmentation.
use super::data::{DatasetKind, SyntheticSpec};
use super::models::{MemoryFormat, ModelConfig};
use super::transforms::{Transform, TransformKind};
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
    /// BatchNorm with the global batch's statistics in data-parallel training (PyTorch's
    /// `SyncBatchNorm`, [`crate::distributed::sync_bn`]); alone, or with one rank, plain
    /// BatchNorm. Not written when false, so earlier runs' configs read the same.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sync_batch_norm: bool,
    /// What the streamed data sets (`image-folder`, `tar-shards`) do to each image.
    pub transform: TransformConfig,
}

/// `[vision.transform]`: torchvision's transforms of the streamed data sets, done by the
/// loader's threads on the decoded files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransformConfig {
    /// Training: `random-resized-crop` (+ flip when `vision.flip`), `resize-center-crop`,
    /// or `none` (images already `size` x `size`; `vision.crop_padding` and `vision.flip`
    /// then run on the device, as for the in-memory sets).
    pub train: TransformKind,
    /// Evaluation: `resize-center-crop` or `none`.
    pub eval: TransformKind,
    /// Side of the square images the model sees.
    pub size: usize,
    /// `Resize(resize)` before `CenterCrop(size)`: the short side, in pixels.
    pub resize: usize,
    /// RandomResizedCrop's range of the crop's area, as a fraction of the image's.
    pub scale: [f64; 2],
    /// RandomResizedCrop's range of the crop's aspect ratio (width / height).
    pub ratio: [f64; 2],
}

impl Default for TransformConfig {
    fn default() -> Self {
        Self {
            train: TransformKind::RandomResizedCrop,
            eval: TransformKind::ResizeCenterCrop,
            size: 224,
            resize: 256,
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
        }
    }
}

impl TransformConfig {
    /// The transform of training (`train` true) or evaluation; `flip`: `vision.flip`.
    pub fn resolve(&self, train: bool, flip: bool) -> Transform {
        Transform {
            kind: if train { self.train } else { self.eval },
            size: self.size,
            resize: self.resize,
            scale: (self.scale[0], self.scale[1]),
            ratio: (self.ratio[0], self.ratio[1]),
            flip: train && flip,
        }
    }

    fn validate(&self, origin: &str, crop_padding: i64) -> Result<()> {
        let err = |field: &str, msg: String| {
            Err(Error::config(
                origin,
                format!("vision.transform.{field}"),
                msg,
            ))
        };
        if !(1..=2048).contains(&self.size) {
            return err(
                "size",
                format!("{} is out of range; use 1 to 2048", self.size),
            );
        }
        if self.resize < self.size || self.resize > 8192 {
            return err(
                "resize",
                format!(
                    "{} must be at least size ({}) and at most 8192",
                    self.resize, self.size
                ),
            );
        }
        for (field, [lo, hi], max) in [("scale", self.scale, 1.0), ("ratio", self.ratio, 100.0)] {
            if !(lo > 0.0 && lo <= hi && hi <= max) {
                return err(
                    field,
                    format!("[{lo}, {hi}] must be 0 < low <= high <= {max}"),
                );
            }
        }
        if self.eval == TransformKind::RandomResizedCrop {
            return err(
                "eval",
                "random-resized-crop is random; use resize-center-crop or none".into(),
            );
        }
        if self.train != TransformKind::None && crop_padding != 0 {
            return err(
                "train",
                format!(
                    "{:?} crops already; set vision.crop_padding = 0 (it is {crop_padding})",
                    self.train
                ),
            );
        }
        Ok(())
    }
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
            sync_batch_norm: false,
            transform: TransformConfig::default(),
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
    /// Streamed sets: threads that read, decode and transform images (0: the cores left
    /// after `train.threads`, at least one).
    pub workers: usize,
    /// Streamed sets: batches prepared ahead of training.
    pub prefetch: usize,
    /// Streamed sets: skip an unreadable image (each one reported on a line and counted)
    /// rather than stop with its error.
    pub skip_bad: bool,
    /// Streamed sets: 3 (RGB) or 1 (grayscale, Pillow's `convert("L")`).
    pub channels: usize,
    /// Streamed sets: per-channel mean and std in `[0, 1]` units (empty: ImageNet's).
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
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
            workers: 0,
            prefetch: 4,
            skip_bad: false,
            channels: 3,
            mean: Vec::new(),
            std: Vec::new(),
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
        if self.data.dataset.is_streamed() {
            self.data.validate_streamed(origin)?;
            self.transform.validate(origin, self.crop_padding)?;
        }
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
        if d.imbalance < 1.0 && d.dataset.is_streamed() {
            return err(
                "vision.data.imbalance",
                format!(
                    "the long-tailed split is built from a set loaded whole; {} is streamed \
                     from files: remove vision.data.imbalance or make the folder long-tailed",
                    d.dataset.name()
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
        if let Some(why) = self
            .sync_batch_norm
            .then(|| self.model.sync_batch_norm_refusal())
            .flatten()
        {
            return err("vision.sync_batch_norm", why);
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

impl VisionDataConfig {
    /// The streamed sets' fields.
    fn validate_streamed(&self, origin: &str) -> Result<()> {
        let err = |field: &str, msg: String| {
            Err(Error::config(origin, format!("vision.data.{field}"), msg))
        };
        if self.channels != 1 && self.channels != 3 {
            return err("channels", format!("{} is not 1 or 3", self.channels));
        }
        if self.workers > 1024 {
            return err("workers", format!("{} is more than 1024", self.workers));
        }
        if self.valid_images > 0 {
            return err(
                "valid_images",
                "streamed sets validate on their val/ folder; set it to 0".into(),
            );
        }
        if !(1..=64).contains(&self.prefetch) {
            return err(
                "prefetch",
                format!("{} is out of range; use 1 to 64", self.prefetch),
            );
        }
        if self.mean.is_empty() && self.std.is_empty() {
            if self.channels != 3 {
                return err(
                    "mean",
                    "give mean and std for 1 channel (ImageNet's are RGB)".into(),
                );
            }
            return Ok(());
        }
        for (field, v) in [("mean", &self.mean), ("std", &self.std)] {
            if v.len() != self.channels {
                return err(
                    field,
                    format!("{} values for {} channels", v.len(), self.channels),
                );
            }
        }
        if let Some(s) = self.std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            return err("std", format!("{s} is not a positive number"));
        }
        Ok(())
    }

    /// The per-channel mean and std of a streamed set.
    pub fn mean_std(&self) -> (Vec<f64>, Vec<f64>) {
        if self.mean.is_empty() {
            let (m, s) = self.dataset.mean_std().unwrap_or((&[], &[]));
            (m.to_vec(), s.to_vec())
        } else {
            (self.mean.clone(), self.std.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed() -> VisionConfig {
        let mut v = VisionConfig::default();
        v.data.dataset = DatasetKind::ImageFolder;
        v.crop_padding = 0;
        v
    }

    #[test]
    fn streamed_fields_are_checked_naming_file_and_field() {
        let head = HeadConfig::default();
        assert!(streamed().validate("a.toml", &head).is_ok());
        type Edit = fn(&mut VisionConfig);
        let cases: Vec<(Edit, &str)> = vec![
            (|v| v.data.channels = 2, "vision.data.channels"),
            (|v| v.data.mean = vec![0.5], "vision.data.mean"),
            (|v| v.data.channels = 1, "vision.data.mean"),
            (|v| v.data.valid_images = 10, "vision.data.valid_images"),
            (|v| v.crop_padding = 4, "vision.transform.train"),
            (|v| v.transform.resize = 100, "vision.transform.resize"),
            (|v| v.transform.scale = [0.5, 0.1], "vision.transform.scale"),
            (
                |v| v.transform.eval = TransformKind::RandomResizedCrop,
                "vision.transform.eval",
            ),
        ];
        for (edit, field) in cases {
            let mut v = streamed();
            edit(&mut v);
            let msg = v.validate("a.toml", &head).unwrap_err().to_string();
            assert!(msg.starts_with("a.toml: ") && msg.contains(field), "{msg}");
        }
        // In-memory sets ignore the streamed fields.
        let mut v = VisionConfig::default();
        v.data.channels = 7;
        assert!(v.validate("a.toml", &head).is_ok());
    }

    /// `vision.sync_batch_norm`: a wrong type, a model without BatchNorm and tch's ResNet-50
    /// are refused naming the field; off by default and not written then.
    #[test]
    fn sync_batch_norm_is_checked_naming_the_field() {
        use crate::vision::models::Arch;
        let head = HeadConfig::default();
        let e = crate::config::from_toml_str("[vision]\nsync_batch_norm = 1\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("vision.sync_batch_norm") && e.contains("invalid type"),
            "{e}"
        );
        let mut v = VisionConfig {
            sync_batch_norm: true,
            ..Default::default()
        };
        assert!(v.validate("a.toml", &head).is_ok());
        for (edit, hint) in [
            (
                (|v: &mut VisionConfig| v.model.batch_norm = false) as fn(&mut VisionConfig),
                "no BatchNorm",
            ),
            (
                |v: &mut VisionConfig| v.model.arch = Arch::Resnet50,
                "tch's definition",
            ),
        ] {
            let mut bad = v.clone();
            edit(&mut bad);
            let msg = bad.validate("a.toml", &head).unwrap_err().to_string();
            assert!(
                msg.starts_with("a.toml: field `vision.sync_batch_norm`") && msg.contains(hint),
                "{msg}"
            );
        }
        assert!(!toml::to_string(&VisionConfig::default())
            .unwrap()
            .contains("sync_batch_norm"));
        v.model.arch = Arch::ResnetCifar;
        assert!(toml::to_string(&v)
            .unwrap()
            .contains("sync_batch_norm = true"));
    }
}
