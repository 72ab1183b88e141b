#include "ms/core/pickle.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ms/core/error.h"

namespace ms::pickle {

// Frees the children one at a time instead of recursively: a hostile pickle nests containers a
// million deep in a few megabytes, and a recursive free would overflow the stack.
Value::~Value() {
  std::vector<ValuePtr> pending;
  auto take_children = [&pending](Value& v) {
    for (ValuePtr& item : v.items) pending.push_back(std::move(item));
    for (auto& [key, item] : v.pairs) {
      pending.push_back(std::move(key));
      pending.push_back(std::move(item));
    }
    v.items.clear();
    v.pairs.clear();
  };
  take_children(*this);
  while (!pending.empty()) {
    ValuePtr next = std::move(pending.back());
    pending.pop_back();
    if (next && next.use_count() == 1) take_children(*next);
  }
}

namespace {

using namespace opcode;

class Reader {
 public:
  Reader(std::string_view data, std::size_t pos, const std::string& source, const Hooks& hooks)
      : data_(data), pos_(pos), source_(source), hooks_(hooks) {}
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  // A pickle can build a reference cycle (a list appended to itself through the memo; found by
  // fuzzing), even one that the stack and the memo no longer reach. Shared pointers in a cycle are
  // never freed, so every container still alive that the result does not reach (after a failure:
  // every one) is emptied here. run() rejects a result holding a cycle: nothing ms reads has one.
  ~Reader() {
    std::unordered_set<const Value*> returned;
    if (result_) {
      for (const ValuePtr& v : reachable({result_})) returned.insert(v.get());
    }
    std::vector<ValuePtr> unreturned;  // strong references while the links are cut
    for (const std::weak_ptr<Value>& weak : containers_) {
      ValuePtr v = weak.lock();
      if (v && returned.count(v.get()) == 0) unreturned.push_back(std::move(v));
    }
    for (const ValuePtr& v : unreturned) {
      v->items.clear();
      v->pairs.clear();
    }
  }

  Unpickled run() {
    while (true) {
      const char op = byte();
      switch (op) {
        case kProto:
          byte();
          break;
        case kFrame:
          skip(8);
          break;
        case kStop: {
          if (stack_.size() != 1 || stack_.back()->kind == Value::Kind::kMark)
            corrupt("the stack is not balanced at STOP");
          if (has_cycle()) corrupt("a container holds itself (a reference cycle)");
          result_ = stack_.back();
          return {result_, pos_};
        }
        case kPop:
          pop();
          break;
        case kMark:
          push(make(Value::Kind::kMark));
          break;
        case kEmptyList:
          push(make(Value::Kind::kList));
          break;
        case kEmptyDict:
          push(make(Value::Kind::kDict));
          break;
        case kEmptyTuple:
          push(make(Value::Kind::kTuple));
          break;
        case kNone:
          push(make(Value::Kind::kNone));
          break;
        case kNewTrue:
        case kNewFalse: {
          auto v = make(Value::Kind::kBool);
          v->i = op == kNewTrue;
          push(v);
          break;
        }
        case kBinInt:
          push_int(static_cast<std::int32_t>(uint_le(4)));
          break;
        case kBinInt1:
          push_int(static_cast<std::int64_t>(uint_le(1)));
          break;
        case kBinInt2:
          push_int(static_cast<std::int64_t>(uint_le(2)));
          break;
        case kLong1: {
          // The raw bytes stay in `text` for numbers wider than 64 bits (torch's legacy magic).
          const std::string raw = bytes(uint_le(1));
          std::uint64_t v = 0;
          for (std::size_t k = 0; k < raw.size() && k < 8; ++k)
            v |= static_cast<std::uint64_t>(static_cast<unsigned char>(raw[k])) << (8 * k);
          const std::size_t n = raw.size();
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~0ull << (8 * n);  // sign-extend
          push_int(static_cast<std::int64_t>(v));
          stack_.back()->text = raw;
          break;
        }
        case kBinFloat: {  // big-endian IEEE 754
          std::uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<unsigned char>(byte());
          auto v = make(Value::Kind::kFloat);
          std::memcpy(&v->f, &bits, 8);
          push(v);
          break;
        }
        case kShortBinUnicode:
        case kShortBinString:
        case kShortBinBytes:
          push_string(uint_le(1));
          break;
        case kBinUnicode:
        case kBinString:
        case kBinBytes:
          push_string(uint_le(4));
          break;
        case kBinUnicode8:
          push_string(uint_le(8));
          break;
        case kGlobal: {
          auto v = make(Value::Kind::kGlobal);
          const std::string module = line();  // two statements: operand order is unspecified
          v->text = module + "." + line();
          push(v);
          break;
        }
        case kStackGlobal: {
          const ValuePtr name = pop();
          const ValuePtr module = pop();
          if (!module->is_string() || !name->is_string()) corrupt("STACK_GLOBAL of a non-str");
          auto v = make(Value::Kind::kGlobal);
          v->text = module->text + "." + name->text;
          push(v);
          break;
        }
        case kMemoize:
          memo_[memo_.size()] = top();
          break;
        case kBinPut:
          memo_[uint_le(1)] = top();
          break;
        case kLongBinPut:
          memo_[uint_le(4)] = top();
          break;
        case kBinGet:
          push(memo(uint_le(1)));
          break;
        case kLongBinGet:
          push(memo(uint_le(4)));
          break;
        case kTuple:
        case kList: {
          auto v = make(op == kTuple ? Value::Kind::kTuple : Value::Kind::kList);
          v->items = pop_to_mark();
          push(v);
          break;
        }
        case kTuple1:
        case kTuple2:
        case kTuple3: {
          const int n = op == kTuple1 ? 1 : op == kTuple2 ? 2 : 3;
          auto v = make(Value::Kind::kTuple);
          v->items.resize(n);
          for (int k = n - 1; k >= 0; --k) v->items[k] = pop();
          push(v);
          break;
        }
        case kAppend: {
          ValuePtr item = pop();
          list_of(top()).push_back(std::move(item));
          break;
        }
        case kAppends: {
          std::vector<ValuePtr> items = pop_to_mark();
          auto& list = list_of(top());
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case kSetItem: {
          ValuePtr value = pop();
          ValuePtr key = pop();
          dict_of(top()).emplace_back(std::move(key), std::move(value));
          break;
        }
        case kSetItems: {
          std::vector<ValuePtr> items = pop_to_mark();
          if (items.size() % 2 != 0) corrupt("odd number of SETITEMS values");
          auto& dict = dict_of(top());
          for (std::size_t k = 0; k < items.size(); k += 2)
            dict.emplace_back(items[k], items[k + 1]);
          break;
        }
        case kReduce:
        case kNewObj: {
          const ValuePtr args = pop();
          const ValuePtr callable = pop();
          push(reduce(*callable, *args));
          break;
        }
        case kBuild: {
          const ValuePtr state = pop();
          const ValuePtr& object = top();
          // An object's dict state becomes its pairs; other states (slots, a tensor's hooks) are
          // not needed by any reader here. Copied first: the state may be the object itself.
          if (object->kind == Value::Kind::kObject && state->kind == Value::Kind::kDict) {
            const auto pairs = state->pairs;
            object->pairs.insert(object->pairs.end(), pairs.begin(), pairs.end());
          }
          break;
        }
        case kBinPersId: {
          const ValuePtr pid = pop();
          if (!hooks_.persistent_load)
            corrupt(fmt::format("unexpected persistent id at offset {}", pos_ - 1));
          push(hooks_.persistent_load(*pid));
          break;
        }
        default:
          corrupt(fmt::format("unsupported pickle opcode 0x{:02x} at offset {}",
                              static_cast<unsigned char>(op), pos_ - 1));
      }
    }
  }

 private:
  [[noreturn]] void corrupt(const std::string& why) const {
    throw Error(ErrorCode::kIntegrity, source_.empty() ? why : source_ + ": " + why);
  }
  [[noreturn]] void truncated() const {
    corrupt("pickle ends early (the file is truncated or corrupt)");
  }
  char byte() {
    if (pos_ >= data_.size()) truncated();
    return data_[pos_++];
  }
  void skip(std::uint64_t n) {
    if (data_.size() - pos_ < n) truncated();
    pos_ += n;
  }
  std::uint64_t uint_le(int n) {
    if (data_.size() - pos_ < static_cast<std::size_t>(n)) truncated();
    std::uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(data_[pos_ + k]);
    pos_ += n;
    return v;
  }
  std::string bytes(std::uint64_t n) {
    if (data_.size() - pos_ < n) truncated();
    std::string out(data_.substr(pos_, n));
    pos_ += n;
    return out;
  }
  std::string line() {
    const std::size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos) truncated();
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
  void push_string(std::uint64_t n) {
    auto v = make(Value::Kind::kString);
    v->text = bytes(n);
    push(v);
  }
  const ValuePtr& top() const {
    if (stack_.empty()) corrupt("pickle stack underflow");
    return stack_.back();
  }
  ValuePtr pop() {
    ValuePtr v = top();
    stack_.pop_back();
    return v;
  }
  ValuePtr memo(std::uint64_t key) const {
    auto it = memo_.find(key);
    if (it == memo_.end()) corrupt(fmt::format("pickle memo {} missing", key));
    return it->second;
  }
  std::vector<ValuePtr> pop_to_mark() {
    std::vector<ValuePtr> items;
    while (true) {
      ValuePtr v = pop();
      if (v->kind == Value::Kind::kMark) break;
      items.push_back(std::move(v));
    }
    return {items.rbegin(), items.rend()};
  }
  // Every value reachable from `roots`, each once, found without recursion.
  static std::vector<ValuePtr> reachable(std::vector<ValuePtr> roots) {
    std::vector<ValuePtr> out, pending = std::move(roots);
    std::unordered_set<const Value*> seen;
    while (!pending.empty()) {
      ValuePtr v = std::move(pending.back());
      pending.pop_back();
      if (!seen.insert(v.get()).second) continue;
      for (const ValuePtr& item : v->items) pending.push_back(item);
      for (const auto& [key, value] : v->pairs) {
        pending.push_back(key);
        pending.push_back(value);
      }
      out.push_back(std::move(v));
    }
    return out;
  }
  // A new value; containers are remembered so that the destructor can cut cycles among them.
  ValuePtr make(Value::Kind kind) {
    ValuePtr v = std::make_shared<Value>(kind);
    if (kind == Value::Kind::kList || kind == Value::Kind::kDict || kind == Value::Kind::kTuple ||
        kind == Value::Kind::kObject) {
      containers_.push_back(v);
    }
    return v;
  }
  // Whether a value reachable from the stack or the memo reaches itself: a depth-first search
  // with an explicit path (values on it are "open"), linear in the values and their links.
  bool has_cycle() const {
    enum : char { kNew = 0, kOpen, kDone };
    std::unordered_map<const Value*, char> state;
    std::vector<std::pair<const Value*, std::size_t>> path;  // value, next link to follow
    auto links = [](const Value* v) { return v->items.size() + 2 * v->pairs.size(); };
    auto link = [](const Value* v, std::size_t i) -> const Value* {
      if (i < v->items.size()) return v->items[i].get();
      const auto& pair = v->pairs[(i - v->items.size()) / 2];
      return (i - v->items.size()) % 2 == 0 ? pair.first.get() : pair.second.get();
    };
    std::vector<const Value*> roots;
    for (const ValuePtr& v : stack_) roots.push_back(v.get());
    for (const auto& [key, value] : memo_) roots.push_back(value.get());
    for (const Value* root : roots) {
      if (state[root] != kNew) continue;
      state[root] = kOpen;
      path.emplace_back(root, 0);
      while (!path.empty()) {
        const Value* v = path.back().first;
        const std::size_t i = path.back().second++;
        if (i == links(v)) {
          state[v] = kDone;
          path.pop_back();
          continue;
        }
        const Value* next = link(v, i);
        char& s = state[next];
        if (s == kOpen) return true;
        if (s == kNew) {
          s = kOpen;
          path.emplace_back(next, 0);
        }
      }
    }
    return false;
  }
  // Lists take APPEND, dicts SETITEM; so do objects of list and dict subclasses.
  std::vector<ValuePtr>& list_of(const ValuePtr& v) const {
    if (v->kind != Value::Kind::kList && v->kind != Value::Kind::kObject)
      corrupt("APPEND to a non-list");
    return v->items;
  }
  std::vector<std::pair<ValuePtr, ValuePtr>>& dict_of(const ValuePtr& v) const {
    if (!v->is_mapping()) corrupt("SETITEM on a non-dict");
    return v->pairs;
  }
  ValuePtr reduce(const Value& callable, const Value& args) {
    if (hooks_.reduce) {
      if (ValuePtr v = hooks_.reduce(callable, args)) return v;
    }
    if (callable.text == "collections.OrderedDict" || callable.text == "builtins.dict") {
      auto v = make(Value::Kind::kDict);
      if (callable.text == "collections.OrderedDict") v->text = callable.text;
      return v;
    }
    auto v = make(Value::Kind::kObject);
    v->text = callable.text;
    return v;
  }

  std::string_view data_;
  std::size_t pos_;
  const std::string& source_;
  const Hooks& hooks_;
  std::vector<ValuePtr> stack_;
  std::unordered_map<std::uint64_t, ValuePtr> memo_;
  std::vector<std::weak_ptr<Value>> containers_;  // every list, dict, tuple and object made
  ValuePtr result_;                               // set once run() returns
};

}  // namespace

Unpickled unpickle(std::string_view data, std::size_t pos, const std::string& source,
                   const Hooks& hooks) {
  return Reader(data, pos, source, hooks).run();
}

Writer::Writer(int protocol) : protocol_(protocol) { MS_ASSERT(protocol == 2 || protocol == 4); }

void Writer::str(const std::string& s) {
  if (auto it = memo_.find(s); it != memo_.end()) {
    get(it->second);
    return;
  }
  // SHORT_BINUNICODE came with protocol 4.
  if (s.size() < 256 && protocol_ >= 4) {
    op(kShortBinUnicode);
    body_ += static_cast<char>(s.size());
  } else if (s.size() <= 0xffffffffu) {
    op(kBinUnicode);
    uint_le(s.size(), 4);
  } else {
    op(kBinUnicode8);
    uint_le(s.size(), 8);
  }
  body_ += s;
  memoize();
  memo_[s] = next_memo_ - 1;
}

void Writer::integer(std::int64_t v) {
  if (v >= 0 && v < 256) {
    op(kBinInt1);
    uint_le(static_cast<std::uint64_t>(v), 1);
  } else if (v >= 0 && v < 65536) {
    op(kBinInt2);
    uint_le(static_cast<std::uint64_t>(v), 2);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    op(kBinInt);
    uint_le(static_cast<std::uint32_t>(static_cast<std::int32_t>(v)), 4);
  } else {
    // Little-endian two's complement, cut to the fewest bytes that keep the sign.
    std::string bytes;
    for (int i = 0; i < 8; ++i)
      bytes += static_cast<char>((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xff);
    while (bytes.size() > 1) {
      const auto last = static_cast<unsigned char>(bytes.back());
      const bool prev_negative = (static_cast<unsigned char>(bytes[bytes.size() - 2]) & 0x80) != 0;
      if ((last == 0x00 && !prev_negative) || (last == 0xff && prev_negative)) {
        bytes.pop_back();
      } else {
        break;
      }
    }
    op(kLong1);
    body_ += static_cast<char>(bytes.size());
    body_ += bytes;
  }
}

void Writer::floating(double v) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, 8);
  op(kBinFloat);
  for (int i = 7; i >= 0; --i) body_ += static_cast<char>((bits >> (8 * i)) & 0xff);
}

void Writer::global(const std::string& module, const std::string& name) {
  // Python memoizes the class or function, and fetches it back when it comes again.
  const std::string key = module + '\n' + name;
  if (auto it = globals_.find(key); it != globals_.end()) {
    get(it->second);
    return;
  }
  if (protocol_ >= 4) {
    str(module);
    str(name);
    op(kStackGlobal);
  } else {
    op(kGlobal);
    body_ += key + '\n';
  }
  memoize();
  globals_[key] = next_memo_ - 1;
}

void Writer::memoize() {
  if (protocol_ >= 4) {
    op(kMemoize);
  } else if (next_memo_ < 256) {
    op(kBinPut);
    uint_le(next_memo_, 1);
  } else {
    op(kLongBinPut);
    uint_le(next_memo_, 4);
  }
  ++next_memo_;
}

void Writer::tuple(std::size_t n, const std::function<void(std::size_t)>& item) {
  if (n == 0) {
    op(kEmptyTuple);
    return;
  }
  if (n > 3) op(kMark);
  for (std::size_t i = 0; i < n; ++i) item(i);
  static constexpr char kSmall[] = {kTuple1, kTuple2, kTuple3};
  op(n > 3 ? kTuple : kSmall[n - 1]);
  memoize();
}

void Writer::list(std::size_t n, const std::function<void(std::size_t)>& item) {
  op(kEmptyList);
  memoize();
  batches(n, item, kAppend, kAppends);
}

void Writer::dict(std::size_t n, const std::function<void(std::size_t)>& entry) {
  op(kEmptyDict);
  memoize();
  set_items(n, entry);
}

void Writer::set_items(std::size_t n, const std::function<void(std::size_t)>& entry) {
  batches(n, entry, kSetItem, kSetItems);
}

void Writer::reduce() {
  op(kReduce);
  memoize();
}

void Writer::batches(std::size_t n, const std::function<void(std::size_t)>& item, char one,
                     char many) {
  for (std::size_t i = 0; i < n; i += 1000) {
    const std::size_t end = std::min(n, i + 1000);
    if (end - i == 1) {
      item(i);
      op(one);
      continue;
    }
    op(kMark);
    for (std::size_t j = i; j < end; ++j) item(j);
    op(many);
  }
}

void Writer::dict(const std::vector<std::pair<std::string, std::string>>& items) {
  dict(items.size(), [&](std::size_t i) {
    str(items[i].first);
    str(items[i].second);
  });
}

std::string Writer::finish() {
  body_ += kStop;
  std::string out;
  out += kProto;
  out += static_cast<char>(protocol_);
  if (protocol_ < 4) return out + body_;
  // Python frames bodies of 4 bytes or more, cutting a new frame every 64 KiB; readers accept
  // one frame of any size just the same.
  if (body_.size() >= 4) {
    out += kFrame;
    for (int i = 0; i < 8; ++i) out += static_cast<char>((body_.size() >> (8 * i)) & 0xff);
  }
  out += body_;
  return out;
}

void Writer::uint_le(std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) body_ += static_cast<char>((v >> (8 * i)) & 0xff);
}

void Writer::get(std::uint64_t index) {
  if (index < 256) {
    op(kBinGet);
    uint_le(index, 1);
  } else {
    op(kLongBinGet);
    uint_le(index, 4);
  }
}

}  // namespace ms::pickle
