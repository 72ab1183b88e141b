// Weight files -> named tensors: safetensors (memory-mapped), pytorch_model.bin (torch.save zip
// or legacy), sharded checkpoints (*.index.json), and the checks that match them against a
// model's parameters by name and shape.
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ms::tensor {

/// Tensors by name, in name order: a checkpoint, a model's state dict, a batch of model inputs.
using TensorMap = std::map<std::string, at::Tensor>;
/// A TensorMap read from or written to a weight file.
using WeightMap = TensorMap;

/// Reads a .safetensors file. Aligned tensors point into a private memory map of the file (kept
/// alive by the tensors); unaligned ones are copied. Throws ms::Error(kIntegrity) naming the file
/// and tensor for a malformed header, an unknown dtype or offsets outside the file.
WeightMap load_safetensors(const std::filesystem::path& path);

/// Reads a pytorch_model.bin written by torch.save(state_dict): the zip format (PyTorch 1.6+) or
/// the legacy one (magic-number pickles, then raw storages). Throws ms::Error(kIntegrity) for
/// truncated or malformed files and pickles that are not state dicts.
WeightMap load_torch_pickle(const std::filesystem::path& path);

/// Reads a Hugging Face sharded checkpoint: `index` ({"weight_map": {tensor: shard file}}) next to
/// its shards, each read with `load_shard`. Shard names must be plain file names in the index's
/// folder. Throws ms::Error(kIntegrity) for a malformed index, an unsafe shard name or a listed
/// tensor absent from its shard, and ms::Error(kNotFound) for a missing shard.
WeightMap load_sharded(const std::filesystem::path& index,
                       WeightMap (*load_shard)(const std::filesystem::path&));

/// Loads the weights of a model folder, the first that exists of: model.safetensors,
/// model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json. Throws
/// ms::Error(kNotFound) naming the folder and the names looked for when there is none.
WeightMap load_model_weights(const std::filesystem::path& dir);

/// Writes tensors as .safetensors (atomically), for fixtures and exports.
void save_safetensors(const std::filesystem::path& path, const WeightMap& weights);

/// Copies `weights` into `params` (a model's parameters and buffers by name). Keys in
/// `ignore_unexpected` (exact names) may be absent from `params`. Throws ms::Error(kConfig)
/// listing every missing, unexpected and mis-shaped key by name.
void copy_weights(const WeightMap& weights, const std::map<std::string, at::Tensor>& params,
                  const std::vector<std::string>& ignore_unexpected, const std::string& source);

}  // namespace ms::tensor
