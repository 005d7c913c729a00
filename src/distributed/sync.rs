//! What training asks of the process group, as PyTorch's `DistributedDataParallel` does it:
//! rank 0's parameters and buffers broadcast at start (and on resume, and its buffers
//! before every step: `broadcast_buffers=True`), gradients averaged between the backward
//! pass and clipping / the non-finite mask / the update (so every rank applies the same
//! step), the fixed classifier's matrix never sent (it is no parameter; every rank
//! rebuilds it and a hash of it is compared), a stop agreed by all ranks after the same
//! step, and counts of what was communicated.
use super::group::{Lane, ProcessGroup};
use crate::error::{Error, Result};
use crate::interrupt::{self, Signal};
use crate::optim::GradientSync;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::Instant;
use tch::{Kind, Tensor};

/// What the gradient all-reduce moved: per step and in total (this process's view).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CommStats {
    pub world_size: usize,
    pub backend: String,
    /// Gradient values all-reduced per step (the trainable parameters reached by the loss).
    pub floats_per_step: u64,
    pub bytes_per_step: u64,
    pub buckets_per_step: u64,
    pub bucket_mb: f64,
    pub steps: u64,
    /// Wall time in the gradient all-reduce (flatten, reduce, copy back), all steps. With
    /// `overlap`: only what the backward pass did not hide (from the last gradient to the
    /// end of the pass) and the loss's all-reduce.
    pub allreduce_s: f64,
    /// The all-reduce overlapped with the backward pass (`distributed.overlap`).
    pub overlap: bool,
    /// Bytes broadcast for rank 0's buffers (BatchNorm statistics) before the steps.
    pub buffer_bytes_per_step: u64,
    pub buffer_broadcast_s: f64,
    /// Synchronized BatchNorm (`vision.sync_batch_norm`): all-reduces and float64 values
    /// per step (forward and backward passes), and the wall time in them, all steps.
    pub sync_bn_allreduces_per_step: u64,
    pub sync_bn_values_per_step: u64,
    pub sync_bn_allreduce_s: f64,
    /// The digest of the trained weights, which every rank's matched (hex).
    pub weights_digest: Option<String>,
}

impl CommStats {
    pub fn allreduce_ms_per_step(&self) -> f64 {
        self.allreduce_s * 1000.0 / self.steps.max(1) as f64
    }
}

static STATS: Mutex<Option<CommStats>> = Mutex::new(None);

/// The counts of this process's training so far (None when it ran alone).
pub fn stats() -> Option<CommStats> {
    STATS.lock().ok().and_then(|s| s.clone())
}

pub(super) fn with_stats(f: impl FnOnce(&mut CommStats)) {
    if let Ok(mut s) = STATS.lock() {
        f(s.get_or_insert_with(CommStats::default));
    }
}

/// Records the digest of the trained weights every rank agreed on.
pub fn note_weights_digest(digest: i64) {
    with_stats(|s| s.weights_digest = Some(format!("{digest:016x}")));
}

/// Values in one all-reduce of `grads` and the flat buckets of `bucket_bytes` they fill
/// (float32 gradients; the buckets are filled in list order, as the shim fills them).
pub fn plan(numels: impl IntoIterator<Item = i64>, bucket_bytes: i64) -> (u64, u64) {
    let (mut floats, mut buckets, mut fill) = (0u64, 0u64, 0i64);
    for n in numels {
        let b = n * 4;
        if buckets == 0 || fill + b > bucket_bytes {
            buckets += 1;
            fill = 0;
        }
        fill += b;
        floats += n as u64;
    }
    (floats, buckets)
}

/// Averages every step's gradients (and the loss that guards the update) over the ranks.
pub struct GradientAverager {
    group: &'static ProcessGroup,
}

impl GradientAverager {
    /// For one run: the counts start from zero (a suite trains several runs in one
    /// process, each with its own `distributed.json`).
    pub fn new(group: &'static ProcessGroup, backend: &str) -> GradientAverager {
        with_stats(|s| {
            *s = CommStats {
                world_size: group.world_size,
                backend: backend.to_string(),
                bucket_mb: group.bucket_bytes as f64 / (1024.0 * 1024.0),
                ..CommStats::default()
            }
        });
        GradientAverager { group }
    }
}

impl GradientSync for GradientAverager {
    fn average(&self, grads: &mut [Tensor], guard: Option<&Tensor>) -> Result<()> {
        // A synchronized BatchNorm's collective that failed in this step's passes is the
        // error to stop with (the gradient all-reduce would only meet the same dead peer).
        super::sync_bn::failure(self.group)?;
        let start = Instant::now();
        let defined: Vec<usize> = (0..grads.len()).filter(|&i| grads[i].defined()).collect();
        let numels = defined.iter().map(|&i| grads[i].numel() as i64);
        let (floats, buckets) = plan(numels, self.group.bucket_bytes);
        // A mean over one rank is the gradient itself: no copies, no c10d call (the stop
        // flags and barriers still go through the group).
        if self.group.world_size > 1 {
            let mut ts: Vec<&Tensor> = defined.iter().map(|&i| &grads[i]).collect();
            // The loss rides in the last bucket: a rank's non-finite loss masks every
            // rank's update, and the recorded loss is the mean over the global batch.
            let guard32 = guard.map(|g| g.detach().to_kind(Kind::Float).reshape([1]));
            if let Some(g) = &guard32 {
                ts.push(g);
            }
            let scale = 1.0 / self.group.world_size as f64;
            let mut means = self.group.all_reduce_views("gradients", &ts, scale)?;
            if let Some(g) = guard {
                let mean = means.pop().expect("the guard's view is the last");
                tch::no_grad(|| {
                    g.shallow_clone()
                        .copy_(&mean.reshape(g.size()).to_kind(g.kind()))
                });
            }
            // The averaged gradients are views into the buckets: nothing is copied back.
            for (&i, mean) in defined.iter().zip(means) {
                grads[i] = mean;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        // The layers' all-reduces of every step so far (they ran before this one's average).
        let bn = super::sync_bn::counts();
        with_stats(|s| {
            s.floats_per_step = floats;
            s.bytes_per_step = floats * 4;
            s.buckets_per_step = buckets;
            s.steps += 1;
            s.allreduce_s += secs;
            s.sync_bn_allreduces_per_step = bn.all_reduces / s.steps;
            s.sync_bn_values_per_step = bn.values / s.steps;
            s.sync_bn_allreduce_s = bn.seconds;
        });
        Ok(())
    }
}

/// Overwrites `tensors` (a model's parameters and buffers) with rank 0's.
pub fn broadcast_from_rank0(
    group: &ProcessGroup,
    what: &str,
    tensors: &[(String, Tensor)],
) -> Result<()> {
    let ts: Vec<&Tensor> = tensors.iter().map(|(_, t)| t).collect();
    tch::no_grad(|| group.broadcast(what, Lane::Data, &ts, 0))
}

/// Rank 0's buffers (BatchNorm running statistics) to every rank before a step, as
/// DDP's `broadcast_buffers=True`: the ranks' models stay equal.
pub fn broadcast_buffers(group: &ProcessGroup, buffers: &[(String, Tensor)]) -> Result<()> {
    if buffers.is_empty() {
        return Ok(());
    }
    let start = Instant::now();
    broadcast_from_rank0(group, "buffers", buffers)?;
    let bytes: i64 = buffers
        .iter()
        .map(|(_, t)| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64)
        .sum();
    let secs = start.elapsed().as_secs_f64();
    with_stats(|s| {
        s.buffer_bytes_per_step = bytes as u64;
        s.buffer_broadcast_s += secs;
    });
    Ok(())
}

/// The first 8 bytes of the SHA-256 of `bytes`, as an integer the ranks can compare.
pub fn digest(bytes: &[u8]) -> i64 {
    let h = Sha256::digest(bytes);
    i64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}

/// Refuses to go on unless every rank has rank 0's `value` of `what` (a config, a fixed
/// matrix): every rank learns of a mismatch, so none waits for the others.
pub fn check_same(group: &ProcessGroup, what: &str, value: i64, fix: &str) -> Result<()> {
    let theirs = Tensor::from_slice(&[value]);
    group.broadcast(what, Lane::Control, &[&theirs], 0)?;
    let rank0 = theirs.int64_value(&[0]);
    let differs = group.sum_i64(what, &[i64::from(rank0 != value)])?[0];
    if differs > 0 {
        return Err(Error::distributed(
            group.rank,
            format!("comparing the {what}"),
            format!(
                "the {what} of {differs} of {} ranks differ from rank 0's{}; {fix}",
                group.world_size,
                if rank0 != value {
                    " (this one too)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(())
}

/// A yes/no every rank must agree on (the run resumes), summed over the ranks: the
/// common answer, or an error on every rank when they differ.
pub fn agree(group: &ProcessGroup, what: &str, mine: bool, fix: &str) -> Result<bool> {
    let yes = group.sum_i64(what, &[i64::from(mine)])?[0];
    if yes != 0 && yes != group.world_size as i64 {
        return Err(Error::distributed(
            group.rank,
            format!("agreeing whether {what}"),
            format!(
                "{yes} of {} ranks say yes (this one: {}); {fix}",
                group.world_size,
                if mine { "yes" } else { "no" }
            ),
        ));
    }
    Ok(yes != 0)
}

/// The stop every rank agrees on: a SIGINT or SIGTERM that reached any rank by now stops
/// all of them after this same step (the flags are all-reduced; the signal becomes this
/// rank's too, see [`interrupt::agree`]). Alone: this process's own signal.
pub fn stop_requested() -> Result<Option<Signal>> {
    let Some(group) = super::current() else {
        return Ok(interrupt::requested());
    };
    let mine = interrupt::requested();
    let flags = group.sum_i64(
        "the stop flags",
        &[
            i64::from(mine == Some(Signal::INT)),
            i64::from(mine == Some(Signal::TERM)),
        ],
    )?;
    // SIGTERM (a scheduler's, passed on by torchrun) wins over a Ctrl-C seen elsewhere.
    let agreed = if flags[1] > 0 {
        Some(Signal::TERM)
    } else if flags[0] > 0 {
        Some(Signal::INT)
    } else {
        None
    };
    if let Some(s) = agreed {
        interrupt::agree(s);
    }
    Ok(agreed)
}

/// The whole of a tensor whose slices along `dim` are spread over the ranks (this rank's,
/// `local`, starting at `lo` of `whole`), on every rank: summed into zeros (one all-reduce;
/// this is for checkpoints, not for every step). Alone: `local` itself.
pub fn gather_along(local: &Tensor, dim: i64, whole: i64, lo: i64) -> Result<Tensor> {
    let Some(group) = super::current() else {
        return Ok(local.shallow_clone());
    };
    let mut size = local.size();
    size[dim as usize] = whole;
    let out = Tensor::zeros(&size, (local.kind(), local.device()));
    tch::no_grad(|| out.narrow(dim, lo, local.size()[dim as usize]).copy_(local));
    group.all_reduce("a checkpoint's per-rank state", Lane::Data, &[&out], 1.0)?;
    Ok(out)
}

/// Sums of an evaluation's host numbers over the ranks (each evaluated its shard).
/// Alone: the numbers themselves.
pub fn sum_over_ranks(what: &str, values: &[f64]) -> Result<Vec<f64>> {
    match super::current() {
        Some(group) => group.sum_f64(what, values),
        None => Ok(values.to_vec()),
    }
}
