//! IDX files (MNIST, Fashion-MNIST), gzipped or plain: headers checked before allocating.
use super::*;
use crate::error::{Error, IoContext, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// The most items an IDX file may claim (MNIST has 70,000; EMNIST under a million).
pub(super) const MAX_IDX_ITEMS: usize = 10_000_000;
/// The largest image side an IDX file may claim.
pub(super) const MAX_IDX_SIDE: usize = 4096;
/// The most bytes of data a file (or a synthetic set) may hold: 4 GiB.
pub(super) const MAX_BYTES: u64 = 1 << 32;
/// The first allocation for decompressed data; the buffer grows only as data actually comes.
pub(super) const FIRST_ALLOC: usize = 64 << 20;
/// Classes of MNIST and Fashion-MNIST.
pub(super) const IDX_CLASSES: i64 = 10;

pub(super) const FASHION_MNIST_FIX: &str =
    "run `make data-vision` (data/fetch.sh --vision) to place and verify Fashion-MNIST";
pub(super) const MNIST_FIX: &str =
    "put the four official MNIST files (train-images-idx3-ubyte.gz, \
     train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzipped \
     or not) in that folder";

/// Training and test sets from `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` in `dir`.
pub(super) fn load_idx_pair(dir: &Path, fix: &str) -> Result<(ImageSet, ImageSet)> {
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

pub(super) fn load_idx_split(dir: &Path, split: &str, fix: &str) -> Result<ImageSet> {
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
    check_idx_labels(&labels.data, &labels_path, fix)?;
    let (rows, cols) = (images.dims[1] as i64, images.dims[2] as i64);
    Ok(ImageSet {
        images: Tensor::from_slice(&images.data).view([n as i64, 1, rows, cols]),
        labels: Tensor::from_slice(&labels.data).to_kind(Kind::Int64),
        classes: IDX_CLASSES,
    })
}

/// Every label must be a class of MNIST / Fashion-MNIST.
pub(super) fn check_idx_labels(labels: &[u8], path: &Path, fix: &str) -> Result<()> {
    match labels.iter().position(|&l| l as i64 >= IDX_CLASSES) {
        Some(i) => Err(Error::bad_file(
            path,
            format!(
                "label {} of item {i} is out of range (0 to {}); the file is corrupt: {fix}",
                labels[i],
                IDX_CLASSES - 1
            ),
        )),
        None => Ok(()),
    }
}

/// `<dir>/<stem>` when it exists, else `<dir>/<stem>.gz`; a missing pair is an error that
/// names the `.gz` file and says how to get it.
pub(super) fn idx_path(dir: &Path, stem: &str, fix: &str) -> Result<PathBuf> {
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
pub(super) struct Idx {
    pub(super) dims: Vec<usize>,
    pub(super) data: Vec<u8>,
}

/// Reads an IDX file of u8 elements with `ndims` dimensions (3: images, 1: labels), gzipped
/// (detected by its magic bytes) or plain. The header is checked against the bounds and, for
/// a plain file, against the file's length before any data is read; gzipped data is read
/// through a limit of what the header announces, plus one byte to detect extra data.
pub(super) fn read_idx(path: &Path, ndims: usize, what: &str, fix: &str) -> Result<Idx> {
    let file = std::fs::File::open(path).at(path)?;
    let file_len = file.metadata().at(path)?.len();
    parse_idx(BufReader::new(file), file_len, path, ndims, what, fix)
}

/// Checks the dimensions an IDX header declares against the reader's limits, before
/// anything is allocated; returns the bytes of data they need.
fn check_dims(dims: &[usize], path: &Path, what: &str, fix: &str) -> Result<u64> {
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
    Ok(total)
}

/// Parses an IDX stream of `file_len` bytes (see [`read_idx`]); `path` names it in errors.
pub(super) fn parse_idx(
    mut buffered: impl BufRead,
    file_len: u64,
    path: &Path,
    ndims: usize,
    what: &str,
    fix: &str,
) -> Result<Idx> {
    let gz = buffered.fill_buf().at(path)?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read + '_> = if gz {
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
    let total = check_dims(&dims, path, what, fix)?;
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
