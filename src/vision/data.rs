//! Image data sets: Fashion-MNIST and MNIST (IDX files, gzipped or plain), CIFAR-10 and
//! CIFAR-100 (the official binary versions) and a synthetic set for tests and quick runs.
//!
//! Every set loads whole into memory as u8 images `[N, C, H, W]` and i64 labels `[N]`, on the
//! CPU; `augment` turns batches of them into normalized f32 on the training device. Headers
//! and sizes are checked before anything is allocated, so a corrupt or lying file is a
//! one-line error naming it and the fix, never a panic or a huge allocation.
use crate::error::{Error, IoContext, Result};
use crate::random::standard_normal;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
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
        }
    }

    /// The usual per-channel mean and std (synthetic: `None`, computed from the data).
    pub fn mean_std(self) -> Option<(&'static [f64], &'static [f64])> {
        match self {
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

// ---------------------------------------------------------------------------------------
// IDX (MNIST, Fashion-MNIST)

/// The most items an IDX file may claim (MNIST has 70,000; EMNIST under a million).
const MAX_IDX_ITEMS: usize = 10_000_000;
/// The largest image side an IDX file may claim.
const MAX_IDX_SIDE: usize = 4096;
/// The most bytes of data a file (or a synthetic set) may hold: 4 GiB.
const MAX_BYTES: u64 = 1 << 32;
/// The first allocation for decompressed data; the buffer grows only as data actually comes.
const FIRST_ALLOC: usize = 64 << 20;
/// Classes of MNIST and Fashion-MNIST.
const IDX_CLASSES: i64 = 10;

const FASHION_MNIST_FIX: &str =
    "run `make data-vision` (data/fetch.sh --vision) to place and verify Fashion-MNIST";
const MNIST_FIX: &str = "put the four official MNIST files (train-images-idx3-ubyte.gz, \
     train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzipped \
     or not) in that folder";

/// Training and test sets from `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` in `dir`.
fn load_idx_pair(dir: &Path, fix: &str) -> Result<(ImageSet, ImageSet)> {
    let train = load_idx_split(dir, "train", fix)?;
    let test = load_idx_split(dir, "t10k", fix)?;
    if train.image_shape() != test.image_shape() {
        return Err(Error::bad_file(
            idx_path(dir, "t10k-images-idx3-ubyte", fix)?,
            format!(
                "images are {:?} but the training images are {:?}; the files come from \
                 different data sets: {fix}",
                test.image_shape(),
                train.image_shape()
            ),
        ));
    }
    Ok((train, test))
}

fn load_idx_split(dir: &Path, split: &str, fix: &str) -> Result<ImageSet> {
    let images_path = idx_path(dir, &format!("{split}-images-idx3-ubyte"), fix)?;
    let labels_path = idx_path(dir, &format!("{split}-labels-idx1-ubyte"), fix)?;
    let images = read_idx(&images_path, 3, "images", fix)?;
    let labels = read_idx(&labels_path, 1, "labels", fix)?;
    let n = images.dims[0];
    if labels.dims[0] != n {
        return Err(Error::bad_file(
            &labels_path,
            format!(
                "{} labels but {} has {n} images; the two files come from different data \
                 sets: {fix}",
                labels.dims[0],
                images_path.display()
            ),
        ));
    }
    if let Some(i) = labels.data.iter().position(|&l| l as i64 >= IDX_CLASSES) {
        return Err(Error::bad_file(
            &labels_path,
            format!(
                "label {} of item {i} is out of range (0 to {}); the file is corrupt: {fix}",
                labels.data[i],
                IDX_CLASSES - 1
            ),
        ));
    }
    let (rows, cols) = (images.dims[1] as i64, images.dims[2] as i64);
    Ok(ImageSet {
        images: Tensor::from_slice(&images.data).view([n as i64, 1, rows, cols]),
        labels: Tensor::from_slice(&labels.data).to_kind(Kind::Int64),
        classes: IDX_CLASSES,
    })
}

/// `<dir>/<stem>` when it exists, else `<dir>/<stem>.gz`; a missing pair is an error that
/// names the `.gz` file and says how to get it.
fn idx_path(dir: &Path, stem: &str, fix: &str) -> Result<PathBuf> {
    let plain = dir.join(stem);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::io(
        gz,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no such file (nor the uncompressed `{stem}`); {fix}"),
        ),
    ))
}

/// An IDX file's dimensions and data (u8 elements).
struct Idx {
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// Reads an IDX file of u8 elements with `ndims` dimensions (3: images, 1: labels), gzipped
/// (detected by its magic bytes) or plain. The header is checked against the bounds and, for
/// a plain file, against the file's length before any data is read; gzipped data is read
/// through a limit of what the header announces, plus one byte to detect extra data.
fn read_idx(path: &Path, ndims: usize, what: &str, fix: &str) -> Result<Idx> {
    let file = std::fs::File::open(path).at(path)?;
    let file_len = file.metadata().at(path)?.len();
    let mut buffered = BufReader::new(file);
    let gz = buffered.fill_buf().at(path)?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    // A read error of gzipped data is a corrupt file, not an I/O failure.
    let fail = |e: std::io::Error, part: &str| -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            let stream = if gz { "the gzip stream" } else { "the file" };
            Error::bad_file(
                path,
                format!("truncated: {stream} ends in the {part}; re-fetch the file: {fix}"),
            )
        } else if gz {
            Error::bad_file(path, format!("corrupt gzip data ({e}); {fix}"))
        } else {
            Error::io(path, e)
        }
    };
    let header_len = 4 + 4 * ndims;
    let mut header = vec![0u8; header_len];
    reader
        .read_exact(&mut header[..4])
        .map_err(|e| fail(e, "header"))?;
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let want = 0x0800 | ndims as u32;
    if magic != want {
        return Err(Error::bad_file(
            path,
            format!(
                "not an IDX file of u8 {what}: magic number 0x{magic:08x}, expected \
                 0x{want:08x}; {fix}"
            ),
        ));
    }
    reader
        .read_exact(&mut header[4..])
        .map_err(|e| fail(e, "header"))?;
    let dims: Vec<usize> = header[4..]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    if dims[0] > MAX_IDX_ITEMS {
        return Err(Error::bad_file(
            path,
            format!(
                "the header claims {} {what}, more than the {MAX_IDX_ITEMS} this reader \
                 accepts; the file is corrupt: {fix}",
                dims[0]
            ),
        ));
    }
    if let Some(&side) = dims[1..].iter().find(|&&d| d == 0 || d > MAX_IDX_SIDE) {
        return Err(Error::bad_file(
            path,
            format!(
                "the header claims an image side of {side} (dimensions {dims:?}); sides must \
                 be 1 to {MAX_IDX_SIDE}; the file is corrupt: {fix}"
            ),
        ));
    }
    let total = dims.iter().map(|&d| d as u64).product::<u64>();
    if total > MAX_BYTES {
        return Err(Error::bad_file(
            path,
            format!(
                "the header claims {dims:?} = {total} bytes of {what}, more than {MAX_BYTES}; \
                 the file is corrupt: {fix}"
            ),
        ));
    }
    let size_error = |actual: u64| {
        let how = if actual < total {
            "truncated"
        } else {
            "longer than its header says"
        };
        Error::bad_file(
            path,
            format!(
                "{how}: {actual} bytes of {what} after the header{}, the header's dimensions \
                 {dims:?} need {total}; re-fetch the file: {fix}",
                if gz { " (decompressed)" } else { "" }
            ),
        )
    };
    if !gz && file_len != header_len as u64 + total {
        return Err(size_error(file_len.saturating_sub(header_len as u64)));
    }
    let mut data = Vec::with_capacity((total as usize).min(FIRST_ALLOC));
    reader
        .take(total + 1)
        .read_to_end(&mut data)
        .map_err(|e| fail(e, "data"))?;
    if data.len() as u64 != total {
        return Err(size_error(data.len() as u64));
    }
    Ok(Idx { dims, data })
}

// ---------------------------------------------------------------------------------------
// CIFAR-10 / CIFAR-100 binary versions

/// Pixels of one CIFAR image: 3 planes (R, G, B) of 32 x 32, row-major.
const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// The layout and provenance of one CIFAR binary version.
struct CifarFormat {
    name: &'static str,
    archive: &'static str,
    archive_size: &'static str,
    url: &'static str,
    /// The folder the archive extracts to (accepted inside the data folder too).
    archive_dir: &'static str,
    train: &'static [&'static str],
    test: &'static str,
    /// Label bytes before the pixels; the last is the label used.
    label_bytes: usize,
    /// Class count of each label byte.
    label_classes: &'static [i64],
    /// Bytes of each official file, for the message.
    file_sizes: &'static str,
}

const CIFAR10: CifarFormat = CifarFormat {
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

const CIFAR100: CifarFormat = CifarFormat {
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

fn load_cifar(dir: &Path, format: &CifarFormat) -> Result<(ImageSet, ImageSet)> {
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
/// records with labels in range.
fn read_cifar(paths: &[PathBuf], format: &CifarFormat, dir: &Path) -> Result<ImageSet> {
    let record = format.record();
    let mut lens = Vec::with_capacity(paths.len());
    for path in paths {
        let len = std::fs::metadata(path).at(path)?.len();
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
        lens.push(len as usize / record);
    }
    let n: usize = lens.iter().sum();
    let mut images = Vec::with_capacity(n * CIFAR_PIXELS);
    let mut labels = Vec::with_capacity(n);
    for path in paths {
        let bytes = std::fs::read(path).at(path)?;
        for (i, rec) in bytes.chunks_exact(record).enumerate() {
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
    }
    Ok(ImageSet {
        images: Tensor::from_slice(&images).view([n as i64, 3, 32, 32]),
        labels: Tensor::from_slice(&labels),
        classes: format.classes(),
    })
}

// ---------------------------------------------------------------------------------------
// Synthetic

fn synthetic_data(spec: &SyntheticSpec) -> Result<ImageData> {
    spec.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let (c, s) = (spec.channels as usize, spec.size as usize);
    let pixels = c * s * s;
    let g = SYNTHETIC_GRID;
    // Bilinear weights of the coarse grid along one side: (low cell, high cell, t).
    let axis: Vec<(usize, usize, f64)> = (0..s)
        .map(|y| {
            let pos = if s > 1 {
                y as f64 * (g - 1) as f64 / (s - 1) as f64
            } else {
                0.0
            };
            let lo = (pos.floor() as usize).min(g - 1);
            (lo, (lo + 1).min(g - 1), pos - lo as f64)
        })
        .collect();
    let mut prototypes = Vec::with_capacity(spec.classes as usize * pixels);
    for _ in 0..spec.classes {
        for _ in 0..c {
            let grid: Vec<f64> = (0..g * g).map(|_| rng.gen::<f64>()).collect();
            for &(y0, y1, ty) in &axis {
                for &(x0, x1, tx) in &axis {
                    let top = grid[y0 * g + x0] * (1.0 - tx) + grid[y0 * g + x1] * tx;
                    let bottom = grid[y1 * g + x0] * (1.0 - tx) + grid[y1 * g + x1] * tx;
                    prototypes.push(top * (1.0 - ty) + bottom * ty);
                }
            }
        }
    }
    let mut sample = |n: i64| -> ImageSet {
        let mut images = Vec::with_capacity(n as usize * pixels);
        let labels: Vec<i64> = (0..n).map(|i| i % spec.classes).collect();
        for &label in &labels {
            let proto = &prototypes[label as usize * pixels..(label as usize + 1) * pixels];
            images.extend(proto.iter().map(|&p| {
                let v = (p + SYNTHETIC_NOISE * standard_normal(&mut rng)) * 255.0;
                v.round().clamp(0.0, 255.0) as u8
            }));
        }
        ImageSet {
            images: Tensor::from_slice(&images).view([n, spec.channels, spec.size, spec.size]),
            labels: Tensor::from_slice(&labels),
            classes: spec.classes,
        }
    };
    let train = sample(spec.train);
    let test = sample(spec.test);
    let (mean, std) = channel_mean_std(&train.images);
    Ok(ImageData {
        train,
        test,
        name: DatasetKind::Synthetic.name().to_string(),
        mean,
        std,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// Writes a small IDX pair for `split`: `n` images of 3 x 2 pixels (pixel value = item
    /// index + position) and labels `i % 10`.
    fn write_idx_split(dir: &Path, split: &str, n: u32, gz: bool) {
        let images: Vec<u8> = (0..n * 6).map(|i| (i / 6 + i % 6) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let files = [
            (
                format!("{split}-images-idx3-ubyte"),
                idx_bytes(0x803, &[n, 3, 2], &images),
            ),
            (
                format!("{split}-labels-idx1-ubyte"),
                idx_bytes(0x801, &[n], &labels),
            ),
        ];
        for (name, bytes) in files {
            if gz {
                std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    fn err_line(r: Result<ImageData>) -> String {
        let msg = r.expect_err("should fail").to_string();
        assert!(!msg.contains('\n'), "not one line: {msg}");
        msg
    }

    #[test]
    fn idx_gz_and_plain_load() {
        for gz in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            write_idx_split(dir.path(), "train", 12, gz);
            write_idx_split(dir.path(), "t10k", 5, gz);
            let d = load(DatasetKind::FashionMnist, dir.path(), None).unwrap();
            assert_eq!(d.train.images.size(), [12, 1, 3, 2]);
            assert_eq!(d.train.images.kind(), Kind::Uint8);
            assert_eq!(d.test.labels.size(), [5]);
            assert_eq!(d.test.labels.kind(), Kind::Int64);
            assert_eq!(d.classes(), 10);
            assert_eq!(d.train.labels.int64_value(&[11]), 1);
            assert_eq!(d.train.images.int64_value(&[4, 0, 1, 1]), 4 + 3);
            assert_eq!(d.name, "fashion-mnist");
            assert_eq!(
                (d.mean.clone(), d.std.clone()),
                (vec![0.2860], vec![0.3530])
            );
        }
    }

    #[test]
    fn idx_errors_are_one_line_naming_the_file() {
        let setup = || {
            let dir = tempfile::tempdir().unwrap();
            write_idx_split(dir.path(), "train", 12, true);
            write_idx_split(dir.path(), "t10k", 5, false);
            dir
        };
        let train_images = "train-images-idx3-ubyte.gz";
        let test_images = "t10k-images-idx3-ubyte";
        let test_labels = "t10k-labels-idx1-ubyte";

        // Truncated gzip stream and truncated plain file.
        let dir = setup();
        let p = dir.path().join(train_images);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(
            msg.contains(train_images) && msg.contains("truncated"),
            "{msg}"
        );
        assert!(msg.contains("make data-vision"), "{msg}");

        let dir = setup();
        let p = dir.path().join(test_images);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(
            msg.contains(test_images) && msg.contains("truncated"),
            "{msg}"
        );

        // Decompressed data shorter than the header says (a valid gzip stream).
        let dir = setup();
        let p = dir.path().join(train_images);
        let short = idx_bytes(0x803, &[12, 3, 2], &[0; 70]);
        std::fs::write(&p, gzip(&short)).unwrap();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(msg.contains("70 bytes") && msg.contains("need 72"), "{msg}");

        // Extra data.
        let dir = setup();
        let p = dir.path().join(test_images);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.push(0);
        std::fs::write(&p, &bytes).unwrap();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(msg.contains("longer than its header"), "{msg}");

        // Wrong magic (labels where images belong).
        let dir = setup();
        let p = dir.path().join(test_images);
        std::fs::write(&p, idx_bytes(0x801, &[5], &[0; 5])).unwrap();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(
            msg.contains(test_images) && msg.contains("0x00000801"),
            "{msg}"
        );

        // A header claiming 10^9 images fails at once, gzipped or not.
        for gz in [true, false] {
            let dir = setup();
            let head = idx_bytes(0x803, &[1_000_000_000, 28, 28], &[0; 100]);
            let (name, bytes) = if gz {
                (train_images, gzip(&head))
            } else {
                (test_images, head)
            };
            std::fs::write(dir.path().join(name), bytes).unwrap();
            let t = std::time::Instant::now();
            let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
            assert!(msg.contains(name) && msg.contains("1000000000"), "{msg}");
            assert!(t.elapsed().as_secs_f64() < 1.0);
        }
        // A header within the item bound but far beyond the data: bounded, then truncated.
        let dir = setup();
        let head = idx_bytes(0x803, &[5_000_000, 28, 28], &[0; 100]);
        std::fs::write(dir.path().join(train_images), gzip(&head)).unwrap();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(msg.contains("truncated"), "{msg}");

        // Label out of range.
        let dir = setup();
        let p = dir.path().join(test_labels);
        std::fs::write(&p, idx_bytes(0x801, &[5], &[0, 1, 10, 3, 4])).unwrap();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(
            msg.contains(test_labels) && msg.contains("label 10 of item 2"),
            "{msg}"
        );

        // Image and label counts differ.
        let dir = setup();
        let p = dir.path().join(test_labels);
        std::fs::write(&p, idx_bytes(0x801, &[4], &[0, 1, 2, 3])).unwrap();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(
            msg.contains(test_labels) && msg.contains("4 labels but"),
            "{msg}"
        );

        // Not gzip data behind a gzip magic.
        let dir = setup();
        let p = dir.path().join(train_images);
        std::fs::write(&p, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(msg.contains(train_images), "{msg}");

        // Missing files name the .gz file and the fix.
        let dir = tempfile::tempdir().unwrap();
        let msg = err_line(load(DatasetKind::FashionMnist, dir.path(), None));
        assert!(
            msg.contains(train_images) && msg.contains("make data-vision"),
            "{msg}"
        );
        let msg = err_line(load(DatasetKind::Mnist, dir.path(), None));
        assert!(msg.contains("official MNIST files"), "{msg}");
    }

    /// CIFAR records: label bytes then 3072 pixels whose value is the record index.
    fn cifar_records(labels: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            out.extend_from_slice(l);
            out.extend(std::iter::repeat_n(i as u8, CIFAR_PIXELS));
        }
        out
    }

    fn write_cifar10(dir: &Path) {
        for (k, name) in CIFAR10.train.iter().enumerate() {
            let labels: Vec<[u8; 1]> = (0..2).map(|i| [(k * 2 + i) as u8]).collect();
            let refs: Vec<&[u8]> = labels.iter().map(|l| l.as_slice()).collect();
            std::fs::write(dir.join(name), cifar_records(&refs)).unwrap();
        }
        std::fs::write(
            dir.join("test_batch.bin"),
            cifar_records(&[&[9], &[0], &[5]]),
        )
        .unwrap();
    }

    #[test]
    fn cifar10_loads_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10(dir.path());
        let d = load(DatasetKind::Cifar10, dir.path(), None).unwrap();
        assert_eq!(d.train.images.size(), [10, 3, 32, 32]);
        assert_eq!(d.test.images.size(), [3, 3, 32, 32]);
        assert_eq!(
            Vec::<i64>::try_from(&d.train.labels).unwrap(),
            (0..10).collect::<Vec<i64>>()
        );
        assert_eq!(Vec::<i64>::try_from(&d.test.labels).unwrap(), [9, 0, 5]);
        // Record 1 of data_batch_3 is training image 5, its pixels all 1.
        assert_eq!(d.train.images.get(5).min().int64_value(&[]), 1);
        assert_eq!(d.train.images.get(5).max().int64_value(&[]), 1);
        assert_eq!(d.classes(), 10);
        assert_eq!(d.mean.len(), 3);

        // The archive's own folder inside the data folder.
        let outer = tempfile::tempdir().unwrap();
        let nested = outer.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&nested).unwrap();
        write_cifar10(&nested);
        assert_eq!(
            load(DatasetKind::Cifar10, outer.path(), None)
                .unwrap()
                .train
                .len(),
            10
        );

        // Not a whole number of records.
        let p = dir.path().join("data_batch_4.bin");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.pop();
        std::fs::write(&p, &bytes).unwrap();
        let msg = err_line(load(DatasetKind::Cifar10, dir.path(), None));
        assert!(
            msg.contains("data_batch_4.bin") && msg.contains("6145 bytes"),
            "{msg}"
        );
        assert!(msg.contains("cifar-10-binary.tar.gz"), "{msg}");

        // Label out of range.
        let dir = tempfile::tempdir().unwrap();
        write_cifar10(dir.path());
        std::fs::write(
            dir.path().join("test_batch.bin"),
            cifar_records(&[&[3], &[10]]),
        )
        .unwrap();
        let msg = err_line(load(DatasetKind::Cifar10, dir.path(), None));
        assert!(
            msg.contains("test_batch.bin") && msg.contains("record 1 is 10"),
            "{msg}"
        );

        // Missing files: where they go and which archive has them.
        let dir = tempfile::tempdir().unwrap();
        let msg = err_line(load(DatasetKind::Cifar10, dir.path(), None));
        assert!(msg.contains("data_batch_1.bin"), "{msg}");
        assert!(
            msg.contains("cifar-10-binary.tar.gz")
                && msg.contains("162 MB")
                && msg.contains("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz")
                && msg.contains("30,730,000"),
            "{msg}"
        );
    }

    #[test]
    fn cifar100_uses_fine_labels_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("train.bin"),
            cifar_records(&[&[19, 99], &[0, 42], &[7, 0]]),
        )
        .unwrap();
        std::fs::write(dir.path().join("test.bin"), cifar_records(&[&[1, 5]])).unwrap();
        let d = load(DatasetKind::Cifar100, dir.path(), None).unwrap();
        assert_eq!(Vec::<i64>::try_from(&d.train.labels).unwrap(), [99, 42, 0]);
        assert_eq!(d.train.images.size(), [3, 3, 32, 32]);
        assert_eq!(d.train.images.get(2).max().int64_value(&[]), 2);
        assert_eq!(d.classes(), 100);
        assert_eq!(d.name, "cifar100");

        // Coarse and fine labels out of range.
        for (labels, what) in [([20u8, 0u8], "label byte 0"), ([0, 100], "label byte 1")] {
            std::fs::write(dir.path().join("test.bin"), cifar_records(&[&labels])).unwrap();
            let msg = err_line(load(DatasetKind::Cifar100, dir.path(), None));
            assert!(msg.contains("test.bin") && msg.contains(what), "{msg}");
        }
        // A CIFAR-10 record size is not a CIFAR-100 one.
        std::fs::write(dir.path().join("test.bin"), cifar_records(&[&[1]])).unwrap();
        let msg = err_line(load(DatasetKind::Cifar100, dir.path(), None));
        assert!(msg.contains("3074-byte"), "{msg}");

        let empty = tempfile::tempdir().unwrap();
        let msg = err_line(load(DatasetKind::Cifar100, empty.path(), None));
        assert!(
            msg.contains("train.bin")
                && msg.contains("cifar-100-binary.tar.gz")
                && msg.contains("161 MB")
                && msg.contains("153,700,000"),
            "{msg}"
        );
    }

    #[test]
    fn real_fashion_mnist_when_present() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist");
        if !dir.join("train-images-idx3-ubyte.gz").exists() {
            eprintln!(
                "skipped: no Fashion-MNIST at {} (make data-vision)",
                dir.display()
            );
            return;
        }
        let d = load(DatasetKind::FashionMnist, &dir, None).unwrap();
        assert_eq!(d.train.images.size(), [60_000, 1, 28, 28]);
        assert_eq!(d.test.images.size(), [10_000, 1, 28, 28]);
        assert_eq!(d.classes(), 10);
        // Balanced classes: 6,000 and 1,000 images each.
        let counts = d.train.labels.bincount(None::<Tensor>, 10);
        assert_eq!(Vec::<i64>::try_from(&counts).unwrap(), vec![6000; 10]);
        let counts = d.test.labels.bincount(None::<Tensor>, 10);
        assert_eq!(Vec::<i64>::try_from(&counts).unwrap(), vec![1000; 10]);
        // The published statistics match the data.
        let (mean, std) = channel_mean_std(&d.train.images);
        assert!((mean[0] - d.mean[0]).abs() < 1e-3, "{mean:?}");
        assert!((std[0] - d.std[0]).abs() < 1e-3, "{std:?}");
    }

    #[test]
    fn synthetic_is_deterministic_and_learnable() {
        let spec = SyntheticSpec {
            classes: 4,
            train: 40,
            test: 12,
            channels: 2,
            size: 8,
            seed: 7,
        };
        let a = load(DatasetKind::Synthetic, Path::new(""), Some(spec)).unwrap();
        let b = load(DatasetKind::Synthetic, Path::new(""), Some(spec)).unwrap();
        assert!(a.train.images.equal(&b.train.images) && a.test.images.equal(&b.test.images));
        assert!(a.train.labels.equal(&b.train.labels));
        assert_eq!(a.train.images.size(), [40, 2, 8, 8]);
        assert_eq!(a.test.labels.size(), [12]);
        assert_eq!(a.classes(), 4);
        assert_eq!((a.mean.len(), a.std.len()), (2, 2));
        assert!(a.std.iter().all(|&s| s > 0.05));
        let other = load(
            DatasetKind::Synthetic,
            Path::new(""),
            Some(SyntheticSpec { seed: 8, ..spec }),
        )
        .unwrap();
        assert!(!a.train.images.equal(&other.train.images));
        // Learnable: the nearest class mean of the training images classifies the test set.
        let x = a.train.images.to_kind(Kind::Float).view([40, -1]);
        let centers = Tensor::stack(
            &(0..4i64)
                .map(|c| {
                    x.index_select(0, &a.train.labels.eq(c).nonzero().view([-1]))
                        .mean_dim(0, false, Kind::Float)
                })
                .collect::<Vec<_>>(),
            0,
        );
        let t = a.test.images.to_kind(Kind::Float).view([12, -1]);
        let d = Tensor::cdist(&t, &centers, 2.0, None::<i64>);
        let pred = d.argmin(1, false);
        assert!(pred.equal(&a.test.labels), "{pred:?}");

        let bad = SyntheticSpec { classes: 1, ..spec };
        let msg = err_line(load(DatasetKind::Synthetic, Path::new(""), Some(bad)));
        assert!(msg.starts_with("synthetic.classes:"), "{msg}");
    }

    #[test]
    fn kinds_use_kebab_case_names() {
        for kind in [
            DatasetKind::FashionMnist,
            DatasetKind::Mnist,
            DatasetKind::Cifar10,
            DatasetKind::Cifar100,
            DatasetKind::Synthetic,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<DatasetKind>(&json).unwrap(), kind);
        }
    }
}
