//! The streamed data sets (`image-folder`, `tar-shards`) as the image task sees them: a
//! training loader (training transform, batches of the pass's permutation prepared ahead),
//! and loaders of the evaluation transform over the validation split and over the training
//! split (the collapse diagnostics' features).
use super::config::VisionConfig;
use super::data::{folder, DatasetKind};
use super::loader::{worker_pool, Batch, Loader, LoaderSpec, SampleSource};
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tch::{Device, Tensor};

/// A streamed set's loaders and what the task needs to know of it.
pub struct FileData {
    pub name: String,
    pub classes: i64,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// `[C, S, S]` of a batch's images.
    pub shape: [i64; 3],
    train: Loader,
    /// The evaluation transform over the validation split, and over the training split.
    eval: Loader,
    train_eval: Loader,
    skipped: AtomicU64,
}

/// Threads for the loaders: `vision.data.workers`, or the cores left after training's.
pub fn default_workers(workers: usize, train_threads: usize) -> usize {
    if workers > 0 {
        return workers;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(train_threads.max(1)).max(1)
}

/// The two splits of the streamed set `vision.data` names (training first).
pub fn open_sources(
    vision: &VisionConfig,
) -> Result<(Arc<dyn SampleSource>, Arc<dyn SampleSource>)> {
    let d = &vision.data;
    match d.dataset {
        DatasetKind::ImageFolder => {
            let (train_dir, eval_dir) = folder::split_dirs(&d.dir)?;
            let train = folder::list_split(&train_dir, None)?;
            let eval = folder::list_split(&eval_dir, Some(&train.classes))?;
            Ok((Arc::new(train), Arc::new(eval)))
        }
        DatasetKind::TarShards => {
            let (train, eval) = super::data::shards::open_splits(&d.dir)?;
            Ok((Arc::new(train), Arc::new(eval)))
        }
        other => Err(Error::arg(
            "vision.data.dataset",
            format!("{other} is not a streamed data set"),
        )),
    }
}

/// The first `n` samples of a source (`n` 0 or more than there are: all).
struct Prefix {
    inner: Arc<dyn SampleSource>,
    n: usize,
}

impl SampleSource for Prefix {
    fn len(&self) -> usize {
        self.n
    }
    fn label(&self, i: usize) -> i64 {
        self.inner.label(i)
    }
    fn name(&self, i: usize) -> std::path::PathBuf {
        self.inner.name(i)
    }
    fn bytes(&self, i: usize) -> Result<std::borrow::Cow<'_, [u8]>> {
        self.inner.bytes(i)
    }
    fn classes(&self) -> usize {
        self.inner.classes()
    }
}

fn first(source: Arc<dyn SampleSource>, n: usize) -> Arc<dyn SampleSource> {
    if n == 0 || n >= source.len() {
        return source;
    }
    Arc::new(Prefix { inner: source, n })
}

impl FileData {
    /// Opens the set of `vision.data` with `workers` threads; draws from `seed`.
    pub fn open(vision: &VisionConfig, seed: u64, workers: usize) -> Result<FileData> {
        let d = &vision.data;
        let (train, eval) = open_sources(vision)?;
        let train = first(train, d.train_images);
        let eval = first(eval, d.test_images);
        let pool = worker_pool(workers);
        let spec = |is_train: bool| LoaderSpec {
            transform: vision.transform.resolve(is_train, vision.flip),
            channels: d.channels,
            seed,
            skip_bad: d.skip_bad,
            depth: d.prefetch,
        };
        let (mean, std) = d.mean_std();
        let size = vision.transform.size as i64;
        Ok(FileData {
            name: format!("{} {}", d.dataset, d.dir.display()),
            classes: train.classes() as i64,
            mean,
            std,
            shape: [d.channels as i64, size, size],
            train: Loader::new(train.clone(), spec(true), pool.clone()),
            eval: Loader::new(eval, spec(false), pool.clone()),
            train_eval: Loader::new(train, spec(false), pool),
            skipped: AtomicU64::new(0),
        })
    }

    pub fn train_len(&self) -> usize {
        self.train.source().len()
    }

    pub fn eval_len(&self) -> usize {
        self.eval.source().len()
    }

    /// Starts the batches of pass `pass` (its permutation `order`) from batch `first`.
    pub fn start_pass(&mut self, pass: usize, order: &[i64], batch_size: usize, first: usize) {
        let order = Arc::new(order.to_vec());
        self.train.start(pass as u64, order, batch_size, first);
    }

    /// The next training batch: u8 images `[n, C, S, S]` and labels on `device`.
    pub fn next_train(&mut self, device: Device) -> Result<(Tensor, Tensor)> {
        let batch = self.train.next_batch().unwrap_or_else(|| {
            Err(Error::arg(
                "vision.data",
                "the training batches ran out before the pass ended",
            ))
        })?;
        self.count_skipped(&batch);
        Ok(self.to_tensors(batch, device))
    }

    fn count_skipped(&self, batch: &Batch) {
        for msg in &batch.skipped {
            eprintln!("skipped (vision.data.skip_bad): {msg}");
        }
        self.skipped
            .fetch_add(batch.skipped.len() as u64, Ordering::Relaxed);
    }

    /// Samples skipped since [`FileData::reset_skipped`] (`vision.data.skip_bad`).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    pub fn reset_skipped(&self) {
        self.skipped.store(0, Ordering::Relaxed);
    }

    fn to_tensors(&self, batch: Batch, device: Device) -> (Tensor, Tensor) {
        let [c, h, w] = self.shape;
        let n = batch.labels.len() as i64;
        let x = Tensor::from_slice(&batch.images)
            .view([n, c, h, w])
            .to_device(device);
        let y = Tensor::from_slice(&batch.labels).to_device(device);
        (x, y)
    }

    /// Every batch of the evaluation transform over the validation split (`train` false)
    /// or the training split, in order, through `f` (each batch's images decoded in
    /// parallel; evaluation takes `&self`, so nothing runs ahead).
    pub fn for_each_eval_batch(
        &self,
        train: bool,
        batch_size: usize,
        device: Device,
        mut f: impl FnMut(Tensor, Tensor),
    ) -> Result<()> {
        let loader = if train { &self.train_eval } else { &self.eval };
        let n = loader.source().len() as i64;
        let mut start = 0;
        while start < n {
            let end = (start + batch_size as i64).min(n);
            let idx: Vec<i64> = (start..end).collect();
            let batch = loader.load(0, &idx)?;
            self.count_skipped(&batch);
            let (x, y) = self.to_tensors(batch, device);
            f(x, y);
            start = end;
        }
        Ok(())
    }
}
