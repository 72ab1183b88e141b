// Data-parallel training over PyTorch's own c10d runtime: a TCPStore rendezvous (rank 0 hosts it
// on MASTER_ADDR:MASTER_PORT) and a Gloo process group, with the few collectives the trainer
// needs: gradients averaged in flat buckets, rank 0's parameters broadcast, scalars averaged,
// rank 0's results (its evaluation) handed to every rank, the ranks' RNG states gathered. Every
// exchange is a Gloo collective: when a worker dies, its peers' next collective fails at once
// (its connections close) instead of waiting out the timeout.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

#include "ms/infer/distributed_env.h"

namespace ms::trainer {

class Distributed {
 public:
  /// Joins the workers of `env`: waits for all of them at the store (kNetwork naming the master
  /// address after env.timeout), then builds the Gloo group. On CPU only: a CUDA device is kUsage
  /// (this LibTorch has no NCCL).
  static std::shared_ptr<Distributed> join(const infer::DistributedEnv& env,
                                           const std::string& device);
  ~Distributed();

  const infer::DistributedEnv& env() const;
  int rank() const { return env().rank; }
  int world_size() const { return env().world_size; }
  bool is_main() const { return env().is_main(); }

  /// Every parameter's .grad becomes the mean over the ranks (a parameter without a gradient
  /// counts as zeros; one no rank used keeps none, as DDP's find_unused_parameters), overlapped
  /// with the backward pass as DDP's reducer does it: called just before backward(), it hooks
  /// each parameter's gradient accumulator, and a bucket's all-reduce starts as soon as the
  /// backward pass has produced all of its gradients (buckets of 1 MiB first, then 25 MiB, from
  /// the last parameter back, launched in one order on every rank). finish_gradient_average(),
  /// after backward(), sends what is left (unused parameters) and waits.
  void begin_gradient_average(const std::vector<at::Tensor>& params);
  void finish_gradient_average();
  /// Each tensor becomes its mean over the ranks, in the same buckets. One undefined on every
  /// rank stays undefined; one undefined here only becomes zeros shaped like `like`'s.
  void average(std::vector<at::Tensor>& tensors, const std::vector<at::Tensor>* like = nullptr);
  /// Copies rank 0's parameters and buffers to every rank (DDP does so when it wraps a model).
  void broadcast_module(torch::nn::Module& module);
  /// Copies rank 0's buffers alone (BatchNorm's running statistics) to every rank.
  void broadcast_buffers(torch::nn::Module& module);
  /// The mean of a scalar over the ranks (a NaN anywhere makes it NaN everywhere).
  double mean(double value);
  /// Rank 0's `value` on every rank (the others' `value` is ignored). `what` names the exchange
  /// in the error of a rank that stopped ("sharing rank 0's evaluation").
  std::string from_main(const std::string& value, const char* what);
  /// Every rank's `value` on rank 0, in rank order; an empty list on the other ranks.
  std::vector<std::string> gather_to_main(const std::string& value);
  void barrier();
  /// Checks that every rank describes its run alike (`facts`: its model's tensors, its iterations
  /// per epoch, ...). A rank with another model would send tensors of other sizes (Gloo aborts
  /// the process), one with other data would wait for batches that never come. Throws
  /// ms::Error(kConfig) on every rank, with one message naming the first fact that differs.
  void check_alike(const std::vector<std::string>& facts);

 private:
  /// Copies rank 0's `tensors` in place on every rank; `what` names the exchange.
  void broadcast_tensors(std::vector<at::Tensor>& tensors, const char* what);
  struct Impl;
  class GradientAverager;
  explicit Distributed(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<GradientAverager> averager_;  // between begin_ and finish_gradient_average
};

}  // namespace ms::trainer
