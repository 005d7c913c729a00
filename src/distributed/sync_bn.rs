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
    fn fixclf_sync_bn_counts(out: *mut i64);
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

/// What the synchronized BatchNorm layers' all-reduces have moved in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub all_reduces: u64,
    /// float64 values.
    pub values: u64,
    /// Wall time in them, waiting for the other ranks included.
    pub seconds: f64,
}

/// The counts so far (all zero unless a layer synchronized).
pub fn counts() -> Counts {
    let mut out = [0i64; 3];
    unsafe { fixclf_sync_bn_counts(out.as_mut_ptr()) };
    Counts {
        all_reduces: out[0] as u64,
        values: out[1] as u64,
        seconds: out[2] as f64 * 1e-9,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// A layer of `c` channels in `vs` with weight and bias away from 1 and 0 (so their
    /// gradients matter) and running statistics away from 0 and 1.
    pub fn layer(vs: &nn::VarStore, c: i64, sync: bool, kind: Kind) -> SyncBatchNorm {
        let l = sync_batch_norm2d(vs.root() / "bn", c, Default::default(), sync);
        tch::no_grad(|| {
            let r = |lo: f64| Tensor::rand([c], (Kind::Float, Device::Cpu)) + lo;
            for (t, lo) in [
                (l.bn.ws.as_ref().unwrap(), 0.5),
                (l.bn.bs.as_ref().unwrap(), -0.5),
                (&l.bn.running_mean, -0.5),
                (&l.bn.running_var, 0.5),
            ] {
                t.shallow_clone().set_data(&r(lo).to_kind(kind));
            }
        });
        l
    }

    /// Output, gradients of x, weight and bias, running mean and var after one training
    /// step of `f` on `x` against the weighted sum `r` of the output.
    pub fn step(
        l: &SyncBatchNorm,
        x: &Tensor,
        r: &Tensor,
        f: impl Fn(&Tensor) -> Tensor,
    ) -> [Tensor; 6] {
        let x = x.detach().set_requires_grad(true);
        let y = f(&x);
        let (w, b) = (l.bn.ws.as_ref().unwrap(), l.bn.bs.as_ref().unwrap());
        let g = Tensor::run_backward(&[(&y * r).sum(y.kind())], &[&x, w, b], false, false);
        [
            y.detach(),
            g[0].copy(),
            g[1].copy(),
            g[2].copy(),
            l.bn.running_mean.copy(),
            l.bn.running_var.copy(),
        ]
    }

    /// libtorch's training-mode batch norm with `l`'s variables (any number of dimensions).
    pub fn reference(l: &SyncBatchNorm, x: &Tensor) -> Tensor {
        x.batch_norm(
            l.bn.ws.as_ref(),
            l.bn.bs.as_ref(),
            Some(&l.bn.running_mean),
            Some(&l.bn.running_var),
            true,
            0.1,
            1e-5,
            false,
        )
    }

    /// The largest gap between `a` and `b` relative to the largest value of `b` (at least 1).
    pub fn gap(a: &Tensor, b: &Tensor) -> f64 {
        let scale = b.abs().max().double_value(&[]).max(1.0);
        (a - b).abs().max().double_value(&[]) / scale
    }

    /// With no other rank the shim's function is libtorch's training-mode batch norm:
    /// output, the gradients of input, weight and bias, and the running statistics (the
    /// unbiased variance, momentum 0.1), in float32 to 1e-6 and float64 to 1e-12; also on
    /// an NHWC input and a 3-d one ([B, C, L], BatchNorm1d's).
    #[test]
    fn alone_it_is_batch_norm_forward_and_backward() {
        tch::manual_seed(5);
        for (kind, tolerance) in [(Kind::Float, 1e-6), (Kind::Double, 1e-12)] {
            for (shape, nhwc) in [
                (vec![6, 5, 4, 3], false),
                (vec![6, 5, 4, 3], true),
                (vec![7, 3, 9], false),
            ] {
                let x = Tensor::randn(shape.as_slice(), (kind, Device::Cpu)) * 3.0 + 2.0;
                let x = if nhwc {
                    crate::vision::models::to_channels_last(&x)
                } else {
                    x
                };
                let r = Tensor::randn(shape.as_slice(), (kind, Device::Cpu));
                let vs = nn::VarStore::new(Device::Cpu);
                let synced = layer(&vs, shape[1], true, kind);
                let mut plain_vs = nn::VarStore::new(Device::Cpu);
                let plain = layer(&plain_vs, shape[1], false, kind);
                plain_vs.copy(&vs).unwrap();
                let a = step(&synced, &x, &r, |x| synced.forward_synced(None, x));
                let b = step(&plain, &x, &r, |x| reference(&plain, x));
                for (i, what) in ["y", "dx", "dweight", "dbias", "running_mean", "running_var"]
                    .iter()
                    .enumerate()
                {
                    let g = gap(&a[i], &b[i]);
                    assert!(g <= tolerance, "{kind:?} {shape:?} nhwc {nhwc}: {what} {g}");
                }
            }
        }
    }

    /// Evaluation, and training with no launch, are tch's BatchNorm itself; the variables are
    /// `nn::batch_norm2d`'s, so checkpoints load either way.
    #[test]
    fn without_a_launch_it_is_tchs_batch_norm_with_its_variables() {
        let vs = nn::VarStore::new(Device::Cpu);
        let l = layer(&vs, 3, true, Kind::Float);
        let plain = nn::VarStore::new(Device::Cpu);
        nn::batch_norm2d(plain.root() / "bn", 3, Default::default());
        let names = |vs: &nn::VarStore| {
            let mut v: Vec<String> = vs.variables().into_keys().collect();
            v.sort();
            v
        };
        assert_eq!(names(&vs), names(&plain));
        let x = Tensor::randn([4, 3, 2, 2], (Kind::Float, Device::Cpu));
        for train in [false, true] {
            let before = l.bn.running_mean.copy();
            let want = tch::no_grad(|| {
                let rm = l.bn.running_mean.copy();
                let rv = l.bn.running_var.copy();
                x.batch_norm(
                    l.bn.ws.as_ref(),
                    l.bn.bs.as_ref(),
                    Some(&rm),
                    Some(&rv),
                    train,
                    0.1,
                    1e-5,
                    false,
                )
            });
            let got = tch::no_grad(|| l.forward_t(&x, train));
            assert!(got.equal(&want), "train {train}");
            assert_eq!(l.bn.running_mean.equal(&before), !train);
        }
    }
}
