// The object of a torch.save file (zip or legacy format) as the project's pickle reader builds
// it, with torch's storages and tensors rebuilt: shared by load_torch_pickle (state dicts) and
// load_checkpoint (any tree of plain values and tensors).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <filesystem>

#include "ms/core/pickle.h"

namespace ms::tensor {

/// Reads the pickle of a torch.save file. Tensors (and torch.nn.Parameters) come back as
/// Value::Kind::kExternal values holding an at::Tensor (see torch_tensor_of); dicts and
/// OrderedDicts as kDict, other classes as kObject. Throws ms::Error(kNotFound) for a missing file
/// and ms::Error(kIntegrity) naming the file for one that is not a readable torch.save file.
/// `pickle_bytes`, if given, receives the size of the object's pickle.
pickle::ValuePtr read_torch_file(const std::filesystem::path& path,
                                 std::size_t* pickle_bytes = nullptr);

/// The tensor a value of read_torch_file holds, or nullptr.
const at::Tensor* torch_tensor_of(const pickle::Value& v);

}  // namespace ms::tensor
