// A TorchScript module (torch.jit.script / torch.jit.trace output) behind a torch-light header.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace torch::jit {
struct Module;
}

namespace ms::models {

/// What went wrong in a TorchScript call, in one line. The interpreter turns a failing operation's
/// c10::Error into a std::runtime_error holding the TorchScript traceback; this keeps its last
/// line ("RuntimeError: ..."), and a c10::Error's message without the C++ backtrace.
std::string script_failure(const std::runtime_error& e);

/// Casts the tensor constants of dtype `from` in `module`'s forward graph to `to`; returns how
/// many. A traced archive keeps its weights as graph constants, and `ms export` writes its graphs
/// so that every other dtype follows the weights (type_as): this makes an fp16 archive from an
/// fp32 trace, and runs an fp16 archive in float32 on the CPU, where LibTorch 1.13 has no
/// half-precision kernels (ScriptModule and the text models do that on loading).
int cast_floating_constants(torch::jit::Module& module, at::ScalarType from, at::ScalarType to);

/// A loaded TorchScript module taking one tensor and returning one tensor (or a tuple/list whose
/// first element is the tensor).
class ScriptModule {
 public:
  /// Loads `path` on `device` (on the CPU, float16 weight constants become float32: see
  /// cast_floating_constants). Throws ms::Error(kNotFound) for a missing file, and kIntegrity
  /// naming the file for one that is not a TorchScript archive or does not compile here.
  ScriptModule(const std::filesystem::path& path, const std::string& device);
  ~ScriptModule();
  ScriptModule(const ScriptModule&) = delete;
  ScriptModule& operator=(const ScriptModule&) = delete;

  at::Tensor forward(const at::Tensor& input);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Model;

/// What a traced text model (`ms export --format torchscript` of a BERT-family model) declares in
/// its configuration.json: its forward takes `inputs` (input_ids, attention_mask, token_type_ids)
/// and returns `outputs` (one tensor, or a tuple in this order).
struct ScriptTextSpec {
  std::filesystem::path file;  ///< model.pt
  std::string task;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::optional<int64_t> num_labels;  ///< classification heads
  std::optional<int64_t> max_tokens;  ///< the source model's positions
};

/// Loads a traced text model (a BERT-family head, or a GPT-2 decoder without a cache) as a Model
/// the text pipelines run like the source model (inference only: it has no parameters to train).
/// Errors as ScriptModule's.
std::shared_ptr<Model> load_script_text_model(const ScriptTextSpec& spec,
                                              const std::string& device);

}  // namespace ms::models
