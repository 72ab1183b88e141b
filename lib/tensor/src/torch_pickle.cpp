// pytorch_model.bin as written by torch.save(state_dict): a zip (PyTorchStreamReader) holding
// data.pkl, a pickle whose tensors refer by key to data/<key> records. LibTorch 1.13's own
// unpickler rejects OrderedDict and SETITEM, so this is a small pickle interpreter of our own
// covering what torch.save emits.
#include <ATen/ops/as_strided.h>
#include <ATen/ops/from_blob.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <memory>
#include <unordered_map>
#include <variant>

#include "ms/core/error.h"
#include "ms/tensor/weights.h"

namespace ms::tensor {
namespace {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Storage {
  at::Tensor flat;  // 1-D tensor over the whole record
};

struct Value {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kStorage,
    kTensor,
    kMark,
    kObject
  };
  Kind kind = Kind::kNone;
  std::int64_t i = 0;
  double f = 0;
  std::string s;  // string, or "module.name" for globals
  std::vector<ValuePtr> items;
  std::vector<std::pair<ValuePtr, ValuePtr>> dict;
  at::Tensor tensor;
  std::shared_ptr<Storage> storage;
};

ValuePtr make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
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

class Unpickler {
 public:
  Unpickler(const std::string& data, caffe2::serialize::PyTorchStreamReader& reader,
            std::string source)
      : data_(data), reader_(reader), source_(std::move(source)) {}

  ValuePtr run() {
    while (true) {
      const unsigned char op = byte();
      switch (op) {
        case 0x80:
          byte();
          break;  // PROTO
        case 0x95:
          bytes(8);
          break;  // FRAME
        case '.':
          return pop();  // STOP
        case '(':
          push(make(Value::Kind::kMark));
          break;
        case ')':
          push(make(Value::Kind::kTuple));
          break;
        case ']':
          push(make(Value::Kind::kList));
          break;
        case '}':
          push(make(Value::Kind::kDict));
          break;
        case 'N':
          push(make(Value::Kind::kNone));
          break;
        case 0x88:
        case 0x89: {
          auto v = make(Value::Kind::kBool);
          v->i = op == 0x88;
          push(v);
          break;
        }
        case 'K':
          push_int(byte());
          break;
        case 'M':
          push_int(le(2));
          break;
        case 'J':
          push_int(static_cast<std::int32_t>(le(4)));
          break;
        case 0x8a: {  // LONG1
          const std::size_t n = byte();
          std::uint64_t v = 0;
          for (std::size_t k = 0; k < n && k < 8; ++k)
            v |= static_cast<std::uint64_t>(byte()) << (8 * k);
          for (std::size_t k = 8; k < n; ++k) byte();
          std::int64_t sv = static_cast<std::int64_t>(v);
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1)
            sv -= static_cast<std::int64_t>(1ULL << (8 * n));
          push_int(sv);
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          std::uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | byte();
          auto v = make(Value::Kind::kFloat);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case 'X':
          push_string(le(4));
          break;  // BINUNICODE
        case 0x8c:
          push_string(byte());
          break;  // SHORT_BINUNICODE
        case 'T':
          push_string(le(4));
          break;  // BINSTRING
        case 'U':
          push_string(byte());
          break;  // SHORT_BINSTRING
        case 'B':
          push_string(le(4));
          break;  // BINBYTES
        case 'C':
          push_string(byte());
          break;     // SHORT_BINBYTES
        case 'c': {  // GLOBAL
          auto v = make(Value::Kind::kGlobal);
          const std::string module = line();  // two statements: operand order is unspecified
          v->s = module + "." + line();
          push(v);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop();
          auto module = pop();
          auto v = make(Value::Kind::kGlobal);
          v->s = module->s + "." + name->s;
          push(v);
          break;
        }
        case 'q':
          memo_[byte()] = top();
          break;  // BINPUT
        case 'r':
          memo_[le(4)] = top();
          break;  // LONG_BINPUT
        case 0x94:
          memo_[memo_.size()] = top();
          break;  // MEMOIZE
        case 'h':
          push(memo(byte()));
          break;  // BINGET
        case 'j':
          push(memo(le(4)));
          break;  // LONG_BINGET
        case 't': {
          auto v = make(Value::Kind::kTuple);
          v->items = pop_mark();
          push(v);
          break;
        }
        case 0x85:
          tuple_n(1);
          break;
        case 0x86:
          tuple_n(2);
          break;
        case 0x87:
          tuple_n(3);
          break;
        case 'l': {
          auto v = make(Value::Kind::kList);
          v->items = pop_mark();
          push(v);
          break;
        }
        case 'a': {
          auto v = pop();
          top()->items.push_back(v);
          break;
        }
        case 'e': {
          auto items = pop_mark();
          auto& l = top()->items;
          l.insert(l.end(), items.begin(), items.end());
          break;
        }
        case 's': {
          auto v = pop();
          auto k = pop();
          top()->dict.emplace_back(k, v);
          break;
        }
        case 'u': {
          auto items = pop_mark();
          MS_CHECK(items.size() % 2 == 0, ErrorCode::kIntegrity, "{}: odd SETITEMS", source_);
          for (std::size_t k = 0; k < items.size(); k += 2)
            top()->dict.emplace_back(items[k], items[k + 1]);
          break;
        }
        case 'b':
          pop();
          break;  // BUILD: object state is not needed
        case 'R': {
          auto args = pop();
          auto fn = pop();
          push(reduce(*fn, *args));
          break;
        }
        case 0x81: {
          auto args = pop();
          auto cls = pop();
          push(reduce(*cls, *args));
          break;
        }  // NEWOBJ
        case 'Q':
          push(persistent(*pop()));
          break;  // BINPERSID
        case '0':
          pop();
          break;  // POP
        default:
          fail(ErrorCode::kIntegrity, "{}: unsupported pickle opcode 0x{:02x} at offset {}",
               source_, op, pos_ - 1);
      }
    }
  }

 private:
  unsigned char byte() {
    MS_CHECK(pos_ < data_.size(), ErrorCode::kIntegrity, "{}: pickle ends early", source_);
    return static_cast<unsigned char>(data_[pos_++]);
  }
  std::string bytes(std::size_t n) {
    MS_CHECK(n <= data_.size() - pos_, ErrorCode::kIntegrity, "{}: pickle ends early", source_);
    std::string out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  std::uint64_t le(int n) {
    std::uint64_t v = 0;
    for (int k = 0; k < n; ++k) v |= static_cast<std::uint64_t>(byte()) << (8 * k);
    return v;
  }
  std::string line() {
    const auto end = data_.find('\n', pos_);
    MS_CHECK(end != std::string::npos, ErrorCode::kIntegrity, "{}: bad GLOBAL", source_);
    std::string out = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  void push_int(std::int64_t i) {
    auto v = make(Value::Kind::kInt);
    v->i = i;
    push(v);
  }
  void push_string(std::size_t n) {
    auto v = make(Value::Kind::kString);
    v->s = bytes(n);
    push(v);
  }
  ValuePtr pop() {
    MS_CHECK(!stack_.empty(), ErrorCode::kIntegrity, "{}: pickle stack underflow", source_);
    auto v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  ValuePtr& top() {
    MS_CHECK(!stack_.empty(), ErrorCode::kIntegrity, "{}: pickle stack underflow", source_);
    return stack_.back();
  }
  ValuePtr memo(std::size_t k) {
    auto it = memo_.find(k);
    MS_CHECK(it != memo_.end(), ErrorCode::kIntegrity, "{}: pickle memo {} missing", source_, k);
    return it->second;
  }
  std::vector<ValuePtr> pop_mark() {
    std::vector<ValuePtr> items;
    while (true) {
      auto v = pop();
      if (v->kind == Value::Kind::kMark) break;
      items.push_back(std::move(v));
    }
    return {items.rbegin(), items.rend()};
  }
  void tuple_n(int n) {
    auto v = make(Value::Kind::kTuple);
    v->items.resize(n);
    for (int k = n - 1; k >= 0; --k) v->items[k] = pop();
    push(v);
  }

  std::vector<std::int64_t> ints(const Value& v) {
    std::vector<std::int64_t> out;
    for (const auto& item : v.items) out.push_back(item->i);
    return out;
  }

  ValuePtr reduce(const Value& fn, const Value& args) {
    if (fn.s == "collections.OrderedDict" || fn.s == "builtins.dict")
      return make(Value::Kind::kDict);
    if (fn.s == "torch._utils._rebuild_tensor_v2" || fn.s == "torch._utils._rebuild_tensor") {
      MS_CHECK(args.items.size() >= 4 && args.items[0]->kind == Value::Kind::kStorage,
               ErrorCode::kIntegrity, "{}: malformed tensor record", source_);
      auto v = make(Value::Kind::kTensor);
      v->tensor = at::as_strided(args.items[0]->storage->flat, ints(*args.items[2]),
                                 ints(*args.items[3]), args.items[1]->i);
      return v;
    }
    if (fn.s == "torch._utils._rebuild_parameter" ||
        fn.s == "torch._utils._rebuild_parameter_with_state") {
      MS_CHECK(!args.items.empty(), ErrorCode::kIntegrity, "{}: malformed parameter", source_);
      return args.items[0];
    }
    auto v = make(Value::Kind::kObject);
    v->s = fn.s;
    return v;
  }

  ValuePtr persistent(const Value& pid) {
    MS_CHECK(
        pid.kind == Value::Kind::kTuple && pid.items.size() >= 5 && pid.items[0]->s == "storage",
        ErrorCode::kIntegrity, "{}: unexpected persistent id", source_);
    const std::string key = pid.items[2]->s;
    auto it = storages_.find(key);
    if (it == storages_.end()) {
      const c10::ScalarType dtype = storage_dtype(pid.items[1]->s, source_);
      auto record = reader_.getRecord("data/" + key);
      auto holder = std::make_shared<at::DataPtr>(std::move(std::get<0>(record)));
      const std::size_t nbytes = std::get<1>(record);
      const std::size_t elem = c10::elementSize(dtype);
      auto storage = std::make_shared<Storage>();
      storage->flat = at::from_blob(
          holder->get(), {static_cast<int64_t>(nbytes / elem)}, [holder](void*) {},
          at::TensorOptions().dtype(dtype));
      it = storages_.emplace(key, storage).first;
    }
    auto v = make(Value::Kind::kStorage);
    v->storage = it->second;
    return v;
  }

  const std::string& data_;
  caffe2::serialize::PyTorchStreamReader& reader_;
  std::string source_;
  std::size_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::unordered_map<std::size_t, ValuePtr> memo_;
  std::unordered_map<std::string, std::shared_ptr<Storage>> storages_;
};

bool collect(const Value& dict, WeightMap& out) {
  for (const auto& [k, v] : dict.dict) {
    if (k->kind == Value::Kind::kString && v->kind == Value::Kind::kTensor)
      out.emplace(k->s, v->tensor);
  }
  return !out.empty();
}

}  // namespace

WeightMap load_torch_pickle(const std::filesystem::path& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path.string());
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kIntegrity,
                fmt::format("{} is not a zip-format torch.save file (legacy pre-1.6 files are not "
                            "supported)",
                            path.string()),
                "re-save it with torch.save(state_dict, f) from PyTorch 1.6+, or convert it to "
                "safetensors");
  }
  try {
    MS_CHECK(reader->hasRecord("data.pkl"), ErrorCode::kIntegrity,
             "{} has no data.pkl: not a torch.save file", path.string());
    auto record = reader->getRecord("data.pkl");
    const std::string pickle(static_cast<const char*>(std::get<0>(record).get()),
                             std::get<1>(record));
    Unpickler unpickler(pickle, *reader, path.string());
    ValuePtr root = unpickler.run();
    WeightMap out;
    MS_CHECK(root->kind == Value::Kind::kDict, ErrorCode::kIntegrity,
             "{} does not hold a state dict (top-level object is not a dict)", path.string());
    if (!collect(*root, out)) {
      // Checkpoints often wrap the state dict: {"state_dict": {...}} or {"model": {...}}.
      for (const auto& [k, v] : root->dict) {
        if (v->kind == Value::Kind::kDict &&
            (k->s == "state_dict" || k->s == "model" || k->s == "module") && collect(*v, out)) {
          break;
        }
      }
    }
    MS_CHECK(!out.empty(), ErrorCode::kIntegrity, "{} holds no tensors", path.string());
    return out;
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kIntegrity,
                fmt::format("cannot read {}: {}", path.string(), e.what_without_backtrace()));
  }
}

}  // namespace ms::tensor
