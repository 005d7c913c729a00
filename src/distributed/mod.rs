//! Data-parallel training on PyTorch's own c10d, launched as PyTorch users launch it
//! (`torchrun --no-python --nproc-per-node N fixclf train ...`, or any launcher that sets
//! torchrun's variables): one process per rank, each training on its share of every
//! batch, gradients averaged by bucketed all-reduce between the backward pass and the
//! update, so every rank takes the same step.
//!
//! - [`env`]: the launch from the environment (none: one process, nothing here runs).
//! - [`group`]: the process group (TCPStore + Gloo, or NCCL on CUDA) and its collectives.
//! - [`sync`]: what training asks of the group: gradient averaging, rank 0's weights
//!   broadcast, agreement checks (config, fixed matrix, resume), the agreed stop.
//! - [`overlap`]: the gradient averaging overlapped with the backward pass (c10d's
//!   `Reducer`, `distributed.overlap`).
//! - [`shard`]: which part of the data each rank takes.
//! - [`rank0`]: what rank 0 decides or does alone for every rank (a suite's choices
//!   between runs, its embeddings), the others told or waiting.
//! - [`sync_bn`]: synchronized BatchNorm (`vision.sync_batch_norm`): the global batch's
//!   statistics in training, through an autograd function with collectives in the shim.
//!
//! `fixclf bench allreduce` (the all-reduce alone) is `crate::bench::allreduce`.
//!
//! The group of the process is global, as PyTorch's default process group is: the task's
//! data split, the trainer and the evaluation all ask [`current`]. It is built once, by
//! the first run of the process; the next runs of a suite reuse it (their `[distributed]`
//! settings must be the first's).
pub mod config;
pub mod env;
pub mod group;
pub mod overlap;
pub mod rank0;
pub mod shard;
pub mod sync;
pub mod sync_bn;
#[cfg(test)]
mod tests;

pub use config::{Backend, DistributedConfig};
pub use env::Launch;
pub use group::{GroupSettings, Lane, ProcessGroup};
pub use sync::{CommStats, GradientAverager};
pub use sync_bn::SyncBatchNorm;

use crate::error::{Error, Result};
use std::sync::OnceLock;

static CURRENT: OnceLock<ProcessGroup> = OnceLock::new();

/// The process group of this process, when it was launched as one rank of several.
pub fn current() -> Option<&'static ProcessGroup> {
    CURRENT.get()
}

/// This process's rank (0 when alone).
pub fn rank() -> usize {
    current().map_or(0, |g| g.rank)
}

/// Ranks in the launch (1 when alone).
pub fn world_size() -> usize {
    current().map_or(1, |g| g.world_size)
}

/// Whether this process writes the run's files (rank 0, or a process alone).
pub fn is_writer() -> bool {
    rank() == 0
}

/// Joins the launch described by the environment, if any: builds the process group
/// (once per process) with `cfg`'s timeout and buckets, NCCL on `device` when it is CUDA
/// (`backend = "auto"`). Returns the group, None for a process alone. A later call (the
/// next run of a suite) gets the same group, and an error naming the field when its
/// settings are not the group's.
pub fn init_from_env(
    cfg: &DistributedConfig,
    device: tch::Device,
) -> Result<Option<&'static ProcessGroup>> {
    let Some(launch) = Launch::from_env()? else {
        return Ok(None);
    };
    let settings = group_settings(cfg, device)?;
    if let Some(g) = current() {
        check_reusable(g, &settings)?;
        return Ok(Some(g));
    }
    let group = ProcessGroup::new(&launch, &settings)?;
    let _ = CURRENT.set(group);
    Ok(current())
}

/// The group `cfg` asks for on `device`: Gloo, or NCCL on a CUDA device.
pub fn group_settings(cfg: &DistributedConfig, device: tch::Device) -> Result<GroupSettings> {
    let nccl = match (cfg.backend, device) {
        (Backend::Gloo, _) => false,
        (Backend::Auto, tch::Device::Cuda(_)) => true,
        (Backend::Auto, _) => false,
        (Backend::Nccl, tch::Device::Cuda(_)) => true,
        (Backend::Nccl, _) => {
            return Err(Error::config(
                "[distributed]",
                "distributed.backend",
                "nccl needs a CUDA device (train.device); use gloo on the CPU",
            ))
        }
    };
    if nccl && !group::has_nccl() {
        return Err(Error::config(
            "[distributed]",
            "distributed.backend",
            "this binary has no NCCL (build with --features cuda on the full torch install, \
             which brings nvidia-nccl's nccl.h); or set distributed.backend = \"gloo\"",
        ));
    }
    Ok(GroupSettings {
        timeout_s: cfg.timeout_s,
        bucket_bytes: cfg.bucket_bytes(),
        nccl_device: match device {
            tch::Device::Cuda(i) if nccl => Some(i),
            _ => None,
        },
        overlap: cfg.overlap,
    })
}

/// The process's group serves a later run only with the settings it was built with: its
/// timeout and backend are fixed at creation (and the buckets kept alike, so that a run's
/// `distributed.json` says what it used).
fn check_reusable(g: &ProcessGroup, wanted: &GroupSettings) -> Result<()> {
    let have = g.settings();
    let mb = |b: i64| b as f64 / (1024.0 * 1024.0);
    let lane = |d: Option<usize>| d.map_or("gloo".to_string(), |i| format!("nccl on cuda:{i}"));
    let (field, theirs, mine) = if have.timeout_s != wanted.timeout_s {
        (
            "distributed.timeout_s",
            have.timeout_s.to_string(),
            wanted.timeout_s.to_string(),
        )
    } else if have.bucket_bytes != wanted.bucket_bytes {
        (
            "distributed.bucket_mb",
            mb(have.bucket_bytes).to_string(),
            mb(wanted.bucket_bytes).to_string(),
        )
    } else if have.overlap != wanted.overlap {
        (
            "distributed.overlap",
            have.overlap.to_string(),
            wanted.overlap.to_string(),
        )
    } else if have.nccl_device != wanted.nccl_device {
        (
            "distributed.backend",
            lane(have.nccl_device),
            lane(wanted.nccl_device),
        )
    } else {
        return Ok(());
    };
    Err(Error::config(
        "[distributed]",
        field,
        format!(
            "{mine} here, but this process's group was built with {theirs} by an earlier \
             run; the runs of one launch (a suite) need the same [distributed] settings and \
             train.device"
        ),
    ))
}

/// The CUDA device of this rank under a launch: `cuda:LOCAL_RANK` (torchrun's convention),
/// for a config that says `cuda` or `auto` without an index.
pub fn local_device(name: &str) -> Result<Option<String>> {
    let Some(launch) = Launch::from_env()? else {
        return Ok(None);
    };
    Ok(match name {
        "cuda" | "auto" if tch::Cuda::is_available() => Some(format!("cuda:{}", launch.local_rank)),
        _ => None,
    })
}
