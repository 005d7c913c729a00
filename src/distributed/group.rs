//! The process group: c10d's TCPStore and ProcessGroupGloo (ProcessGroupNCCL on CUDA)
//! built by `csrc/fixclf_dist.cpp`, and the collectives training needs, each waited for
//! within the configured timeout. A c10d or gloo exception (a dead peer, a timeout, an
//! unreachable store) comes back as [`Error::Distributed`] naming this rank and the
//! operation, never as an abort or a hang.
use super::env::Launch;
use crate::error::{Error, Result};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use tch::Tensor;
use torch_sys::C_tensor;

type Handle = *mut C_tensor;

extern "C" {
    fn fixclf_free_error(e: *mut c_char);
    #[allow(clippy::too_many_arguments)]
    fn fixclf_dist_new(
        host: *const c_char,
        port: c_int,
        agent_store: c_int,
        prefix: *const c_char,
        rank: c_int,
        size: c_int,
        timeout_ms: i64,
        gloo_iface: *const c_char,
        gloo_host: *const c_char,
        nccl: c_int,
        cuda_device: c_int,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn fixclf_dist_free(g: *mut c_void);
    fn fixclf_dist_has_nccl() -> c_int;
    fn fixclf_dist_allreduce(
        g: *mut c_void,
        ts: *const Handle,
        n: c_int,
        bucket_bytes: i64,
        scale: f64,
        control: c_int,
        views: *mut Handle,
    ) -> *mut c_char;
    fn fixclf_dist_broadcast(
        g: *mut c_void,
        ts: *const Handle,
        n: c_int,
        bucket_bytes: i64,
        root: c_int,
        control: c_int,
    ) -> *mut c_char;
    fn fixclf_dist_barrier(g: *mut c_void) -> *mut c_char;
    fn fixclf_dist_store_host(
        port: c_int,
        timeout_ms: i64,
        bound: *mut c_int,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn fixclf_dist_store_free(s: *mut c_void);
}

/// A TCPStore hosted on 127.0.0.1 for ranks that are all its clients, as torchrun's agent
/// hosts one (`TORCHELASTIC_USE_AGENT_STORE=True`); it outlives the groups that use it, so
/// a restarted group meets the keys of the failed one unless the restart count differs.
pub struct StoreHost {
    handle: *mut c_void,
    pub port: u16,
}

impl StoreHost {
    /// Listens on `port` (0: a free port, then [`port`](Self::port) says which).
    pub fn new(port: u16, timeout_s: f64) -> Result<StoreHost> {
        let (mut handle, mut bound): (*mut c_void, c_int) = (std::ptr::null_mut(), 0);
        let e = unsafe {
            fixclf_dist_store_host(
                c_int::from(port),
                (timeout_s * 1000.0) as i64,
                &mut bound,
                &mut handle,
            )
        };
        check(0, "hosting the store", timeout_s, e)?;
        Ok(StoreHost {
            handle,
            port: bound as u16,
        })
    }
}

impl Drop for StoreHost {
    fn drop(&mut self) {
        unsafe { fixclf_dist_store_free(self.handle) }
    }
}

/// Which group a collective runs on: `Data` (gradients, parameters: Gloo on the CPU, NCCL
/// on CUDA) or `Control` (small host tensors: stop flags, hashes, counts; always Gloo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Data,
    Control,
}

/// How the group is built (`[distributed]` of the config, and the device).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSettings {
    pub timeout_s: f64,
    pub bucket_bytes: i64,
    /// NCCL on this CUDA device for the data lane, else Gloo.
    pub nccl_device: Option<usize>,
    /// The gradient all-reduce overlapped with the backward pass (`super::overlap`).
    pub overlap: bool,
}

/// A data-parallel process group of `world_size` ranks.
pub struct ProcessGroup {
    handle: *mut c_void,
    pub rank: usize,
    pub world_size: usize,
    pub bucket_bytes: i64,
    pub timeout_s: f64,
    /// The CUDA device of the data lane's NCCL group (None: Gloo).
    pub nccl_device: Option<usize>,
    pub overlap: bool,
}

// SAFETY: c10d's process groups and stores are used from several threads by PyTorch itself;
// the handle is only freed by Drop.
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        unsafe { fixclf_dist_free(self.handle) }
    }
}

/// Whether this binary can run the data lane on NCCL (the `cuda` feature with nccl.h).
pub fn has_nccl() -> bool {
    unsafe { fixclf_dist_has_nccl() != 0 }
}

fn c_string(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::arg(what, "contains a NUL byte"))
}

impl ProcessGroup {
    /// Connects to the launch's store (rank 0 hosts it unless torchrun's agent does) and
    /// builds the group; waits for every rank within the timeout.
    pub fn new(launch: &Launch, settings: &GroupSettings) -> Result<ProcessGroup> {
        let host = c_string("MASTER_ADDR", &launch.master_addr)?;
        let prefix = c_string("store prefix", &launch.store_prefix())?;
        let iface = c_string(
            "GLOO_SOCKET_IFNAME",
            launch.gloo_ifname.as_deref().unwrap_or(""),
        )?;
        // On one machine over loopback Gloo binds to loopback too; elsewhere Gloo's default
        // (the address the host name resolves to) unless GLOO_SOCKET_IFNAME says otherwise.
        let gloo_host = CString::new(if launch.is_loopback() {
            "127.0.0.1"
        } else {
            ""
        })
        .expect("no NUL");
        let mut handle: *mut c_void = std::ptr::null_mut();
        let e = unsafe {
            fixclf_dist_new(
                host.as_ptr(),
                c_int::from(launch.master_port),
                c_int::from(launch.agent_store),
                prefix.as_ptr(),
                launch.rank as c_int,
                launch.world_size as c_int,
                (settings.timeout_s * 1000.0).round() as i64,
                iface.as_ptr(),
                gloo_host.as_ptr(),
                c_int::from(settings.nccl_device.is_some()),
                settings.nccl_device.unwrap_or(0) as c_int,
                &mut handle,
            )
        };
        let op = format!(
            "joining the process group of {} ranks through the store at {}:{}{}",
            launch.world_size,
            launch.master_addr,
            launch.master_port,
            if launch.agent_store {
                " (torchrun's agent)"
            } else {
                ""
            }
        );
        check(launch.rank, &op, settings.timeout_s, e)?;
        Ok(ProcessGroup {
            handle,
            rank: launch.rank,
            world_size: launch.world_size,
            bucket_bytes: settings.bucket_bytes,
            timeout_s: settings.timeout_s,
            nccl_device: settings.nccl_device,
            overlap: settings.overlap,
        })
    }

    /// The settings the group was built with.
    pub fn settings(&self) -> GroupSettings {
        GroupSettings {
            timeout_s: self.timeout_s,
            bucket_bytes: self.bucket_bytes,
            nccl_device: self.nccl_device,
            overlap: self.overlap,
        }
    }

    /// Sums `ts` over the ranks in place, then scales them by `scale` (`1 / world_size`:
    /// the mean), through flat buckets of `bucket_bytes`.
    pub fn all_reduce(&self, op: &str, lane: Lane, ts: &[&Tensor], scale: f64) -> Result<()> {
        if ts.is_empty() {
            return Ok(());
        }
        self.all_reduce_into(op, lane, ts, scale, std::ptr::null_mut())
    }

    /// The one all-reduce call: `views` null (results copied back into `ts`) or `ts.len()`
    /// slots for the tensors viewing the flat buckets.
    fn all_reduce_into(
        &self,
        op: &str,
        lane: Lane,
        ts: &[&Tensor],
        scale: f64,
        views: *mut Handle,
    ) -> Result<()> {
        let h = handles(ts);
        let e = unsafe {
            fixclf_dist_allreduce(
                self.handle,
                h.as_ptr(),
                h.len() as c_int,
                self.bucket_bytes,
                scale,
                c_int::from(lane == Lane::Control),
                views,
            )
        };
        self.check(&format!("all-reduce of {op}"), e)
    }

    /// [`all_reduce`](Self::all_reduce) on the data lane whose results are handed out as
    /// new tensors viewing the flat buckets, one per tensor of `ts` (not copied back).
    pub fn all_reduce_views(&self, op: &str, ts: &[&Tensor], scale: f64) -> Result<Vec<Tensor>> {
        if ts.is_empty() {
            return Ok(Vec::new());
        }
        let mut views: Vec<Handle> = vec![std::ptr::null_mut(); ts.len()];
        self.all_reduce_into(op, Lane::Data, ts, scale, views.as_mut_ptr())?;
        // SAFETY: on success every slot holds a new at::Tensor*.
        Ok(views
            .into_iter()
            .map(|p| unsafe { Tensor::from_ptr(p) })
            .collect())
    }

    /// Overwrites `ts` with rank `root`'s values.
    pub fn broadcast(&self, op: &str, lane: Lane, ts: &[&Tensor], root: usize) -> Result<()> {
        if ts.is_empty() {
            return Ok(());
        }
        let h = handles(ts);
        let e = unsafe {
            fixclf_dist_broadcast(
                self.handle,
                h.as_ptr(),
                h.len() as c_int,
                self.bucket_bytes,
                root as c_int,
                c_int::from(lane == Lane::Control),
            )
        };
        self.check(&format!("broadcast of {op} from rank {root}"), e)
    }

    /// Waits until every rank reached the barrier `op`.
    pub fn barrier(&self, op: &str) -> Result<()> {
        let e = unsafe { fixclf_dist_barrier(self.handle) };
        self.check(&format!("barrier ({op})"), e)
    }

    /// Sums host integers over the ranks (control lane).
    pub fn sum_i64(&self, op: &str, values: &[i64]) -> Result<Vec<i64>> {
        let t = Tensor::from_slice(values);
        self.all_reduce(op, Lane::Control, &[&t], 1.0)?;
        Ok(Vec::<i64>::try_from(&t)?)
    }

    /// Sums host floats over the ranks (control lane), in float64.
    pub fn sum_f64(&self, op: &str, values: &[f64]) -> Result<Vec<f64>> {
        let t = Tensor::from_slice(values);
        self.all_reduce(op, Lane::Control, &[&t], 1.0)?;
        Ok(Vec::<f64>::try_from(&t)?)
    }

    pub(super) fn check(&self, op: &str, e: *mut c_char) -> Result<()> {
        check(self.rank, op, self.timeout_s, e)
    }

    /// The shim's group, for the collectives of [`super::sync_bn`] and the Reducer built on
    /// it ([`super::overlap`]).
    pub(super) fn raw(&self) -> *mut c_void {
        self.handle
    }
}

fn handles(ts: &[&Tensor]) -> Vec<Handle> {
    ts.iter().map(|t| t.as_ptr() as Handle).collect()
}

/// The shim's error string as one line naming the rank and the operation.
pub(super) fn check(rank: usize, op: &str, timeout_s: f64, e: *mut c_char) -> Result<()> {
    if e.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null result is a NUL-terminated string malloc'ed by the shim.
    let msg = unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned();
    unsafe { fixclf_free_error(e) };
    let first = msg
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_string();
    Err(Error::distributed(
        rank,
        op,
        format!(
            "{first} (a peer process died or stalled, or the store is unreachable; \
             distributed.timeout_s = {timeout_s})"
        ),
    ))
}
