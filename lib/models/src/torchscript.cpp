#include "ms/models/torchscript.h"

#include <torch/script.h>

#include "ms/core/error.h"

namespace ms::models {

struct ScriptModule::Impl {
  torch::jit::Module module;
  std::filesystem::path path;
};

ScriptModule::ScriptModule(const std::filesystem::path& path, const std::string& device)
    : impl_(std::make_unique<Impl>()) {
  std::error_code ec;
  MS_CHECK(std::filesystem::is_regular_file(path, ec), ErrorCode::kNotFound,
           "TorchScript model {} does not exist", path.string());
  impl_->path = path;
  try {
    impl_->module = torch::jit::load(path.string(), c10::Device(device));
  } catch (const c10::Error& e) {
    throw Error(
        ErrorCode::kIntegrity,
        fmt::format("{} is not a TorchScript archive: {}", path.string(),
                    e.what_without_backtrace()),
        "save it with torch.jit.script(model).save(path) or torch.jit.trace(...).save(path)");
  }
  impl_->module.eval();
}

ScriptModule::~ScriptModule() = default;

at::Tensor ScriptModule::forward(const at::Tensor& input) {
  try {
    c10::IValue out = impl_->module.forward({input});
    if (out.isTuple()) out = out.toTupleRef().elements().at(0);
    if (out.isList()) out = out.toListRef().at(0);
    MS_CHECK(out.isTensor(), ErrorCode::kUsage, "{} returned a {}, not a tensor",
             impl_->path.string(), out.tagKind());
    return out.toTensor();
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kUsage, fmt::format("running {} failed: {}", impl_->path.string(),
                                               e.what_without_backtrace()));
  }
}

}  // namespace ms::models
