//! `fixclf data pack`: an image folder (`train/`, `val/` of class folders) as WebDataset
//! tar shards (`<out>/train/shard-000000.tar`, ..., `<out>/classes.txt`), each sample
//! `<index>.jpg` (or `.png`) + `<index>.cls`, in the folder's order; optionally pre-resized
//! as FFCV users do (short side `resize`, re-encoded as JPEG of `quality`), which cuts the
//! decoding cost of every later epoch.
use super::data::decode::{self, Format};
use super::data::folder::{self, FileList};
use super::export::{finish_dir, jpeg_bytes, staging_dir};
use super::transforms::{resized_size, Transformer};
use crate::error::{Error, IoContext, Result};
use rayon::prelude::*;
use std::path::Path;

/// How to pack.
#[derive(Debug, Clone, Copy)]
pub struct PackSpec {
    /// Samples per shard.
    pub per_shard: usize,
    /// Short side of pre-resized copies (None: the files' bytes as they are).
    pub resize: Option<usize>,
    pub quality: u8,
}

/// Packs `dir` into shards at `out`; returns the samples packed per split.
pub fn pack(dir: &Path, out: &Path, spec: &PackSpec) -> Result<(usize, usize)> {
    if spec.per_shard == 0 {
        return Err(Error::arg("--per-shard", "must be at least 1"));
    }
    if !(1..=100).contains(&spec.quality) {
        return Err(Error::arg(
            "--quality",
            format!("{} is not 1 to 100", spec.quality),
        ));
    }
    let (train_dir, eval_dir) = folder::split_dirs(dir)?;
    let train = folder::list_split(&train_dir, None)?;
    let eval = folder::list_split(&eval_dir, Some(&train.classes))?;
    let partial = staging_dir(out)?;
    let classes = train.classes.join("\n") + "\n";
    crate::fsutil::write_bytes_atomic(&partial.join("classes.txt"), classes.as_bytes())?;
    let eval_name = eval_dir
        .file_name()
        .map_or("val".into(), |n| n.to_string_lossy().to_string());
    pack_split(&train, &partial.join("train"), spec)?;
    pack_split(&eval, &partial.join(eval_name), spec)?;
    finish_dir(&partial, out)?;
    Ok((train.len(), eval.len()))
}

/// One sample's member: its extension and bytes (the file's, or a pre-resized JPEG).
fn sample_bytes(list: &FileList, i: usize, spec: &PackSpec) -> Result<(&'static str, Vec<u8>)> {
    let path = list.path(i);
    let bytes = std::fs::read(&path).at(&path)?;
    let Some(short) = spec.resize else {
        let ext = match decode::sniff(&bytes, &path)? {
            Format::Jpeg => "jpg",
            Format::Png => "png",
        };
        // Checked now, so that a shard holds only images that decode.
        decode::decode(&bytes, &path, 3)?;
        return Ok((ext, bytes));
    };
    let img = decode::decode(&bytes, &path, 3)?;
    if img.width.min(img.height) <= short {
        return Ok((
            "jpg",
            jpeg_bytes(&img.data, img.width, img.height, spec.quality)?,
        ));
    }
    let (w, h) = resized_size(img.width, img.height, short);
    let mut t = Transformer::new();
    let rgb = t.resize_whole(&img, w, h)?;
    Ok(("jpg", jpeg_bytes(rgb, w, h, spec.quality)?))
}

fn pack_split(list: &FileList, dir: &Path, spec: &PackSpec) -> Result<()> {
    std::fs::create_dir_all(dir).at(dir)?;
    let digits = list.len().max(2).to_string().len().max(8);
    for (k, start) in (0..list.len()).step_by(spec.per_shard).enumerate() {
        let end = (start + spec.per_shard).min(list.len());
        let members: Vec<(&str, Vec<u8>)> = (start..end)
            .into_par_iter()
            .map(|i| sample_bytes(list, i, spec))
            .collect::<Result<_>>()?;
        let mut tar = tar::Builder::new(Vec::new());
        for (i, (ext, bytes)) in (start..end).zip(members) {
            let key = format!("{i:0digits$}");
            append(&mut tar, &format!("{key}.{ext}"), &bytes)?;
            append(
                &mut tar,
                &format!("{key}.cls"),
                list.labels[i].to_string().as_bytes(),
            )?;
        }
        let bytes = tar.into_inner().map_err(|e| Error::io(dir, e))?;
        let path = dir.join(format!("shard-{k:06}.tar"));
        crate::fsutil::write_bytes_atomic(&path, &bytes)?;
    }
    Ok(())
}

fn append(tar: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
        .map_err(|e| Error::io(name, e))
}
