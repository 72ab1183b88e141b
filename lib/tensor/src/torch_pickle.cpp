// Files written by torch.save (pytorch_model.bin, checkpoints), in either of their two layouts:
// - zip (PyTorch 1.6+): data.pkl, a pickle whose tensors refer by key to data/<key> records;
// - legacy (before 1.6, or _use_new_zipfile_serialization=False): five pickles in a row (magic
//   number, protocol version, sys_info, the state dict, the sorted storage keys), then each
//   storage's int64 element count and raw bytes in key order.
// LibTorch 1.13's own unpickler rejects OrderedDict and SETITEM, so the project's pickle reader
// (ms/core/pickle.h) reads them; this file plugs in what is torch's: persistent ids naming
// storages (a zip record, or the raw data after a legacy file's pickles) and the callables that
// rebuild tensors and parameters from them. read_torch_file is shared with load_checkpoint.
#include "torch_pickle.h"

#include <ATen/ops/as_strided.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "mapped_file.h"
#include "ms/core/error.h"
#include "ms/core/pickle.h"
#include "ms/tensor/weights.h"

namespace ms::tensor {
namespace {

using pickle::Value;
using pickle::ValuePtr;

// A storage as persistent_load hands it to the tensor rebuilders (Value::external).
struct Storage {
  at::Tensor flat;  // 1-D tensor over the whole record
};

const Storage* storage_of(const Value& v) {
  const auto* s = std::any_cast<std::shared_ptr<Storage>>(&v.external);
  return s != nullptr ? s->get() : nullptr;
}

ValuePtr external(std::any value) {
  auto v = std::make_shared<Value>(Value::Kind::kExternal);
  v->external = std::move(value);
  return v;
}

c10::ScalarType storage_dtype(const std::string& global, const std::string& source) {
  static const std::unordered_map<std::string, c10::ScalarType> kTypes = {
      {"FloatStorage", c10::ScalarType::Float}, {"DoubleStorage", c10::ScalarType::Double},
      {"HalfStorage", c10::ScalarType::Half},   {"BFloat16Storage", c10::ScalarType::BFloat16},
      {"LongStorage", c10::ScalarType::Long},   {"IntStorage", c10::ScalarType::Int},
      {"ShortStorage", c10::ScalarType::Short}, {"CharStorage", c10::ScalarType::Char},
      {"ByteStorage", c10::ScalarType::Byte},   {"BoolStorage", c10::ScalarType::Bool}};
  const auto dot = global.rfind('.');
  auto it = kTypes.find(dot == std::string::npos ? global : global.substr(dot + 1));
  MS_CHECK(it != kTypes.end(), ErrorCode::kIntegrity, "{}: unsupported storage type '{}'", source,
           global);
  return it->second;
}

std::vector<std::int64_t> ints(const Value& v) {
  std::vector<std::int64_t> out;
  for (const auto& item : v.items) out.push_back(item->i);
  return out;
}

// The torch callables of a state dict: tensors rebuilt over their storages, parameters as their
// tensors. Anything else is left to the reader's defaults (nullptr).
ValuePtr rebuild(const Value& fn, const Value& args, const std::string& source) {
  if (fn.text == "torch._utils._rebuild_tensor_v2" || fn.text == "torch._utils._rebuild_tensor") {
    const Storage* storage = args.items.empty() ? nullptr : storage_of(*args.items[0]);
    MS_CHECK(args.items.size() >= 4 && storage != nullptr, ErrorCode::kIntegrity,
             "{}: malformed tensor record", source);
    // as_strided counts the offset from the start of the whole storage; a legacy file's view of
    // a storage (see load_legacy) starts further in, and its tensors count from the view.
    const at::Tensor& flat = storage->flat;
    const std::int64_t offset = args.items[1]->i;
    MS_CHECK(offset >= 0 && offset <= flat.numel(), ErrorCode::kIntegrity,
             "{}: tensor offset {} lies outside its storage of {} elements", source, offset,
             flat.numel());
    return external(at::as_strided(flat, ints(*args.items[2]), ints(*args.items[3]),
                                   flat.storage_offset() + offset));
  }
  if (fn.text == "torch._utils._rebuild_parameter" ||
      fn.text == "torch._utils._rebuild_parameter_with_state") {
    MS_CHECK(!args.items.empty(), ErrorCode::kIntegrity, "{}: malformed parameter", source);
    return args.items[0];
  }
  return nullptr;
}

// Reads the pickle at `pos` with torch's callables and `load` for its storage references.
pickle::Unpickled unpickle_torch(std::string_view data, std::size_t pos, const std::string& source,
                                 std::function<ValuePtr(const Value&)> load = nullptr) {
  pickle::Hooks hooks;
  hooks.persistent_load = std::move(load);
  hooks.reduce = [&source](const Value& fn, const Value& args) {
    return rebuild(fn, args, source);
  };
  return pickle::unpickle(data, pos, source, hooks);
}

bool collect(const Value& dict, WeightMap& out) {
  for (const auto& [k, v] : dict.pairs) {
    if (const at::Tensor* tensor = torch_tensor_of(*v); k->is_string() && tensor != nullptr)
      out.emplace(k->text, *tensor);
  }
  return !out.empty();
}

// The tensors of an unpickled torch.save object: a state dict, or one wrapped in a checkpoint
// ({"state_dict": {...}}, {"model": {...}}, {"module": {...}}).
WeightMap state_dict(const Value& root, const std::filesystem::path& path) {
  MS_CHECK(root.kind == Value::Kind::kDict, ErrorCode::kIntegrity,
           "{} does not hold a state dict (top-level object is not a dict)", path.string());
  WeightMap out;
  if (!collect(root, out)) {
    for (const auto& [k, v] : root.pairs) {
      if (v->kind == Value::Kind::kDict &&
          (k->text == "state_dict" || k->text == "model" || k->text == "module") &&
          collect(*v, out)) {
        break;
      }
    }
  }
  MS_CHECK(!out.empty(), ErrorCode::kIntegrity, "{} holds no tensors", path.string());
  return out;
}

// A storage reference: ('storage', storage type, key, location, numel[, view metadata]).
void check_storage_pid(const Value& pid, std::size_t items, const std::string& source) {
  MS_CHECK(pid.kind == Value::Kind::kTuple && pid.items.size() >= items &&
               pid.items[0]->kind == Value::Kind::kString && pid.items[0]->text == "storage" &&
               pid.items[1]->kind == Value::Kind::kGlobal &&
               pid.items[2]->kind == Value::Kind::kString &&
               pid.items[4]->kind == Value::Kind::kInt && pid.items[4]->i >= 0,
           ErrorCode::kIntegrity, "{}: malformed storage reference", source);
}

ValuePtr load_zip(const std::filesystem::path& path, std::size_t& pickle_bytes) {
  const std::string source = path.string();
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(source);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kIntegrity,
                fmt::format("{} is not a valid zip-format torch.save file", source),
                "re-download or re-export the weights");
  }
  MS_CHECK(reader->hasRecord("data.pkl"), ErrorCode::kIntegrity,
           "{} has no data.pkl: not a torch.save file", source);
  auto record = reader->getRecord("data.pkl");
  const std::string data_pkl(static_cast<const char*>(std::get<0>(record).get()),
                             std::get<1>(record));
  // Each storage is the zip record data/<key>, shared by every tensor that views it.
  std::unordered_map<std::string, std::shared_ptr<Storage>> storages;
  auto load = [&](const Value& pid) {
    check_storage_pid(pid, 5, source);
    const std::string& key = pid.items[2]->text;
    auto it = storages.find(key);
    if (it == storages.end()) {
      const c10::ScalarType dtype = storage_dtype(pid.items[1]->text, source);
      MS_CHECK(reader->hasRecord("data/" + key), ErrorCode::kIntegrity,
               "{}: storage record data/{} is missing", source, key);
      auto data = reader->getRecord("data/" + key);
      auto holder = std::make_shared<at::DataPtr>(std::move(std::get<0>(data)));
      const std::size_t nbytes = std::get<1>(data);
      const std::size_t elem = c10::elementSize(dtype);
      auto storage = std::make_shared<Storage>();
      storage->flat = at::from_blob(
          holder->get(), {static_cast<int64_t>(nbytes / elem)}, [holder](void*) {},
          at::TensorOptions().dtype(dtype));
      it = storages.emplace(key, storage).first;
    }
    return external(it->second);
  };
  pickle_bytes = data_pkl.size();
  return unpickle_torch(data_pkl, 0, source, load).value;
}

// The legacy magic number 0x1950a86a20f9469cfc6c, little-endian, as pickled by LONG1.
constexpr std::string_view kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
constexpr std::int64_t kLegacyProtocol = 1001;

ValuePtr load_legacy(const std::filesystem::path& path, std::size_t& pickle_bytes) {
  const std::string source = path.string();
  const auto map = MappedFile::open(path);
  const std::string_view data = map->view();
  auto next = [&](std::size_t pos, std::function<ValuePtr(const Value&)> load = nullptr) {
    pickle::Unpickled u = unpickle_torch(data, pos, source, std::move(load));
    return std::make_pair(u.value, u.end);
  };
  auto [magic, pos] = next(0);
  MS_CHECK(magic->kind == Value::Kind::kInt && magic->text == kLegacyMagic, ErrorCode::kIntegrity,
           "{} is neither a zip nor a legacy torch.save file (no torch magic number)", source);
  ValuePtr protocol, sys_info;
  std::tie(protocol, pos) = next(pos);
  MS_CHECK(protocol->kind == Value::Kind::kInt && protocol->i == kLegacyProtocol,
           ErrorCode::kIntegrity, "{}: legacy torch.save protocol {} is not supported (only {})",
           source, protocol->i, kLegacyProtocol);
  std::tie(sys_info, pos) = next(pos);
  for (const auto& [k, v] : sys_info->pairs) {
    // Storage bytes are in the writer's byte order; they are read here as little-endian.
    MS_CHECK(k->text != "little_endian" || v->i == 1, ErrorCode::kIntegrity,
             "{} was written on a big-endian machine, which is not supported", source);
  }

  // Storages are allocated as the state dict names them and filled from the data that follows.
  struct Root {
    at::Tensor flat;
    bool filled = false;
  };
  std::unordered_map<std::string, Root> roots;
  auto load = [&](const Value& pid) {
    check_storage_pid(pid, 6, source);
    const c10::ScalarType dtype = storage_dtype(pid.items[1]->text, source);
    const std::string& key = pid.items[2]->text;
    const auto numel = static_cast<std::uint64_t>(pid.items[4]->i);
    auto it = roots.find(key);
    if (it == roots.end()) {
      // Every byte must come from the file: a larger claim is corruption, not a request to
      // allocate.
      MS_CHECK(numel <= data.size() / c10::elementSize(dtype), ErrorCode::kIntegrity,
               "{}: storage {} claims {} elements, more than the file holds", source, key, numel);
      Root root;
      root.flat = at::empty({static_cast<int64_t>(numel)}, at::TensorOptions().dtype(dtype));
      it = roots.emplace(key, std::move(root)).first;
    }
    const at::Tensor& flat = it->second.flat;
    MS_CHECK(flat.scalar_type() == dtype && static_cast<std::uint64_t>(flat.numel()) == numel,
             ErrorCode::kIntegrity, "{}: storage {} is referenced with two types or sizes", source,
             key);
    auto storage = std::make_shared<Storage>();
    storage->flat = flat;
    // Files from PyTorch before 1.0 may reference a slice of a storage: (view key, offset, size).
    const Value& view = *pid.items[5];
    if (view.kind != Value::Kind::kNone) {
      MS_CHECK(view.kind == Value::Kind::kTuple && view.items.size() == 3 &&
                   view.items[1]->i >= 0 && view.items[2]->i >= 0 &&
                   view.items[1]->i <= flat.numel() - view.items[2]->i,
               ErrorCode::kIntegrity, "{}: malformed view of storage {}", source, key);
      storage->flat = flat.narrow(0, view.items[1]->i, view.items[2]->i);
    }
    return external(std::move(storage));
  };
  ValuePtr root, keys;
  const std::size_t root_start = pos;
  std::tie(root, pos) = next(pos, load);
  pickle_bytes = pos - root_start;
  std::tie(keys, pos) = next(pos);
  MS_CHECK(keys->kind == Value::Kind::kList, ErrorCode::kIntegrity,
           "{}: the storage key list is malformed", source);
  for (const auto& key : keys->items) {
    auto it = roots.find(key->text);
    MS_CHECK(key->kind == Value::Kind::kString && it != roots.end() && !it->second.filled,
             ErrorCode::kIntegrity, "{}: storage key list names an unknown storage '{}'", source,
             key->text);
    at::Tensor& flat = it->second.flat;
    const std::size_t nbytes = flat.numel() * flat.element_size();
    MS_CHECK(data.size() - pos >= 8, ErrorCode::kIntegrity,
             "{} ends early: storage {} is missing (the file is truncated)", source, key->text);
    std::int64_t count = 0;
    std::memcpy(&count, data.data() + pos, 8);
    pos += 8;
    MS_CHECK(count == flat.numel(), ErrorCode::kIntegrity,
             "{}: storage {} holds {} elements, the state dict says {}", source, key->text, count,
             flat.numel());
    MS_CHECK(data.size() - pos >= nbytes, ErrorCode::kIntegrity,
             "{} ends early: storage {} needs {} bytes, {} are left (the file is truncated)",
             source, key->text, nbytes, data.size() - pos);
    if (nbytes > 0) std::memcpy(flat.data_ptr(), data.data() + pos, nbytes);
    pos += nbytes;
    it->second.filled = true;
  }
  for (const auto& [key, r] : roots) {
    MS_CHECK(r.filled, ErrorCode::kIntegrity, "{}: storage {} has no data", source, key);
  }
  return root;
}

}  // namespace

const at::Tensor* torch_tensor_of(const Value& v) { return std::any_cast<at::Tensor>(&v.external); }

ValuePtr read_torch_file(const std::filesystem::path& path, std::size_t* pickle_bytes) {
  std::size_t bytes = 0;
  if (pickle_bytes == nullptr) pickle_bytes = &bytes;
  // A zip starts with "PK\3\4"; a legacy file with the PROTO opcode of its magic-number pickle.
  char head[4] = {};
  {
    std::ifstream in(path, std::ios::binary);
    MS_CHECK(in.good(), ErrorCode::kNotFound, "cannot open {}", path.string());
    in.read(head, sizeof head);
  }
  try {
    if (std::string_view(head, 4) == std::string_view("PK\x03\x04", 4))
      return load_zip(path, *pickle_bytes);
    if (static_cast<unsigned char>(head[0]) == 0x80) return load_legacy(path, *pickle_bytes);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kIntegrity,
                fmt::format("cannot read {}: {}", path.string(), e.what_without_backtrace()));
  }
  throw Error(
      ErrorCode::kIntegrity,
      fmt::format("{} is not a torch.save file (neither zip nor legacy format)", path.string()),
      "re-download the weights, or convert them to safetensors");
}

WeightMap load_torch_pickle(const std::filesystem::path& path) {
  return state_dict(*read_torch_file(path), path);
}

}  // namespace ms::tensor
