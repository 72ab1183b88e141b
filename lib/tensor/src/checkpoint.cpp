// torch.save / torch.load files of plain values and tensors. Writing mirrors Python's torch.save
// in its zip format: data.pkl (pickle protocol 2, as torch.save's DEFAULT_PROTOCOL) whose tensors
// are torch._utils._rebuild_tensor_v2 calls over persistent ids naming storages, one record
// data/<key> per storage, a byteorder record (torch 2.x) and the version record. LibTorch's
// PyTorchStreamWriter (what torch.save itself uses) writes the zip: records stored, not
// compressed, and their data aligned to 64 bytes, as torch 2.x's mmap loading wants. Only globals
// that torch 2.x's weights_only reader allows are written: collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 and torch.<T>Storage. Reading goes through read_torch_file,
// the reader that load_torch_pickle uses too.
#include "ms/tensor/checkpoint.h"

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <exception>
#include <string_view>
#include <unordered_set>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/pickle.h"
#include "torch_pickle.h"

namespace ms::tensor {
namespace {

using Kind = CheckpointValue::Kind;

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kTensor:
      return "tensor";
    case Kind::kList:
      return "list";
    case Kind::kTuple:
      return "tuple";
    case Kind::kDict:
      return "dict";
  }
  return "?";
}

[[noreturn]] void wrong_kind(const char* expected, Kind found) {
  throw Error(ErrorCode::kIntegrity,
              fmt::format("checkpoint value is a {}, expected {}", kind_name(found), expected));
}

// The storage class of each dtype a checkpoint may hold (torch.<name>, a legacy typed storage:
// what torch.save writes and weights_only allows).
const char* storage_class(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::ScalarType::Float:
      return "FloatStorage";
    case c10::ScalarType::Double:
      return "DoubleStorage";
    case c10::ScalarType::Half:
      return "HalfStorage";
    case c10::ScalarType::BFloat16:
      return "BFloat16Storage";
    case c10::ScalarType::Long:
      return "LongStorage";
    case c10::ScalarType::Int:
      return "IntStorage";
    case c10::ScalarType::Short:
      return "ShortStorage";
    case c10::ScalarType::Char:
      return "CharStorage";
    case c10::ScalarType::Byte:
      return "ByteStorage";
    case c10::ScalarType::Bool:
      return "BoolStorage";
    default:
      return nullptr;
  }
}

// The bytes of a tensor as a storage of its own: CPU, contiguous, offset 0.
at::Tensor storage_tensor(const at::Tensor& t) { return t.detach().cpu().contiguous(); }

bool tensors_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = storage_tensor(a);
  const at::Tensor cb = storage_tensor(b);
  const std::size_t n = ca.numel() * ca.element_size();
  return n == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), n) == 0;
}

// Pickles a CheckpointValue as torch.save would pickle the Python object it stands for, and
// collects the storages its tensors need. Each tensor gets a storage of its own: two tensors
// that share one (views of one tensor) are written as separate storages, so they load as
// separate tensors (torch.save would keep them sharing).
class Saver {
 public:
  explicit Saver(const std::filesystem::path& path) : path_(path) {}

  void save(const CheckpointValue& v) {
    switch (v.kind()) {
      case Kind::kNone:
        w_.none();
        return;
      case Kind::kBool:
        w_.boolean(v.as_bool());
        return;
      case Kind::kInt:
        w_.integer(v.as_int());
        return;
      case Kind::kFloat:
        w_.floating(v.as_float());
        return;
      case Kind::kString:
        w_.str(v.as_string());
        return;
      case Kind::kTensor:
        tensor(v.as_tensor());
        return;
      case Kind::kList:
        w_.list(v.items().size(), [&](std::size_t i) { save(v.items()[i]); });
        return;
      case Kind::kTuple:
        w_.tuple(v.items().size(), [&](std::size_t i) { save(v.items()[i]); });
        return;
      case Kind::kDict: {
        auto entry = [&](std::size_t i) {
          save(v.entries()[i].first);
          save(v.entries()[i].second);
        };
        if (v.is_ordered_dict()) {
          ordered_dict();
          w_.set_items(v.entries().size(), entry);
        } else {
          w_.dict(v.entries().size(), entry);
        }
        return;
      }
    }
  }

  std::string pickle() { return w_.finish(); }
  std::vector<at::Tensor>& storages() { return storages_; }

 private:
  // collections.OrderedDict() as pickle protocol 2 writes it: REDUCE of the class and ().
  void ordered_dict() {
    w_.global("collections", "OrderedDict");
    w_.tuple(0, nullptr);
    w_.reduce();
  }

  // torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict()), the storage
  // a persistent id ('storage', torch.<T>Storage, key, 'cpu', numel).
  void tensor(const at::Tensor& t) {
    MS_CHECK(t.defined(), ErrorCode::kInternal, "{}: cannot save an undefined tensor",
             path_.string());
    const char* cls = storage_class(t.scalar_type());
    MS_CHECK(cls != nullptr, ErrorCode::kInternal,
             "{}: cannot save a tensor of dtype {} (supported: float32/64, float16, bfloat16, "
             "int64/32/16/8, uint8, bool)",
             path_.string(), c10::toString(t.scalar_type()));
    at::Tensor storage = storage_tensor(t);
    const std::string key = std::to_string(storages_.size());
    w_.global("torch._utils", "_rebuild_tensor_v2");
    w_.tuple(6, [&](std::size_t i) {
      switch (i) {
        case 0:
          w_.tuple(5, [&](std::size_t j) {
            switch (j) {
              case 0:
                return w_.str("storage");
              case 1:
                return w_.global("torch", cls);
              case 2:
                return w_.str(key);
              case 3:
                return w_.str("cpu");
              default:
                return w_.integer(storage.numel());
            }
          });
          return w_.persistent_id();
        case 1:
          return w_.integer(0);
        case 2:
          return w_.tuple(storage.dim(), [&](std::size_t j) { w_.integer(storage.size(j)); });
        case 3:
          return w_.tuple(storage.dim(), [&](std::size_t j) { w_.integer(storage.stride(j)); });
        case 4:
          return w_.boolean(false);
        default:
          return ordered_dict();
      }
    });
    w_.reduce();
    storages_.push_back(std::move(storage));
  }

  const std::filesystem::path& path_;
  pickle::Writer w_{2};
  std::vector<at::Tensor> storages_;
};

// Converts what read_torch_file unpickled into CheckpointValues. The pickle may come from anyone:
// memo references can make a value its own ancestor or share one value many times over (a list
// holding one list twice, 60 levels deep, is 2^60 values), so ancestors are tracked and the
// values made are bounded by what a pickle of that size could hold without sharing (one opcode,
// at least a byte, per value), with room for the sharing real files have.
class Converter {
 public:
  Converter(const std::filesystem::path& path, std::size_t pickle_bytes)
      : source_(path.string()), max_values_(2 * pickle_bytes + kSharedValues) {}

  CheckpointValue convert(const pickle::Value& v, int depth = 0) {
    using pickle::Value;
    MS_CHECK(depth < kMaxDepth, ErrorCode::kIntegrity, "{}: values nested deeper than {}", source_,
             kMaxDepth);
    MS_CHECK(++made_ <= max_values_, ErrorCode::kIntegrity,
             "{}: the pickle expands to more than {} values (shared values repeated over and over)",
             source_, max_values_);
    switch (v.kind) {
      case Value::Kind::kNone:
        return {};
      case Value::Kind::kBool:
        return CheckpointValue(v.i != 0);
      case Value::Kind::kInt:
        // LONG1 keeps its bytes in `text`; the reader keeps only 64 bits of wider ones.
        MS_CHECK(v.text.size() <= 8, ErrorCode::kIntegrity,
                 "{}: an integer wider than 64 bits is not supported", source_);
        return CheckpointValue(v.i);
      case Value::Kind::kFloat:
        return CheckpointValue(v.f);
      case Value::Kind::kString:
        return CheckpointValue(v.text);
      case Value::Kind::kExternal: {
        const at::Tensor* t = torch_tensor_of(v);
        MS_CHECK(t != nullptr, ErrorCode::kIntegrity,
                 "{}: a bare storage is not a supported checkpoint value", source_);
        return CheckpointValue(*t);
      }
      case Value::Kind::kList:
      case Value::Kind::kTuple: {
        Enter enter(*this, v);
        CheckpointValue out =
            v.kind == Value::Kind::kList ? CheckpointValue::list() : CheckpointValue::tuple();
        for (const auto& item : v.items) out.push_back(convert(*item, depth + 1));
        return out;
      }
      case Value::Kind::kDict: {
        Enter enter(*this, v);
        CheckpointValue::Entries entries;
        entries.reserve(v.pairs.size());
        for (const auto& [key, value] : v.pairs) {
          MS_CHECK(key->kind == Value::Kind::kString || key->kind == Value::Kind::kInt,
                   ErrorCode::kIntegrity, "{}: a dict key is not a str or an int", source_);
          entries.emplace_back(convert(*key, depth + 1), convert(*value, depth + 1));
        }
        return v.text == "collections.OrderedDict"
                   ? CheckpointValue::ordered_dict(std::move(entries))
                   : CheckpointValue::dict(std::move(entries));
      }
      case Value::Kind::kGlobal:
      case Value::Kind::kObject:
        throw Error(ErrorCode::kIntegrity,
                    fmt::format("{} holds an object of class {}, which is not a plain value or "
                                "tensor",
                                source_, v.text));
      case Value::Kind::kMark:
        break;
    }
    throw Error(ErrorCode::kIntegrity, fmt::format("{}: malformed pickle", source_));
  }

 private:
  static constexpr int kMaxDepth = 1000;
  static constexpr std::size_t kSharedValues = std::size_t{1} << 20;

  // Marks a container as an ancestor of what is converted inside it.
  struct Enter {
    Enter(Converter& c, const pickle::Value& v) : c_(c), v_(&v) {
      MS_CHECK(c.open_.insert(v_).second, ErrorCode::kIntegrity,
               "{}: a container holds itself (a recursive structure)", c.source_);
    }
    ~Enter() { c_.open_.erase(v_); }
    Converter& c_;
    const pickle::Value* v_;
  };

  std::string source_;
  std::size_t max_values_;
  std::unordered_set<const pickle::Value*> open_;
  std::size_t made_ = 0;
};

}  // namespace

CheckpointValue CheckpointValue::list(Items items) {
  CheckpointValue v;
  v.kind_ = Kind::kList;
  v.items_ = std::move(items);
  return v;
}

CheckpointValue CheckpointValue::tuple(Items items) {
  CheckpointValue v;
  v.kind_ = Kind::kTuple;
  v.items_ = std::move(items);
  return v;
}

CheckpointValue CheckpointValue::dict(Entries entries) {
  CheckpointValue v;
  v.kind_ = Kind::kDict;
  v.entries_ = std::move(entries);
  return v;
}

CheckpointValue CheckpointValue::ordered_dict(Entries entries) {
  CheckpointValue v = dict(std::move(entries));
  v.ordered_ = true;
  return v;
}

CheckpointValue CheckpointValue::state_dict(const TensorMap& tensors) {
  Entries entries;
  entries.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) entries.emplace_back(name, tensor);
  return ordered_dict(std::move(entries));
}

bool CheckpointValue::as_bool() const {
  if (kind_ != Kind::kBool) wrong_kind("bool", kind_);
  return int_ != 0;
}

std::int64_t CheckpointValue::as_int() const {
  if (kind_ != Kind::kInt) wrong_kind("int", kind_);
  return int_;
}

double CheckpointValue::as_float() const {
  if (kind_ == Kind::kInt) return static_cast<double>(int_);
  if (kind_ != Kind::kFloat) wrong_kind("float", kind_);
  return float_;
}

const std::string& CheckpointValue::as_string() const {
  if (kind_ != Kind::kString) wrong_kind("str", kind_);
  return text_;
}

const at::Tensor& CheckpointValue::as_tensor() const {
  if (kind_ != Kind::kTensor) wrong_kind("tensor", kind_);
  return tensor_;
}

const CheckpointValue::Items& CheckpointValue::items() const {
  if (kind_ != Kind::kList && kind_ != Kind::kTuple) wrong_kind("list or tuple", kind_);
  return items_;
}

const CheckpointValue::Entries& CheckpointValue::entries() const {
  if (kind_ != Kind::kDict) wrong_kind("dict", kind_);
  return entries_;
}

TensorMap CheckpointValue::as_state_dict() const {
  TensorMap out;
  for (const auto& [key, value] : entries()) {
    MS_CHECK(key.kind_ == Kind::kString && value.kind_ == Kind::kTensor, ErrorCode::kIntegrity,
             "checkpoint value is not a state dict: it maps a {} to a {}", kind_name(key.kind_),
             kind_name(value.kind_));
    out[key.text_] = value.tensor_;
  }
  return out;
}

void CheckpointValue::push_back(CheckpointValue value) {
  if (kind_ != Kind::kList && kind_ != Kind::kTuple) wrong_kind("list or tuple", kind_);
  items_.push_back(std::move(value));
}

void CheckpointValue::set(CheckpointValue key, CheckpointValue value) {
  if (kind_ != Kind::kDict) wrong_kind("dict", kind_);
  for (auto& entry : entries_) {
    if (entry.first == key) {
      entry.second = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

const CheckpointValue* CheckpointValue::find(const std::string& key) const {
  for (const auto& [k, v] : entries()) {
    if (k.kind_ == Kind::kString && k.text_ == key) return &v;
  }
  return nullptr;
}

const CheckpointValue* CheckpointValue::find(std::int64_t key) const {
  for (const auto& [k, v] : entries()) {
    if (k.kind_ == Kind::kInt && k.int_ == key) return &v;
  }
  return nullptr;
}

const CheckpointValue& CheckpointValue::at(const std::string& key) const {
  const CheckpointValue* v = find(key);
  MS_CHECK(v != nullptr, ErrorCode::kIntegrity, "checkpoint has no key '{}'", key);
  return *v;
}

bool operator==(const CheckpointValue& a, const CheckpointValue& b) {
  using Kind = CheckpointValue::Kind;
  if (a.kind_ != b.kind_) return false;
  switch (a.kind_) {
    case Kind::kNone:
      return true;
    case Kind::kBool:
    case Kind::kInt:
      return a.int_ == b.int_;
    case Kind::kFloat:
      // Bitwise, so that NaN equals itself and 0.0 differs from -0.0, as a round trip keeps.
      return std::memcmp(&a.float_, &b.float_, sizeof a.float_) == 0;
    case Kind::kString:
      return a.text_ == b.text_;
    case Kind::kTensor:
      return tensors_equal(a.tensor_, b.tensor_);
    case Kind::kList:
    case Kind::kTuple:
      return a.items_ == b.items_;
    case Kind::kDict:
      return a.entries_ == b.entries_;
  }
  return false;
}

void save_checkpoint(const std::filesystem::path& path, const CheckpointValue& value) {
  Saver saver(path);
  saver.save(value);
  const std::string data_pkl = saver.pickle();

  // Records follow torch.save's order. The zip streams into the temp file; a failed write is
  // kept aside and rethrown after the zip writer is done, since an error thrown through miniz's
  // callback would leave PyTorchStreamWriter to finish the file from its destructor (which must
  // not throw).
  write_file_atomic(path, [&](const FileSink& sink) {
    std::exception_ptr failure;
    try {
      caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, std::size_t n) {
        if (!failure) {
          try {
            sink(data, n);
          } catch (...) {
            failure = std::current_exception();
          }
        }
        return n;
      });
      writer.writeRecord("data.pkl", data_pkl.data(), data_pkl.size());
      // Storage bytes are in this machine's order, which torch 2.x reads from this record.
      static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
                    "storages are written little-endian");
      const std::string_view byteorder = "little";
      writer.writeRecord("byteorder", byteorder.data(), byteorder.size());
      const auto& storages = saver.storages();
      for (std::size_t i = 0; i < storages.size() && !failure; ++i) {
        const at::Tensor& s = storages[i];
        writer.writeRecord("data/" + std::to_string(i), s.data_ptr(), s.numel() * s.element_size());
      }
      writer.writeEndOfFile();  // the version record and the zip's central directory
    } catch (const c10::Error& e) {
      throw Error(ErrorCode::kIo,
                  fmt::format("{}: cannot write: {}", path.string(), e.what_without_backtrace()));
    }
    if (failure) std::rethrow_exception(failure);
  });
}

CheckpointValue load_checkpoint(const std::filesystem::path& path) {
  std::size_t pickle_bytes = 0;
  const pickle::ValuePtr root = read_torch_file(path, &pickle_bytes);
  return Converter(path, pickle_bytes).convert(*root);
}

}  // namespace ms::tensor
