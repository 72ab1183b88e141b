#include "ms/hub/pickle.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <unordered_map>
#include <variant>

#include "ms/core/error.h"

namespace ms::hub {
namespace {

// Opcodes (Python's Lib/pickle.py) for the subset Python writes for lists and dicts of str,
// int, bool and None.
constexpr char kProto = '\x80';
constexpr char kFrame = '\x95';
constexpr char kStop = '.';
constexpr char kMark = '(';
constexpr char kEmptyList = ']';
constexpr char kEmptyDict = '}';
constexpr char kAppend = 'a';
constexpr char kAppends = 'e';
constexpr char kSetItem = 's';
constexpr char kSetItems = 'u';
constexpr char kShortBinUnicode = '\x8c';
constexpr char kBinUnicode = 'X';
constexpr char kBinUnicode8 = '\x8d';
constexpr char kMemoize = '\x94';
constexpr char kBinPut = 'q';
constexpr char kLongBinPut = 'r';
constexpr char kBinGet = 'h';
constexpr char kLongBinGet = 'j';
constexpr char kNone = 'N';
constexpr char kNewTrue = '\x88';
constexpr char kNewFalse = '\x89';
constexpr char kBinInt = 'J';
constexpr char kBinInt1 = 'K';
constexpr char kBinInt2 = 'M';
constexpr char kLong1 = '\x8a';
constexpr char kBinFloat = 'G';
constexpr char kEmptyTuple = ')';
constexpr char kTuple = 't';
constexpr char kTuple1 = '\x85';
constexpr char kTuple2 = '\x86';
constexpr char kTuple3 = '\x87';
constexpr char kStackGlobal = '\x93';
constexpr char kGlobal = 'c';
constexpr char kNewObj = '\x81';
constexpr char kBuild = 'b';

struct Value;
using List = std::vector<std::shared_ptr<Value>>;
using Dict = std::vector<std::pair<std::shared_ptr<Value>, std::shared_ptr<Value>>>;
struct Mark {};
struct Value {
  std::variant<std::monostate, bool, std::int64_t, std::string, List, Dict, Mark> v;
};
using ValuePtr = std::shared_ptr<Value>;

[[noreturn]] void corrupt(const std::string& why) {
  throw Error(
      ErrorCode::kIntegrity, "not a cache pickle: " + why,
      "the file is damaged or was not written by modelscope; delete it to rebuild the index");
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  ValuePtr run() {
    while (true) {
      const char op = byte();
      switch (op) {
        case kProto:
          byte();
          break;
        case kFrame:
          skip(8);
          break;
        case kStop:
          if (stack_.size() != 1) corrupt("stack not balanced at STOP");
          return stack_.back();
        case kMark:
          push(Value{Mark{}});
          break;
        case kEmptyList:
          push(Value{List{}});
          break;
        case kEmptyDict:
          push(Value{Dict{}});
          break;
        case kNone:
          push(Value{});
          break;
        case kNewTrue:
          push(Value{true});
          break;
        case kNewFalse:
          push(Value{false});
          break;
        case kBinInt:
          push(Value{static_cast<std::int64_t>(static_cast<std::int32_t>(uint_le(4)))});
          break;
        case kBinInt1:
          push(Value{static_cast<std::int64_t>(uint_le(1))});
          break;
        case kBinInt2:
          push(Value{static_cast<std::int64_t>(uint_le(2))});
          break;
        case kShortBinUnicode:
          push(Value{text(uint_le(1))});
          break;
        case kBinUnicode:
          push(Value{text(uint_le(4))});
          break;
        case kBinUnicode8:
          push(Value{text(uint_le(8))});
          break;
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
          stack_.push_back(get(uint_le(1)));
          break;
        case kLongBinGet:
          stack_.push_back(get(uint_le(4)));
          break;
        case kAppend: {
          ValuePtr item = pop();
          list_of(top()).push_back(item);
          break;
        }
        case kAppends: {
          std::vector<ValuePtr> items = pop_to_mark();
          List& list = list_of(top());
          list.insert(list.end(), items.begin(), items.end());
          break;
        }
        case kSetItem: {
          ValuePtr value = pop();
          ValuePtr key = pop();
          dict_of(top()).emplace_back(key, value);
          break;
        }
        case kSetItems: {
          std::vector<ValuePtr> items = pop_to_mark();
          if (items.size() % 2 != 0) corrupt("odd number of SETITEMS values");
          Dict& dict = dict_of(top());
          for (std::size_t i = 0; i < items.size(); i += 2)
            dict.emplace_back(items[i], items[i + 1]);
          break;
        }
        case kLong1: {
          const std::uint64_t n = uint_le(1);
          if (n > 8) corrupt("integer too large");
          std::uint64_t v = uint_le(static_cast<int>(n));
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~0ull << (8 * n);  // sign-extend
          push(Value{static_cast<std::int64_t>(v)});
          break;
        }
        case kBinFloat:
          skip(8);
          push(Value{});
          break;
        // Tuples read as lists; objects (class + NEWOBJ/BUILD state) read as the dict of their
        // state, which is all a reader of cookie jars needs.
        case kEmptyTuple:
          push(Value{List{}});
          break;
        case kTuple: {
          std::vector<ValuePtr> items = pop_to_mark();
          push(Value{List(items.begin(), items.end())});
          break;
        }
        case kTuple1:
        case kTuple2:
        case kTuple3: {
          const int n = op == kTuple1 ? 1 : op == kTuple2 ? 2 : 3;
          List items(n);
          for (int i = n - 1; i >= 0; --i) items[i] = pop();
          push(Value{std::move(items)});
          break;
        }
        case kStackGlobal:
          pop();
          pop();
          push(Value{});
          break;
        case kGlobal:
          line();
          line();
          push(Value{});
          break;
        case kNewObj:
          pop();  // args
          pop();  // class
          push(Value{Dict{}});
          break;
        case kBuild: {
          ValuePtr state = pop();
          ValuePtr object = top();
          if (auto* d = std::get_if<Dict>(&state->v)) {
            if (auto* o = std::get_if<Dict>(&object->v)) o->insert(o->end(), d->begin(), d->end());
          }
          break;
        }
        default:
          corrupt(fmt::format("unsupported opcode 0x{:02x} at offset {}",
                              static_cast<unsigned char>(op), pos_ - 1));
      }
    }
  }

 private:
  char byte() {
    if (pos_ >= data_.size()) corrupt("truncated");
    return data_[pos_++];
  }
  void skip(std::size_t n) {
    if (data_.size() - pos_ < n) corrupt("truncated");
    pos_ += n;
  }
  std::uint64_t uint_le(int n) {
    if (data_.size() - pos_ < static_cast<std::size_t>(n)) corrupt("truncated");
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(data_[pos_ + i]);
    pos_ += n;
    return v;
  }
  std::string text(std::uint64_t n) {
    if (data_.size() - pos_ < n) corrupt("truncated string");
    std::string s(data_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  void line() {
    const std::size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos) corrupt("truncated");
    pos_ = end + 1;
  }
  void push(Value v) { stack_.push_back(std::make_shared<Value>(std::move(v))); }
  ValuePtr top() {
    if (stack_.empty()) corrupt("stack underflow");
    return stack_.back();
  }
  ValuePtr pop() {
    ValuePtr v = top();
    stack_.pop_back();
    return v;
  }
  ValuePtr get(std::uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) corrupt("memo key missing");
    return it->second;
  }
  std::vector<ValuePtr> pop_to_mark() {
    std::vector<ValuePtr> items;
    while (true) {
      ValuePtr v = pop();
      if (std::holds_alternative<Mark>(v->v)) break;
      items.push_back(v);
    }
    return {items.rbegin(), items.rend()};
  }
  static List& list_of(const ValuePtr& v) {
    if (auto* l = std::get_if<List>(&v->v)) return *l;
    corrupt("append to a non-list");
  }
  static Dict& dict_of(const ValuePtr& v) {
    if (auto* d = std::get_if<Dict>(&v->v)) return *d;
    corrupt("setitem on a non-dict");
  }

  std::string_view data_;
  std::size_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::unordered_map<std::uint64_t, ValuePtr> memo_;
};

std::map<std::string, std::string> to_str_dict(const ValuePtr& v) {
  const Dict* dict = std::get_if<Dict>(&v->v);
  if (dict == nullptr) corrupt("expected a dict");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : *dict) {
    const auto* k = std::get_if<std::string>(&key->v);
    if (k == nullptr) corrupt("dict key is not a str");
    if (const auto* s = std::get_if<std::string>(&value->v)) out[*k] = *s;
  }
  return out;
}

// Writes the opcodes Python's protocol-4 pickler emits: strings memoized (MEMOIZE) and repeated
// ones fetched back with BINGET, containers batched in groups of 1000, all inside FRAMEs.
class Writer {
 public:
  void str(const std::string& s) {
    if (auto it = memo_.find(s); it != memo_.end()) {
      get(it->second);
      return;
    }
    if (s.size() < 256) {
      body_ += kShortBinUnicode;
      body_ += static_cast<char>(s.size());
    } else if (s.size() <= 0xffffffffu) {
      body_ += kBinUnicode;
      uint_le(s.size(), 4);
    } else {
      body_ += kBinUnicode8;
      uint_le(s.size(), 8);
    }
    body_ += s;
    memoize();
    memo_[s] = next_memo_ - 1;
  }
  void op(char c) { body_ += c; }
  void memoize() {
    body_ += kMemoize;
    ++next_memo_;
  }
  void dict(const std::vector<std::pair<std::string, std::string>>& items) {
    op(kEmptyDict);
    memoize();
    if (items.size() == 1) {
      str(items[0].first);
      str(items[0].second);
      op(kSetItem);
      return;
    }
    for (std::size_t i = 0; i < items.size(); i += 1000) {
      op(kMark);
      for (std::size_t j = i; j < items.size() && j < i + 1000; ++j) {
        str(items[j].first);
        str(items[j].second);
      }
      op(kSetItems);
    }
  }
  std::string finish() {
    body_ += kStop;
    std::string out;
    out += kProto;
    out += '\x04';
    // Python frames bodies of 4 bytes or more, cutting a new frame every 64 KiB; readers accept
    // one frame of any size just the same.
    if (body_.size() >= 4) {
      out += kFrame;
      for (int i = 0; i < 8; ++i) out += static_cast<char>((body_.size() >> (8 * i)) & 0xff);
    }
    out += body_;
    return out;
  }

 private:
  void uint_le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) body_ += static_cast<char>((v >> (8 * i)) & 0xff);
  }
  void get(std::uint64_t index) {
    if (index < 256) {
      body_ += kBinGet;
      uint_le(index, 1);
    } else {
      body_ += kLongBinGet;
      uint_le(index, 4);
    }
  }

  std::string body_;
  std::unordered_map<std::string, std::uint64_t> memo_;
  std::uint64_t next_memo_ = 0;
};

// Depth-first search for a dict with name == `cookie` and a str value (an http.cookiejar.Cookie).
void find_cookie(const ValuePtr& v, const std::string& cookie, std::int64_t now,
                 std::optional<std::string>& out, int depth) {
  if (out || depth > 64) return;
  if (const auto* list = std::get_if<List>(&v->v)) {
    for (const ValuePtr& item : *list) find_cookie(item, cookie, now, out, depth + 1);
    return;
  }
  const auto* dict = std::get_if<Dict>(&v->v);
  if (dict == nullptr) return;
  const std::string* name = nullptr;
  const std::string* value = nullptr;
  std::optional<std::int64_t> expires;
  for (const auto& [key, val] : *dict) {
    const auto* k = std::get_if<std::string>(&key->v);
    if (k == nullptr) continue;
    if (*k == "name") name = std::get_if<std::string>(&val->v);
    if (*k == "value") value = std::get_if<std::string>(&val->v);
    if (*k == "expires") {
      if (const auto* e = std::get_if<std::int64_t>(&val->v)) expires = *e;
    }
  }
  if (name != nullptr && value != nullptr && *name == cookie) {
    if (!expires || *expires > now) out = *value;
    return;
  }
  for (const auto& [key, val] : *dict) find_cookie(val, cookie, now, out, depth + 1);
}

}  // namespace

std::optional<std::string> find_pickled_cookie(std::string_view data, const std::string& name,
                                               std::int64_t now) {
  std::optional<std::string> out;
  find_cookie(Reader(data).run(), name, now, out, 0);
  return out;
}

std::string pickle_cache_index(const std::vector<CacheIndexEntry>& entries) {
  Writer w;
  w.op(kEmptyList);
  w.memoize();
  for (std::size_t i = 0; i < entries.size(); i += 1000) {
    const bool single = entries.size() == 1;
    if (!single) w.op(kMark);
    for (std::size_t j = i; j < entries.size() && j < i + 1000; ++j) {
      w.dict({{"Path", entries[j].path}, {"Revision", entries[j].revision}});
    }
    w.op(single ? kAppend : kAppends);
  }
  return w.finish();
}

std::vector<CacheIndexEntry> unpickle_cache_index(std::string_view data) {
  ValuePtr root = Reader(data).run();
  const List* list = std::get_if<List>(&root->v);
  if (list == nullptr) corrupt("expected a list");
  std::vector<CacheIndexEntry> out;
  for (const ValuePtr& item : *list) {
    auto dict = to_str_dict(item);
    auto path = dict.find("Path");
    auto revision = dict.find("Revision");
    if (path == dict.end() || revision == dict.end()) continue;
    out.push_back({path->second, revision->second});
  }
  return out;
}

std::string pickle_str_dict(const std::map<std::string, std::string>& dict) {
  Writer w;
  w.dict({dict.begin(), dict.end()});
  return w.finish();
}

std::map<std::string, std::string> unpickle_str_dict(std::string_view data) {
  return to_str_dict(Reader(data).run());
}

}  // namespace ms::hub
