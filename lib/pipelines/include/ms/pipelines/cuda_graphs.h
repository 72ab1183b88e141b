// CUDA graphs for inference forward passes. On a GPU, one forward pass of a small encoder (MiniLM:
// six layers, about a hundred kernels) costs the host more time launching kernels than the card
// spends running them, and the H200 runs showed ms's batch inference bound by the host. A graph,
// captured once per input shape, replays all of a forward pass's kernels with one launch.
//
// Off unless MS_CUDA_GRAPHS=1: it has not yet run on a GPU (bench/device/infer_gpu.sh measures it
// beside the eager path and compares the embeddings). Builds whose LibTorch lacks CUDA graphs
// (Debian's, any CPU build) run every forward pass eagerly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ms/models/model.h"

namespace ms::pipelines {

/// The shape a batch of `rows` x `tokens` runs at under CUDA graphs, so that a job captures few
/// graphs: rows up to a power of two, tokens up to a multiple of 8 (of 16 above 64, of 32 above
/// 128, of 64 above 256), never past `max_tokens`. Padding changes no real row's result: padded
/// tokens are masked out, padded rows are dropped.
std::pair<int64_t, int64_t> graph_shape(int64_t rows, int64_t tokens, int64_t max_tokens);

/// Whether MS_CUDA_GRAPHS asks for CUDA graphs ("1"; unset or "0": no). Anything else is a usage
/// error naming the variable.
bool cuda_graphs_requested();

/// model.forward() through CUDA graphs where they are on, eagerly everywhere else. Thread-safe:
/// concurrent workers each replay graphs of their own (a graph's buffers serve one replay at a
/// time), and the graphs of one worker share one memory pool.
class GraphedForward {
 public:
  /// `outputs`: the forward outputs callers read; a graph keeps only these, so that the others'
  /// memory (BERT's last hidden state) is reused by the next graph.
  GraphedForward(models::Model& model, const std::string& device, std::vector<std::string> outputs);
  ~GraphedForward();
  GraphedForward(const GraphedForward&) = delete;
  GraphedForward& operator=(const GraphedForward&) = delete;

  /// Whether forward() replays graphs: requested, a CUDA device, a LibTorch with CUDA graphs, and
  /// no capture has failed (a failure turns them off for the rest of the job, with a warning).
  bool active() const;

  /// model.forward(inputs) (through models::checked_forward's errors). Under graphs the result
  /// holds only the `outputs` tensors, as copies the caller owns. A shape new to the worker is
  /// first run once eagerly on a side stream (to warm it up), then captured, then replayed.
  models::TensorMap forward(const models::TensorMap& inputs);

  struct Graphs;  // the captured graphs, in builds with CUDA graphs (cuda_graphs.cpp)

 private:
  models::Model& model_;
  std::string device_;
  std::unique_ptr<Graphs> graphs_;  // null when graphs are off
};

}  // namespace ms::pipelines
