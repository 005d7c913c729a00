//! The libtorch calls tch 0.24 does not bind, from `csrc/fixclf_native.cpp` (compiled by
//! `build.rs` against the same libtorch): multi-tensor updates (`_foreach_*`, one kernel
//! launch for many tensors on CUDA), TF32 and bfloat16 autocast switches, and with the
//! `cuda` feature CUDA graphs ([`graph`]). A libtorch exception comes back as
//! `Error::Torch`, never as a panic.
use crate::error::{Error, Result};
use std::ffi::{c_char, c_int, CStr};
use tch::Tensor;
use torch_sys::C_tensor;

#[cfg(feature = "cuda")]
pub mod graph;

type Handle = *mut C_tensor;

extern "C" {
    fn fixclf_free_error(e: *mut c_char);
    fn fixclf_foreach_global_norm(ts: *const Handle, n: c_int, out: *mut Handle) -> *mut c_char;
    fn fixclf_foreach_mul_tensor_(ts: *const Handle, n: c_int, s: Handle) -> *mut c_char;
    fn fixclf_foreach_mul_scalar_(ts: *const Handle, n: c_int, s: f64) -> *mut c_char;
    fn fixclf_foreach_add_scalar_(ts: *const Handle, n: c_int, s: f64) -> *mut c_char;
    fn fixclf_foreach_add_list_(
        ts: *const Handle,
        other: *const Handle,
        n: c_int,
        alpha: f64,
    ) -> *mut c_char;
    fn fixclf_foreach_add_scaled_(
        ts: *const Handle,
        other: *const Handle,
        n: c_int,
        scale: Handle,
        scratch: c_int,
    ) -> *mut c_char;
    fn fixclf_foreach_addcmul_(
        ts: *const Handle,
        a: *const Handle,
        b: *const Handle,
        n: c_int,
        value: f64,
    ) -> *mut c_char;
    fn fixclf_foreach_lerp_scalar_(
        ts: *const Handle,
        end: *const Handle,
        n: c_int,
        weight: f64,
    ) -> *mut c_char;
    fn fixclf_foreach_sqrt(ts: *const Handle, n: c_int, out: *mut Handle) -> *mut c_char;
    fn fixclf_foreach_div_list_(ts: *const Handle, other: *const Handle, n: c_int) -> *mut c_char;
    fn fixclf_set_tf32(on: c_int) -> *mut c_char;
    fn fixclf_set_autocast_bf16(device: c_int, on: c_int, was: *mut c_int) -> *mut c_char;
    fn fixclf_cuda_graphs_compiled() -> c_int;
    fn fixclf_profiler_start(cuda: c_int) -> *mut c_char;
    fn fixclf_profiler_stop(device_us: *mut f64, events: *mut i64) -> *mut c_char;
}

/// Turns the shim's error string into an error naming `what`.
pub(crate) fn check(what: &str, e: *mut c_char) -> Result<()> {
    if e.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null result is a NUL-terminated string malloc'ed by the shim.
    let msg = unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned();
    unsafe { fixclf_free_error(e) };
    let first = msg.lines().next().unwrap_or_default().to_string();
    Err(torch_error(format!("{what}: {first}")))
}

fn torch_error(msg: String) -> Error {
    Error::Torch(tch::TchError::Torch(msg))
}

fn handles(ts: &[&Tensor]) -> Vec<Handle> {
    ts.iter().map(|t| t.as_ptr() as Handle).collect()
}

fn same_len(what: &str, a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(torch_error(format!("{what}: lists of {a} and {b} tensors")))
    }
}

/// The global 2-norm of `ts` (the norm of their norms), a 0-dim tensor on their device.
pub fn global_norm(ts: &[&Tensor]) -> Result<Tensor> {
    let h = handles(ts);
    let mut out: Handle = std::ptr::null_mut();
    check("_foreach_norm", unsafe {
        fixclf_foreach_global_norm(h.as_ptr(), h.len() as c_int, &mut out)
    })?;
    // SAFETY: on success the shim stored a new at::Tensor*.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// `t *= s` for every `t`, `s` a 0-dim tensor.
pub fn mul_tensor_(ts: &[&Tensor], s: &Tensor) -> Result<()> {
    let h = handles(ts);
    check("_foreach_mul_", unsafe {
        fixclf_foreach_mul_tensor_(h.as_ptr(), h.len() as c_int, s.as_ptr() as Handle)
    })
}

/// `t *= s` for every `t`.
pub fn mul_scalar_(ts: &[&Tensor], s: f64) -> Result<()> {
    let h = handles(ts);
    check("_foreach_mul_", unsafe {
        fixclf_foreach_mul_scalar_(h.as_ptr(), h.len() as c_int, s)
    })
}

/// `t += s` for every `t`.
pub fn add_scalar_(ts: &[&Tensor], s: f64) -> Result<()> {
    let h = handles(ts);
    check("_foreach_add_", unsafe {
        fixclf_foreach_add_scalar_(h.as_ptr(), h.len() as c_int, s)
    })
}

/// `a[i] += alpha * b[i]`.
pub fn add_(a: &[&Tensor], b: &[&Tensor], alpha: f64) -> Result<()> {
    same_len("_foreach_add_", a.len(), b.len())?;
    let (ha, hb) = (handles(a), handles(b));
    check("_foreach_add_", unsafe {
        fixclf_foreach_add_list_(ha.as_ptr(), hb.as_ptr(), ha.len() as c_int, alpha)
    })
}

/// `a[i] += b[i] * scale`, `scale` a 0-dim tensor.
pub fn add_scaled_(a: &[&Tensor], b: &[&Tensor], scale: &Tensor) -> Result<()> {
    add_scaled(a, b, scale, false)
}

/// [`add_scaled_`] where `b` is scratch: its values may be overwritten (on CUDA the product
/// is taken in place instead of in a temporary).
pub fn add_scaled_from_scratch_(a: &[&Tensor], b: &[&Tensor], scale: &Tensor) -> Result<()> {
    add_scaled(a, b, scale, true)
}

fn add_scaled(a: &[&Tensor], b: &[&Tensor], scale: &Tensor, scratch: bool) -> Result<()> {
    same_len("_foreach_add_", a.len(), b.len())?;
    let (ha, hb) = (handles(a), handles(b));
    check("_foreach_add_", unsafe {
        fixclf_foreach_add_scaled_(
            ha.as_ptr(),
            hb.as_ptr(),
            ha.len() as c_int,
            scale.as_ptr() as Handle,
            c_int::from(scratch),
        )
    })
}

/// `t[i] += value * a[i] * b[i]`.
pub fn addcmul_(t: &[&Tensor], a: &[&Tensor], b: &[&Tensor], value: f64) -> Result<()> {
    same_len("_foreach_addcmul_", t.len(), a.len())?;
    same_len("_foreach_addcmul_", t.len(), b.len())?;
    let (ht, ha, hb) = (handles(t), handles(a), handles(b));
    check("_foreach_addcmul_", unsafe {
        fixclf_foreach_addcmul_(
            ht.as_ptr(),
            ha.as_ptr(),
            hb.as_ptr(),
            ht.len() as c_int,
            value,
        )
    })
}

/// `t[i] += weight * (end[i] - t[i])`.
pub fn lerp_(t: &[&Tensor], end: &[&Tensor], weight: f64) -> Result<()> {
    same_len("_foreach_lerp_", t.len(), end.len())?;
    let (ht, he) = (handles(t), handles(end));
    check("_foreach_lerp_", unsafe {
        fixclf_foreach_lerp_scalar_(ht.as_ptr(), he.as_ptr(), ht.len() as c_int, weight)
    })
}

/// `sqrt(t)` for every `t`, as new tensors.
pub fn sqrt(ts: &[&Tensor]) -> Result<Vec<Tensor>> {
    let h = handles(ts);
    let mut out: Vec<Handle> = vec![std::ptr::null_mut(); h.len()];
    check("_foreach_sqrt", unsafe {
        fixclf_foreach_sqrt(h.as_ptr(), h.len() as c_int, out.as_mut_ptr())
    })?;
    // SAFETY: on success every slot holds a new at::Tensor*.
    Ok(out
        .into_iter()
        .map(|p| unsafe { Tensor::from_ptr(p) })
        .collect())
}

/// `a[i] /= b[i]`.
pub fn div_(a: &[&Tensor], b: &[&Tensor]) -> Result<()> {
    same_len("_foreach_div_", a.len(), b.len())?;
    let (ha, hb) = (handles(a), handles(b));
    check("_foreach_div_", unsafe {
        fixclf_foreach_div_list_(ha.as_ptr(), hb.as_ptr(), ha.len() as c_int)
    })
}

/// TF32 tensor cores for float32 products and cuDNN (CUDA only; nothing changes on the CPU).
pub fn set_tf32(on: bool) -> Result<()> {
    check("allow TF32", unsafe { fixclf_set_tf32(c_int::from(on)) })
}

/// bfloat16 autocast on `device` while `f` runs (restored after, also on error paths of `f`
/// that return normally).
pub fn with_bf16_autocast<T>(device: tch::Device, f: impl FnOnce() -> T) -> Result<T> {
    let kind = c_int::from(device.is_cuda());
    let mut was: c_int = 0;
    check("autocast", unsafe {
        fixclf_set_autocast_bf16(kind, 1, &mut was)
    })?;
    let out = f();
    let mut ignored: c_int = 0;
    check("autocast", unsafe {
        fixclf_set_autocast_bf16(kind, was, &mut ignored)
    })?;
    Ok(out)
}

/// What the profiler saw on the device while `f` ran: the summed duration of its kernels,
/// copies and sets (microseconds) and their number, with `f`'s result. Work queued by `f`
/// must have finished (synchronize inside `f`) to be counted.
pub fn device_time<T>(cuda: bool, f: impl FnOnce() -> T) -> Result<(T, f64, i64)> {
    check("profiler", unsafe {
        fixclf_profiler_start(c_int::from(cuda))
    })?;
    let out = f();
    let (mut us, mut n) = (0.0, 0);
    check("profiler", unsafe { fixclf_profiler_stop(&mut us, &mut n) })?;
    Ok((out, us, n))
}

/// Whether this binary was built with CUDA graph support (the `cuda` feature).
pub fn cuda_graphs_compiled() -> bool {
    unsafe { fixclf_cuda_graphs_compiled() != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn v(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn foreach_ops_match_their_single_tensor_forms() {
        let a = Tensor::from_slice(&[3.0f32, 4.0]);
        let b = Tensor::from_slice(&[12.0f32]);
        let n = global_norm(&[&a, &b]).unwrap();
        assert!((n.double_value(&[]) - 13.0).abs() < 1e-5);
        mul_tensor_(&[&a, &b], &Tensor::from(0.5f32)).unwrap();
        assert_eq!((v(&a), v(&b)), (vec![1.5, 2.0], vec![6.0]));
        let c = Tensor::from_slice(&[1.0f32, 1.0]);
        add_(&[&a], &[&c], -2.0).unwrap();
        assert_eq!(v(&a), vec![-0.5, 0.0]);
        add_scaled_(&[&a], &[&c], &Tensor::from(2.0f32)).unwrap();
        add_scaled_from_scratch_(&[&a], &[&c], &Tensor::from(-2.0f32)).unwrap();
        assert_eq!(v(&a), vec![-0.5, 0.0]);
        addcmul_(&[&a], &[&c], &[&c], 0.5).unwrap();
        assert_eq!(v(&a), vec![0.0, 0.5]);
        lerp_(&[&a], &[&c], 0.5).unwrap();
        assert_eq!(v(&a), vec![0.5, 0.75]);
        mul_scalar_(&[&a], 4.0).unwrap();
        add_scalar_(&[&a], 1.0).unwrap();
        assert_eq!(v(&a), vec![3.0, 4.0]);
        let r = sqrt(&[&Tensor::from_slice(&[4.0f32, 9.0])]).unwrap();
        assert_eq!(v(&r[0]), vec![2.0, 3.0]);
        div_(&[&a], &[&r[0]]).unwrap();
        assert_eq!(v(&a), vec![1.5, 4.0 / 3.0]);
    }

    #[test]
    fn libtorch_errors_come_back_as_one_line() {
        let a = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu));
        let b = Tensor::zeros([3], (Kind::Float, tch::Device::Cpu));
        let e = add_(&[&a], &[&b], 1.0).unwrap_err().to_string();
        assert!(e.contains("_foreach_add_: ") && !e.contains('\n'), "{e}");
        assert!(add_(&[&a], &[], 1.0).is_err());
    }

    #[test]
    fn the_profiler_runs_on_the_cpu_and_sees_no_device_work() {
        let x = Tensor::ones([64, 64], (Kind::Float, tch::Device::Cpu));
        let (y, us, n) = device_time(false, || x.matmul(&x)).unwrap();
        assert_eq!(y.size(), [64, 64]);
        assert_eq!((us, n), (0.0, 0));
    }

    #[test]
    fn tf32_and_autocast_switch_on_the_cpu() {
        set_tf32(false).unwrap();
        let x = Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu));
        let y = with_bf16_autocast(tch::Device::Cpu, || x.matmul(&x)).unwrap();
        assert_eq!(y.kind(), Kind::BFloat16);
        assert_eq!(x.matmul(&x).kind(), Kind::Float);
        assert!(!cfg!(feature = "cuda") || cuda_graphs_compiled());
    }
}
