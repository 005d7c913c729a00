//! Image classification as an engine [`Task`]: a backbone of N features with a classifier
//! [`Head`] on top, trained on shuffled mini-batches (a new permutation per pass over the
//! data, seeded from `train.seed` and the pass, so a resumed run sees the same batches),
//! augmented on the device (random crop with zero padding, horizontal flip), evaluated by
//! loss and top-1 (top-5 for 100 classes or more) accuracy.
use super::augment::{augment, normalize};
use super::collapse::{neural_collapse, CollapseInput};
use super::config::{GlobalMean, VisionConfig};
use super::data::{ImageData, ImageSet};
use super::files::{default_workers, FileData};
use super::long_tail::{class_counts, long_tail, shot_accuracy};
use super::models::{self, Backbone};
use super::transforms::TransformKind;
use crate::classifier::{Head, HeadConfig, HeadMode, HeadShape};
use crate::distributed::{self, shard, sync::sum_over_ranks};
use crate::engine::metrics::is_buffer;
use crate::engine::TrainConfig;
use crate::engine::{
    Collapse, Evaluation, Identity, ParamReport, Split, StagedStep, Task, TrainStep, Unit,
};
use crate::error::{Error, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// The image-classification task: data, backbone, head, and where training stands.
pub struct VisionTask {
    vision: VisionConfig,
    batch_size: usize,
    eval_batch_size: usize,
    seed: u64,
    device: Device,
    source: Source,
    pub vs: nn::VarStore,
    pub backbone: Backbone,
    pub head: Head,
    mode: HeadMode,
    /// The current pass over the training data, its permutation, and the next batch in it.
    pass: usize,
    order: Vec<i64>,
    batch: usize,
    /// The staged batch (augmented images on the device, labels) until its step runs, or
    /// the error that staging it met (a file that cannot be read), which the step returns.
    staged: Option<Result<(Tensor, Tensor)>>,
}

/// Where the images come from: a set loaded whole (u8 tensors), or one streamed from files.
enum Source {
    Memory {
        data: ImageData,
        /// Held-out training images (`vision.data.valid_images`), else None: test.
        valid: Option<ImageSet>,
    },
    /// Boxed: its loaders are large beside the tensors' handles.
    Files(Box<FileData>),
}

impl Source {
    fn name(&self) -> &str {
        match self {
            Source::Memory { data, .. } => &data.name,
            Source::Files(f) => &f.name,
        }
    }
    fn classes(&self) -> i64 {
        match self {
            Source::Memory { data, .. } => data.train.classes,
            Source::Files(f) => f.classes,
        }
    }
    fn mean_std(&self) -> (&[f64], &[f64]) {
        match self {
            Source::Memory { data, .. } => (&data.mean, &data.std),
            Source::Files(f) => (&f.mean, &f.std),
        }
    }
    fn channels(&self) -> i64 {
        match self {
            Source::Memory { data, .. } => data.image_shape()[0],
            Source::Files(f) => f.shape[0],
        }
    }
}

/// The first `n` images of a set (`n = 0`: all), and the rest.
fn split_off(set: &ImageSet, first: usize) -> (ImageSet, Option<ImageSet>) {
    let len = set.labels.size()[0] as usize;
    let part = |start: usize, n: usize| ImageSet {
        images: set.images.narrow(0, start as i64, n as i64),
        labels: set.labels.narrow(0, start as i64, n as i64),
        classes: set.classes,
    };
    if first == 0 || first >= len {
        return (part(0, len), None);
    }
    (part(0, first), Some(part(first, len - first)))
}

/// The image task's classifier under `p` ([`Head::build`]), a learned one initialized as
/// PyTorch's `nn.Linear` (`fixclf bench vision` builds its heads here too).
pub fn build_head(p: &nn::Path, head: &HeadConfig, classes: i64, features: i64) -> Result<Head> {
    Head::build(
        p,
        head,
        HeadShape {
            classes,
            features,
            fixed: None,
            words: None,
            tied: None,
            learned_init: Head::linear_init(features),
        },
    )
}

/// A data set loaded whole, cut to `vision.data`'s numbers of images.
fn load_memory(vision: &VisionConfig) -> Result<Source> {
    let d = &vision.data;
    let mut data = super::data::load(d.dataset, &d.dir, Some(d.synthetic))?;
    data.train = split_off(&data.train, d.train_images).0;
    data.test = split_off(&data.test, d.test_images).0;
    let valid = if d.valid_images > 0 {
        let n = data.train.labels.size()[0] as usize;
        let keep = n.saturating_sub(d.valid_images).max(1);
        let (train, valid) = split_off(&data.train, keep);
        data.train = train;
        valid
    } else {
        None
    };
    data.train = long_tail(&data.train, d.imbalance);
    Ok(Source::Memory { data, valid })
}

impl VisionTask {
    /// Loads the data of `vision` and builds backbone + head on `device` (after
    /// [`crate::engine::prepare`] seeded the weights).
    pub fn new(
        vision: &VisionConfig,
        train: &TrainConfig,
        head: &HeadConfig,
        device: Device,
    ) -> Result<VisionTask> {
        let vision = vision.clone();
        let source = if vision.data.dataset.is_streamed() {
            let workers = default_workers(vision.data.workers, train.threads);
            Source::Files(Box::new(FileData::open(&vision, train.seed, workers)?))
        } else {
            load_memory(&vision)?
        };
        let vs = nn::VarStore::new(device);
        let channels = source.channels();
        let classes = Some(source.classes());
        let backbone = models::build_for(
            &(vs.root() / "backbone"),
            &vision.model,
            channels,
            classes,
            vision.sync_batch_norm,
        )?
        .with_memory_format(&vs, vision.memory_format);
        let (classes, features) = (source.classes(), backbone.features);
        let head_cfg = head;
        let head = build_head(&(vs.root() / "head"), head_cfg, classes, features)?;
        Ok(VisionTask {
            // Data parallel: each rank takes B / N images of the global batch B.
            batch_size: shard::per_rank_batch(train.batch_size, distributed::world_size())?,
            eval_batch_size: train.eval_batch_size,
            seed: train.seed,
            device,
            source,
            vs,
            backbone,
            head,
            mode: head_cfg.mode,
            pass: 0,
            order: Vec::new(),
            batch: 0,
            staged: None,
            vision,
        })
    }

    /// The head's classes: the data's, or the rows pre-allocated by `head.classes`.
    fn head_rows(&self) -> i64 {
        self.head.classes()
    }

    fn train_len(&self) -> usize {
        match &self.source {
            Source::Memory { data, .. } => data.train.labels.size()[0] as usize,
            Source::Files(f) => f.train_len(),
        }
    }

    /// Training images this rank sees per pass (PyTorch's DistributedSampler: the pass
    /// padded to a multiple of the ranks; all of them in a single process).
    fn rank_len(&self) -> usize {
        self.train_len().div_ceil(distributed::world_size())
    }

    /// The images (u8) and labels of `set` at `idx`, on the device.
    fn batch(&self, set: &ImageSet, idx: &Tensor) -> (Tensor, Tensor) {
        let x = set.images.index_select(0, idx).to_device(self.device);
        let y = set.labels.index_select(0, idx).to_device(self.device);
        (x, y)
    }

    /// The permutation of the training images for pass `pass` (0-based), this rank's
    /// part of it (every N-th from the rank's, as PyTorch's DistributedSampler takes them).
    fn order_of(&self, pass: usize) -> Vec<i64> {
        let mut order: Vec<i64> = (0..self.train_len() as i64).collect();
        let seed = self.seed ^ (pass as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        shard::sampler(&order, distributed::rank(), distributed::world_size())
    }

    /// The features `[S, N]` as the head's rows see them ([`Head::features`]; f32, on the
    /// device) of every image of the training split (`train`) or the test split, in order,
    /// the classifier's predictions `[S]` and the labels `[S]` (CPU): eval mode (BatchNorm's
    /// running statistics, no dropout), normalized, not augmented (streamed sets: the
    /// evaluation transform), in batches of `eval_batch_size`. Kept whole (`S x N x 4` bytes:
    /// 15 MB for Fashion-MNIST on 64 features) because the nearest-class-mean accuracy needs
    /// the means of all of them first.
    fn features_and_predictions(&self, train: bool) -> Result<(Tensor, Tensor, Tensor)> {
        let (mean, std) = self.source.mean_std();
        let (mut parts, mut preds, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        let mut visit = |x: Tensor, y: Tensor| {
            tch::no_grad(|| {
                let x = normalize(&x, mean, std);
                let f = self.backbone.net.forward_t(&x, false);
                preds.push(self.head.logits(&f).argmax(-1, false));
                parts.push(self.head.features(&f).to_kind(Kind::Float));
            });
            labels.push(y.to_device(Device::Cpu));
        };
        match &self.source {
            Source::Memory { data, .. } => {
                let set = if train { &data.train } else { &data.test };
                let n = set.labels.size()[0];
                let mut start = 0;
                while start < n {
                    let len = (self.eval_batch_size as i64).min(n - start);
                    let x = set.images.narrow(0, start, len).to_device(self.device);
                    visit(x, set.labels.narrow(0, start, len));
                    start += len;
                }
            }
            Source::Files(f) => {
                f.for_each_eval_batch(train, self.eval_batch_size, self.device, visit)?
            }
        }
        if parts.is_empty() {
            let none = Tensor::zeros([0], (Kind::Int64, Device::Cpu));
            return Ok((none.shallow_clone(), none.shallow_clone(), none));
        }
        Ok((
            Tensor::cat(&parts, 0),
            Tensor::cat(&preds, 0),
            Tensor::cat(&labels, 0),
        ))
    }

    /// The diagnostics of the training split (`train`) or the test split (None when fewer
    /// than two classes have samples).
    fn collapse_of(&self, train: bool, epoch: usize) -> Result<Option<(Collapse, Tensor)>> {
        let (features, predictions, labels) = self.features_and_predictions(train)?;
        if labels.size()[0] == 0 {
            return Ok(None);
        }
        let weights = self.head.class_weights();
        let input = CollapseInput {
            features: &features,
            labels: &labels,
            weights: &weights,
            predictions: Some(&predictions),
        };
        let weighted = self.vision.collapse_global_mean == GlobalMean::Weighted;
        Ok(neural_collapse(&input, epoch, weighted)?.map(|c| (c, labels)))
    }

    /// Learned parameters of the backbone at its usual width, when `fixdim` narrowed it (the
    /// parameters Zhu et al.'s N = C removes are counted against it).
    fn usual_backbone_params(&self) -> Result<Option<(i64, i64)>> {
        if !self.vision.model.fixdim {
            return Ok(None);
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let b = models::build(&vs.root(), &self.vision.model, self.source.channels())?;
        Ok(Some((models::trainable_params(&vs), b.features)))
    }

    /// A split of a set loaded whole.
    fn eval_set<'a>(
        data: &'a ImageData,
        valid: &'a Option<ImageSet>,
        split: Split,
    ) -> &'a ImageSet {
        match split {
            Split::Train => &data.train,
            Split::Valid => valid.as_ref().unwrap_or(&data.test),
            Split::Test => &data.test,
        }
    }

    /// Images in the evaluation of `split`.
    fn eval_len(&self, split: Split) -> usize {
        match &self.source {
            Source::Memory { data, valid } => {
                Self::eval_set(data, valid, split).labels.size()[0] as usize
            }
            Source::Files(f) if split == Split::Train => f.train_len(),
            Source::Files(f) => f.eval_len(),
        }
    }
}

impl Task for VisionTask {
    fn name(&self) -> &'static str {
        "vision"
    }
    fn unit(&self) -> Unit {
        Unit::Images
    }
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn device(&self) -> Device {
        self.device
    }
    fn head(&self) -> &Head {
        &self.head
    }
    fn head_mode(&self) -> HeadMode {
        self.mode
    }
    fn classes(&self) -> i64 {
        self.head_rows()
    }
    fn params(&self) -> ParamReport {
        let backbone: i64 = self
            .vs
            .variables()
            .iter()
            .filter(|(name, _)| !name.starts_with("head.") && !is_buffer(name))
            .map(|(_, t)| t.numel() as i64)
            .sum();
        let (c, n) = (self.source.classes(), self.backbone.features);
        // The learned baseline: the usual backbone (fixdim narrows it) and a C x N
        // classifier on it; what a head removes is the difference to it.
        let (backbone, n) = self
            .usual_backbone_params()
            .ok()
            .flatten()
            .unwrap_or((backbone, n));
        let classifier = n * c + c;
        ParamReport::new(
            &self.vs,
            self.head.fixed_numel(),
            backbone + classifier,
            classifier,
        )
    }
    fn removable(&self) -> &'static str {
        "classifier"
    }
    fn describe_data(&self) -> String {
        let held_out = matches!(&self.source, Source::Memory { valid: Some(_), .. });
        format!(
            "{}: {} classes | train {} images | {} {} images",
            self.source.name(),
            self.classes(),
            self.train_len(),
            if held_out { "valid" } else { "test" },
            self.eval_len(Split::Valid)
        )
    }
    fn identity(&self) -> Vec<Identity> {
        vec![
            Identity {
                key: "dataset",
                value: self.source.name().to_string(),
                checked_as: Some("data set"),
            },
            Identity {
                key: "classes",
                value: self.classes().to_string(),
                checked_as: Some("number of classes"),
            },
            Identity {
                key: "model",
                value: serde_json::to_string(&self.vision.model).unwrap_or_default(),
                checked_as: Some("model architecture"),
            },
        ]
    }
    fn steps_per_epoch(&self) -> usize {
        self.rank_len().div_ceil(self.batch_size)
    }
    fn start_epoch(&mut self, _epoch: usize, position: usize) {
        let spe = self.steps_per_epoch().max(1);
        self.pass = position / spe;
        self.batch = position % spe;
        self.order = self.order_of(self.pass);
        if let Source::Files(f) = &mut self.source {
            f.reset_skipped();
            f.start_pass(self.pass, &self.order, self.batch_size, self.batch);
        }
    }
    fn stage_step(&mut self, _rng: &mut StdRng) -> Option<StagedStep> {
        let start = self.batch * self.batch_size;
        if start >= self.rank_len() {
            return None;
        }
        let end = (start + self.batch_size).min(self.rank_len());
        let (mut pad, mut flip) = (self.vision.crop_padding, self.vision.flip);
        let batch = match &mut self.source {
            Source::Memory { data, .. } => {
                let idx = Tensor::from_slice(&self.order[start..end]);
                let x = data
                    .train
                    .images
                    .index_select(0, &idx)
                    .to_device(self.device);
                let y = data
                    .train
                    .labels
                    .index_select(0, &idx)
                    .to_device(self.device);
                Ok((x, y))
            }
            Source::Files(f) => {
                // The loader's transform crops and flips unless it is `none`.
                if self.vision.transform.train != TransformKind::None {
                    (pad, flip) = (0, false);
                }
                f.next_train(self.device)
            }
        };
        let (mean, std) = self.source.mean_std();
        let staged = batch.map(|(x, y)| (augment(&x, mean, std, pad, flip), y));
        // Skipped files make a batch smaller; an error stops the step that runs it.
        let n = staged
            .as_ref()
            .map_or(end - start, |(_, y)| y.size()[0] as usize);
        self.staged = Some(staged);
        self.batch += 1;
        Some(StagedStep {
            key: n,
            lr_scale: 1.0,
            // Every rank's batch of a step has the same size: the global batch's.
            units: n * distributed::world_size(),
            samples: Some((n * distributed::world_size()) as u64),
        })
    }
    fn compute_step(&mut self, _staged: &StagedStep) -> Result<TrainStep> {
        let Some(staged) = self.staged.take() else {
            return Err(Error::Torch(tch::TchError::Torch(
                "compute_step without a staged batch".into(),
            )));
        };
        let (x, y) = staged?;
        let features = self.backbone.net.forward_t(&x, true);
        let tl = self.head.training_loss(&features, &y);
        let correct = tch::no_grad(|| {
            self.head
                .logits(&features.detach())
                .argmax(-1, false)
                .eq_tensor(&y)
                .sum(Kind::Int64)
        });
        Ok(TrainStep {
            loss: tl.value.detach(),
            objective: tl.objective,
            correct: Some(correct),
        })
    }
    fn skipped_files(&self) -> u64 {
        match &self.source {
            Source::Memory { .. } => 0,
            Source::Files(f) => f.skipped(),
        }
    }
    fn position(&self) -> usize {
        self.pass * self.steps_per_epoch() + self.batch
    }
    fn next_epoch_position(&self) -> usize {
        let spe = self.steps_per_epoch();
        if self.batch >= spe {
            (self.pass + 1) * spe
        } else {
            self.position()
        }
    }
    /// After the last epoch, and every `vision.collapse_every` epochs: NC1-3 and the
    /// nearest-class-mean accuracy of the backbone's training features against the head's
    /// class rows ([`Head::class_weights`]; for the fixed heads the features before their
    /// normalization, as Papyan et al. measure the penultimate layer).
    fn collapse(&self, epoch: usize, last_epoch: bool) -> Result<Option<Collapse>> {
        let every = self.vision.collapse_every;
        if self.train_len() == 0 || !last_epoch && (every == 0 || epoch % every != 0) {
            return Ok(None);
        }
        let Some((mut train, train_labels)) = self.collapse_of(true, epoch)? else {
            return Ok(None);
        };
        if self.vision.collapse_test {
            if let Some((mut test, _)) = self.collapse_of(false, epoch)? {
                test.split = "test".into();
                let counts = class_counts(&train_labels, self.head_rows());
                let acc = test.per_class.as_ref().map(|p| p.acc.clone());
                let d = &self.vision.data;
                test.shots = acc.map(|a| shot_accuracy(&counts, &a, d.many_shot, d.few_shot));
                train.test = Some(Box::new(test));
            }
        }
        Ok(Some(train))
    }
    fn evaluate(&self, split: Split) -> Result<Evaluation> {
        let top5 = self.classes() >= 100;
        let (mut loss, mut correct, mut correct5, mut n) = (0.0, 0i64, 0i64, 0i64);
        let (mean, std) = self.source.mean_std();
        let mut eval_batch = |x: Tensor, y: Tensor| {
            tch::no_grad(|| {
                let x = normalize(&x, mean, std);
                let logits = self.head.logits(&self.backbone.net.forward_t(&x, false));
                n += y.size()[0];
                loss += logits
                    .cross_entropy_loss::<Tensor>(&y, None, tch::Reduction::Sum, -100, 0.0)
                    .double_value(&[]);
                correct += logits
                    .argmax(-1, false)
                    .eq_tensor(&y)
                    .sum(Kind::Int64)
                    .int64_value(&[]);
                if top5 {
                    let (_, best) = logits.topk(5, -1, true, true);
                    correct5 += best
                        .eq_tensor(&y.unsqueeze(-1))
                        .sum(Kind::Int64)
                        .int64_value(&[]);
                }
            })
        };
        match &self.source {
            Source::Memory { data, valid } => {
                let set = Self::eval_set(data, valid, split);
                let total = set.labels.size()[0] as usize;
                let rank = distributed::rank();
                let (lo, hi) = shard::range(total, rank, distributed::world_size());
                let (mut start, total) = (lo as i64, hi as i64);
                while start < total {
                    let len = (self.eval_batch_size as i64).min(total - start);
                    let idx = Tensor::arange_start(start, start + len, (Kind::Int64, Device::Cpu));
                    let (x, y) = self.batch(set, &idx);
                    eval_batch(x, y);
                    start += len;
                }
            }
            Source::Files(f) => {
                let train = split == Split::Train;
                f.for_each_eval_batch(train, self.eval_batch_size, self.device, eval_batch)?
            }
        }
        // Data parallel: a set loaded whole is scored in shards, one per rank, and the sums
        // added; a streamed set is scored whole by every rank (the same weights, the same sums).
        let (loss, correct, correct5, n) = if matches!(self.source, Source::Memory { .. }) {
            let local = [loss, correct as f64, correct5 as f64, n as f64];
            let sums = sum_over_ranks("evaluation sums", &local)?;
            (sums[0], sums[1], sums[2], sums[3])
        } else {
            (loss, correct as f64, correct5 as f64, n as f64)
        };
        let n = n.max(1.0);
        Ok(Evaluation {
            loss: loss / n,
            ppl: None,
            acc: Some(correct / n),
            top5: top5.then_some(correct5 / n),
        })
    }
}
