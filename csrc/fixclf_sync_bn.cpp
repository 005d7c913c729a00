// Synchronized BatchNorm (PyTorch's torch.nn.SyncBatchNorm) as a C++ autograd function over
// the shim's process group: in training, the batch statistics are the global batch's over
// every rank, and the input gradient takes the global batch's sums.
//
// Forward: per channel, each rank's count n, sum and sum of squares (from its own mean and
// biased variance, so the sums carry no float32 cancellation) in one float64 buffer of
// 2C + 1 values, summed over the ranks by one all-reduce; the global mean and biased
// variance normalize the batch, the running statistics take the unbiased variance with the
// momentum (batch_norm_gather_stats_with_counts). Ranks' counts may differ: every rank's
// values weigh by its count, an empty batch adds zeros.
// Backward: sum(dy) and sum(dy * (x - mean)) per channel, all-reduced (float64, 2C values),
// then the elementwise input gradient (batch_norm_backward_elemt); the weight and bias
// gradients stay local: the gradient all-reduce averages them with every other gradient.
//
// A failed collective (a dead peer, the timeout) must not throw through the autograd engine
// or abort: it is kept (the first one), the layer goes on with local statistics, every later
// call skips its collective (so no rank waits a timeout per layer), and the Rust side reads
// the failure before the gradient all-reduce and stops with it.
#include "fixclf_dist.h"

#include <torch/csrc/autograd/custom_function.h>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

typedef at::Tensor *tensor;

namespace {
std::mutex failure_lock;
std::string failure;
bool failure_in_backward = false;
std::atomic<bool> failed{false};
// What the layers' collectives moved in this process: all-reduces, values, nanoseconds.
std::atomic<int64_t> reduced_calls{0};
std::atomic<int64_t> reduced_values{0};
std::atomic<int64_t> reduced_nanos{0};

// Sums `buf` (a contiguous float64 tensor) over the group's data ranks in place. No group:
// nothing to sum (one rank; the unit tests). False when it failed or an earlier one had.
bool all_reduce(fixclf::Group *g, at::Tensor &buf, bool backward) {
  if (g == nullptr) return true;
  if (failed.load()) return false;
  try {
    auto start = std::chrono::steady_clock::now();
    std::vector<at::Tensor> one{buf};
    c10d::AllreduceOptions opts;
    opts.timeout = g->timeout;
    auto work = g->data->allreduce(one, opts);
    if (!work->wait(g->timeout)) throw std::runtime_error("the collective did not complete");
    auto took = std::chrono::steady_clock::now() - start;
    reduced_calls += 1;
    reduced_values += buf.numel();
    reduced_nanos += std::chrono::duration_cast<std::chrono::nanoseconds>(took).count();
    return true;
  } catch (const std::exception &e) {
    std::lock_guard<std::mutex> hold(failure_lock);
    if (!failed.load()) {
      failure = e.what();
      failure_in_backward = backward;
      failed.store(true);
    }
    return false;
  }
}

// Every dimension but the channels (1).
std::vector<int64_t> reduced_dims(const at::Tensor &x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); d++) dims.push_back(d);
  return dims;
}

// [1, C, 1, ...]: a per-channel vector broadcast over x.
std::vector<int64_t> channel_shape(const at::Tensor &x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = x.size(1);
  return shape;
}

struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &input,
                            const at::Tensor &weight, const at::Tensor &bias,
                            const at::Tensor &running_mean, const at::Tensor &running_var,
                            double eps, double momentum, int64_t group) {
    auto *g = reinterpret_cast<fixclf::Group *>(group);
    const int64_t c = input.size(1);
    const int64_t n = c > 0 ? input.numel() / c : 0;
    auto f64 = input.options().dtype(at::kDouble);
    at::Tensor local;
    if (n > 0) {
      auto [var, mean] = at::var_mean(input, reduced_dims(input), /*correction=*/0, false);
      auto m = mean.to(at::kDouble);
      auto v = var.to(at::kDouble);
      local = at::cat({m * n, (v + m * m) * n, at::full({1}, static_cast<double>(n), f64)});
    } else {
      local = at::zeros({2 * c + 1}, f64);
    }
    at::Tensor global = local.clone();
    if (!all_reduce(g, global, false)) global = local;
    auto total = global.narrow(0, 2 * c, 1);
    auto mean = global.narrow(0, 0, c) / total;
    auto var = (global.narrow(0, c, c) / total - mean * mean).clamp_min(0.0);
    if (running_mean.defined()) {
      running_mean.mul_(1.0 - momentum).add_((mean * momentum).to(running_mean.scalar_type()));
    }
    if (running_var.defined()) {
      auto unbiased = var * total / (total - 1.0);
      running_var.mul_(1.0 - momentum).add_((unbiased * momentum).to(running_var.scalar_type()));
    }
    auto stats = weight.defined() ? weight.scalar_type() : input.scalar_type();
    auto invstd = (var + eps).rsqrt();
    ctx->save_for_backward({input, weight, mean.to(stats), invstd.to(stats), total});
    ctx->saved_data["group"] = group;
    // Evaluation-mode batch norm with the global statistics: (x - mean) / sqrt(var + eps)
    // * weight + bias in one kernel.
    return at::batch_norm(input, weight, bias, mean.to(stats), var.to(stats), false, 0.0, eps,
                          true);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto &x = saved[0];
    auto &weight = saved[1];
    auto &mean = saved[2];
    auto &invstd = saved[3];
    auto &total = saved[4];
    auto *g = reinterpret_cast<fixclf::Group *>(ctx->saved_data["group"].toInt());
    auto dy = grads[0];
    const int64_t c = x.size(1);
    auto dims = reduced_dims(x);
    auto shape = channel_shape(x);
    auto kind = x.scalar_type();
    auto xmu = x - mean.view(shape).to(kind);
    auto sum_dy = dy.sum(dims);
    auto sum_dy_xmu = (dy * xmu).sum(dims);
    at::Tensor grad_input, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0)) {
      auto local = at::cat({sum_dy.to(at::kDouble), sum_dy_xmu.to(at::kDouble)});
      at::Tensor global = local.clone();
      if (!all_reduce(g, global, true)) global = local;
      auto mean_dy = global.narrow(0, 0, c) / total;
      auto mean_dy_xmu = global.narrow(0, c, c) / total;
      auto inv = invstd.to(at::kDouble);
      auto scale = weight.defined() ? inv * weight.to(at::kDouble) : inv;
      auto factor = inv * inv * mean_dy_xmu;
      grad_input = (dy - mean_dy.to(kind).view(shape) - xmu * factor.to(kind).view(shape)) *
                   scale.to(kind).view(shape);
    }
    if (weight.defined() && ctx->needs_input_grad(1)) {
      grad_weight = (sum_dy_xmu * invstd.to(sum_dy_xmu.scalar_type())).to(weight.scalar_type());
    }
    if (weight.defined() && ctx->needs_input_grad(2)) {
      grad_bias = sum_dy.to(weight.scalar_type());
    }
    // One per input of forward: x, weight, bias, the running statistics, eps, momentum, group.
    return {grad_input, grad_weight, grad_bias, at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor or_undefined(tensor t) { return t ? *t : at::Tensor(); }
}  // namespace

extern "C" {

// Synchronized BatchNorm in training mode over `group`'s data ranks (NULL: this process's
// batch alone, the same computation with no collective) as a new tensor in *out, with its
// backward. `weight`, `bias`, `running_mean`, `running_var` may be NULL. A failed collective
// is not an error here (see fixclf_sync_bn_failure); an error is a bad input.
char *fixclf_sync_bn(void *group, tensor input, tensor weight, tensor bias, tensor running_mean,
                     tensor running_var, double eps, double momentum, tensor *out) {
  try {
    if (input->dim() < 2) throw std::runtime_error("BatchNorm needs an input of [N, C, ...]");
    auto y = SyncBatchNorm::apply(*input, or_undefined(weight), or_undefined(bias),
                                  or_undefined(running_mean), or_undefined(running_var), eps,
                                  momentum, reinterpret_cast<int64_t>(group));
    *out = new at::Tensor(y);
    return nullptr;
  } catch (const std::exception &e) {
    return fixclf::dist_error(e.what());
  }
}

// What the layers' collectives have moved in this process: out[0] all-reduces, out[1]
// values (float64), out[2] nanoseconds spent in them (waiting for the other ranks included).
void fixclf_sync_bn_counts(int64_t *out) {
  out[0] = reduced_calls.load();
  out[1] = reduced_values.load();
  out[2] = reduced_nanos.load();
}

// The first failed collective of a synchronized BatchNorm (NULL: none), *backward set when
// it was the backward pass's.
char *fixclf_sync_bn_failure(int *backward) {
  if (!failed.load()) return nullptr;
  std::lock_guard<std::mutex> hold(failure_lock);
  *backward = failure_in_backward ? 1 : 0;
  return fixclf::dist_error(failure.c_str());
}
}
