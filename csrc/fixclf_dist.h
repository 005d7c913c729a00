// What csrc/fixclf_dist.cpp (the process group) shares with csrc/fixclf_sync_bn.cpp (the
// synchronized BatchNorm that runs collectives on it).
#pragma once
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <chrono>

namespace fixclf {
// A process group as the Rust side holds it (an opaque pointer).
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  // Gradients and parameters go through `data`; `control` (always Gloo, on the CPU) carries
  // the small host-side exchanges (stop flags, barriers, hashes). On the CPU both are one.
  c10::intrusive_ptr<c10d::Backend> data;
  c10::intrusive_ptr<c10d::Backend> control;
  std::chrono::milliseconds timeout;
};

// `what` copied into a malloc'ed string, freed by the Rust side (fixclf_free_error).
char *dist_error(const char *what);
}  // namespace fixclf
