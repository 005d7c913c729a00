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
//!
//! `fixclf bench allreduce` (the all-reduce alone) is `crate::bench::allreduce`.
//!
//! The group of the process is global, as PyTorch's default process group is: the task's
//! data split, the trainer and the evaluation all ask [`current`].
pub mod config;
pub mod env;
pub mod group;
pub mod overlap;
pub mod shard;
pub mod sync;
#[cfg(test)]
mod tests;

pub use config::{Backend, DistributedConfig};
pub use env::Launch;
pub use group::{GroupSettings, Lane, ProcessGroup};
pub use sync::{CommStats, GradientAverager};

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
/// (`backend = "auto"`). Returns the group, None for a process alone.
pub fn init_from_env(
    cfg: &DistributedConfig,
    device: tch::Device,
) -> Result<Option<&'static ProcessGroup>> {
    let Some(launch) = Launch::from_env()? else {
        return Ok(None);
    };
    if let Some(g) = current() {
        return Ok(Some(g));
    }
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
    let settings = GroupSettings {
        timeout_s: cfg.timeout_s,
        bucket_bytes: cfg.bucket_bytes(),
        nccl_device: match device {
            tch::Device::Cuda(i) if nccl => Some(i),
            _ => None,
        },
        overlap: cfg.overlap,
    };
    let group = ProcessGroup::new(&launch, &settings)?;
    let _ = CURRENT.set(group);
    Ok(current())
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
