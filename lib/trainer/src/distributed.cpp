// c10d from C++: TCPStore + ProcessGroupGloo (see ../shared/reference/libtorch.md section 5), and
// ProcessGroupNCCL for CUDA tensors where LibTorch has it (MS_TORCH_NCCL:
// lib/trainer/CMakeLists.txt).
#include "ms/trainer/distributed.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>
#include <fmt/ranges.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef MS_TORCH_NCCL
#include <c10/cuda/CUDAFunctions.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "store_v2_client.h"
#include "store_wire.h"

namespace ms::trainer {
namespace {

// DDP's default bucket_cap_mb, and the smaller first bucket it starts the backward pass with.
constexpr std::size_t kBucketBytes = 25u << 20;
constexpr std::size_t kFirstBucketBytes = 1u << 20;

// The overlapped buckets' sizes: DDP's, unless a test build is told otherwise
// (MS_TEST_DDP_BUCKET_BYTES: tiny buckets, so that a small model has many in flight).
std::pair<std::size_t, std::size_t> overlap_bucket_bytes() {
#ifdef MS_TEST_HOOKS
  if (const char* v = std::getenv("MS_TEST_DDP_BUCKET_BYTES"); v != nullptr && *v != '\0') {
    const auto bytes = static_cast<std::size_t>(std::strtoull(v, nullptr, 10));
    if (bytes > 0) return {bytes, bytes};
  }
#endif
  return {kFirstBucketBytes, kBucketBytes};
}

// DDP's buckets: from the last tensor back (the last layers' gradients are ready first in a
// backward pass), one dtype each, the first of at most `first_bytes`, the others of `bytes` (a
// tensor larger than that has a bucket of its own). Each bucket's tensor indices, in that order.
std::vector<std::vector<std::size_t>> plan_buckets(const std::vector<at::Tensor>& tensors,
                                                   std::size_t first_bytes, std::size_t bytes) {
  std::vector<std::vector<std::size_t>> buckets;
  std::size_t filled = 0;
  for (std::size_t k = tensors.size(); k-- > 0;) {
    const at::Tensor& t = tensors[k];
    const std::size_t size = static_cast<std::size_t>(t.numel()) * t.element_size();
    const std::size_t cap = buckets.size() <= 1 ? first_bytes : bytes;
    if (buckets.empty() || filled + size > cap ||
        tensors[buckets.back().front()].scalar_type() != t.scalar_type()) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(k);
    filled += size;
  }
  return buckets;
}

// What a process group's collectives are called on: LibTorch 2.x splits a group into backends
// (ProcessGroupGloo and ProcessGroupNCCL are Backends there); in 1.x the group itself does them.
#if TORCH_VERSION_MAJOR >= 2
using CollectiveGroup = c10d::Backend;
#else
using CollectiveGroup = c10d::ProcessGroup;
#endif

// Two workers given one RANK, or workers given different WORLD_SIZEs, would wait in Gloo's
// connection mesh until the timeout or fail there with a message about addresses: the store
// tells at once. The keys are this run's (a fresh store, or the agent's attempt prefix).
//
// Rank 0's WORLD_SIZE stands (recorded as soon as its store listens; under torchrun's agent
// store, the first worker's): a worker whose value differs is refused as it arrives (exit 2),
// and it tells the others, which stop at once (exit 5) rather than wait out the timeout for a
// worker that will not come. Every worker with the run's WORLD_SIZE and a RANK of its own counts
// itself in; the last one in sets the run's verdict, which every worker waits for.
void check_launch_agrees(c10d::Store& store, const infer::DistributedEnv& env) {
  const std::string where = fmt::format("{}:{}", env.master_addr, env.master_port);
  auto bytes = [](const std::string& text) {
    return std::vector<std::uint8_t>(text.begin(), text.end());
  };
  const std::string mine = std::to_string(env.world_size);
  constexpr const char* kVerdict = "ms/verdict";
  constexpr const char* kReady = "ready";
  std::int64_t claims = 0;
  std::string world;
  auto store_failed = [&](const std::exception& e) {
    return Error(ErrorCode::kNetwork,
                 fmt::format("rank {} of {}: the rendezvous store at {} failed: {}", env.rank,
                             env.world_size, where, first_line(e.what())),
                 "another worker stopped or became unreachable; MS_DIST_TIMEOUT sets the wait");
  };
  const bool host = env.is_main() && !env.agent_store;
  // The first verdict stands. Written with set(): LibTorch 1.x's store wakes no waiting client on
  // a compareSet().
  auto give_verdict = [&](const std::string& verdict) {
    if (store.add("ms/verdicts", 1) == 1) store.set(kVerdict, bytes(verdict));
  };
  try {
    // The host's value is the run's; under torchrun's agent store, the first worker's.
    std::vector<std::uint8_t> agreed;
    if (host) {
      store.set("ms/world_size", bytes(mine));
      agreed = bytes(mine);
    } else if (!env.agent_store) {
      store.wait({"ms/world_size"}, env.timeout);
      agreed = store.get("ms/world_size");
    } else {
      agreed = store.compareSet("ms/world_size", {}, bytes(mine));
    }
    world.assign(agreed.begin(), agreed.end());
    if (world != mine) {
      // The others stop now, naming the mismatch.
      give_verdict(fmt::format("rank {} came with WORLD_SIZE={}, and the run has WORLD_SIZE={}",
                               env.rank, mine, world));
    } else {
      claims = store.add(fmt::format("ms/rank_claims/{}", env.rank), 1);
      if (claims == 1 && store.add("ms/arrived", 1) == env.world_size) give_verdict(kReady);
    }
  } catch (const std::exception& e) {
    throw store_failed(e);
  }
  if (world != mine) {
    throw Error(ErrorCode::kUsage,
                fmt::format("this worker has WORLD_SIZE={}, and another worker of the run has "
                            "WORLD_SIZE={}",
                            env.world_size, world),
                "start every worker with the same WORLD_SIZE (the number of workers)");
  }
  if (claims > 1) {
    throw Error(ErrorCode::kUsage,
                fmt::format("another worker of this run was started with RANK={} too", env.rank),
                "give each worker its own RANK, 0 to WORLD_SIZE - 1");
  }
  // The store's host waits the timeout, then says how many came; the others wait twice as long
  // (one that comes just within the timeout counts itself in a moment after it), then name the
  // ranks that never came, or see that the host has gone.
  const auto limit = host ? env.timeout : env.timeout * 2;
  std::string verdict;
  try {
    store.wait({kVerdict}, limit);
    const std::vector<std::uint8_t> value = store.get(kVerdict);
    verdict.assign(value.begin(), value.end());
  } catch (const std::exception& e) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(limit).count();
    // The ranks that never counted themselves in; empty when the store itself is gone.
    auto missing_ranks = [&] {
      std::vector<int> missing;
      for (int r = 0; r < env.world_size; ++r)
        if (!store.check({fmt::format("ms/rank_claims/{}", r)})) missing.push_back(r);
      return missing;
    };
    if (host) {
      std::int64_t arrived = -1;
      std::vector<int> missing;
      try {
        arrived = store.add("ms/arrived", 0);
        missing = missing_ranks();
      } catch (const std::exception&) {
        throw store_failed(e);
      }
      throw Error(ErrorCode::kNetwork,
                  fmt::format("only {} of {} workers reached the rendezvous at {} within "
                              "MS_DIST_TIMEOUT ({} s){}",
                              arrived, env.world_size, where, seconds,
                              // (Empty where the last one counted itself in just then.)
                              missing.empty() ? std::string()
                                              : fmt::format(": rank(s) {} never came",
                                                            fmt::join(missing, ", "))),
                  "start every worker with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE, "
                  "each with its own RANK (0 to WORLD_SIZE - 1); MS_DIST_TIMEOUT sets the wait "
                  "in seconds");
    }
    std::vector<int> missing;
    try {
      missing = missing_ranks();
    } catch (const std::exception&) {
      // The store itself is gone (rank 0 stopped): the wait's own error says so below.
    }
    if (missing.empty()) {
      throw Error(ErrorCode::kNetwork,
                  fmt::format("rank {} of {}: the rendezvous store at {} stopped answering "
                              "while this worker waited for the others ({})",
                              env.rank, env.world_size, where, first_line(e.what())),
                  "rank 0 (or torchrun, whose store it is) stopped: its output says why");
    }
    throw Error(ErrorCode::kNetwork,
                fmt::format("rank(s) {} of {} never reached the rendezvous at {} within twice "
                            "MS_DIST_TIMEOUT ({} s)",
                            fmt::join(missing, ", "), env.world_size, where, seconds),
                "start every worker with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE, "
                "each with its own RANK (0 to WORLD_SIZE - 1)");
  }
  if (verdict == kReady) {
    // The host keeps its store up until every worker has read the verdict: one that failed at
    // once after it (a bad GLOO_SOCKET_IFNAME) would otherwise take the store away from a worker
    // about to read it, which would then report the store gone instead of its own error.
    try {
      if (store.add("ms/read", 1) == env.world_size) store.set("ms/all_read", bytes(kReady));
      if (host) store.wait({"ms/all_read"}, env.timeout);
    } catch (const std::exception& e) {
      throw store_failed(e);
    }
    return;
  }
  throw Error(
      ErrorCode::kNetwork,
      fmt::format("rank {} of {}: the run cannot start: {}", env.rank, env.world_size, verdict),
      "start every worker with the same WORLD_SIZE (the number of workers)");
}

// Stops the process when the rendezvous outlives every bound its steps have: LibTorch 1.x's
// store client reads without a deadline once connected, so a rank 0 that freezes between this
// worker's checks and Gloo's connection (a host that hangs, a stopped process) would hold the
// worker forever. Each step (the store check, the store, rank 0's WORLD_SIZE, the verdict: two,
// Gloo, NCCL; rank 0: the store, the verdict, its reading, Gloo, NCCL) waits at most the timeout;
// past kSteps of them the worker gives up with exit 5 (ms::Error's kNetwork).
class RendezvousWatchdog {
 public:
  static constexpr int kSteps = 7;

  RendezvousWatchdog(const infer::DistributedEnv& env)
      : thread_([this, limit = env.timeout * kSteps,
                 where = fmt::format("{}:{}", env.master_addr, env.master_port)] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (done_changed_.wait_for(lock, limit, [this] { return done_; })) return;
          std::fprintf(stderr,
                       "ms: error: the rendezvous at %s did not finish within %lld s (%d times "
                       "MS_DIST_TIMEOUT): stopping\n  hint: a worker or rank 0's host stopped "
                       "answering; see the other workers' output\n",
                       where.c_str(),
                       static_cast<long long>(
                           std::chrono::duration_cast<std::chrono::seconds>(limit).count()),
                       kSteps);
          std::fflush(stderr);
          std::_Exit(5);
        }) {}
  ~RendezvousWatchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    done_changed_.notify_all();
    thread_.join();
  }
  RendezvousWatchdog(const RendezvousWatchdog&) = delete;
  RendezvousWatchdog& operator=(const RendezvousWatchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable done_changed_;
  bool done_ = false;
  std::thread thread_;  // last: it starts once the members it reads exist
};

}  // namespace

struct Distributed::Impl {
  infer::DistributedEnv env;
  c10::intrusive_ptr<c10d::Store> store;
  // Gloo carries every CPU tensor: the gradients of CPU training, and on any device the small
  // exchanges (flags, the loss, rank 0's evaluation, RNG states, barriers), whose failure shows at
  // once when a peer's connection drops. NCCL carries CUDA tensors (gradients, rank 0's weights);
  // undefined without it, and then join() refuses a CUDA device.
  c10::intrusive_ptr<CollectiveGroup> gloo;
  c10::intrusive_ptr<CollectiveGroup> nccl;

  // PyTorch asks for destroy_process_group() before exit: NCCL's communicators are shut down
  // (and its watchdog stopped) here, where ProcessGroupNCCL's destructor would warn instead.
  ~Impl() {
#ifdef MS_TORCH_NCCL
    if (nccl) {
      try {
        nccl->shutdown();
      } catch (const std::exception& e) {
        log::debug("shutting NCCL down: {}", first_line(e.what()));
      }
    }
#endif
  }

  CollectiveGroup& group_for(const at::Tensor& t) {
    if (!t.is_cuda()) return *gloo;
    MS_CHECK(nccl, ErrorCode::kInternal, "a CUDA tensor to exchange, but no NCCL group");
    return *nccl;
  }

  // Runs a collective; a failure (a worker gone, the timeout) becomes a clear kNetwork error.
  template <typename F>
  auto collective(const char* what, F&& run) {
    try {
      return run();
    } catch (const std::exception& e) {
      const std::string cause = first_line(e.what());
      // A wait that ran out may be a peer that is merely slow: rank 0 evaluating, or saving a
      // checkpoint, alone while the others wait for its answer.
      const bool timed_out = ascii_lower(cause).find("timed out") != std::string::npos;
      throw Error(
          ErrorCode::kNetwork,
          fmt::format("rank {} of {}: {} failed: {}", env.rank, env.world_size, what, cause),
          timed_out ? fmt::format(
                          "no answer within MS_DIST_TIMEOUT ({} s): another worker stopped or "
                          "hung (see its output), or took longer than that for work of its own "
                          "(rank 0 saves checkpoints alone; every rank evaluates its share); raise "
                          "MS_DIST_TIMEOUT if so",
                          std::chrono::duration_cast<std::chrono::seconds>(env.timeout).count())
                    : std::string("another worker stopped or became unreachable: see its output "
                                  "(the launcher, `--nproc` or torchrun, names the worker that "
                                  "failed first); MS_DIST_TIMEOUT sets the wait in seconds"));
    }
  }

  // Gloo's work is waited for with the timeout. NCCL's wait() only orders the current CUDA stream
  // after the collective (the CPU goes on); its own watchdog enforces the timeout
  // (ProcessGroupNCCL::Options::timeout), where a wait with a timeout would block the CPU.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, bool cuda = false) {
    if (cuda)
      work->wait();
    else
      work->wait(env.timeout);
  }
};

// DDP's reducer over Gloo: gradients are copied into flat buckets as the backward pass produces
// them (a post-hook on each parameter's gradient accumulator), and each full bucket is
// all-reduced while the backward pass goes on. Buckets are launched strictly in order, so that
// every rank issues the same collectives in the same sequence whatever order its gradients come
// in. finish() fills in what the backward pass did not produce (unused parameters: their own
// gradient if an earlier accumulation pass left one, else zeros), launches the rest, and agrees
// with the other ranks on which parameters any rank used (find_unused_parameters).
class Distributed::GradientAverager {
 public:
  GradientAverager(Distributed::Impl& impl, std::vector<at::Tensor> params)
      : impl_(impl),
        params_(std::move(params)),
        ready_(params_.size(), false),
        bucket_of_(params_.size()),
        offset_of_(params_.size()) {
    const auto [first_bytes, bytes] = overlap_bucket_bytes();
    for (std::vector<std::size_t>& members : plan_buckets(params_, first_bytes, bytes)) {
      Bucket& b = buckets_.emplace_back();
      b.members = std::move(members);
      for (std::size_t k : b.members) {
        bucket_of_[k] = buckets_.size() - 1;
        offset_of_[k] = b.numel;
        b.numel += params_[k].numel();
      }
      b.flat = at::empty({b.numel}, params_[b.members.front()].options().requires_grad(false));
    }
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (!params_[k].requires_grad()) continue;
      std::shared_ptr<torch::autograd::Node> acc =
          torch::autograd::impl::grad_accumulator(params_[k]);
      const uintptr_t key = acc->add_post_hook(std::make_unique<ReadyHook>(this, k));
      hooks_.emplace_back(std::move(acc), key);
    }
  }
  ~GradientAverager() {
    for (auto& [acc, key] : hooks_) acc->del_post_hook(key);
  }
  GradientAverager(const GradientAverager&) = delete;
  GradientAverager& operator=(const GradientAverager&) = delete;

  std::size_t buckets() const { return buckets_.size(); }
  std::size_t launched_during_backward() const { return launched_early_; }

  // The backward pass has produced parameter k's gradient.
  void on_ready(std::size_t k) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ready_[k]) return;
    const at::Tensor& g = params_[k].grad();
    if (!g.defined()) return;  // finish() takes it
    used_[k] = true;
    stage(k, g);
    launch_full_buckets();
    launched_early_ = next_;
  }

  void finish(double scale) {
    std::lock_guard<std::mutex> lock(mutex_);
    torch::NoGradGuard no_grad;
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (ready_[k]) continue;
      const at::Tensor& g = params_[k].grad();
      used_[k] = g.defined();
      stage(k, g);
    }
    launch_full_buckets();
    // Which parameters some rank used: one no rank used keeps no gradient (the optimizer skips
    // it, as in one process); one used elsewhere only gets the others' mean.
    at::Tensor used = at::zeros({static_cast<std::int64_t>(params_.size())}, at::kFloat);
    float* flags = used.data_ptr<float>();
    for (std::size_t k = 0; k < params_.size(); ++k) flags[k] = used_[k] ? 1.0f : 0.0f;
    impl_.collective("the gradient all-reduce", [&] {
      std::vector<at::Tensor> t{used};
      impl_.wait(impl_.gloo->allreduce(t));
      for (Bucket& b : buckets_) impl_.wait(b.work, b.flat.is_cuda());
    });
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (flags[k] == 0) continue;
      at::Tensor& param = params_[k];
      const Bucket& b = buckets_[bucket_of_[k]];
      const at::Tensor mean =
          b.flat.narrow(0, offset_of_[k], param.numel()).view(param.sizes()).mul_(scale);
      if (param.grad().defined())
        param.mutable_grad().copy_(mean);
      else
        param.mutable_grad() = mean.clone();
    }
  }

 private:
  struct Bucket {
    std::vector<std::size_t> members;  // parameter indices, last parameter first
    std::int64_t numel = 0;
    at::Tensor flat;
    std::size_t staged = 0;
    c10::intrusive_ptr<c10d::Work> work;
  };

  struct ReadyHook final : torch::autograd::FunctionPostHook {
    ReadyHook(GradientAverager* owner, std::size_t k) : owner(owner), k(k) {}
    torch::autograd::variable_list operator()(
        const torch::autograd::variable_list& outputs,
        const torch::autograd::variable_list& /*inputs*/) override {
      owner->on_ready(k);
      return outputs;
    }
    GradientAverager* owner;
    std::size_t k;
  };

  // Copies parameter k's gradient (zeros when undefined) into its bucket.
  void stage(std::size_t k, const at::Tensor& g) {
    Bucket& b = buckets_[bucket_of_[k]];
    at::Tensor slot = b.flat.narrow(0, offset_of_[k], params_[k].numel());
    if (g.defined())
      slot.copy_(g.reshape({-1}));
    else
      slot.zero_();
    ready_[k] = true;
    ++b.staged;
  }

  // Starts the all-reduce of every full bucket from the next one on, stopping at the first that
  // is not full: the order is the same on every rank.
  void launch_full_buckets() {
    while (next_ < buckets_.size() && buckets_[next_].staged == buckets_[next_].members.size()) {
      Bucket& b = buckets_[next_];
      impl_.collective("the gradient all-reduce", [&] {
        std::vector<at::Tensor> t{b.flat};
        b.work = impl_.group_for(b.flat).allreduce(t);
      });
      ++next_;
    }
  }

  Distributed::Impl& impl_;
  std::vector<at::Tensor> params_;
  std::vector<bool> ready_;
  std::vector<bool> used_ = std::vector<bool>(params_.size(), false);
  std::vector<std::size_t> bucket_of_;
  std::vector<std::int64_t> offset_of_;
  std::vector<Bucket> buckets_;
  std::size_t next_ = 0, launched_early_ = 0;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
  std::mutex mutex_;
};

Distributed::Distributed(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Distributed::~Distributed() = default;

void Distributed::begin_gradient_average(const std::vector<at::Tensor>& params) {
  averager_.reset();  // a pass that threw left its hooks: they go first
  averager_ = std::make_unique<GradientAverager>(*impl_, params);
}

void Distributed::finish_gradient_average() {
  MS_ASSERT(averager_ != nullptr);
  std::unique_ptr<GradientAverager> averager = std::move(averager_);
  averager->finish(1.0 / world_size());
  log::debug("gradient all-reduce: {} of {} buckets launched during the backward pass",
             averager->launched_during_backward(), averager->buckets());
}

const infer::DistributedEnv& Distributed::env() const { return impl_->env; }

std::shared_ptr<Distributed> Distributed::join(const infer::DistributedEnv& env,
                                               const std::string& device) {
#ifndef MS_TORCH_NCCL
  MS_CHECK(device == "cpu", ErrorCode::kUsage,
           "data-parallel training on {} needs NCCL, which this build of ms lacks (LibTorch {} "
           "without NCCL, or NCCL's nccl.h not found when ms was built): train on --device cpu "
           "(Gloo), or on one GPU without torchrun / --nproc",
           device, TORCH_VERSION);
#endif
  const RendezvousWatchdog watchdog(env);
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  const std::string where = fmt::format("{}:{}", env.master_addr, env.master_port);
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(env.master_port);
  // Under torchrun's agent the store is the agent's; otherwise rank 0 hosts it.
  options.isServer = env.is_main() && !env.agent_store;
  options.numWorkers = static_cast<std::size_t>(env.world_size);
  // The workers are counted in check_launch_agrees, not by the store's constructor: LibTorch
  // 1.x's rank 0 would wait there for all of them (quietly, until the timeout) before it could
  // tell a worker with another WORLD_SIZE that it does not belong.
  options.waitWorkers = false;
  options.timeout = env.timeout;
  // A name that does not resolve would cost rank 0 a whole timeout of retries.
  check_host_resolves(env.master_addr, env.master_port);
#if TORCH_VERSION_MAJOR < 2
  // LibTorch 1.x's client reads its replies without a deadline, so a port that accepts and stays
  // silent (another service's) would hold it forever, and it decodes a stranger's bytes on a
  // thread of its own, where the bad_alloc aborts the process: the store must answer first.
  // torchrun's agent may be a torch 2.x one, whose store speaks 2.x's protocol, which LibTorch
  // 1.x's client does not: ms's own client speaks it then.
  StoreProtocol protocol = StoreProtocol::kV1;
  if (env.agent_store) {
    protocol = agent_store_protocol(env.master_addr, env.master_port,
                                    StoreWire::Clock::now() + env.timeout);
  } else if (!options.isServer) {
    check_store_answers(env.master_addr, env.master_port, StoreWire::Clock::now() + env.timeout);
  }
#endif
  try {
    c10::intrusive_ptr<c10d::Store> tcp;
#if TORCH_VERSION_MAJOR < 2
    if (protocol == StoreProtocol::kV2) {
      tcp = c10::make_intrusive<StoreV2Client>(env.master_addr, env.master_port, env.timeout);
      log::debug("torchrun's store at {} speaks torch 2.x's protocol", where);
    } else
#endif
      tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    impl->store = tcp;
    if (env.agent_store)
      impl->store = c10::make_intrusive<c10d::PrefixStore>(
          fmt::format("/worker/attempt_{}", env.restart_count), tcp);
  } catch (const std::exception& e) {
    std::string hint =
        env.is_main()
            ? "rank 0 hosts the store on MASTER_PORT: pick a free port; every worker must "
              "start within MS_DIST_TIMEOUT seconds"
            : "check MASTER_ADDR / MASTER_PORT (rank 0's host and a port it can bind) and that "
              "rank 0 runs; MS_DIST_TIMEOUT sets the wait in seconds";
    // Rank 0 serves the store here and then connects to it at MASTER_ADDR: another host's
    // address there met whatever listens on that host's port (LibTorch's error then speaks of
    // its protocol).
    if (options.isServer && !names_this_machine(env.master_addr)) {
      hint = fmt::format(
          "MASTER_ADDR {} is not an address of this machine, but rank 0 hosts the store there: "
          "set MASTER_ADDR to rank 0's own host (its name or address) on every worker",
          env.master_addr);
    }
    // LibTorch's account of a port in use lists each address it tried.
    const bool port_in_use = options.isServer && std::string_view(e.what()).find(
                                                     "Address already in use") != std::string::npos;
    throw Error(ErrorCode::kNetwork,
                port_in_use ? fmt::format("rank {} of {}: MASTER_PORT {} is in use on this "
                                          "machine: the rendezvous store cannot listen there",
                                          env.rank, env.world_size, env.master_port)
                            : fmt::format("rank {} of {}: the rendezvous at {} failed: {}",
                                          env.rank, env.world_size, where, first_line(e.what())),
                hint);
  }
  check_launch_agrees(*impl->store, env);
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  const bool ifname_set = ifname != nullptr && *ifname != '\0';
  try {
    auto options = c10d::ProcessGroupGloo::Options::create(env.timeout);
    // As PyTorch: GLOO_SOCKET_IFNAME picks the interface (a comma-separated list: a device on
    // each, which Gloo uses in turn), else this host's name (loopback when it does not resolve).
    if (ifname_set) {
      for (const std::string& name : split(ifname, ',')) {
        try {
          options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
        } catch (const std::exception& e) {
          throw Error(ErrorCode::kUsage,
                      fmt::format("GLOO_SOCKET_IFNAME={}: interface '{}': {}", ifname, name,
                                  first_line(e.what())),
                      "name network interfaces of this machine (`ip -brief address` lists "
                      "them), separated by commas, or unset GLOO_SOCKET_IFNAME");
        }
      }
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    options->threads = 2;
    impl->gloo =
        c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world_size, options);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kNetwork,
                fmt::format("rank {} of {}: connecting the Gloo group (store at {}) failed: {}",
                            env.rank, env.world_size, where, first_line(e.what())),
                ifname_set ? "check that GLOO_SOCKET_IFNAME names the network interface the "
                             "workers share"
                           : "set GLOO_SOCKET_IFNAME to the network interface the workers share");
  }
#ifdef MS_TORCH_NCCL
  if (device.rfind("cuda", 0) == 0) {
    try {
      // This rank's card is the current device: NCCL's communicator and streams go there.
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(std::stoi(device.substr(5))));
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = env.timeout;
      // Keys of its own in the shared store, as PyTorch gives every group a prefix.
      impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl", impl->store), env.rank, env.world_size,
          options);
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kNetwork,
                  fmt::format("rank {} of {}: creating the NCCL group on {} failed: {}", env.rank,
                              env.world_size, device, first_line(e.what())),
                  "NCCL_DEBUG=INFO shows why; each worker needs a GPU of its own");
    }
  }
#endif
  log::info("rank {} of {} joined (local rank {}, store at {}{})", env.rank, env.world_size,
            env.local_rank, where, impl->nccl ? ", NCCL on " + device : "");
  return std::shared_ptr<Distributed>(new Distributed(std::move(impl)));
}

void Distributed::average(std::vector<at::Tensor>& tensors, const std::vector<at::Tensor>* like) {
  torch::NoGradGuard no_grad;
  // Which tensors are defined on some rank: one no rank has stays undefined (a parameter no rank
  // used keeps no gradient, so the optimizer skips it, as in one process); one defined elsewhere
  // counts as zeros here.
  at::Tensor used = at::zeros({static_cast<std::int64_t>(tensors.size())}, at::kFloat);
  // Read and written through its buffer: this runs every step, once per parameter.
  float* flags = used.data_ptr<float>();
  for (std::size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].defined()) flags[i] = 1;
  impl_->collective("the gradient all-reduce", [&] {
    std::vector<at::Tensor> t{used};
    impl_->wait(impl_->gloo->allreduce(t));
  });
  std::vector<at::Tensor*> present;
  std::vector<at::Tensor> present_tensors;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (flags[i] == 0) continue;
    if (!tensors[i].defined()) {
      MS_CHECK(like != nullptr, ErrorCode::kInternal,
               "tensor {} to average is defined on another rank only", i);
      tensors[i] = at::zeros_like((*like)[i]);
    }
    present.push_back(&tensors[i]);
    present_tensors.push_back(tensors[i]);
  }
  std::vector<std::vector<at::Tensor*>> buckets;
  for (const auto& members : plan_buckets(present_tensors, kBucketBytes, kBucketBytes)) {
    auto& bucket = buckets.emplace_back();
    for (std::size_t j : members) bucket.push_back(present[j]);
  }
  std::vector<at::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  impl_->collective("the gradient all-reduce", [&] {
    for (auto& bucket : buckets) {
      std::vector<at::Tensor> pieces;
      for (const at::Tensor* g : bucket) pieces.push_back(g->reshape({-1}));
      flats.push_back(at::cat(pieces));
      std::vector<at::Tensor> t{flats.back()};
      works.push_back(impl_->group_for(t[0]).allreduce(t));  // all buckets in flight at once
    }
    for (std::size_t b = 0; b < works.size(); ++b) impl_->wait(works[b], flats[b].is_cuda());
  });
  const double scale = 1.0 / world_size();
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    std::int64_t offset = 0;
    for (at::Tensor* g : buckets[b]) {
      const std::int64_t n = g->numel();
      g->copy_(flats[b].narrow(0, offset, n).view(g->sizes()).mul_(scale));
      offset += n;
    }
  }
}

void Distributed::broadcast_module(torch::nn::Module& module) {
  std::vector<at::Tensor> tensors;
  for (const at::Tensor& p : module.parameters()) tensors.push_back(p);
  for (const at::Tensor& b : module.buffers()) tensors.push_back(b);
  broadcast_tensors(tensors, "broadcasting rank 0's weights");
}

void Distributed::broadcast_buffers(torch::nn::Module& module) {
  std::vector<at::Tensor> tensors;
  for (const at::Tensor& b : module.buffers()) tensors.push_back(b);
  if (!tensors.empty()) broadcast_tensors(tensors, "broadcasting rank 0's buffers");
}

void Distributed::broadcast_tensors(std::vector<at::Tensor>& tensors, const char* what) {
  torch::NoGradGuard no_grad;
  impl_->collective(what, [&] {
    for (at::Tensor& t : tensors) {
      at::Tensor data = t.contiguous();
      std::vector<at::Tensor> v{data};
      impl_->wait(impl_->group_for(data).broadcast(v), data.is_cuda());
      if (!data.is_same(t)) t.copy_(data);
    }
  });
}

double Distributed::mean(double value) {
  at::Tensor t = at::full({1}, value, at::kDouble);
  impl_->collective("averaging the loss", [&] {
    std::vector<at::Tensor> v{t};
    impl_->wait(impl_->gloo->allreduce(v));
  });
  return *t.data_ptr<double>() / world_size();
}

// Rank 0's results and the ranks' states travel through Gloo, not the store: a collective
// fails as soon as a peer's connection drops, where a store read would wait out the timeout.
std::string Distributed::from_main(const std::string& value, const char* what) {
  return impl_->collective(what, [&] {
    at::Tensor size = at::zeros({1}, at::kLong);
    if (is_main()) size[0] = static_cast<std::int64_t>(value.size());
    std::vector<at::Tensor> v{size};
    impl_->wait(impl_->gloo->broadcast(v));
    at::Tensor bytes = at::zeros({size[0].item<std::int64_t>()}, at::kByte);
    if (is_main()) std::memcpy(bytes.data_ptr(), value.data(), value.size());
    std::vector<at::Tensor> b{bytes};
    impl_->wait(impl_->gloo->broadcast(b));
    return std::string(static_cast<const char*>(bytes.data_ptr()), bytes.numel());
  });
}

std::vector<std::string> Distributed::gather_to_main(const std::string& value) {
  return impl_->collective("gathering the ranks' states", [&] {
    // All-gathers of equal shapes: the sizes first, then each value padded to the largest.
    const auto world = static_cast<std::size_t>(world_size());
    auto all_gather = [&](const at::Tensor& mine) {
      std::vector<std::vector<at::Tensor>> out(1);
      for (std::size_t r = 0; r < world; ++r) out[0].push_back(at::empty_like(mine));
      std::vector<at::Tensor> in{mine};
      impl_->wait(impl_->gloo->allgather(out, in));
      return out[0];
    };
    at::Tensor size = at::zeros({1}, at::kLong);
    size[0] = static_cast<std::int64_t>(value.size());
    const std::vector<at::Tensor> sizes = all_gather(size);
    std::int64_t largest = 0;
    for (const at::Tensor& s : sizes) largest = std::max(largest, s[0].item<std::int64_t>());
    at::Tensor bytes = at::zeros({largest}, at::kByte);
    std::memcpy(bytes.data_ptr(), value.data(), value.size());
    const std::vector<at::Tensor> values = all_gather(bytes);
    std::vector<std::string> out;
    if (!is_main()) return out;
    for (std::size_t r = 0; r < world; ++r)
      out.emplace_back(static_cast<const char*>(values[r].data_ptr()),
                       static_cast<std::size_t>(sizes[r][0].item<std::int64_t>()));
    return out;
  });
}

void Distributed::barrier() {
  impl_->collective("the barrier", [&] { impl_->wait(impl_->gloo->barrier()); });
}

void Distributed::check_alike(const std::vector<std::string>& facts) {
  std::string mine;
  for (const std::string& fact : facts) mine += fact + '\n';
  // Rank 0 compares, then tells every rank the verdict: all of them stop with the same message.
  std::string verdict;
  const std::vector<std::string> all = gather_to_main(mine);
  for (std::size_t r = 1; r < all.size() && verdict.empty(); ++r) {
    if (all[r] == all[0]) continue;
    std::size_t at = 0;  // the first differing line
    while (at < all[0].size() && at < all[r].size() && all[0][at] == all[r][at]) ++at;
    const std::size_t line = at == 0 ? 0 : all[0].rfind('\n', at - 1) + 1;
    auto fact_at = [line](const std::string& text) {
      return line >= text.size() ? std::string("nothing more")
                                 : text.substr(line, text.find('\n', line) - line);
    };
    verdict = fmt::format("the workers do not run the same job: {} on rank 0, {} on rank {}",
                          fact_at(all[0]), fact_at(all[r]), r);
  }
  verdict = from_main(verdict, "comparing the ranks' runs");
  if (!verdict.empty()) {
    throw Error(ErrorCode::kConfig, verdict,
                "give every worker the same model, configuration and dataset (the same files "
                "on every machine)");
  }
}

}  // namespace ms::trainer
