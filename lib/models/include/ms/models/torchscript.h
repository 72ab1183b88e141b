// A TorchScript module (torch.jit.script / torch.jit.trace output) behind a torch-light header.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>

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

}  // namespace ms::models
