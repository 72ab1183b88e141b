// The torch-free face of inference pipelines: inputs, per-item results, and the factory that the
// torch layer implements (reached through load_torch_layer(), never linked directly).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ms/config/config.h"
#include "ms/config/registry.h"
#include "ms/core/device.h"
#include "ms/core/export.h"
#include "ms/infer/model_dir.h"

namespace ms::infer {

/// One input item: a text (or text pair) or a file path, with the id it is reported under.
struct PipelineInput {
  Json id;                               ///< line number, record id or path
  std::string text;                      ///< text tasks
  std::optional<std::string> text_pair;  ///< second sentence (pair tasks)
  std::filesystem::path path;            ///< file tasks (images); text tasks read it as text
  /// File tasks: the file's bytes, already in memory (`ms serve`'s base64 images); when set, it is
  /// used instead of reading `path`, which then only names the input in errors.
  std::string content;
  /// Set when the input could not be read: the job layer (run_job, ms serve) reports it as an
  /// error item and never passes it to Pipeline::run(), which does not look at it.
  std::string invalid;
};

/// A float array output member (an embedding), kept as floats: JSON output formats it once
/// (json_float_array), a .npy output writes the floats as they are.
struct FloatArray {
  std::string key;  ///< e.g. "text_embedding"
  std::vector<float> values;
};

/// The outcome for one input: a result object keyed like ModelScope's OutputKeys, or an error.
struct PipelineResult {
  Json output;  ///< e.g. {"label": ...}; empty on error
  /// Members written after `output`'s: large float arrays skip Json (a value object per float).
  std::vector<FloatArray> float_arrays;
  std::optional<Error> error;
  /// The error is the model's, not the input's: its output held NaN or infinity.
  bool nonfinite_output = false;
};

/// Words in the message of every error for an output that held NaN or infinity (see
/// PipelineResult::nonfinite_output): --resume tells such error lines of an earlier run by them.
inline constexpr const char* kNonfiniteOutputWords = "NaN or infinity";

/// Where a pipeline's run() calls spent their time, summed over every call of every worker
/// (worker-seconds). `ms infer -v` reports it inside the batches stage; the rest of run() is
/// building the results.
struct RunPhases {
  double inputs = 0;  ///< reading and decoding images, tokenising texts cost() had not
  /// The forward pass as the host thread lives it: collating, copies to the device and kernel
  /// launches on a GPU (which runs the kernels later); all of the computing on a CPU.
  double model = 0;
  double device = 0;  ///< waiting for the GPU to finish, and copying the outputs back
};

/// RunPhases added to by several workers at once (atomic nanosecond counters).
class MS_API PhaseTotals {
 public:
  enum Phase { kInputs, kModel, kDevice };
  /// Runs `step` and adds its wall time to `phase`; returns what it returns.
  template <class Step>
  auto time(Phase phase, Step&& step) -> decltype(step()) {
    const auto start = std::chrono::steady_clock::now();
    struct AddOnExit {  // also when the step throws: its time was spent
      PhaseTotals& totals;
      Phase phase;
      std::chrono::steady_clock::time_point start;
      ~AddOnExit() { totals.add(phase, std::chrono::steady_clock::now() - start); }
    } add_on_exit{*this, phase, start};
    return step();
  }
  void add(Phase phase, std::chrono::steady_clock::duration elapsed);
  RunPhases totals() const;

 private:
  std::array<std::atomic<std::int64_t>, 3> nanoseconds_{};
};

/// A loaded pipeline: preprocess -> forward -> postprocess over a batch of inputs.
class MS_API Pipeline {
 public:
  virtual ~Pipeline() = default;
  virtual const std::string& task() const = 0;
  /// The device the model runs on ("cpu", "cuda:0").
  virtual std::string device() const = 0;
  /// A cheap size estimate used to group inputs of similar length into batches. A pipeline may
  /// keep work done here (a text's tokens) for run() to use.
  virtual std::size_t cost(const PipelineInput& input) const = 0;
  /// Drops what cost() kept for an input that will not be run (`ms serve`: a request that timed
  /// out), so that a long-running server does not accumulate it.
  virtual void forget(const PipelineInput& input) const { (void)input; }
  /// Runs a batch (of non-null inputs). A bad item gives an error result of its own; the others
  /// are unaffected.
  virtual std::vector<PipelineResult> run(const std::vector<const PipelineInput*>& batch) = 0;
  /// Whether run() may be called from several threads at once (each after prepare_worker()).
  virtual bool concurrent() const { return false; }
  /// Called once in each worker thread before its first run(): sets that thread's intra-op
  /// thread count (the torch layer uses OpenMP's per-thread setting) and, on a GPU, gives the
  /// thread a CUDA stream of its own.
  virtual void prepare_worker(int intra_op_threads) { (void)intra_op_threads; }
  /// Computes in another floating-point type from now on: "fp16" or "bf16" (PipelineOptions::
  /// dtype); outputs stay float32. Throws ms::Error(kUsage) where the pipeline or the device
  /// cannot.
  virtual void set_dtype(const std::string& dtype);
  /// Where run() has spent its time so far; all zeros for a pipeline that does not measure it.
  virtual RunPhases run_phases() const { return {}; }
};

/// How to build a pipeline.
struct PipelineOptions {
  DeviceSpec device{DeviceSpec::Kind::kCpu, -1};
  /// The weights' and activations' type: "fp32" (as loaded), "fp16" (GPU only) or "bf16".
  std::string dtype = "fp32";
};

/// Implemented by the torch layer: builds the pipeline registered for a model's task.
class MS_API PipelineFactory {
 public:
  virtual ~PipelineFactory() = default;
  /// Throws ms::Error(kUsage) naming the registered pipelines for an unknown task or type.
  virtual std::unique_ptr<Pipeline> create(const ModelInfo& model,
                                           const PipelineOptions& options) = 0;
};

/// `[v,...]` with each float as the shortest decimal that reads back as the same float. NaN and
/// infinity have no JSON form: pipelines turn such outputs into errors before they get here.
MS_API std::string json_float_array(const std::vector<float>& values);

/// `output`'s members followed by the float arrays', as one JSON object's text.
MS_API std::string result_object_text(const Json& output,
                                      const std::vector<FloatArray>& float_arrays);

/// Loads the torch layer (with `threads`, which only the first load applies: the layer and its
/// thread count stay for the process) and returns its pipeline factory (TorchLayer::pipelines).
/// Throws ms::Error(kMissingComponent) when LibTorch is not installed, kUsage for a `threads`
/// below 1.
MS_API PipelineFactory& pipeline_factory(std::optional<int> threads = std::nullopt);

}  // namespace ms::infer
