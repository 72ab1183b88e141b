#include "ms/hub/pickle.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "ms/core/error.h"

namespace ms::hub {
namespace {

// Opcodes (Python's Lib/pickle.py) for the subset Python writes for lists and dicts of str,
// int, bool and None, and for plain objects (class, NEWOBJ or REDUCE, BUILD with a state dict).
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
constexpr char kReduce = 'R';

struct Value;
using List = std::vector<std::shared_ptr<Value>>;
using Dict = std::vector<std::pair<std::shared_ptr<Value>, std::shared_ptr<Value>>>;
struct Mark {};
struct Value {
  Value() = default;
  template <typename T>
  Value(T x) : v(std::move(x)) {}  // NOLINT: a Value is any of its alternatives
  Value(Value&&) = default;
  Value& operator=(Value&&) = default;
  ~Value();
  std::variant<std::monostate, bool, std::int64_t, std::string, List, Dict, Mark> v;
};
using ValuePtr = std::shared_ptr<Value>;

// Frees the children one at a time instead of recursively: a hostile pickle nests containers a
// million deep in a few megabytes, and a recursive free would overflow the stack.
Value::~Value() {
  std::vector<ValuePtr> pending;
  auto take_children = [&pending](Value& value) {
    if (auto* list = std::get_if<List>(&value.v)) {
      for (ValuePtr& item : *list) pending.push_back(std::move(item));
      list->clear();
    } else if (auto* dict = std::get_if<Dict>(&value.v)) {
      for (auto& [key, item] : *dict) {
        pending.push_back(std::move(key));
        pending.push_back(std::move(item));
      }
      dict->clear();
    }
  };
  take_children(*this);
  while (!pending.empty()) {
    ValuePtr next = std::move(pending.back());
    pending.pop_back();
    if (next && next.use_count() == 1) take_children(*next);
  }
}

[[noreturn]] void corrupt(const std::string& why) {
  throw Error(
      ErrorCode::kIntegrity, "not a modelscope pickle: " + why,
      "the file is damaged or was not written by modelscope; delete it (a cache index is rebuilt, "
      "a login is made again with 'ms login')");
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
        case kReduce:
          pop();  // args
          pop();  // class or callable
          push(Value{Dict{}});
          break;
        case kBuild: {
          ValuePtr state = pop();
          ValuePtr object = top();
          // A copy of the state: it may be the object itself (BINGET of the same memo entry).
          if (auto* d = std::get_if<Dict>(&state->v)) {
            const Dict items = *d;
            if (auto* o = std::get_if<Dict>(&object->v))
              o->insert(o->end(), items.begin(), items.end());
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
  void none() { op(kNone); }
  void boolean(bool b) { op(b ? kNewTrue : kNewFalse); }
  // The smallest of BININT1, BININT2, BININT and LONG1, as Python's save_long picks.
  void integer(std::int64_t v) {
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
        const bool prev_negative =
            (static_cast<unsigned char>(bytes[bytes.size() - 2]) & 0x80) != 0;
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
  // A class or function by module and qualified name (STACK_GLOBAL, memoized as Python does).
  void global(const std::string& module, const std::string& name) {
    str(module);
    str(name);
    op(kStackGlobal);
    memoize();
  }
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
// Each container is searched once: memo references can share one container among many parents
// (or make it its own child), and a hostile file of a few hundred bytes would otherwise send the
// search down 2^64 paths.
void find_cookie(const ValuePtr& v, const std::string& cookie, std::int64_t now,
                 std::optional<std::string>& out, int depth,
                 std::unordered_set<const Value*>& seen) {
  if (out || depth > 64 || !seen.insert(v.get()).second) return;
  if (const auto* list = std::get_if<List>(&v->v)) {
    for (const ValuePtr& item : *list) find_cookie(item, cookie, now, out, depth + 1, seen);
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
  for (const auto& [key, val] : *dict) find_cookie(val, cookie, now, out, depth + 1, seen);
}

}  // namespace

std::optional<std::string> find_pickled_cookie(std::string_view data, const std::string& name,
                                               std::int64_t now) {
  std::optional<std::string> out;
  std::unordered_set<const Value*> seen;
  find_cookie(Reader(data).run(), name, now, out, 0, seen);
  return out;
}

namespace {

// An http.cookiejar.Cookie as Python pickles one: the class, NEWOBJ with no arguments (no
// __init__), then BUILD with its __dict__ in the order Cookie.__init__ assigns it.
void pickle_cookie(Writer& w, const Cookie& c) {
  w.global("http.cookiejar", "Cookie");
  w.op(kEmptyTuple);
  w.op(kNewObj);
  w.memoize();
  w.op(kEmptyDict);
  w.memoize();
  w.op(kMark);
  w.str("version");
  w.integer(0);
  w.str("name");
  w.str(c.name);
  w.str("value");
  w.str(c.value);
  w.str("port");
  w.none();
  w.str("port_specified");
  w.boolean(false);
  w.str("domain");
  w.str(c.domain);
  w.str("domain_specified");
  w.boolean(c.domain_specified);
  w.str("domain_initial_dot");
  w.boolean(c.domain_initial_dot);
  w.str("path");
  w.str(c.path);
  w.str("path_specified");
  w.boolean(c.path_specified);
  w.str("secure");
  w.boolean(c.secure);
  w.str("expires");
  if (c.expires) {
    w.integer(*c.expires);
  } else {
    w.none();
  }
  // http.cookiejar discards cookies without an expiry at the end of the session.
  w.str("discard");
  w.boolean(!c.expires);
  w.str("comment");
  w.none();
  w.str("comment_url");
  w.none();
  w.str("rfc2109");
  w.boolean(false);
  w.str("_rest");
  w.op(kEmptyDict);
  w.memoize();
  if (c.http_only) {
    w.str("HttpOnly");
    w.none();
    w.op(kSetItem);
  }
  w.op(kSetItems);
  w.op(kBuild);
}

}  // namespace

std::string pickle_cookie_jar(const std::vector<Cookie>& cookies) {
  // CookieJar._cookies nests domain -> path -> name -> Cookie.
  std::map<std::string, std::map<std::string, std::map<std::string, const Cookie*>>> tree;
  for (const Cookie& c : cookies) tree[c.domain][c.path][c.name] = &c;

  Writer w;
  w.global("requests.cookies", "RequestsCookieJar");
  w.op(kEmptyTuple);
  w.op(kNewObj);
  w.memoize();
  // The state RequestsCookieJar.__setstate__ takes: its __dict__ less the lock, which
  // __setstate__ creates anew.
  w.op(kEmptyDict);
  w.memoize();
  w.op(kMark);
  w.str("_policy");
  // The policy is made by calling DefaultCookiePolicy() (REDUCE) instead of restoring a copy of
  // its attributes, so it has whatever attributes the loading Python's version defines.
  w.global("http.cookiejar", "DefaultCookiePolicy");
  w.op(kEmptyTuple);
  w.op(kReduce);
  w.memoize();
  w.str("_cookies");
  w.op(kEmptyDict);
  w.memoize();
  for (const auto& [domain, paths] : tree) {
    w.str(domain);
    w.op(kEmptyDict);
    w.memoize();
    for (const auto& [path, names] : paths) {
      w.str(path);
      w.op(kEmptyDict);
      w.memoize();
      for (const auto& [name, cookie] : names) {
        w.str(name);
        pickle_cookie(w, *cookie);
        w.op(kSetItem);
      }
      w.op(kSetItem);
    }
    w.op(kSetItem);
  }
  w.op(kSetItems);
  w.op(kBuild);
  return w.finish();
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
