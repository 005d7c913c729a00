// The few libtorch entry points that tch 0.24 does not bind: multi-tensor (`_foreach_*`)
// updates for the optimizer, TF32 and autocast switches, and (built with the `cuda`
// feature only) CUDA graph capture and replay over at::cuda::CUDAGraph.
//
// Every function returns NULL on success or a malloc'ed message (freed by
// fixclf_free_error) when libtorch threw: no C++ exception crosses into Rust.
// Tensors are tch's handles, i.e. `at::Tensor*`.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef FIXCLF_CUDA
// Only what libtorch_cuda and libc10_cuda export: no CUDA runtime call is made from here
// (c10::Event goes through the registered CUDA guard), so nothing links against libcudart.
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAStream.h>
#endif

typedef at::Tensor *tensor;

namespace {
char *error_of(const char *what) {
  char *out = static_cast<char *>(std::malloc(std::strlen(what) + 1));
  if (out) std::strcpy(out, what);
  return out;
}

std::vector<at::Tensor> list(const tensor *ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) out.push_back(*ts[i]);
  return out;
}
}  // namespace

#define GUARD(body)                                        \
  try {                                                    \
    body;                                                  \
    return nullptr;                                        \
  } catch (const std::exception &e) {                      \
    return error_of(e.what());                             \
  } catch (...) {                                          \
    return error_of("unknown C++ exception in libtorch");  \
  }

extern "C" {

void fixclf_free_error(char *e) { std::free(e); }

// The global 2-norm of all tensors as a 0-dim float tensor on their device (no host sync).
char *fixclf_foreach_global_norm(const tensor *ts, int n, tensor *out) {
  GUARD({
    auto norms = at::_foreach_norm(list(ts, n), 2);
    *out = new at::Tensor(at::linalg_vector_norm(at::stack(norms), 2));
  })
}

// self[i] *= scalar (a 0-dim tensor, on the device or the CPU).
char *fixclf_foreach_mul_tensor_(const tensor *self, int n, tensor scalar) {
  GUARD(at::_foreach_mul_(list(self, n), *scalar))
}

char *fixclf_foreach_mul_scalar_(const tensor *self, int n, double s) {
  GUARD(at::_foreach_mul_(list(self, n), s))
}

char *fixclf_foreach_add_scalar_(const tensor *self, int n, double s) {
  GUARD(at::_foreach_add_(list(self, n), s))
}

// self[i] += alpha * other[i].
char *fixclf_foreach_add_list_(const tensor *self, const tensor *other, int n, double alpha) {
  GUARD(at::_foreach_add_(list(self, n), list(other, n), alpha))
}

// self[i] += other[i] * scale (a 0-dim tensor); `scratch`: other's values may be overwritten.
// On CUDA two multi-tensor kernels (in place on other when it is scratch, else through a
// temporary); on the CPU a multi-tensor op is a loop over the tensors anyway, so one fused
// pass per tensor (addcmul_) instead of two, and no temporary.
char *fixclf_foreach_add_scaled_(const tensor *self, const tensor *other, int n, tensor scale,
                                 int scratch) {
  GUARD({
    auto a = list(self, n);
    auto b = list(other, n);
    if (n > 0 && a[0].is_cuda()) {
      if (scratch) {
        at::_foreach_mul_(b, *scale);
        at::_foreach_add_(a, b);
      } else {
        at::_foreach_add_(a, at::_foreach_mul(b, *scale));
      }
    } else {
      for (int i = 0; i < n; i++) a[i].addcmul_(b[i], *scale);
    }
  })
}

// self[i] += a[i] * b[i] * value.
char *fixclf_foreach_addcmul_(const tensor *self, const tensor *a, const tensor *b, int n,
                              double value) {
  GUARD(at::_foreach_addcmul_(list(self, n), list(a, n), list(b, n), value))
}

// self[i] += weight * (end[i] - self[i]).
char *fixclf_foreach_lerp_scalar_(const tensor *self, const tensor *end, int n, double weight) {
  GUARD(at::_foreach_lerp_(list(self, n), list(end, n), weight))
}

// out[i] = sqrt(self[i]) (new tensors).
char *fixclf_foreach_sqrt(const tensor *self, int n, tensor *out) {
  GUARD({
    auto r = at::_foreach_sqrt(list(self, n));
    for (int i = 0; i < n; i++) out[i] = new at::Tensor(r[i]);
  })
}

// self[i] /= other[i].
char *fixclf_foreach_div_list_(const tensor *self, const tensor *other, int n) {
  GUARD(at::_foreach_div_(list(self, n), list(other, n)))
}

// TF32 tensor cores for float32 matrix products and cuDNN convolutions / RNNs (CUDA only;
// no effect on the CPU).
char *fixclf_set_tf32(int on) {
  GUARD({
    at::globalContext().setAllowTF32CuBLAS(on != 0);
    at::globalContext().setAllowTF32CuDNN(on != 0);
  })
}

// Autocast on `device` (0: CPU, 1: CUDA) to bfloat16, on or off. Returns the previous state
// in *was_enabled.
char *fixclf_set_autocast_bf16(int device, int on, int *was_enabled) {
  GUARD({
    auto type = device == 1 ? at::kCUDA : at::kCPU;
    *was_enabled = at::autocast::is_autocast_enabled(type) ? 1 : 0;
    at::autocast::set_autocast_dtype(type, at::kBFloat16);
    at::autocast::set_autocast_enabled(type, on != 0);
    if (on == 0) at::autocast::clear_cache();
  })
}

// The profiler (Kineto), to measure the device time of the kernels a piece of work runs:
// start, the work, stop. On the CPU nothing device-side is recorded (0 kernels).
char *fixclf_profiler_start(int cuda) {
  GUARD({
    using torch::profiler::impl::ActivityType;
    using torch::profiler::impl::ProfilerConfig;
    using torch::profiler::impl::ProfilerState;
    ProfilerConfig cfg(ProfilerState::KINETO);
    std::set<ActivityType> acts{ActivityType::CPU};
    if (cuda) acts.insert(ActivityType::CUDA);
    torch::autograd::profiler::prepareProfiler(cfg, acts);
    torch::autograd::profiler::enableProfiler(cfg, acts);
  })
}

// Stops the profiler: the summed duration of the device-side events (kernels, copies, sets)
// in microseconds, and their number.
char *fixclf_profiler_stop(double *device_us, int64_t *device_events) {
  GUARD({
    auto result = torch::autograd::profiler::disableProfiler();
    double total = 0;
    int64_t n = 0;
    for (const auto &e : result->events()) {
      if (e.deviceType() == c10::DeviceType::CUDA) {
        total += e.durationNs() / 1000.0;
        n++;
      }
    }
    *device_us = total;
    *device_events = n;
  })
}

int fixclf_cuda_graphs_compiled() {
#ifdef FIXCLF_CUDA
  return 1;
#else
  return 0;
#endif
}

#ifdef FIXCLF_CUDA
// A graph with the side stream it is captured on (capture cannot use the default stream).
struct FixclfGraph {
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
  c10::optional<c10::cuda::CUDAStream> previous;
};

char *fixclf_graph_new(void **out) {
  GUARD(*out = new FixclfGraph())
}

void fixclf_graph_free(void *g) { delete static_cast<FixclfGraph *>(g); }

// Makes the graph's side stream current, after the work queued so far on the current one.
char *fixclf_graph_enter_stream(void *g) {
  GUARD({
    auto *fg = static_cast<FixclfGraph *>(g);
    auto cur = c10::cuda::getCurrentCUDAStream();
    c10::Event ready(c10::DeviceType::CUDA);
    ready.record(cur.unwrap());
    ready.block(fg->side.unwrap());
    fg->previous = cur;
    c10::cuda::setCurrentCUDAStream(fg->side);
  })
}

// Back to the stream current before enter, which waits for the side stream's work.
char *fixclf_graph_exit_stream(void *g) {
  GUARD({
    auto *fg = static_cast<FixclfGraph *>(g);
    if (!fg->previous) return error_of("fixclf_graph_exit_stream without enter");
    c10::Event done(c10::DeviceType::CUDA);
    done.record(fg->side.unwrap());
    done.block(fg->previous->unwrap());
    c10::cuda::setCurrentCUDAStream(*fg->previous);
    fg->previous.reset();
  })
}

char *fixclf_graph_capture_begin(void *g) {
  GUARD(static_cast<FixclfGraph *>(g)->graph.capture_begin())
}

char *fixclf_graph_capture_end(void *g) {
  GUARD(static_cast<FixclfGraph *>(g)->graph.capture_end())
}

char *fixclf_graph_replay(void *g) {
  GUARD(static_cast<FixclfGraph *>(g)->graph.replay())
}

char *fixclf_graph_reset(void *g) {
  GUARD(static_cast<FixclfGraph *>(g)->graph.reset())
}
#endif
}
