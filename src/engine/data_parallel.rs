//! The trainer's side of data-parallel training (see [`crate::distributed`]): what it does
//! differently when the process is one rank of several. Alone, every function here does
//! nothing, and training is the single-process run.
//!
//! Rank 0 alone writes the run folder (config, metrics, checkpoints, summary); the others
//! compute the same steps and wait at a barrier after each checkpoint, so no rank reads a
//! checkpoint before it is in place or exits while rank 0 still writes one. Every rank
//! reads `last.safetensors` on resume (the run folder must be on a file system every rank
//! sees, as for PyTorch's own checkpoints), then takes rank 0's weights anyway.
use super::trainer::Trainer;
use super::{model_tensors, Task};
use crate::classifier::Head;
use crate::distributed::overlap::OverlappedAverager;
use crate::distributed::{self, sync, GradientAverager, ProcessGroup};
use crate::error::Result;
use crate::optim::GradientSync;
use tch::Tensor;

/// Whether this process writes the run's files.
pub(super) fn writes() -> bool {
    distributed::is_writer()
}

/// Rank 0's answer to "does the run resume?", refused unless every rank sees the same
/// (a run folder missing on some rank). Also the point every rank has passed its checks
/// of the run folder before rank 0 creates it.
pub(super) fn agree_resume(resume: bool) -> Result<bool> {
    let Some(group) = distributed::current() else {
        return Ok(resume);
    };
    sync::agree(
        group,
        "the run resumes from last.safetensors",
        resume,
        "put runs_dir on a file system every rank sees",
    )
}

/// A digest of the fixed classifier's matrix (its spec and values), which every rank
/// rebuilds from its spec instead of receiving.
pub fn fixed_matrix_digest(head: &Head) -> Option<i64> {
    let spec = head.fixed_spec()?;
    let q = head.class_weights().to_device(tch::Device::Cpu);
    let values = Vec::<f32>::try_from(q.flatten(0, -1).to_kind(tch::Kind::Float)).ok()?;
    let mut bytes = serde_json::to_vec(spec).unwrap_or_default();
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    Some(sync::digest(&bytes))
}

/// The buffers of a model (BatchNorm's running statistics): trained by no gradient.
fn buffers(task: &dyn Task) -> Vec<(String, Tensor)> {
    model_tensors(task)
        .into_iter()
        .filter(|(_, t)| !t.requires_grad())
        .collect()
}

impl Trainer<'_> {
    /// Once the model is built (and loaded, on resume): rank 0's parameters and buffers to
    /// every rank, the fixed matrix compared across ranks (never sent), gradient averaging
    /// switched on in the optimizer.
    pub(super) fn join_ranks(&mut self) -> Result<()> {
        let Some(group) = distributed::current() else {
            return Ok(());
        };
        sync::broadcast_from_rank0(group, "parameters and buffers", &model_tensors(self.task))?;
        let digest = fixed_matrix_digest(self.task.head()).unwrap_or(0);
        sync::check_same(
            group,
            "fixed classifier matrix",
            digest,
            "every rank must rebuild the same matrix: same config, same embeddings file",
        )?;
        let backend = if self.task.device().is_cuda() {
            "nccl"
        } else {
            "gloo"
        };
        let sync: Box<dyn GradientSync> = if group.overlap {
            let params: Vec<&Tensor> = self.opt.params().iter().map(|p| &p.tensor).collect();
            let names: Vec<String> = self.opt.params().iter().map(|p| p.name.clone()).collect();
            Box::new(OverlappedAverager::new(group, backend, &params, &names)?)
        } else {
            Box::new(GradientAverager::new(group, backend))
        };
        self.opt.set_gradient_sync(sync);
        if !self.quiet {
            self.describe_ranks(group, backend);
        }
        Ok(())
    }

    fn describe_ranks(&self, group: &ProcessGroup, backend: &str) {
        let numels = self.opt.params().iter().map(|p| p.tensor.numel() as i64);
        let (floats, buckets) = sync::plan(numels, group.bucket_bytes);
        let buckets = match sync::stats() {
            Some(s) if s.overlap => s.buckets_per_step,
            _ => buckets,
        };
        println!(
            "| data parallel: {} ranks over {backend}, batch {} per rank of {} | {:.2} M floats \
             ({:.1} MB) all-reduced per step in {buckets} bucket(s){}",
            group.world_size,
            self.settings.batch_size / group.world_size,
            self.settings.batch_size,
            floats as f64 / 1e6,
            floats as f64 * 4.0 / 1e6,
            if group.overlap {
                ", overlapped with the backward pass"
            } else {
                ""
            },
        );
    }

    /// After the last step: every rank's weights are bitwise rank 0's (they took the same
    /// steps from the same start), checked by a digest of their bytes; and the digest is
    /// kept with the communication counts.
    pub(super) fn check_weights_agree(&self) -> Result<()> {
        let Some(group) = distributed::current() else {
            return Ok(());
        };
        let mut bytes = Vec::new();
        for (name, t) in model_tensors(self.task) {
            let t = t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float);
            let values = Vec::<f32>::try_from(t.flatten(0, -1))?;
            bytes.extend(name.as_bytes());
            bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        }
        let digest = sync::digest(&bytes);
        sync::check_same(
            group,
            "trained weights",
            digest,
            "the ranks diverged: report this with the config",
        )?;
        sync::note_weights_digest(digest);
        Ok(())
    }

    /// Before a step: rank 0's buffers to every rank (PyTorch DDP's `broadcast_buffers`).
    pub(super) fn sync_buffers(&self) -> Result<()> {
        match distributed::current() {
            Some(group) => sync::broadcast_buffers(group, &buffers(self.task)),
            None => Ok(()),
        }
    }

    /// After rank 0 wrote a file the others may read or must not outlive.
    pub(super) fn wait_for_writer(&self, what: &str) -> Result<()> {
        match distributed::current() {
            Some(group) => group.barrier(what),
            None => Ok(()),
        }
    }

    /// What the ranks communicated, in the run folder (`distributed.json`; rank 0).
    pub(super) fn write_comm_stats(&self) -> Result<()> {
        match sync::stats() {
            Some(stats) if writes() => self.run.write_json(COMM_FILE, &stats),
            _ => Ok(()),
        }
    }
}

/// What a data-parallel run communicated (a [`sync::CommStats`] as JSON).
pub const COMM_FILE: &str = "distributed.json";
