//! Image data sets: Fashion-MNIST and MNIST (IDX files, gzipped or plain), CIFAR-10 and
//! CIFAR-100 (the official binary versions) and a synthetic set for tests and quick runs.
//!
//! Every set loads whole into memory as u8 images `[N, C, H, W]` and i64 labels `[N]`, on the
//! CPU; `augment` turns batches of them into normalized f32 on the training device. Headers
//! and sizes are checked before anything is allocated, so a corrupt or lying file is a
//! one-line error naming it and the fix, never a panic or a huge allocation.
mod cifar;
pub mod decode;
pub mod folder;
mod idx;
pub mod jpeg;
pub mod shards;
mod synthetic;
#[cfg(test)]
pub(crate) mod test_jpegs;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use cifar::{load_cifar, CIFAR10, CIFAR100};
use idx::{load_idx_pair, FASHION_MNIST_FIX, MAX_BYTES, MNIST_FIX};
use serde::{Deserialize, Serialize};
use std::path::Path;
use synthetic::synthetic_data;
use tch::{Kind, Tensor};

/// One split: u8 images `[N, C, H, W]` and i64 labels `[N]` in `0..classes`, on the CPU.
#[derive(Debug)]
pub struct ImageSet {
    pub images: Tensor,
    pub labels: Tensor,
    pub classes: i64,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> i64 {
        self.images.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]` of one image.
    pub fn image_shape(&self) -> [i64; 3] {
        let s = self.images.size();
        [s[1], s[2], s[3]]
    }
}

/// A data set's two splits, its name and the per-channel mean and std of its pixels in
/// `[0, 1]` units (what `augment::normalize` takes).
#[derive(Debug)]
pub struct ImageData {
    pub train: ImageSet,
    pub test: ImageSet,
    pub name: String,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl ImageData {
    pub fn classes(&self) -> i64 {
        self.train.classes
    }

    /// `[C, H, W]` of one image (the same in both splits).
    pub fn image_shape(&self) -> [i64; 3] {
        self.train.image_shape()
    }
}

/// Which data set.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    FashionMnist,
    Mnist,
    Cifar10,
    Cifar100,
    Synthetic,
    /// torchvision's `ImageFolder` layout, streamed through `vision::loader`.
    ImageFolder,
    /// WebDataset tar shards (`fixclf data pack`), streamed through `vision::loader`.
    TarShards,
}

impl DatasetKind {
    /// The name used in configs (`fashion-mnist`, `mnist`, `cifar10`, `cifar100`, `synthetic`).
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Synthetic => "synthetic",
            DatasetKind::ImageFolder => "image-folder",
            DatasetKind::TarShards => "tar-shards",
        }
    }

    /// Where `data/fetch.sh --vision` and `data/README.md` put the files (empty for synthetic).
    pub fn default_dir(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "data/fashion-mnist",
            DatasetKind::Mnist => "data/mnist",
            DatasetKind::Cifar10 => "data/cifar-10",
            DatasetKind::Cifar100 => "data/cifar-100",
            DatasetKind::Synthetic => "",
            DatasetKind::ImageFolder => "data/images",
            DatasetKind::TarShards => "data/shards",
        }
    }

    /// Whether the set is read file by file as training goes (not loaded whole).
    pub fn is_streamed(self) -> bool {
        matches!(self, DatasetKind::ImageFolder | DatasetKind::TarShards)
    }

    /// The usual per-channel mean and std (synthetic: `None`, computed from the data;
    /// streamed sets: ImageNet's, unless `vision.data.mean` and `std` say otherwise).
    pub fn mean_std(self) -> Option<(&'static [f64], &'static [f64])> {
        match self {
            DatasetKind::ImageFolder | DatasetKind::TarShards => {
                Some((&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]))
            }
            DatasetKind::FashionMnist => Some((&[0.2860], &[0.3530])),
            DatasetKind::Mnist => Some((&[0.1307], &[0.3081])),
            DatasetKind::Cifar10 => Some((&[0.4914, 0.4822, 0.4465], &[0.2470, 0.2435, 0.2616])),
            DatasetKind::Cifar100 => Some((&[0.5071, 0.4865, 0.4409], &[0.2673, 0.2564, 0.2762])),
            DatasetKind::Synthetic => None,
        }
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A small learnable data set: each class is a fixed smooth random prototype image (a coarse
/// random grid upsampled bilinearly, so that crops of a few pixels keep it recognizable), each
/// image its class's prototype plus Gaussian pixel noise. Labels go round-robin over the
/// classes. Deterministic from `seed` (ChaCha8, independent of libtorch's generator).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticSpec {
    pub classes: i64,
    /// Training images.
    pub train: i64,
    /// Test images.
    pub test: i64,
    pub channels: i64,
    /// Height and width.
    pub size: i64,
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            classes: 10,
            train: 2000,
            test: 500,
            channels: 3,
            size: 32,
            seed: 0,
        }
    }
}

/// Pixel noise of the synthetic images, in `[0, 1]` units.
const SYNTHETIC_NOISE: f64 = 0.2;
/// Side of the coarse random grid a synthetic prototype is upsampled from.
const SYNTHETIC_GRID: usize = 4;

impl SyntheticSpec {
    /// Checks the ranges; errors name the field as `synthetic.<field>`.
    pub fn validate(&self) -> Result<()> {
        let check = |field: &str, value: i64, lo: i64, hi: i64| {
            if value < lo || value > hi {
                Err(Error::arg(
                    format!("synthetic.{field}"),
                    format!("{value} is out of range; use {lo} to {hi}"),
                ))
            } else {
                Ok(())
            }
        };
        check("classes", self.classes, 2, 256)?;
        check("train", self.train, 1, 10_000_000)?;
        check("test", self.test, 1, 10_000_000)?;
        check("channels", self.channels, 1, 16)?;
        check("size", self.size, 1, 1024)?;
        let bytes = (self.train + self.test) as u128
            * self.channels as u128
            * (self.size * self.size) as u128;
        if bytes > MAX_BYTES as u128 {
            return Err(Error::arg(
                "synthetic.train",
                format!(
                    "(train + test) x channels x size^2 = {bytes} bytes, more than {MAX_BYTES}; \
                     use fewer or smaller images"
                ),
            ));
        }
        Ok(())
    }
}

/// Loads a data set from `dir` (the synthetic one from `synthetic`, or its default when
/// `None`; `dir` is then unused).
pub fn load(kind: DatasetKind, dir: &Path, synthetic: Option<SyntheticSpec>) -> Result<ImageData> {
    let (train, test) = match kind {
        DatasetKind::FashionMnist => load_idx_pair(dir, FASHION_MNIST_FIX)?,
        DatasetKind::Mnist => load_idx_pair(dir, MNIST_FIX)?,
        DatasetKind::Cifar10 => load_cifar(dir, &CIFAR10)?,
        DatasetKind::Cifar100 => load_cifar(dir, &CIFAR100)?,
        DatasetKind::Synthetic => return synthetic_data(&synthetic.unwrap_or_default()),
        DatasetKind::ImageFolder | DatasetKind::TarShards => {
            return Err(Error::arg(
                "vision.data.dataset",
                format!("{kind} is streamed (vision::files), not loaded whole"),
            ))
        }
    };
    let (mean, std) = kind.mean_std().expect("file data sets have a mean and std");
    Ok(ImageData {
        train,
        test,
        name: kind.name().to_string(),
        mean: mean.to_vec(),
        std: std.to_vec(),
    })
}

/// Parses one IDX file's bytes (`ndims` 1: labels, checked against the 10 classes; 3:
/// images) as `fashion-mnist` reads it; returns the dimensions. For `crate::fuzzing`.
pub(crate) fn parse_idx_bytes(bytes: &[u8], path: &Path, ndims: usize) -> Result<Vec<usize>> {
    let what = if ndims == 1 { "labels" } else { "images" };
    let idx = idx::parse_idx(
        bytes,
        bytes.len() as u64,
        path,
        ndims,
        what,
        FASHION_MNIST_FIX,
    )?;
    if ndims == 1 {
        idx::check_idx_labels(&idx.data, path, FASHION_MNIST_FIX)?;
    }
    Ok(idx.dims)
}

/// Parses one CIFAR-10 (`cifar100` false) or CIFAR-100 binary file's bytes; returns the
/// number of images. For `crate::fuzzing`.
pub(crate) fn parse_cifar_bytes(bytes: &[u8], path: &Path, cifar100: bool) -> Result<usize> {
    let (format, dir) = match cifar100 {
        false => (&CIFAR10, Path::new(DatasetKind::Cifar10.default_dir())),
        true => (&CIFAR100, Path::new(DatasetKind::Cifar100.default_dir())),
    };
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    cifar::parse_cifar(bytes, path, format, dir, &mut images, &mut labels)?;
    Ok(labels.len())
}

/// Per-channel mean and (population) std of u8 images `[N, C, H, W]`, in `[0, 1]` units.
pub fn channel_mean_std(images: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let x = images.to_kind(Kind::Double) / 255.0;
    let mean = x.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Double);
    let std = x.std_dim([0i64, 2, 3].as_slice(), false, false);
    (
        Vec::<f64>::try_from(&mean).expect("a 1-d double tensor"),
        Vec::<f64>::try_from(&std).expect("a 1-d double tensor"),
    )
}
