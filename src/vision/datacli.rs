//! `fixclf data`: image folders and shards made from what fixclf reads (`export`: an
//! in-memory data set as a PNG image folder; `jpegs`: photograph-like JPEGs for tests and
//! benchmarks; `pack`: an image folder as WebDataset tar shards).
use super::data::DatasetKind;
use super::export::{export_png_folder, write_jpeg_folder, JpegSpec};
use super::pack::{pack, PackSpec};
use crate::error::{Error, Result};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Write a data set fixclf loads whole (fashion-mnist, mnist, cifar10, cifar100) as a
    /// PNG image folder: <out>/train/<class>/<index>.png and <out>/val/...
    Export {
        #[arg(long, default_value = "fashion-mnist")]
        dataset: String,
        /// The data set's files (default: its usual folder under data/).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a folder of photograph-like JPEGs (<out>/train/<class>/, <out>/val/<class>/).
    Jpegs {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 10)]
        classes: usize,
        /// Training images per class (validation: a fifth of it).
        #[arg(long, default_value_t = 50)]
        per_class: usize,
        #[arg(long, default_value_t = 500)]
        width: usize,
        #[arg(long, default_value_t = 375)]
        height: usize,
        #[arg(long, default_value_t = 90)]
        quality: u8,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Pack an image folder (train/, val/) into WebDataset tar shards.
    Pack {
        /// The image folder.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Samples per shard.
        #[arg(long, default_value_t = 1000)]
        per_shard: usize,
        /// Pre-resize: the short side, in pixels (images already smaller are re-encoded).
        #[arg(long)]
        resize: Option<usize>,
        /// JPEG quality of pre-resized images.
        #[arg(long, default_value_t = 90)]
        quality: u8,
    },
}

pub fn run(cmd: &DataCommand) -> Result<String> {
    match cmd {
        DataCommand::Export { dataset, dir, out } => {
            let kind: DatasetKind = serde_json::from_value(serde_json::json!(dataset))
                .map_err(|_| Error::arg("--dataset", format!("{dataset}: unknown data set")))?;
            let dir = dir.clone().unwrap_or_else(|| kind.default_dir().into());
            let (train, val) = export_png_folder(kind, &dir, out)?;
            Ok(format!(
                "{}: train {train} + val {val} PNG images",
                out.display()
            ))
        }
        DataCommand::Jpegs {
            out,
            classes,
            per_class,
            width,
            height,
            quality,
            seed,
        } => {
            if *classes < 1 || *per_class < 1 || !(1..=100).contains(quality) {
                return Err(Error::arg(
                    "--classes/--per-class/--quality",
                    "classes and per-class at least 1, quality 1 to 100",
                ));
            }
            let spec = JpegSpec {
                classes: *classes,
                per_class: *per_class,
                width: *width,
                height: *height,
                quality: *quality,
                seed: *seed,
            };
            let n = write_jpeg_folder(&spec, out)?;
            Ok(format!("{}: {n} JPEG images", out.display()))
        }
        DataCommand::Pack {
            dir,
            out,
            per_shard,
            resize,
            quality,
        } => {
            let spec = PackSpec {
                per_shard: *per_shard,
                resize: *resize,
                quality: *quality,
            };
            let (train, val) = pack(dir, out, &spec)?;
            Ok(format!(
                "{}: train {train} + val {val} samples in shards",
                out.display()
            ))
        }
    }
}
