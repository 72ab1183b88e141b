#include "ms/pipelines/cuda_graphs.h"

#ifdef MS_TORCH_CUDA_GRAPHS
#include <ATen/core/CachingHostAllocator.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/core/InferenceMode.h>
#include <c10/core/StreamGuard.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>

#include "ms/core/error.h"
#include "ms/core/log.h"

namespace ms::pipelines {

namespace {

int64_t round_up(int64_t value, int64_t step) { return (value + step - 1) / step * step; }

}  // namespace

std::pair<int64_t, int64_t> graph_shape(int64_t rows, int64_t tokens, int64_t max_tokens) {
  int64_t padded_rows = 1;
  while (padded_rows < rows) padded_rows *= 2;
  const int64_t step = tokens <= 64 ? 8 : tokens <= 128 ? 16 : tokens <= 256 ? 32 : 64;
  // Never below the batch's own length, even when max_tokens is smaller (the model then refuses
  // the batch with its own error, as it would without graphs).
  const int64_t padded_tokens = std::max(tokens, std::min(round_up(tokens, step), max_tokens));
  return {padded_rows, padded_tokens};
}

bool cuda_graphs_requested() {
  const char* value = std::getenv("MS_CUDA_GRAPHS");
  const std::string choice = value == nullptr ? "" : value;
  if (choice.empty() || choice == "0") return false;
  if (choice == "1") return true;
  throw Error(ErrorCode::kUsage,
              fmt::format("MS_CUDA_GRAPHS={} is not a choice: use 1 (replay forward passes from "
                          "CUDA graphs on a GPU) or 0, or unset it",
                          choice));
}

#ifdef MS_TORCH_CUDA_GRAPHS

namespace {

// An exception's message; LibTorch's without the C++ backtrace its what() carries.
const char* error_text(const std::exception& e) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  return torch_error != nullptr ? torch_error->what_without_backtrace() : e.what();
}

// A job captures at most this many shapes per worker; later shapes run eagerly. graph_shape keeps
// a job to a few dozen, so this only bounds the GPU memory of unusual inputs.
constexpr std::size_t kMaxGraphsPerWorker = 64;

// at::cuda::CUDAGraph, plus the clean-up of a capture that failed. LibTorch 2.11's capture_end
// throws at cudaStreamEndCapture, before it stops sending allocations to the graph's pool and ends
// the random generators' capture: left so, both allocators would keep calling back into a
// destroyed graph, skip their cache upkeep for the rest of the process, and every later random
// draw on the GPU would fail.
class Graph : public at::cuda::CUDAGraph {
 public:
  void abandon_capture(cudaStream_t stream) noexcept {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &status) == cudaSuccess &&
        status != cudaStreamCaptureStatusNone) {
      cudaGraph_t graph = nullptr;
      (void)cudaStreamEndCapture(stream, &graph);
      if (graph != nullptr) (void)cudaGraphDestroy(graph);
    }
    (void)cudaGetLastError();    // the failed capture's error is not this process's last word
    if (capture_ended_) return;  // capture_end did its own clean-up
    // Each end succeeds only if the matching begin happened; only then is the pool released
    // (it is shared with the set's other graphs, whose references must stay).
    bool device_pool = false, host_pool = false;
    try {
      c10::cuda::CUDACachingAllocator::endAllocateToPool(capture_dev_, mempool_id_);
      device_pool = true;
    } catch (...) {
    }
    try {
      at::getHostAllocator(at::kCUDA)->end_allocate_to_pool(mempool_id_);
      host_pool = true;
    } catch (...) {
    }
    // What CUDAGeneratorState::capture_epilogue does; LibTorch does not export that function.
    for (auto& [state, increment] : captured_generator_states_) state->capturing_ = false;
    try {
      if (device_pool) c10::cuda::CUDACachingAllocator::releasePool(capture_dev_, mempool_id_);
      if (host_pool) at::getHostAllocator(at::kCUDA)->release_pool(mempool_id_);
    } catch (...) {
    }
  }
};

// One captured forward pass: replays read `inputs` and write `outputs`.
struct Captured {
  std::unique_ptr<Graph> graph;
  models::TensorMap inputs, outputs;
};

// The graphs of one worker at a time. Its graphs share a memory pool (a pass's intermediate
// buffers are reused by the next capture), which is safe because they never run at once and each
// replay's outputs are copied before the set is handed on.
struct GraphSet {
  // The set's own stream, made for it (not from LibTorch's pool, which hands its streams to
  // several users): its captures and their warm-up passes run there. A capture must own its
  // stream (another thread's kernels on it would join the graph), and the cuBLAS workspace that
  // captured matrix products write to belongs to the capturing stream: graphs of two sets, which
  // may run at once, must not share one. Never destroyed: LibTorch's allocator and cuBLAS keep
  // the handle in their caches for the rest of the process.
  c10::cuda::CUDAStream stream(c10::DeviceIndex device) {
    if (raw_stream == nullptr) {
      const c10::cuda::CUDAGuard on_device(device);  // streams belong to the current device
      C10_CUDA_CHECK(cudaStreamCreateWithFlags(&raw_stream, cudaStreamNonBlocking));
    }
    return c10::cuda::getStreamFromExternal(raw_stream, device);
  }

  at::cuda::MempoolId_t pool = at::cuda::graph_pool_handle();
  std::map<std::string, Captured> graphs;
  // Recorded on the last user's stream when it handed the set back: the next user's stream waits
  // for it on the GPU, so a replay never overwrites buffers that another stream still reads.
  c10::Event released{c10::DeviceType::CUDA};
  cudaStream_t raw_stream = nullptr;
};

// A capture that failed: graphs go off for the job, and the batch runs eagerly.
struct CaptureFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Names, dtypes and sizes of the inputs: one graph per distinct key.
std::string shape_key(const models::TensorMap& inputs) {
  std::string key;
  for (const auto& [name, t] : inputs)
    key +=
        fmt::format("{}:{}:{};", name, c10::toString(t.scalar_type()), fmt::join(t.sizes(), "x"));
  return key;
}

}  // namespace

struct GraphedForward::Graphs {
  c10::DeviceIndex device = 0;
  std::vector<std::string> outputs;
  std::atomic<bool> active{true};
  // For the job's closing line: how the forward passes ran.
  std::atomic<std::size_t> captured{0}, replayed{0}, eager{0};
  std::mutex sets_mutex;
  std::vector<std::unique_ptr<GraphSet>> sets;
  std::vector<GraphSet*> idle;
  // Captures run one at a time: they are few (a few dozen shapes a job), and a capture's warm-up
  // pass is then the only one allocating for a first time.
  std::mutex capture_mutex;

  GraphSet* take() {
    std::lock_guard<std::mutex> lock(sets_mutex);
    if (idle.empty()) {
      sets.push_back(std::make_unique<GraphSet>());
      return sets.back().get();
    }
    GraphSet* set = idle.back();
    idle.pop_back();
    return set;
  }
  void give_back(GraphSet* set) {
    std::lock_guard<std::mutex> lock(sets_mutex);
    idle.push_back(set);
  }
};

namespace {

// Holds a set for one forward pass, on the caller's stream.
class Lease {
 public:
  Lease(GraphSet* set, GraphedForward::Graphs& owner, c10::Stream stream)
      : set_(set), owner_(owner), stream_(stream) {
    set_->released.block(stream_);
  }
  ~Lease() {
    try {
      set_->released.record(stream_);
      owner_.give_back(set_);
    } catch (const c10::Error& e) {
      // Without the event the set cannot be handed on safely: it stays out of use.
      log::warn("CUDA graphs: a worker's graphs are dropped: {}", e.what_without_backtrace());
    }
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  GraphSet& set() { return *set_; }

 private:
  GraphSet* set_;
  GraphedForward::Graphs& owner_;
  c10::Stream stream_;
};

// Captures model.forward at the shape of `inputs`, whose values become the graph's static inputs.
// Errors of the warm-up pass (an input the model refuses, memory) are the batch's own and pass
// through; a failure of the capture itself is CaptureFailed.
Captured capture(models::Model& model, const models::TensorMap& inputs,
                 GraphedForward::Graphs& owner, GraphSet& set,
                 const c10::cuda::CUDAStream& caller) {
  // Held until the end, so that a failed graph is also destroyed (unregistered from the random
  // generators, which do not lock) before another capture begins.
  std::lock_guard<std::mutex> lock(owner.capture_mutex);
  Captured c;
  for (const auto& [name, t] : inputs) c.inputs[name] = t.clone();
  const c10::cuda::CUDAStream side = set.stream(owner.device);
  // The side stream starts after the inputs are copied, and the caller's next work (the first
  // replay) after the side stream's.
  c10::Event inputs_ready(c10::DeviceType::CUDA);
  inputs_ready.record(caller);
  inputs_ready.block(side);
  models::TensorMap out;
  {
    c10::StreamGuard on_side(side.unwrap());
    // A shape's first pass picks kernels and makes cuBLAS's workspace for the stream, which
    // must not happen inside a capture.
    (void)model.forward(c.inputs);
    c.graph = std::make_unique<Graph>();
    try {
      // Thread-local: the other workers' CUDA calls (allocations, copies) go on meanwhile.
      c.graph->capture_begin(set.pool, cudaStreamCaptureModeThreadLocal);
#ifdef MS_TEST_HOOKS
      // Test builds: MS_TEST_CUDA_GRAPH_FAIL=1 reads a value back to the host inside the capture,
      // as a forward pass that synchronises would, to drive the clean-up below.
      if (std::getenv("MS_TEST_CUDA_GRAPH_FAIL") != nullptr)
        (void)c.inputs.begin()->second.sum().item<int64_t>();
#endif
      out = model.forward(c.inputs);
      c.graph->capture_end();
    } catch (const std::exception& e) {
      c.graph->abandon_capture(side.stream());
      throw CaptureFailed(error_text(e));
    }
  }
  for (const std::string& name : owner.outputs) {
    auto it = out.find(name);
    if (it == out.end()) throw CaptureFailed(fmt::format("the model has no output {}", name));
    c.outputs[name] = it->second;
  }
  c10::Event captured(c10::DeviceType::CUDA);
  captured.record(side);
  captured.block(caller);
  return c;
}

}  // namespace

#else

struct GraphedForward::Graphs {};

#endif  // MS_TORCH_CUDA_GRAPHS

GraphedForward::GraphedForward(models::Model& model, const std::string& device,
                               std::vector<std::string> outputs)
    : model_(model), device_(device) {
  if (!cuda_graphs_requested()) return;
  const c10::Device d(device);
  if (!d.is_cuda()) {
    log::info("MS_CUDA_GRAPHS=1: {} is not a GPU, forward passes run eagerly", device);
    return;
  }
#ifdef MS_TORCH_CUDA_GRAPHS
  graphs_ = std::make_unique<Graphs>();
  graphs_->device = d.has_index() ? d.index() : 0;
  graphs_->outputs = std::move(outputs);
#else
  (void)outputs;
  log::warn(
      "MS_CUDA_GRAPHS=1: this build's LibTorch has no CUDA graphs; forward passes run "
      "eagerly");
#endif
}

GraphedForward::~GraphedForward() {
#ifdef MS_TORCH_CUDA_GRAPHS
  if (graphs_) {
    try {
      log::info(
          "CUDA graphs: {} shape(s) captured by {} worker(s); {} batches replayed, {} run "
          "eagerly",
          graphs_->captured.load(), graphs_->sets.size(), graphs_->replayed.load(),
          graphs_->eager.load());
    } catch (...) {  // a destructor must not throw; the line is only informative
    }
  }
#endif
}

bool GraphedForward::active() const {
#ifdef MS_TORCH_CUDA_GRAPHS
  return graphs_ != nullptr && graphs_->active.load();
#else
  return false;
#endif
}

models::TensorMap GraphedForward::forward(const models::TensorMap& inputs) {
#ifdef MS_TORCH_CUDA_GRAPHS
  if (active()) {
    // Static inputs are inference tensors: updating them needs the mode (callers have it).
    c10::InferenceMode inference;
    const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(graphs_->device);
    Lease lease(graphs_->take(), *graphs_, stream.unwrap());
    GraphSet& set = lease.set();
    const std::string key = shape_key(inputs);
    auto it = set.graphs.find(key);
    if (it == set.graphs.end() && set.graphs.size() < kMaxGraphsPerWorker) {
      try {
        it = set.graphs.emplace(key, capture(model_, inputs, *graphs_, set, stream)).first;
        ++graphs_->captured;
      } catch (const CaptureFailed& e) {
        // A model whose forward pass cannot be captured (it synchronises with the host, or runs
        // a kernel that graphs do not allow) still runs, eagerly, for the rest of the job.
        if (graphs_->active.exchange(false))
          log::warn("CUDA graphs are off for this job: capturing the forward pass failed: {}",
                    e.what());
      } catch (const c10::Error& e) {
        throw Error(ErrorCode::kInternal, fmt::format("forward pass on {} failed: {}", device_,
                                                      e.what_without_backtrace()));
      }
    }
    if (it != set.graphs.end()) {
      try {
        for (auto& [name, t] : it->second.inputs) t.copy_(inputs.at(name), /*non_blocking=*/true);
        it->second.graph->replay();
        ++graphs_->replayed;
        models::TensorMap result;
        for (const auto& [name, t] : it->second.outputs) result[name] = t.clone();
        return result;
      } catch (const std::exception& e) {
        throw Error(ErrorCode::kInternal,
                    fmt::format("forward pass on {} failed (CUDA graph replay): {}", device_,
                                error_text(e)));
      }
    }
  }
  if (graphs_) ++graphs_->eager;
#endif
  return models::checked_forward(model_, inputs, device_);
}

}  // namespace ms::pipelines
