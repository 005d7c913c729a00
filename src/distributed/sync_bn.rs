//! Synchronized BatchNorm (`vision.sync_batch_norm`), PyTorch's `torch.nn.SyncBatchNorm`:
//! in training under a launch of several ranks, a BatchNorm layer normalizes with the
//! statistics of the global batch (every rank's images), not of the rank's share, so N
//! ranks at B / N compute what one process at B computes. The work is an autograd function
//! in the shim (`csrc/fixclf_sync_bn.cpp`): one all-reduce of per-channel count, sum and
//! sum of squares in the forward pass, one of `sum(dy)` and `sum(dy (x - mean))` in the
//! backward pass, on the data lane. Evaluation, a process alone and one rank alone are
//! tch's `nn::BatchNorm` exactly.
//!
//! The variables are `nn::batch_norm2d`'s (`weight`, `bias`, `running_mean`,
//! `running_var`), so checkpoints load with and without synchronization.
use super::group::ProcessGroup;
use crate::error::Result;
use std::ffi::{c_char, c_int, c_void};
use tch::nn::{self, ModuleT};
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn fixclf_sync_bn(
        group: *mut c_void,
        input: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        running_mean: *const C_tensor,
        running_var: *const C_tensor,
        eps: f64,
        momentum: f64,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn fixclf_sync_bn_failure(backward: *mut c_int) -> *mut c_char;
    fn fixclf_free_error(e: *mut c_char);
}

/// A BatchNorm layer over channels (dimension 1) whose training-mode statistics are the
/// global batch's when `sync` is set and the process is one rank of several.
#[derive(Debug)]
pub struct SyncBatchNorm {
    pub bn: nn::BatchNorm,
    eps: f64,
    momentum: f64,
    sync: bool,
}

/// [`SyncBatchNorm`] over `[B, C, H, W]` under `p` (the variables of `nn::batch_norm2d`);
/// `sync` false: `nn::batch_norm2d` itself.
pub fn sync_batch_norm2d(
    p: nn::Path,
    c: i64,
    cfg: nn::BatchNormConfig,
    sync: bool,
) -> SyncBatchNorm {
    SyncBatchNorm {
        bn: nn::batch_norm2d(p, c, cfg),
        eps: cfg.eps,
        momentum: cfg.momentum,
        sync,
    }
}

fn ptr(t: Option<&Tensor>) -> *const C_tensor {
    t.map_or(std::ptr::null(), |t| t.as_ptr())
}

impl SyncBatchNorm {
    /// Training-mode BatchNorm with the statistics of every rank of `group` (None: of this
    /// process's batch alone, through the same function; what the tests compare with
    /// libtorch's batch norm). Updates the running statistics.
    ///
    /// # Panics
    /// On an input of fewer than 2 dimensions, as tch's own layers panic on a bad shape
    /// (the model's own mistake, not the user's). A failed collective does not panic: the
    /// layer goes on with local statistics and [`failure`] reports it.
    pub fn forward_synced(&self, group: Option<&ProcessGroup>, xs: &Tensor) -> Tensor {
        let bn = &self.bn;
        let mut out: *mut C_tensor = std::ptr::null_mut();
        let e = unsafe {
            fixclf_sync_bn(
                group.map_or(std::ptr::null_mut(), ProcessGroup::raw),
                xs.as_ptr(),
                ptr(bn.ws.as_ref()),
                ptr(bn.bs.as_ref()),
                ptr(Some(&bn.running_mean)),
                ptr(Some(&bn.running_var)),
                self.eps,
                self.momentum,
                &mut out,
            )
        };
        if !e.is_null() {
            // SAFETY: a non-null result is a NUL-terminated string malloc'ed by the shim.
            let msg = unsafe { std::ffi::CStr::from_ptr(e) }
                .to_string_lossy()
                .into_owned();
            unsafe { fixclf_free_error(e) };
            panic!("synchronized BatchNorm on {:?}: {msg}", xs.size());
        }
        // SAFETY: on success the shim wrote a new at::Tensor*.
        unsafe { Tensor::from_ptr(out) }
    }
}

impl ModuleT for SyncBatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match super::current() {
            Some(g) if train && self.sync && g.world_size > 1 => self.forward_synced(Some(g), xs),
            _ => self.bn.forward_t(xs, train),
        }
    }
}

/// The first collective of a synchronized BatchNorm that failed in this process, as the
/// one-line error of `group` naming the rank and the operation; Ok when none did. After one
/// failed, the layers skip their collectives (no timeout per layer) and train on local
/// statistics until the trainer stops at this error (before the gradient all-reduce).
pub fn failure(group: &ProcessGroup) -> Result<()> {
    let mut backward: c_int = 0;
    let e = unsafe { fixclf_sync_bn_failure(&mut backward) };
    let op = if backward != 0 {
        "BatchNorm gradient sums (backward pass)"
    } else {
        "BatchNorm statistics (forward pass)"
    };
    group.check(&format!("all-reduce of {op}"), e)
}
