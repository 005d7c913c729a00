//! `fixclf bench data`: images/s of the loader over a folder of class folders (what
//! torchvision's `ImageFolder(dir)` reads), with the training transform
//! (`RandomResizedCrop(224)` + flip) or the evaluation one (`Resize(256)` +
//! `CenterCrop(224)`), as one JSON line: images/s, per worker thread, and the share of
//! decoding in a sample's time (measured on one thread over the first images).
use crate::error::{Error, Result};
use crate::vision::data::decode::Decoder;
use crate::vision::data::folder;
use crate::vision::loader::{worker_pool, Loader, LoaderSpec, SampleSource};
use crate::vision::transforms::{Transform, TransformKind, Transformer};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct DataBenchArgs {
    /// A folder of class folders (torchvision's `ImageFolder` root).
    #[arg(long)]
    pub dir: PathBuf,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// train (RandomResizedCrop + flip) or eval (Resize + CenterCrop).
    #[arg(long, default_value = "train")]
    pub transform: String,
    /// Batches timed (0: one pass over the folder), after one untimed batch.
    #[arg(long, default_value_t = 0)]
    pub batches: usize,
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    #[arg(long, default_value_t = 256)]
    pub resize: usize,
}

pub fn run(args: &DataBenchArgs) -> Result<String> {
    let kind = match args.transform.as_str() {
        "train" => TransformKind::RandomResizedCrop,
        "eval" => TransformKind::ResizeCenterCrop,
        other => {
            return Err(Error::arg(
                "--transform",
                format!("{other}: use train or eval"),
            ))
        }
    };
    if args.batch == 0 || args.workers == 0 {
        return Err(Error::arg("--batch/--workers", "must be at least 1"));
    }
    let list = Arc::new(folder::list_split(&args.dir, None)?);
    let transform = Transform {
        kind,
        size: args.size,
        resize: args.resize,
        scale: (0.08, 1.0),
        ratio: (3.0 / 4.0, 4.0 / 3.0),
        flip: kind == TransformKind::RandomResizedCrop,
    };
    let spec = LoaderSpec {
        transform,
        channels: 3,
        seed: 0,
        skip_bad: false,
        depth: 4,
    };
    let decode_share = decode_share(&*list, &spec, 32)?;
    let mut order: Vec<i64> = (0..list.len() as i64).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(0));
    let steps = list.len().div_ceil(args.batch);
    let timed = if args.batches == 0 {
        steps.saturating_sub(1)
    } else {
        args.batches
    };
    if timed == 0 || timed + 1 > steps {
        return Err(Error::arg(
            "--batches",
            format!(
                "{} images make {steps} batches; need {} (one untimed)",
                list.len(),
                timed + 1
            ),
        ));
    }
    let mut loader = Loader::new(list.clone(), spec, worker_pool(args.workers));
    loader.start(0, Arc::new(order), args.batch, 0);
    loader.next_batch().expect("a first batch")?;
    let t0 = Instant::now();
    let mut images = 0;
    for _ in 0..timed {
        images += loader.next_batch().expect("batches left")?.labels.len();
    }
    let secs = t0.elapsed().as_secs_f64();
    let rate = images as f64 / secs;
    Ok(serde_json::json!({
        "bench": "data",
        "impl": "fixclf",
        "transform": args.transform,
        "workers": args.workers,
        "batch": args.batch,
        "images": images,
        "seconds": secs,
        "images_per_s": rate,
        "images_per_s_per_worker": rate / args.workers as f64,
        "decode_share": decode_share,
    })
    .to_string())
}

/// Decoding's share of a sample's time on one thread, over the first `n` samples: the
/// decode of the region the transform reads against the transform itself, as the loader
/// runs them.
fn decode_share(source: &dyn SampleSource, spec: &LoaderSpec, n: usize) -> Result<f64> {
    let n = n.min(source.len());
    let bytes: Vec<Vec<u8>> = (0..n)
        .map(|i| source.bytes(i).map(|b| b.into_owned()))
        .collect::<Result<_>>()?;
    let mut decoder = Decoder::new();
    let mut t = Transformer::new();
    let mut out = vec![0u8; 3 * spec.transform.size * spec.transform.size];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut t_decode, mut t_transform) = (0.0, 0.0);
    for (i, b) in bytes.iter().enumerate() {
        let name = source.name(i);
        let t0 = Instant::now();
        let (img, plan) = decoder.decode_region(b, &name, 3, |w, h| {
            let plan = spec.transform.plan(w, h, &mut rng);
            (plan.region, plan)
        })?;
        let t1 = Instant::now();
        t.render(&spec.transform, &plan, img, &name, &mut out)?;
        t_transform += t1.elapsed().as_secs_f64();
        t_decode += (t1 - t0).as_secs_f64();
    }
    Ok(t_decode / (t_decode + t_transform).max(1e-12))
}
