//! The binary versions of CIFAR-10 and CIFAR-100.
use super::*;
use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Pixels of one CIFAR image: 3 planes (R, G, B) of 32 x 32, row-major.
pub(super) const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// The layout and provenance of one CIFAR binary version.
pub(super) struct CifarFormat {
    pub(super) name: &'static str,
    pub(super) archive: &'static str,
    pub(super) archive_size: &'static str,
    pub(super) url: &'static str,
    /// The folder the archive extracts to (accepted inside the data folder too).
    pub(super) archive_dir: &'static str,
    pub(super) train: &'static [&'static str],
    pub(super) test: &'static str,
    /// Label bytes before the pixels; the last is the label used.
    pub(super) label_bytes: usize,
    /// Class count of each label byte.
    pub(super) label_classes: &'static [i64],
    /// Bytes of each official file, for the message.
    pub(super) file_sizes: &'static str,
}

pub(super) const CIFAR10: CifarFormat = CifarFormat {
    name: "CIFAR-10",
    archive: "cifar-10-binary.tar.gz",
    archive_size: "about 162 MB",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    archive_dir: "cifar-10-batches-bin",
    train: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ],
    test: "test_batch.bin",
    label_bytes: 1,
    label_classes: &[10],
    file_sizes: "30,730,000 bytes each",
};

pub(super) const CIFAR100: CifarFormat = CifarFormat {
    name: "CIFAR-100",
    archive: "cifar-100-binary.tar.gz",
    archive_size: "about 161 MB",
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    archive_dir: "cifar-100-binary",
    train: &["train.bin"],
    test: "test.bin",
    label_bytes: 2,
    label_classes: &[20, 100],
    file_sizes: "153,700,000 and 30,740,000 bytes",
};

impl CifarFormat {
    fn record(&self) -> usize {
        self.label_bytes + CIFAR_PIXELS
    }

    fn classes(&self) -> i64 {
        *self.label_classes.last().unwrap()
    }

    fn files(&self) -> String {
        let mut names: Vec<&str> = self.train.to_vec();
        names.push(self.test);
        names.join(", ")
    }

    /// How to get the files, for a missing or wrong one.
    fn fix(&self, dir: &Path) -> String {
        format!(
            "{} cannot be downloaded from here: get {} ({}, {}) and extract it so that {} \
             ({}) are directly in {} (e.g. `mkdir -p {dir} && tar -xzf {} -C {dir} \
             --strip-components=1`)",
            self.name,
            self.archive,
            self.archive_size,
            self.url,
            self.files(),
            self.file_sizes,
            dir.display(),
            self.archive,
            dir = dir.display(),
        )
    }
}

pub(super) fn load_cifar(dir: &Path, format: &CifarFormat) -> Result<(ImageSet, ImageSet)> {
    // The archive's own folder inside `dir` is accepted too.
    let nested = dir.join(format.archive_dir);
    let dir = if !dir.join(format.test).is_file() && nested.join(format.test).is_file() {
        nested.as_path()
    } else {
        dir
    };
    let paths: Vec<PathBuf> = format
        .train
        .iter()
        .chain(std::iter::once(&format.test))
        .map(|name| dir.join(name))
        .collect();
    if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
        return Err(Error::io(
            missing,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no such file; {}", format.fix(dir)),
            ),
        ));
    }
    let (train_paths, test_path) = paths.split_at(format.train.len());
    let train = read_cifar(train_paths, format, dir)?;
    let test = read_cifar(test_path, format, dir)?;
    Ok((train, test))
}

/// Reads and concatenates CIFAR binary files; each must be a whole, non-zero number of
/// records with labels in range. Every length is checked before the data is allocated.
pub(super) fn read_cifar(paths: &[PathBuf], format: &CifarFormat, dir: &Path) -> Result<ImageSet> {
    let mut n = 0;
    for path in paths {
        let len = std::fs::metadata(path).at(path)?.len();
        n += check_cifar_len(len, path, format, dir)?;
    }
    let mut images = Vec::with_capacity(n * CIFAR_PIXELS);
    let mut labels = Vec::with_capacity(n);
    for path in paths {
        let bytes = std::fs::read(path).at(path)?;
        parse_cifar(&bytes, path, format, dir, &mut images, &mut labels)?;
    }
    // The files may have changed between the two passes: count what was read.
    let n = labels.len() as i64;
    Ok(ImageSet {
        images: Tensor::from_slice(&images).view([n, 3, 32, 32]),
        labels: Tensor::from_slice(&labels),
        classes: format.classes(),
    })
}

/// A file of `len` bytes must hold a whole, non-zero number of records: returns how many.
fn check_cifar_len(len: u64, path: &Path, format: &CifarFormat, dir: &Path) -> Result<usize> {
    let record = format.record();
    if len == 0 || len % record as u64 != 0 {
        return Err(Error::bad_file(
            path,
            format!(
                "{len} bytes is not a whole number of {record}-byte {} records \
                 ({} label byte{} + {CIFAR_PIXELS} pixels); the file is truncated or not \
                 from the binary version; {}",
                format.name,
                format.label_bytes,
                if format.label_bytes > 1 { "s" } else { "" },
                format.fix(dir)
            ),
        ));
    }
    Ok((len / record as u64) as usize)
}

/// Appends the records of one CIFAR binary file (its bytes) to `images` and `labels`;
/// `path` names it in errors.
pub(super) fn parse_cifar(
    bytes: &[u8],
    path: &Path,
    format: &CifarFormat,
    dir: &Path,
    images: &mut Vec<u8>,
    labels: &mut Vec<i64>,
) -> Result<()> {
    check_cifar_len(bytes.len() as u64, path, format, dir)?;
    for (i, rec) in bytes.chunks_exact(format.record()).enumerate() {
        for (b, &classes) in format.label_classes.iter().enumerate() {
            if rec[b] as i64 >= classes {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "label byte {b} of record {i} is {}, out of range (0 to {}); the \
                         file is corrupt; {}",
                        rec[b],
                        classes - 1,
                        format.fix(dir)
                    ),
                ));
            }
        }
        labels.push(rec[format.label_bytes - 1] as i64);
        images.extend_from_slice(&rec[format.label_bytes..]);
    }
    Ok(())
}
