//! Image classification as an engine [`Task`]: a backbone of N features with a classifier
//! [`Head`] on top, trained on shuffled mini-batches (a new permutation per pass over the
//! data, seeded from `train.seed` and the pass, so a resumed run sees the same batches),
//! augmented on the device (random crop with zero padding, horizontal flip), evaluated by
//! loss and top-1 (top-5 for 100 classes or more) accuracy.
use super::augment::{augment, normalize};
use super::collapse::neural_collapse;
use super::config::VisionConfig;
use super::data::{ImageData, ImageSet};
use super::models::{self, Backbone};
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
    data: ImageData,
    /// Held-out training images (`vision.data.valid_images`), else None: validate on test.
    valid: Option<ImageSet>,
    pub vs: nn::VarStore,
    pub backbone: Backbone,
    pub head: Head,
    mode: HeadMode,
    /// The current pass over the training data, its permutation, and the next batch in it.
    pass: usize,
    order: Vec<i64>,
    batch: usize,
    /// The staged batch (augmented images on the device, labels) until its step runs.
    staged: Option<(Tensor, Tensor)>,
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
        let vs = nn::VarStore::new(device);
        let channels = data.train.images.size()[1];
        let backbone = models::build(&(vs.root() / "backbone"), &vision.model, channels)?
            .with_memory_format(&vs, vision.memory_format);
        let (classes, features) = (data.train.classes, backbone.features);
        let head_cfg = head;
        let head = build_head(&(vs.root() / "head"), head_cfg, classes, features)?;
        Ok(VisionTask {
            // Data parallel: each rank takes B / N images of the global batch B.
            batch_size: shard::per_rank_batch(train.batch_size, distributed::world_size())?,
            eval_batch_size: train.eval_batch_size,
            seed: train.seed,
            device,
            data,
            valid,
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

    fn train_len(&self) -> usize {
        self.data.train.labels.size()[0] as usize
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

    /// The backbone's features `[S, N]` (f32, on the device) of every training image, in
    /// order: eval mode (BatchNorm's running statistics, no dropout), normalized, not
    /// augmented, in batches of `eval_batch_size`. Kept whole (`S x N x 4` bytes: 15 MB for
    /// Fashion-MNIST on 64 features) because the nearest-class-mean accuracy needs the means
    /// of all of them first.
    fn train_features(&self) -> Tensor {
        let set = &self.data.train;
        let n = set.labels.size()[0];
        let mut parts = Vec::new();
        tch::no_grad(|| {
            let mut start = 0;
            while start < n {
                let len = (self.eval_batch_size as i64).min(n - start);
                let x = set.images.narrow(0, start, len).to_device(self.device);
                let x = normalize(&x, &self.data.mean, &self.data.std);
                let f = self.backbone.net.forward_t(&x, false);
                parts.push(f.to_kind(Kind::Float));
                start += len;
            }
        });
        Tensor::cat(&parts, 0)
    }

    fn eval_set(&self, split: Split) -> &ImageSet {
        match split {
            Split::Train => &self.data.train,
            Split::Valid => self.valid.as_ref().unwrap_or(&self.data.test),
            Split::Test => &self.data.test,
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
        self.data.train.classes
    }
    fn params(&self) -> ParamReport {
        let backbone: i64 = self
            .vs
            .variables()
            .iter()
            .filter(|(name, _)| !name.starts_with("head.") && !is_buffer(name))
            .map(|(_, t)| t.numel() as i64)
            .sum();
        let (c, n) = (self.classes(), self.backbone.features);
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
        format!(
            "{}: {} classes | train {} images | {} {} images",
            self.data.name,
            self.classes(),
            self.train_len(),
            if self.valid.is_some() {
                "valid"
            } else {
                "test"
            },
            self.eval_set(Split::Valid).labels.size()[0]
        )
    }
    fn identity(&self) -> Vec<Identity> {
        vec![
            Identity {
                key: "dataset",
                value: self.data.name.clone(),
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
    }
    fn stage_step(&mut self, _rng: &mut StdRng) -> Option<StagedStep> {
        let start = self.batch * self.batch_size;
        if start >= self.rank_len() {
            return None;
        }
        let end = (start + self.batch_size).min(self.rank_len());
        let idx = Tensor::from_slice(&self.order[start..end]);
        let (x, y) = self.batch(&self.data.train, &idx);
        let (mean, std) = (&self.data.mean, &self.data.std);
        let x = augment(&x, mean, std, self.vision.crop_padding, self.vision.flip);
        self.staged = Some((x, y));
        self.batch += 1;
        Some(StagedStep {
            key: end - start,
            lr_scale: 1.0,
            // Every rank's batch of a step has the same size: the global batch's.
            units: (end - start) * distributed::world_size(),
            samples: Some(((end - start) * distributed::world_size()) as u64),
        })
    }
    fn compute_step(&mut self, _staged: &StagedStep) -> Result<TrainStep> {
        let Some((x, y)) = self.staged.take() else {
            return Err(Error::Torch(tch::TchError::Torch(
                "compute_step without a staged batch".into(),
            )));
        };
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
        let features = self.train_features();
        let weights = self.head.class_weights();
        neural_collapse(&features, &self.data.train.labels, &weights, epoch)
    }
    fn evaluate(&self, split: Split) -> Result<Evaluation> {
        let set = self.eval_set(split);
        let n = set.labels.size()[0];
        let top5 = self.classes() >= 100;
        let (mut loss, mut correct, mut correct5) = (0.0, 0i64, 0i64);
        // Data parallel: each rank scores its shard, and the sums are added.
        let (lo, hi) = shard::range(n as usize, distributed::rank(), distributed::world_size());
        tch::no_grad(|| {
            let (mut start, n) = (lo as i64, hi as i64);
            while start < n {
                let len = (self.eval_batch_size as i64).min(n - start);
                let idx = Tensor::arange_start(start, start + len, (Kind::Int64, Device::Cpu));
                let (x, y) = self.batch(set, &idx);
                let x = normalize(&x, &self.data.mean, &self.data.std);
                let logits = self.head.logits(&self.backbone.net.forward_t(&x, false));
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
                start += len;
            }
        });
        let sums = sum_over_ranks("evaluation sums", &[loss, correct as f64, correct5 as f64])?;
        let (loss, correct, correct5) = (sums[0], sums[1], sums[2]);
        let n = n.max(1) as f64;
        Ok(Evaluation {
            loss: loss / n,
            ppl: None,
            acc: Some(correct / n),
            top5: top5.then_some(correct5 / n),
        })
    }
}
