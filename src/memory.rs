//! Process memory: the allocator's retained pages, and the peak resident size that the
//! reports quote.
//!
//! Every binary that links this crate allocates with jemalloc, libtorch's tensors included:
//! `tikv-jemalloc-sys` is built with unprefixed `malloc`/`free`, so libtorch's calls resolve to
//! them (`main.rs` also makes it Rust's global allocator). [`malloc_conf`] turns page purging
//! off (`dirty_decay_ms:-1`): a training step frees and
//! re-allocates the same few large buffers (the `[tokens, vocabulary]` logits and their
//! gradients, 93 MB each at paper size), and glibc's `malloc` returns such buffers to the
//! kernel on every `free`, so every step page-faults and zero-fills them again. On the 2-core
//! machine of the benchmarks that cost about a quarter of a fixed-mode training step. With
//! purging off, memory freed by one phase stays mapped; [`release_free_memory`] hands it back
//! at phase boundaries (after a model is built, between the runs of a suite or a bench).
use std::ffi::{c_char, CStr};

/// jemalloc's built-in options, a NUL-terminated C string read at start-up (the `MALLOC_CONF`
/// environment variable still overrides them): keep freed pages mapped instead of purging
/// them, so that the per-step buffers are reused without page faults.
#[repr(transparent)]
pub struct MallocConf(*const c_char);
// SAFETY: points at a static, immutable string.
unsafe impl Sync for MallocConf {}
#[used]
#[unsafe(no_mangle)]
pub static malloc_conf: MallocConf = MallocConf(c"dirty_decay_ms:-1,muzzy_decay_ms:-1".as_ptr());

/// Returns every page that the allocator holds but no allocation uses to the kernel (jemalloc
/// `arena.<all>.purge`). Live memory is untouched. A no-op when the purge is refused.
pub fn release_free_memory() {
    // MALLCTL_ARENAS_ALL = 4096 addresses every arena at once.
    const PURGE_ALL: &CStr = c"arena.4096.purge";
    // SAFETY: a "void" mallctl: no old or new value is read or written.
    let _ = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr() as *const c_char,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
}

/// Resets the peak-resident-memory mark to the current resident size (Linux; a no-op
/// elsewhere), after handing freed pages back, so that each run of a suite (or each mode of a
/// bench) reports its own peak.
pub fn reset_peak_rss() {
    release_free_memory();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process since the last [`reset_peak_rss`], in MB (Linux
/// `VmHWM`; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    proc_status_mb("VmHWM:")
}

/// Current resident memory in MB (Linux `VmRSS`; 0 elsewhere).
pub fn rss_mb() -> f64 {
    proc_status_mb("VmRSS:")
}

/// A kB line of `/proc/self/status` (`key` with its colon), in MB; 0 where there is none.
fn proc_status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
