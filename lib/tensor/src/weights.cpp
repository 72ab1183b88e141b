#include "ms/tensor/weights.h"

#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>
#include <fmt/ranges.h>

#include "ms/core/error.h"

namespace ms::tensor {

WeightMap load_model_weights(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(dir / "model.safetensors", ec)) {
    return load_safetensors(dir / "model.safetensors");
  }
  if (std::filesystem::is_regular_file(dir / "pytorch_model.bin", ec)) {
    return load_torch_pickle(dir / "pytorch_model.bin");
  }
  throw Error(
      ErrorCode::kNotFound,
      fmt::format("no weights in {}: neither model.safetensors nor pytorch_model.bin exists",
                  dir.string()),
      "copy the model's weight file into the folder (sharded checkpoints are not supported yet)");
}

void copy_weights(const WeightMap& weights, const std::map<std::string, at::Tensor>& params,
                  const std::vector<std::string>& ignore_unexpected, const std::string& source) {
  std::vector<std::string> missing, unexpected, misshaped;
  for (const auto& [name, param] : params) {
    auto it = weights.find(name);
    if (it == weights.end()) {
      missing.push_back(name);
    } else if (it->second.sizes() != param.sizes()) {
      misshaped.push_back(fmt::format("{} (file {}, model {})", name,
                                      fmt::join(it->second.sizes(), "x"),
                                      fmt::join(param.sizes(), "x")));
    }
  }
  for (const auto& [name, tensor] : weights) {
    if (params.count(name) == 0 && std::find(ignore_unexpected.begin(), ignore_unexpected.end(),
                                             name) == ignore_unexpected.end()) {
      unexpected.push_back(name);
    }
  }
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    std::string message = fmt::format("weights in {} do not fit the model:", source);
    auto add = [&message](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      const std::size_t shown = std::min<std::size_t>(names.size(), 8);
      message +=
          fmt::format(" {} {} key(s): {}{};", names.size(), what,
                      fmt::join(names.begin(), names.begin() + static_cast<long>(shown), ", "),
                      names.size() > shown ? ", ..." : "");
    };
    add("missing", missing);
    add("unexpected", unexpected);
    add("mis-shaped", misshaped);
    message.pop_back();
    throw Error(ErrorCode::kConfig, message,
                "check that config.json matches the weights (sizes, layer count, model type)");
  }
  c10::NoGradGuard no_grad;
  for (const auto& [name, param] : params) {
    at::Tensor dst = param;
    dst.copy_(weights.at(name));
  }
}

}  // namespace ms::tensor
