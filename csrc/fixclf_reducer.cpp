// The gradient all-reduce overlapped with the backward pass, as PyTorch's
// DistributedDataParallel does it: libtorch's own c10d::Reducer over the process group of
// csrc/fixclf_dist.cpp. The Reducer hooks every parameter's gradient accumulator; during
// the backward pass each gradient is copied into its flat bucket divided by the world size,
// and a bucket's all-reduce starts as soon as its last gradient is in, while autograd goes
// on with the layers below. At the end of the backward pass the Reducer waits for every
// bucket, and each parameter's `.grad` views its bucket: the mean over the ranks.
//
// As in fixclf_dist.cpp, every function returns NULL or a malloc'ed message: a c10d or
// autograd exception never crosses into Rust.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

typedef at::Tensor *tensor;

// csrc/fixclf_dist.cpp: the shim's group as a c10d::ProcessGroup.
c10::intrusive_ptr<c10d::ProcessGroup> fixclf_dist_process_group(void *gp);

namespace {
char *reducer_error(const char *what) {
  char *out = static_cast<char *>(std::malloc(std::strlen(what) + 1));
  if (out) std::strcpy(out, what);
  return out;
}

struct Overlap {
  std::vector<at::Tensor> params;
  std::unique_ptr<c10d::Reducer> reducer;
};
}  // namespace

#define REDUCER_GUARD(...)                                  \
  try {                                                     \
    __VA_ARGS__;                                            \
    return nullptr;                                         \
  } catch (const std::exception &e) {                       \
    return reducer_error(e.what());                         \
  } catch (...) {                                           \
    return reducer_error("unknown C++ exception in c10d"); \
  }

extern "C" {

// A Reducer over the `n` parameters (every one must receive a gradient at every step:
// find_unused_parameters=false). For the first step the buckets are by size in reverse
// order of the list (the backward pass meets the last-defined layers first); after it the
// Reducer rebuilds them once in the order the gradients arrived, as DDP: the first of at
// most `first_bucket_bytes`, so the first all-reduce starts early, the others
// `bucket_bytes`. `*buckets` gets the first step's count.
char *fixclf_reducer_new(void *group, const tensor *params, const char *const *names, int n,
                         int64_t bucket_bytes, int64_t first_bucket_bytes, int *buckets,
                         void **out) {
  REDUCER_GUARD({
    auto o = std::make_unique<Overlap>();
    std::unordered_map<size_t, std::string> by_index;
    for (int i = 0; i < n; i++) {
      o->params.push_back(*params[i]);
      by_index[i] = names[i];
    }
    std::vector<size_t> limits{static_cast<size_t>(first_bucket_bytes),
                               static_cast<size_t>(bucket_bytes)};
    std::vector<bool> sparse(n, false);
    auto [indices, per_bucket] =
        c10d::compute_bucket_assignment_by_size(o->params, limits, sparse);
    // Reversed, so the bucket of the last-defined parameters, the first to fill, goes first.
    std::reverse(indices.begin(), indices.end());
    std::reverse(per_bucket.begin(), per_bucket.end());
    std::vector<int64_t> caps(per_bucket.begin(), per_bucket.end());
    *buckets = static_cast<int>(indices.size());
    o->reducer = std::make_unique<c10d::Reducer>(
        o->params, std::move(indices), fixclf_dist_process_group(group), sparse, bucket_bytes,
        /*find_unused_parameters=*/false, /*gradient_as_bucket_view=*/true, std::move(by_index),
        first_bucket_bytes, /*skip_all_reduce_unused_params=*/false,
        /*use_python_reducer=*/false, std::move(caps));
    *out = o.release();
  })
}

void fixclf_reducer_free(void *r) {
  try {
    delete static_cast<Overlap *>(r);
  } catch (...) {
    // The Reducer's destructor may throw (a hook already gone); nothing to do at exit.
  }
}

// One backward pass of `loss` with the buckets all-reduced as they fill: grads[i] gets a
// new tensor holding parameter i's mean gradient over the ranks (a view into its bucket),
// and the parameter's `.grad` is cleared, so the next pass writes its buckets afresh
// (PyTorch's zero_grad(set_to_none=True)). `*exposed_s`: the seconds from the last
// gradient's arrival to the end of the pass, the all-reduce that the backward pass did not
// hide. A parameter the loss did not reach gets an undefined tensor (then its bucket was
// never all-reduced: the caller must stop).
char *fixclf_reducer_backward(void *r, tensor loss, tensor *grads, double *exposed_s) {
  REDUCER_GUARD({
    auto *o = static_cast<Overlap *>(r);
    // DDP does this at every forward: once after the first step the buckets are rebuilt
    // in the order the gradients arrived (rank 0's order, broadcast), then never again.
    o->reducer->rebuild_buckets();
    int64_t start = c10d::current_time_in_nanos();
    o->reducer->prepare_for_backward({*loss});
    torch::autograd::backward({*loss});
    int64_t total = c10d::current_time_in_nanos() - start;
    auto ready = o->reducer->get_backward_stats();
    int64_t last = ready.empty() ? 0 : *std::max_element(ready.begin(), ready.end());
    *exposed_s = std::max<int64_t>(total - last, 0) * 1e-9;
    for (size_t i = 0; i < o->params.size(); i++) {
      auto &p = o->params[i];
      grads[i] = new at::Tensor(p.grad());
      p.mutable_grad().reset();
    }
  })
}
}
