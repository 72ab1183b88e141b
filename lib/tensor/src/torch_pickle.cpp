// pytorch_model.bin as written by torch.save(state_dict), in either of its two layouts:
// - zip (PyTorch 1.6+): data.pkl, a pickle whose tensors refer by key to data/<key> records;
// - legacy (before 1.6, or _use_new_zipfile_serialization=False): five pickles in a row (magic
//   number, protocol version, sys_info, the state dict, the sorted storage keys), then each
//   storage's int64 element count and raw bytes in key order.
// LibTorch 1.13's own unpickler rejects OrderedDict and SETITEM, so this is a small pickle
// interpreter of our own covering what torch.save emits; only the storage lookup differs.
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
#include <variant>

#include "mapped_file.h"
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

  Value() = default;
  Value(const Value&) = delete;
  Value& operator=(const Value&) = delete;
  // Frees the children one at a time instead of recursively: a hostile pickle nests lists a
  // million deep in a few megabytes, and a recursive free would overflow the stack.
  ~Value() {
    std::vector<ValuePtr> pending;
    auto take_children = [&pending](Value& v) {
      for (ValuePtr& item : v.items) pending.push_back(std::move(item));
      for (auto& [key, item] : v.dict) {
        pending.push_back(std::move(key));
        pending.push_back(std::move(item));
      }
      v.items.clear();
      v.dict.clear();
    };
    take_children(*this);
    while (!pending.empty()) {
      ValuePtr next = std::move(pending.back());
      pending.pop_back();
      if (next && next.use_count() == 1) take_children(*next);
    }
  }
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

// Turns a persistent id (torch.save's reference to a storage) into a kStorage value.
using PersistentLoad = std::function<ValuePtr(const Value& pid)>;

// Runs one pickle starting at `pos` in `data`; pos() is then just past its STOP.
class Unpickler {
 public:
  Unpickler(std::string_view data, std::size_t pos, PersistentLoad load, std::string source)
      : data_(data), source_(std::move(source)), load_(std::move(load)), pos_(pos) {}

  std::size_t pos() const { return pos_; }

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
        case 0x8a: {  // LONG1; the raw bytes stay in `s` for wider numbers (the legacy magic)
          const std::size_t n = byte();
          const std::string raw = bytes(n);
          std::uint64_t v = 0;
          for (std::size_t k = 0; k < n && k < 8; ++k)
            v |= static_cast<std::uint64_t>(static_cast<unsigned char>(raw[k])) << (8 * k);
          std::int64_t sv = static_cast<std::int64_t>(v);
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1)
            sv -= static_cast<std::int64_t>(1ULL << (8 * n));
          push_int(sv);
          top()->s = raw;
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
        case 0x81: {  // NEWOBJ
          auto args = pop();
          auto cls = pop();
          push(reduce(*cls, *args));
          break;
        }
        case 'Q': {  // BINPERSID
          auto pid = pop();
          MS_CHECK(load_ != nullptr, ErrorCode::kIntegrity,
                   "{}: unexpected storage reference at offset {}", source_, pos_ - 1);
          push(load_(*pid));
          break;
        }
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
    MS_CHECK(pos_ < data_.size(), ErrorCode::kIntegrity,
             "{}: pickle ends early (the file is truncated or corrupt)", source_);
    return static_cast<unsigned char>(data_[pos_++]);
  }
  std::string bytes(std::size_t n) {
    MS_CHECK(n <= data_.size() - pos_, ErrorCode::kIntegrity,
             "{}: pickle ends early (the file is truncated or corrupt)", source_);
    std::string out(data_.substr(pos_, n));
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
    MS_CHECK(end != std::string_view::npos, ErrorCode::kIntegrity, "{}: bad GLOBAL", source_);
    std::string out(data_.substr(pos_, end - pos_));
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
      // as_strided counts the offset from the start of the whole storage; a legacy file's view of
      // a storage (see load_legacy) starts further in, and its tensors count from the view.
      const at::Tensor& flat = args.items[0]->storage->flat;
      const std::int64_t offset = args.items[1]->i;
      MS_CHECK(offset >= 0 && offset <= flat.numel(), ErrorCode::kIntegrity,
               "{}: tensor offset {} lies outside its storage of {} elements", source_, offset,
               flat.numel());
      auto v = make(Value::Kind::kTensor);
      v->tensor = at::as_strided(flat, ints(*args.items[2]), ints(*args.items[3]),
                                 flat.storage_offset() + offset);
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

  std::string_view data_;
  std::string source_;
  PersistentLoad load_;
  std::size_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::unordered_map<std::size_t, ValuePtr> memo_;
};

bool collect(const Value& dict, WeightMap& out) {
  for (const auto& [k, v] : dict.dict) {
    if (k->kind == Value::Kind::kString && v->kind == Value::Kind::kTensor)
      out.emplace(k->s, v->tensor);
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
    for (const auto& [k, v] : root.dict) {
      if (v->kind == Value::Kind::kDict &&
          (k->s == "state_dict" || k->s == "model" || k->s == "module") && collect(*v, out)) {
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
               pid.items[0]->kind == Value::Kind::kString && pid.items[0]->s == "storage" &&
               pid.items[1]->kind == Value::Kind::kGlobal &&
               pid.items[2]->kind == Value::Kind::kString &&
               pid.items[4]->kind == Value::Kind::kInt && pid.items[4]->i >= 0,
           ErrorCode::kIntegrity, "{}: malformed storage reference", source);
}

WeightMap load_zip(const std::filesystem::path& path) {
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
  const std::string pickle(static_cast<const char*>(std::get<0>(record).get()),
                           std::get<1>(record));
  // Each storage is the zip record data/<key>, shared by every tensor that views it.
  std::unordered_map<std::string, std::shared_ptr<Storage>> storages;
  auto load = [&](const Value& pid) {
    check_storage_pid(pid, 5, source);
    const std::string& key = pid.items[2]->s;
    auto it = storages.find(key);
    if (it == storages.end()) {
      const c10::ScalarType dtype = storage_dtype(pid.items[1]->s, source);
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
    auto v = make(Value::Kind::kStorage);
    v->storage = it->second;
    return v;
  };
  Unpickler unpickler(pickle, 0, load, source);
  return state_dict(*unpickler.run(), path);
}

// The legacy magic number 0x1950a86a20f9469cfc6c, little-endian, as pickled by LONG1.
constexpr std::string_view kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
constexpr std::int64_t kLegacyProtocol = 1001;

WeightMap load_legacy(const std::filesystem::path& path) {
  const std::string source = path.string();
  const auto map = MappedFile::open(path);
  const std::string_view data = map->view();
  auto next = [&](std::size_t pos, PersistentLoad load = nullptr) {
    Unpickler u(data, pos, std::move(load), source);
    ValuePtr v = u.run();
    return std::make_pair(v, u.pos());
  };
  auto [magic, pos] = next(0);
  MS_CHECK(magic->kind == Value::Kind::kInt && magic->s == kLegacyMagic, ErrorCode::kIntegrity,
           "{} is neither a zip nor a legacy torch.save file (no torch magic number)", source);
  ValuePtr protocol, sys_info;
  std::tie(protocol, pos) = next(pos);
  MS_CHECK(protocol->kind == Value::Kind::kInt && protocol->i == kLegacyProtocol,
           ErrorCode::kIntegrity, "{}: legacy torch.save protocol {} is not supported (only {})",
           source, protocol->i, kLegacyProtocol);
  std::tie(sys_info, pos) = next(pos);
  for (const auto& [k, v] : sys_info->dict) {
    // Storage bytes are in the writer's byte order; they are read here as little-endian.
    MS_CHECK(k->s != "little_endian" || v->i == 1, ErrorCode::kIntegrity,
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
    const c10::ScalarType dtype = storage_dtype(pid.items[1]->s, source);
    const std::string& key = pid.items[2]->s;
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
    auto v = make(Value::Kind::kStorage);
    v->storage = std::make_shared<Storage>();
    v->storage->flat = flat;
    // Files from PyTorch before 1.0 may reference a slice of a storage: (view key, offset, size).
    const Value& view = *pid.items[5];
    if (view.kind != Value::Kind::kNone) {
      MS_CHECK(view.kind == Value::Kind::kTuple && view.items.size() == 3 &&
                   view.items[1]->i >= 0 && view.items[2]->i >= 0 &&
                   view.items[1]->i <= flat.numel() - view.items[2]->i,
               ErrorCode::kIntegrity, "{}: malformed view of storage {}", source, key);
      v->storage->flat = flat.narrow(0, view.items[1]->i, view.items[2]->i);
    }
    return v;
  };
  ValuePtr root, keys;
  std::tie(root, pos) = next(pos, load);
  std::tie(keys, pos) = next(pos);
  MS_CHECK(keys->kind == Value::Kind::kList, ErrorCode::kIntegrity,
           "{}: the storage key list is malformed", source);
  for (const auto& key : keys->items) {
    auto it = roots.find(key->s);
    MS_CHECK(key->kind == Value::Kind::kString && it != roots.end() && !it->second.filled,
             ErrorCode::kIntegrity, "{}: storage key list names an unknown storage '{}'", source,
             key->s);
    at::Tensor& flat = it->second.flat;
    const std::size_t nbytes = flat.numel() * flat.element_size();
    MS_CHECK(data.size() - pos >= 8, ErrorCode::kIntegrity,
             "{} ends early: storage {} is missing (the file is truncated)", source, key->s);
    std::int64_t count = 0;
    std::memcpy(&count, data.data() + pos, 8);
    pos += 8;
    MS_CHECK(count == flat.numel(), ErrorCode::kIntegrity,
             "{}: storage {} holds {} elements, the state dict says {}", source, key->s, count,
             flat.numel());
    MS_CHECK(data.size() - pos >= nbytes, ErrorCode::kIntegrity,
             "{} ends early: storage {} needs {} bytes, {} are left (the file is truncated)",
             source, key->s, nbytes, data.size() - pos);
    if (nbytes > 0) std::memcpy(flat.data_ptr(), data.data() + pos, nbytes);
    pos += nbytes;
    it->second.filled = true;
  }
  for (const auto& [key, r] : roots) {
    MS_CHECK(r.filled, ErrorCode::kIntegrity, "{}: storage {} has no data", source, key);
  }
  return state_dict(*root, path);
}

}  // namespace

WeightMap load_torch_pickle(const std::filesystem::path& path) {
  // A zip starts with "PK\3\4"; a legacy file with the PROTO opcode of its magic-number pickle.
  char head[4] = {};
  {
    std::ifstream in(path, std::ios::binary);
    MS_CHECK(in.good(), ErrorCode::kNotFound, "cannot open {}", path.string());
    in.read(head, sizeof head);
  }
  try {
    if (std::string_view(head, 4) == std::string_view("PK\x03\x04", 4)) return load_zip(path);
    if (static_cast<unsigned char>(head[0]) == 0x80) return load_legacy(path);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kIntegrity,
                fmt::format("cannot read {}: {}", path.string(), e.what_without_backtrace()));
  }
  throw Error(
      ErrorCode::kIntegrity,
      fmt::format("{} is not a torch.save file (neither zip nor legacy format)", path.string()),
      "re-download the weights, or convert them to safetensors");
}

}  // namespace ms::tensor
