// A TorchScript module (torch.jit.script / torch.jit.trace output) behind a torch-light header.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ms::models {

/// A loaded TorchScript module taking one tensor and returning one tensor (or a tuple/list whose
/// first element is the tensor).
class ScriptModule {
 public:
  /// Loads `path` on `device`. Throws ms::Error(kNotFound) for a missing file and kIntegrity
  /// naming the file for one that is not a TorchScript archive.
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

/// Loads a traced text model as a Model the text pipelines run like the source model (inference
/// only: it has no parameters to train). Errors as ScriptModule's.
std::shared_ptr<Model> load_script_text_model(const ScriptTextSpec& spec,
                                              const std::string& device);

}  // namespace ms::models
