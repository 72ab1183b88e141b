#include "ms/tensor/weights.h"

#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include "ms/core/error.h"
#include "ms/core/file.h"

namespace ms::tensor {
namespace {

// A shard must be a plain file name beside the index: no folders, "..", or absolute paths, so a
// hostile index cannot make us read files outside the model folder.
bool safe_shard_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

}  // namespace

WeightMap load_sharded(const std::filesystem::path& index,
                       WeightMap (*load_shard)(const std::filesystem::path&)) {
  const std::string source = index.string();
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(read_file(index));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kIntegrity, fmt::format("{} is not valid JSON: {}", source, e.what()),
                "re-download the checkpoint index");
  }
  auto weight_map = root.is_object() ? root.find("weight_map") : root.end();
  MS_CHECK(weight_map != root.end() && weight_map->is_object() && !weight_map->empty(),
           ErrorCode::kIntegrity, "{} has no 'weight_map' object naming tensors and their shards",
           source);
  // Shard file -> the tensors the index puts in it, so that each shard is read once.
  std::map<std::string, std::vector<std::string>> shards;
  for (auto it = weight_map->begin(); it != weight_map->end(); ++it) {
    MS_CHECK(it->is_string(), ErrorCode::kIntegrity,
             "{}: weight_map.\"{}\" must be a shard file name", source, it.key());
    const std::string shard = it->get<std::string>();
    if (!safe_shard_name(shard)) {
      throw Error(ErrorCode::kIntegrity,
                  fmt::format("{}: shard name '{}' (for tensor '{}') is not a plain file name in "
                              "the model folder",
                              source, shard, it.key()),
                  "shard names may not contain '/', '\\' or be '..'; re-download the index");
    }
    shards[shard].push_back(it.key());
  }
  const std::filesystem::path dir = index.parent_path();
  WeightMap out;
  for (const auto& [shard, names] : shards) {
    const std::filesystem::path file = dir / shard;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("shard {} listed in {} does not exist", file.string(), source),
                  "download every shard the index names into the model folder");
    }
    WeightMap tensors =
        with_context("reading shard " + shard + " of " + source, [&] { return load_shard(file); });
    for (const std::string& name : names) {
      auto it = tensors.find(name);
      MS_CHECK(it != tensors.end(), ErrorCode::kIntegrity,
               "{} puts tensor '{}' in shard {}, which does not hold it", source, name, shard);
      out.emplace(name, std::move(it->second));
    }
  }
  return out;
}

WeightMap load_model_weights(const std::filesystem::path& dir) {
  std::error_code ec;
  auto exists = [&](const char* name) { return std::filesystem::is_regular_file(dir / name, ec); };
  if (exists("model.safetensors")) return load_safetensors(dir / "model.safetensors");
  if (exists("model.safetensors.index.json")) {
    return load_sharded(dir / "model.safetensors.index.json", &load_safetensors);
  }
  if (exists("pytorch_model.bin")) return load_torch_pickle(dir / "pytorch_model.bin");
  if (exists("pytorch_model.bin.index.json")) {
    return load_sharded(dir / "pytorch_model.bin.index.json", &load_torch_pickle);
  }
  // An ONNX export (ms export's own output) is a model, but one for onnxruntime.
  const bool onnx = exists("model.onnx");
  throw Error(
      ErrorCode::kNotFound,
      fmt::format("no weights in {}: none of model.safetensors, "
                  "model.safetensors.index.json, pytorch_model.bin, "
                  "pytorch_model.bin.index.json exists{}",
                  dir.string(), onnx ? " (it holds an ONNX model, model.onnx)" : ""),
      onnx ? "ms runs safetensors and PyTorch weights: run model.onnx with onnxruntime, "
             "or give the folder it was exported from (ms export --format safetensors of that "
             "folder writes one ms runs)"
           : "copy the model's weight files into the folder");
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
