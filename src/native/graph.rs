//! CUDA graphs over `at::cuda::CUDAGraph` (the `cuda` feature only): the kernels a closure
//! queues are captured once, on a side stream (capture cannot use the default stream), and
//! replayed with one launch. Everything the captured work reads or writes must stay at the
//! same address between replays (static input buffers, the model's variables, the
//! optimizer's state); tensors the closure allocates live in the graph's private memory
//! pool and are rewritten by each replay. libtorch's CUDA random generator is registered
//! with the graph, so dropout draws new numbers at every replay (from the seed and offset
//! the generator holds at that moment).
use super::check;
use crate::error::Result;
use std::ffi::{c_char, c_void};

extern "C" {
    fn fixclf_graph_new(out: *mut *mut c_void) -> *mut c_char;
    fn fixclf_graph_free(g: *mut c_void);
    fn fixclf_graph_enter_stream(g: *mut c_void) -> *mut c_char;
    fn fixclf_graph_exit_stream(g: *mut c_void) -> *mut c_char;
    fn fixclf_graph_capture_begin(g: *mut c_void) -> *mut c_char;
    fn fixclf_graph_capture_end(g: *mut c_void) -> *mut c_char;
    fn fixclf_graph_replay(g: *mut c_void) -> *mut c_char;
}

/// One captured piece of work and the side stream it was captured on.
pub struct CudaGraph {
    raw: *mut c_void,
    captured: bool,
}

impl CudaGraph {
    pub fn new() -> Result<CudaGraph> {
        let mut raw = std::ptr::null_mut();
        check("CUDA graph", unsafe { fixclf_graph_new(&mut raw) })?;
        Ok(CudaGraph {
            raw,
            captured: false,
        })
    }

    /// Runs `f` with the graph's side stream current (after the work queued so far), then
    /// makes the previous stream wait for it: warm-up steps run there before a capture.
    pub fn on_side_stream<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        check("CUDA side stream", unsafe {
            fixclf_graph_enter_stream(self.raw)
        })?;
        let out = f();
        check("CUDA side stream", unsafe {
            fixclf_graph_exit_stream(self.raw)
        })?;
        out
    }

    /// Captures the kernels `f` queues (nothing runs now); `f`'s result holds tensors of
    /// the graph's pool, which each [`replay`](Self::replay) rewrites.
    pub fn capture<T>(&mut self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let raw = self.raw;
        let out = self.on_side_stream(|| {
            check("CUDA graph capture", unsafe {
                fixclf_graph_capture_begin(raw)
            })?;
            let out = f();
            // End the capture whatever happened, or the stream stays in capture mode.
            let ended = check("CUDA graph capture", unsafe {
                fixclf_graph_capture_end(raw)
            });
            let out = out?;
            ended?;
            Ok(out)
        })?;
        self.captured = true;
        Ok(out)
    }

    /// Queues the captured work on the current stream.
    pub fn replay(&self) -> Result<()> {
        debug_assert!(self.captured, "replay before capture");
        check("CUDA graph replay", unsafe {
            fixclf_graph_replay(self.raw)
        })
    }

    pub fn is_captured(&self) -> bool {
        self.captured
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        unsafe { fixclf_graph_free(self.raw) }
    }
}
