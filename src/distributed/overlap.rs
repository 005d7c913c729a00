//! The gradient all-reduce overlapped with the backward pass (`distributed.overlap`), as
//! PyTorch's `DistributedDataParallel` does it: libtorch's own `c10d::Reducer`
//! (`csrc/fixclf_reducer.cpp`) hooks every trainable parameter's gradient accumulator, so
//! each bucket is all-reduced as soon as the backward pass has produced its gradients,
//! while autograd goes on with the layers below. The Reducer divides every gradient by the
//! world size as it copies it into its bucket (DDP's default), so after the pass each
//! parameter's gradient is the mean over the ranks, as [`GradientAverager`]'s.
//!
//! Everything after the pass is unchanged: the loss is averaged by a separate small
//! all-reduce, then the norm, clipping, the non-finite mask and the update, so every rank
//! takes the same step. Fixed matrices are no parameters: the Reducer never sees them.
//!
//! The Reducer runs with `find_unused_parameters = false` (DDP's default): every
//! parameter must receive a gradient at every step. One that does not (alpha under the
//! cosine loss) is an error naming it, at the first step.
use super::group::{Lane, ProcessGroup};
use super::sync::{self, GradientAverager};
use crate::error::{Error, Result};
use crate::optim::GradientSync;
use std::ffi::{c_char, c_int, c_void, CString};
use std::time::Instant;
use tch::{Kind, Tensor};
use torch_sys::C_tensor;

type Handle = *mut C_tensor;

/// PyTorch DDP's first bucket (`dist._DEFAULT_FIRST_BUCKET_BYTES`): small, so the first
/// all-reduce starts early in the backward pass.
pub const FIRST_BUCKET_BYTES: i64 = 1 << 20;

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn fixclf_reducer_new(
        group: *mut c_void,
        params: *const Handle,
        names: *const *const c_char,
        n: c_int,
        bucket_bytes: i64,
        first_bucket_bytes: i64,
        buckets: *mut c_int,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn fixclf_reducer_free(r: *mut c_void);
    fn fixclf_reducer_backward(
        r: *mut c_void,
        loss: Handle,
        grads: *mut Handle,
        exposed_s: *mut f64,
    ) -> *mut c_char;
}

/// A `c10d::Reducer` over a fixed list of parameters.
pub struct Reducer {
    handle: *mut c_void,
    group: &'static ProcessGroup,
    names: Vec<String>,
    /// Buckets of the initial assignment (after the first step the Reducer rebuilds them
    /// once, in the order the gradients arrived, which may group them differently).
    pub buckets: usize,
}

impl Drop for Reducer {
    fn drop(&mut self) {
        unsafe { fixclf_reducer_free(self.handle) }
    }
}

impl Reducer {
    /// Hooks `params` (named `names`, for errors) in buckets of the group's `bucket_bytes`;
    /// from the second step on, in the order the gradients arrive, the first of
    /// [`FIRST_BUCKET_BYTES`].
    pub fn new(
        group: &'static ProcessGroup,
        params: &[&Tensor],
        names: &[String],
    ) -> Result<Reducer> {
        let op = "building the gradient reducer (distributed.overlap)";
        if params.is_empty() {
            return Err(Error::distributed(group.rank, op, "no trainable parameter"));
        }
        let c_names: Vec<CString> = names
            .iter()
            .map(|n| CString::new(n.as_str()).unwrap_or_default())
            .collect();
        let name_ptrs: Vec<*const c_char> = c_names.iter().map(|n| n.as_ptr()).collect();
        let handles: Vec<Handle> = params.iter().map(|t| t.as_ptr() as Handle).collect();
        let (mut handle, mut buckets): (*mut c_void, c_int) = (std::ptr::null_mut(), 0);
        let e = unsafe {
            fixclf_reducer_new(
                group.raw(),
                handles.as_ptr(),
                name_ptrs.as_ptr(),
                handles.len() as c_int,
                group.bucket_bytes,
                FIRST_BUCKET_BYTES.min(group.bucket_bytes),
                &mut buckets,
                &mut handle,
            )
        };
        group.check(op, e)?;
        Ok(Reducer {
            handle,
            group,
            names: names.to_vec(),
            buckets: buckets.max(0) as usize,
        })
    }

    /// Backpropagates `loss` with the buckets all-reduced during the pass: the mean
    /// gradient of every parameter, in the order given to [`new`](Self::new), and the
    /// seconds of all-reduce the pass did not hide (from the last gradient to the end).
    /// A parameter without a gradient is an error naming it: its bucket was never sent.
    pub fn backward(&self, loss: &Tensor) -> Result<(Vec<Tensor>, f64)> {
        let mut grads: Vec<Handle> = vec![std::ptr::null_mut(); self.names.len()];
        let mut exposed = 0.0;
        let e = unsafe {
            fixclf_reducer_backward(
                self.handle,
                loss.as_ptr() as Handle,
                grads.as_mut_ptr(),
                &mut exposed,
            )
        };
        self.group
            .check("backward pass with the all-reduce of gradients", e)?;
        // SAFETY: on success every slot holds a new at::Tensor*.
        let grads: Vec<Tensor> = grads
            .into_iter()
            .map(|p| unsafe { Tensor::from_ptr(p) })
            .collect();
        if let Some(i) = grads.iter().position(|g| !g.defined()) {
            return Err(Error::distributed(
                self.group.rank,
                "backward pass with the all-reduce of gradients (distributed.overlap)",
                format!(
                    "parameter {} received no gradient, so its bucket was never all-reduced \
                     (the reducer needs a gradient for every parameter at every step); set \
                     distributed.overlap = false for this model",
                    self.names[i]
                ),
            ));
        }
        Ok((grads, exposed))
    }
}

// SAFETY: the Reducer is driven from the training thread only; its hooks run on the
// autograd threads of that thread's backward passes, which the Reducer locks itself.
unsafe impl Send for Reducer {}

/// [`GradientSync`] through a [`Reducer`]: the optimizer's backward pass is this one.
pub struct OverlappedAverager {
    reducer: Reducer,
    /// The non-overlapped averager: the counts it records at start, and
    /// [`GradientSync::average`] if ever asked for.
    plain: GradientAverager,
    floats: u64,
}

impl OverlappedAverager {
    /// Hooks the optimizer's `params` (all of them trainable: fixed matrices are not
    /// among them).
    pub fn new(
        group: &'static ProcessGroup,
        backend: &str,
        params: &[&Tensor],
        names: &[String],
    ) -> Result<OverlappedAverager> {
        let plain = GradientAverager::new(group, backend);
        let reducer = Reducer::new(group, params, names)?;
        let floats = params.iter().map(|t| t.numel() as u64).sum();
        let buckets = reducer.buckets as u64;
        sync::with_stats(|s| {
            s.overlap = true;
            s.buckets_per_step = buckets;
        });
        Ok(OverlappedAverager {
            reducer,
            plain,
            floats,
        })
    }
}

impl GradientSync for OverlappedAverager {
    fn average(&self, grads: &mut [Tensor], guard: Option<&Tensor>) -> Result<()> {
        self.plain.average(grads, guard)
    }

    fn backward(&self, objective: &Tensor, guard: Option<&Tensor>) -> Option<Result<Vec<Tensor>>> {
        Some(self.backward_and_loss(objective, guard))
    }
}

impl OverlappedAverager {
    fn backward_and_loss(&self, objective: &Tensor, guard: Option<&Tensor>) -> Result<Vec<Tensor>> {
        let (grads, exposed) = self.reducer.backward(objective)?;
        let start = Instant::now();
        // The loss, a separate small all-reduce after the pass: a rank's non-finite loss
        // masks every rank's update, and the recorded loss is the global batch's mean.
        if let Some(g) = guard {
            let group = self.reducer.group;
            let mean = g.detach().to_kind(Kind::Float).reshape([1]);
            let scale = 1.0 / group.world_size as f64;
            group.all_reduce("the loss", Lane::Data, &[&mean], scale)?;
            tch::no_grad(|| {
                g.shallow_clone()
                    .copy_(&mean.reshape(g.size()).to_kind(g.kind()))
            });
        }
        let secs = exposed + start.elapsed().as_secs_f64();
        let floats = self.floats;
        sync::with_stats(|s| {
            s.floats_per_step = floats;
            s.bytes_per_step = floats * 4;
            s.steps += 1;
            s.allreduce_s += secs;
        });
        Ok(grads)
    }
}
