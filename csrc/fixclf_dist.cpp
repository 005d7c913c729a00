// Data-parallel collectives on PyTorch's own c10d (the code behind torch.distributed):
// a TCPStore (torchrun's agent store as a client, or hosted by rank 0), prefixed with the
// restart attempt, and ProcessGroupGloo on the CPU (ProcessGroupNCCL on CUDA when built
// with the `cuda` feature and NCCL's header). On top of them: all-reduce and broadcast of
// tensor lists through flat buckets, and a barrier, every one waited for with a timeout.
//
// As in fixclf_native.cpp, every function returns NULL or a malloc'ed message: a c10d or
// gloo exception (a dead peer's gloo::IoException included) never crosses into Rust.
#include "fixclf_dist.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef FIXCLF_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

typedef at::Tensor *tensor;

char *fixclf::dist_error(const char *what) {
  char *out = static_cast<char *>(std::malloc(std::strlen(what) + 1));
  if (out) std::strcpy(out, what);
  return out;
}

namespace {
using fixclf::dist_error;
using fixclf::Group;

c10::intrusive_ptr<c10d::Backend> gloo_group(const c10::intrusive_ptr<c10d::Store> &store,
                                             int rank, int size,
                                             std::chrono::milliseconds timeout,
                                             const std::string &iface, const std::string &host) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  if (!iface.empty()) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
  } else if (!host.empty()) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  // One worker thread: collectives of a training step are issued from one thread in order.
  opts->threads = 1;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
}

// Tensors grouped into flat buffers of at most `bucket_bytes` (a tensor larger than that is
// a bucket of its own), each bucket of one dtype and device, in list order.
std::vector<std::vector<at::Tensor>> buckets_of(const tensor *ts, int n, int64_t bucket_bytes) {
  std::vector<std::vector<at::Tensor>> out;
  int64_t bytes = 0;
  for (int i = 0; i < n; i++) {
    const at::Tensor &t = *ts[i];
    int64_t b = t.numel() * t.element_size();
    bool fits = !out.empty() && bytes + b <= bucket_bytes &&
                out.back()[0].scalar_type() == t.scalar_type() &&
                out.back()[0].device() == t.device();
    if (!fits) {
      out.emplace_back();
      bytes = 0;
    }
    out.back().push_back(t);
    bytes += b;
  }
  return out;
}

at::Tensor flatten(const std::vector<at::Tensor> &ts) {
  std::vector<at::Tensor> flat;
  flat.reserve(ts.size());
  for (const auto &t : ts) flat.push_back(t.reshape({-1}));
  return at::cat(flat);
}

// The bucket's parts, shaped as its tensors (views into the bucket, no copy).
std::vector<at::Tensor> parts_of(const at::Tensor &buf, const std::vector<at::Tensor> &ts) {
  std::vector<at::Tensor> out;
  int64_t off = 0;
  for (const auto &t : ts) {
    out.push_back(buf.narrow(0, off, t.numel()).view(t.sizes()));
    off += t.numel();
  }
  return out;
}

void wait_all(std::vector<c10::intrusive_ptr<c10d::Work>> &works,
              std::chrono::milliseconds timeout) {
  for (auto &w : works) {
    if (!w->wait(timeout)) throw std::runtime_error("the collective did not complete");
  }
}
}  // namespace

// The group as the c10d::ProcessGroup that c10d::Reducer takes (csrc/fixclf_reducer.cpp):
// the data backend for its device (Gloo on the CPU, NCCL on CUDA) and the default, Gloo
// for host tensors.
c10::intrusive_ptr<c10d::ProcessGroup> fixclf_dist_process_group(void *gp) {
  auto *g = static_cast<Group *>(gp);
  using Type = c10d::ProcessGroup::BackendType;
  auto pg = c10::make_intrusive<c10d::ProcessGroup>(g->store, g->data->getRank(),
                                                    g->data->getSize());
  pg->setBackend(c10::DeviceType::CPU, Type::GLOO, g->control);
  if (g->data != g->control) {
    pg->setBackend(c10::DeviceType::CUDA, Type::NCCL, g->data);
    pg->setDefaultBackend(Type::NCCL);
  } else {
    pg->setDefaultBackend(Type::GLOO);
  }
  return pg;
}

#define DIST_GUARD(body)                                   \
  try {                                                    \
    body;                                                  \
    return nullptr;                                        \
  } catch (const std::exception &e) {                      \
    return dist_error(e.what());                           \
  } catch (...) {                                          \
    return dist_error("unknown C++ exception in c10d");    \
  }

extern "C" {

// Connects to (or, rank 0 without an agent store, hosts) the TCPStore at host:port, under
// `prefix`, and builds the process group of `size` ranks. `nccl`: data collectives on
// CUDA device `cuda_device` through NCCL (the `cuda` feature), else Gloo. `gloo_iface`:
// GLOO_SOCKET_IFNAME, else `gloo_host` (an address of this machine), else Gloo's default.
char *fixclf_dist_new(const char *host, int port, int agent_store, const char *prefix, int rank,
                      int size, int64_t timeout_ms, const char *gloo_iface,
                      const char *gloo_host, int nccl, int cuda_device, void **out) {
  DIST_GUARD({
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = !agent_store && rank == 0;
    if (!agent_store) so.numWorkers = size;
    so.waitWorkers = !agent_store;
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    auto g = std::make_unique<Group>();
    g->store = store;
    g->timeout = timeout;
    auto control_store = c10::make_intrusive<c10d::PrefixStore>("control/", store);
    g->control = gloo_group(control_store, rank, size, timeout, gloo_iface, gloo_host);
    if (nccl) {
#ifdef FIXCLF_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      auto data_store = c10::make_intrusive<c10d::PrefixStore>("data/", store);
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(cuda_device));
      g->data = c10::make_intrusive<c10d::ProcessGroupNCCL>(data_store, rank, size, opts);
#else
      (void)cuda_device;
      throw std::runtime_error(
          "this binary has no NCCL: build with --features cuda and the full torch install");
#endif
    } else {
      g->data = g->control;
    }
    *out = g.release();
  })
}

void fixclf_dist_free(void *g) { delete static_cast<Group *>(g); }

int fixclf_dist_has_nccl() {
#ifdef FIXCLF_NCCL
  return 1;
#else
  return 0;
#endif
}

// Sums every tensor over the ranks through flat buckets of at most `bucket_bytes` (all
// buckets in flight at once), times `scale` (1 / size for the mean): copied back into the
// tensors, or, when `views` is not NULL, handed out as new tensors viewing the buckets
// (views[i] for ts[i]: one copy fewer). `control`: on the control group (host tensors)
// instead of the data one.
char *fixclf_dist_allreduce(void *gp, const tensor *ts, int n, int64_t bucket_bytes,
                            double scale, int control, tensor *views) {
  DIST_GUARD({
    auto *g = static_cast<Group *>(gp);
    auto &pg = control ? g->control : g->data;
    auto buckets = buckets_of(ts, n, bucket_bytes);
    std::vector<at::Tensor> bufs;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    c10d::AllreduceOptions opts;
    opts.timeout = g->timeout;
    for (auto &b : buckets) {
      std::vector<at::Tensor> one{flatten(b)};
      works.push_back(pg->allreduce(one, opts));
      bufs.push_back(one[0]);
    }
    wait_all(works, g->timeout);
    int i = 0;
    for (size_t b = 0; b < buckets.size(); b++) {
      if (scale != 1.0) bufs[b].mul_(scale);
      auto parts = parts_of(bufs[b], buckets[b]);
      for (size_t k = 0; k < parts.size(); k++, i++) {
        if (views) {
          views[i] = new at::Tensor(parts[k]);
        } else {
          buckets[b][k].copy_(parts[k]);
        }
      }
    }
  })
}

// Overwrites every tensor with rank `root`'s, through flat buckets.
char *fixclf_dist_broadcast(void *gp, const tensor *ts, int n, int64_t bucket_bytes, int root,
                            int control) {
  DIST_GUARD({
    auto *g = static_cast<Group *>(gp);
    auto &pg = control ? g->control : g->data;
    auto buckets = buckets_of(ts, n, bucket_bytes);
    std::vector<at::Tensor> bufs;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g->timeout;
    for (auto &b : buckets) {
      std::vector<at::Tensor> one{flatten(b)};
      works.push_back(pg->broadcast(one, opts));
      bufs.push_back(one[0]);
    }
    wait_all(works, g->timeout);
    for (size_t b = 0; b < buckets.size(); b++) {
      auto parts = parts_of(bufs[b], buckets[b]);
      for (size_t k = 0; k < parts.size(); k++) buckets[b][k].copy_(parts[k]);
    }
  })
}

// Hosts a TCPStore on `port` of 127.0.0.1 (0: any free port, written to *bound) for ranks
// that are all clients, as torchrun's agent hosts one (TORCHELASTIC_USE_AGENT_STORE).
char *fixclf_dist_store_host(int port, int64_t timeout_ms, int *bound, void **out) {
  DIST_GUARD({
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = true;
    so.waitWorkers = false;
    so.timeout = std::chrono::milliseconds(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
    *bound = store->getPort();
    *out = new c10::intrusive_ptr<c10d::TCPStore>(store);
  })
}

void fixclf_dist_store_free(void *s) {
  delete static_cast<c10::intrusive_ptr<c10d::TCPStore> *>(s);
}

// Waits until every rank has reached it (on the control group).
char *fixclf_dist_barrier(void *gp) {
  DIST_GUARD({
    auto *g = static_cast<Group *>(gp);
    c10d::BarrierOptions opts;
    opts.timeout = g->timeout;
    auto w = g->control->barrier(opts);
    if (!w->wait(g->timeout)) throw std::runtime_error("the barrier did not complete");
  })
}
}
