//! The threaded loader of image files: worker threads read, decode and transform the
//! samples of a batch into one preallocated u8 buffer (`[B, C, S, S]`, the flip done in the
//! copy), a producer thread runs ahead a few batches into a bounded queue, and the task
//! hands each batch to libtorch as u8 (normalized on the device).
//!
//! Every sample's random draws come from its own generator seeded by (seed, pass, sample
//! index), so a batch depends neither on the number of threads nor on what ran before it:
//! a run resumed mid-epoch repeats the uninterrupted one exactly.
use super::data::decode::Decoder;
use super::transforms::{Transform, Transformer};
use crate::error::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::borrow::Cow;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Where samples come from: an image folder's files, a tar shard's members.
pub trait SampleSource: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn label(&self, i: usize) -> i64;
    /// The name of sample `i` in messages (its file, or `shard.tar:member`).
    fn name(&self, i: usize) -> PathBuf;
    /// The encoded bytes of sample `i`.
    fn bytes(&self, i: usize) -> Result<Cow<'_, [u8]>>;
    /// The label count.
    fn classes(&self) -> usize;
}

/// What a loader makes of samples.
#[derive(Debug, Clone, Copy)]
pub struct LoaderSpec {
    pub transform: Transform,
    /// 1 (Pillow's "L") or 3 ("RGB").
    pub channels: usize,
    pub seed: u64,
    /// Skip a sample that cannot be read (and report it) rather than fail.
    pub skip_bad: bool,
    /// Batches the producer may run ahead.
    pub depth: usize,
}

/// One batch: u8 images `[n, C, S, S]` (n = labels' length), and the samples skipped
/// (`skip_bad`) as their one-line errors.
#[derive(Debug, Default)]
pub struct Batch {
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    pub skipped: Vec<String>,
}

/// A worker thread's decoder and transformer, with their buffers.
#[derive(Default)]
struct Worker {
    decoder: Decoder,
    transformer: Transformer,
}

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::default());
}

/// The seed of sample `index`'s draws in pass `pass` (SplitMix64 finalizers, so nearby
/// indices get unrelated streams).
pub fn sample_seed(seed: u64, pass: u64, index: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    mix(mix(mix(seed) ^ pass) ^ index)
}

/// A source, what to make of it, and the worker threads.
pub struct Loader {
    source: Arc<dyn SampleSource>,
    spec: LoaderSpec,
    pool: Arc<rayon::ThreadPool>,
    running: Option<Producer>,
}

/// The producer thread of one run of batches, its queue and its stop flag.
struct Producer {
    rx: Receiver<Result<Batch>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock a producer waiting on a full queue, then wait for it.
        while self.rx.try_recv().is_ok() {}
        if let Some(h) = self.handle.take() {
            while !h.is_finished() {
                while self.rx.try_recv().is_ok() {}
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let _ = h.join();
        }
    }
}

/// A pool of `workers` threads (at least one) for loaders.
pub fn worker_pool(workers: usize) -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(workers.max(1))
            .thread_name(|i| format!("fixclf-data-{i}"))
            .build()
            .expect("threads can be started"),
    )
}

impl Loader {
    pub fn new(
        source: Arc<dyn SampleSource>,
        spec: LoaderSpec,
        pool: Arc<rayon::ThreadPool>,
    ) -> Self {
        Self {
            source,
            spec,
            pool,
            running: None,
        }
    }

    pub fn source(&self) -> &Arc<dyn SampleSource> {
        &self.source
    }

    /// Bytes of one image in a batch.
    pub fn image_bytes(&self) -> usize {
        self.spec.channels * self.spec.transform.size * self.spec.transform.size
    }

    /// Starts producing the batches of `order` (sample indices) of `batch_size` from batch
    /// `first` on, for pass `pass`; [`Loader::next_batch`] takes them in order.
    pub fn start(&mut self, pass: u64, order: Arc<Vec<i64>>, batch_size: usize, first: usize) {
        self.running = None;
        let (tx, rx) = sync_channel(self.spec.depth.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (source, spec, pool) = (self.source.clone(), self.spec, self.pool.clone());
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("fixclf-batches".into())
            .spawn(move || {
                let mut start = first * batch_size;
                while start < order.len() && !flag.load(Ordering::Relaxed) {
                    let end = (start + batch_size).min(order.len());
                    let batch = load_batch(&*source, &spec, &pool, pass, &order[start..end]);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                    start = end;
                }
            })
            .expect("a thread can be started");
        self.running = Some(Producer {
            rx,
            stop,
            handle: Some(handle),
        });
    }

    /// The next batch of the run [`Loader::start`] began; None after its last.
    pub fn next_batch(&mut self) -> Option<Result<Batch>> {
        self.running.as_ref()?.rx.recv().ok()
    }

    /// One batch of `indices`, now, on the worker threads.
    pub fn load(&self, pass: u64, indices: &[i64]) -> Result<Batch> {
        load_batch(&*self.source, &self.spec, &self.pool, pass, indices)
    }
}

/// Reads, decodes and transforms the samples `indices` into one buffer, in parallel.
pub fn load_batch(
    source: &dyn SampleSource,
    spec: &LoaderSpec,
    pool: &rayon::ThreadPool,
    pass: u64,
    indices: &[i64],
) -> Result<Batch> {
    let slot = spec.channels * spec.transform.size * spec.transform.size;
    let mut images = vec![0u8; slot * indices.len()];
    let outcomes: Vec<Result<()>> = pool.install(|| {
        images
            .par_chunks_mut(slot)
            .zip(indices.par_iter())
            .map(|(out, &i)| load_one(source, spec, pass, i as usize, out))
            .collect()
    });
    let mut batch = Batch {
        images,
        labels: Vec::with_capacity(indices.len()),
        skipped: Vec::new(),
    };
    let mut kept = 0;
    for (k, (outcome, &i)) in outcomes.into_iter().zip(indices).enumerate() {
        match outcome {
            Ok(()) => {
                if kept != k {
                    batch
                        .images
                        .copy_within(k * slot..(k + 1) * slot, kept * slot);
                }
                batch.labels.push(source.label(i as usize));
                kept += 1;
            }
            Err(e) if spec.skip_bad => batch.skipped.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    batch.images.truncate(kept * slot);
    Ok(batch)
}

fn load_one(
    source: &dyn SampleSource,
    spec: &LoaderSpec,
    pass: u64,
    i: usize,
    out: &mut [u8],
) -> Result<()> {
    let bytes = source.bytes(i)?;
    let name = source.name(i);
    let mut rng = ChaCha8Rng::seed_from_u64(sample_seed(spec.seed, pass, i as u64));
    let t = &spec.transform;
    WORKER.with(|w| {
        let Worker {
            decoder,
            transformer,
        } = &mut *w.borrow_mut();
        // The transform's draws come first, from the size in the header, so that only what
        // it reads is decoded.
        let (img, plan) = decoder.decode_region(&bytes, &name, spec.channels, |w, h| {
            let plan = t.plan(w, h, &mut rng);
            (plan.region, plan)
        })?;
        transformer.render(t, &plan, img, &name, out)
    })
}
