// Python pickles without Python: one reader (protocols 2-5, the opcodes Python writes for plain
// data, classes and objects) with hooks for what a caller knows about persistent ids and
// callables (torch checkpoints plug their storages and tensors in there), and one writer of
// Python's protocols 4 and 2 (torch.save's).
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ms/core/export.h"

namespace ms::pickle {

/// Opcodes (Python's Lib/pickle.py) that the reader understands and the writer emits.
namespace opcode {
constexpr char kProto = '\x80';
constexpr char kFrame = '\x95';
constexpr char kStop = '.';
constexpr char kPop = '0';
constexpr char kMark = '(';
constexpr char kEmptyList = ']';
constexpr char kList = 'l';
constexpr char kEmptyDict = '}';
constexpr char kAppend = 'a';
constexpr char kAppends = 'e';
constexpr char kSetItem = 's';
constexpr char kSetItems = 'u';
constexpr char kShortBinUnicode = '\x8c';
constexpr char kBinUnicode = 'X';
constexpr char kBinUnicode8 = '\x8d';
constexpr char kShortBinString = 'U';
constexpr char kBinString = 'T';
constexpr char kShortBinBytes = 'C';
constexpr char kBinBytes = 'B';
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
constexpr char kGlobal = 'c';
constexpr char kStackGlobal = '\x93';
constexpr char kReduce = 'R';
constexpr char kNewObj = '\x81';
constexpr char kBuild = 'b';
constexpr char kBinPersId = 'Q';
}  // namespace opcode

struct Value;
using ValuePtr = std::shared_ptr<Value>;

/// One unpickled value. Shared: a memo reference (BINGET) yields the same Value again.
struct MS_API Value {
  enum class Kind {
    kNone,
    kBool,      ///< `i` is 0 or 1
    kInt,       ///< `i`; for LONG1, `text` keeps the raw little-endian bytes (wider numbers too)
    kFloat,     ///< `f`
    kString,    ///< `text`: str and bytes alike
    kTuple,     ///< `items`
    kList,      ///< `items`
    kDict,      ///< `pairs`, in pickle order; `text` is "collections.OrderedDict" for one, else
                ///< empty
    kGlobal,    ///< `text` is "module.name"
    kObject,    ///< made by REDUCE or NEWOBJ of `text` ("module.name"); `pairs` holds the dict
                ///< state of a BUILD, `items` what APPEND adds to a list subclass
    kExternal,  ///< made by a hook: `external` holds it (a tensor, a storage)
    kMark,      ///< internal to the reader
  };

  Value() = default;
  explicit Value(Kind k) : kind(k) {}
  Value(const Value&) = delete;
  Value& operator=(const Value&) = delete;
  ~Value();

  Kind kind = Kind::kNone;
  std::int64_t i = 0;
  double f = 0;
  std::string text;
  std::vector<ValuePtr> items;
  std::vector<std::pair<ValuePtr, ValuePtr>> pairs;
  std::any external;

  bool is_string() const { return kind == Kind::kString; }
  bool is_sequence() const { return kind == Kind::kList || kind == Kind::kTuple; }
  /// A dict, or an object whose state is one (what Python's pickle restores as __dict__).
  bool is_mapping() const { return kind == Kind::kDict || kind == Kind::kObject; }
};

/// What a caller plugs into the reader.
struct Hooks {
  /// BINPERSID: the object a persistent id names. Without it a persistent id is an error.
  std::function<ValuePtr(const Value& pid)> persistent_load;
  /// REDUCE and NEWOBJ: `callable(*args)` (`callable` is a kGlobal, `args` a tuple), or nullptr
  /// for the default: an empty dict for collections.OrderedDict and builtins.dict, else a kObject
  /// named after the callable.
  std::function<ValuePtr(const Value& callable, const Value& args)> reduce;
};

/// A pickle's value and the offset just past its STOP (legacy torch.save files hold several
/// pickles in a row).
struct Unpickled {
  ValuePtr value;
  std::size_t end = 0;
};

/// Reads the pickle that starts at byte `pos` of `data`. Throws ms::Error(kIntegrity) naming
/// `source` (a file name; may be empty) for truncated or malformed data and unsupported opcodes.
/// Never crashes on hostile input: nesting depth costs no stack, values are freed iteratively.
MS_API Unpickled unpickle(std::string_view data, std::size_t pos = 0,
                          const std::string& source = {}, const Hooks& hooks = {});

/// Writes the opcodes Python's pickler emits, in protocol 4 (the default) or 2: strings memoized
/// and repeated ones fetched back with BINGET, containers batched in groups of 1000. Protocol 4
/// puts the body in one FRAME; protocol 2 is what torch.save writes (GLOBAL instead of
/// STACK_GLOBAL, BINUNICODE for every str, BINPUT for the memo, no FRAME), and the only opcodes
/// torch 2.x's weights_only reader knows.
class MS_API Writer {
 public:
  explicit Writer(int protocol = 4);

  /// A str; one written before is fetched back from the memo, as Python does.
  void str(const std::string& s);
  /// One opcode without operands (opcode::kMark, opcode::kEmptyDict, ...).
  void op(char c) { body_ += c; }
  void none() { op(opcode::kNone); }
  void boolean(bool b) { op(b ? opcode::kNewTrue : opcode::kNewFalse); }
  /// The smallest of BININT1, BININT2, BININT and LONG1, as Python's save_long picks.
  void integer(std::int64_t v);
  /// A float as BINFLOAT (8 bytes, big-endian): exact.
  void floating(double v);
  /// A class or function by module and qualified name (STACK_GLOBAL, or GLOBAL in protocol 2),
  /// memoized and fetched back from the memo when it comes again, as Python does.
  void global(const std::string& module, const std::string& name);
  /// Memoizes the value on top (MEMOIZE, or BINPUT in protocol 2) under the next memo index.
  void memoize();
  /// A tuple of the `n` items `item(i)` writes, with the opcodes Python picks (EMPTY_TUPLE,
  /// TUPLE1-3, MARK ... TUPLE), memoized unless empty.
  void tuple(std::size_t n, const std::function<void(std::size_t)>& item);
  /// A list (EMPTY_LIST, memoized) of the `n` items `item(i)` writes, batched as set_items.
  void list(std::size_t n, const std::function<void(std::size_t)>& item);
  /// A dict (EMPTY_DICT, memoized) of the `n` entries `entry(i)` writes (key, then value).
  void dict(std::size_t n, const std::function<void(std::size_t)>& entry);
  /// The `n` entries `entry(i)` writes, added to the dict on top of the stack (an EMPTY_DICT, or
  /// an OrderedDict made by reduce()): MARK ... SETITEMS per 1000, SETITEM for a batch of one.
  void set_items(std::size_t n, const std::function<void(std::size_t)>& entry);
  /// `callable(*args)` of the global and the argument tuple written before (REDUCE), memoized.
  void reduce();
  /// BINPERSID: the value on top is a persistent id, for the reader's Hooks::persistent_load.
  void persistent_id() { op(opcode::kBinPersId); }
  /// A dict[str, str] with its items in the order given.
  void dict(const std::vector<std::pair<std::string, std::string>>& items);
  /// STOP, and the PROTO header (and in protocol 4 the FRAME) around the body; the Writer is
  /// spent afterwards.
  std::string finish();

 private:
  void uint_le(std::uint64_t v, int n);
  void get(std::uint64_t index);
  // `n` items in APPEND(S) or SETITEM(S) batches, as Python's _batch_appends/_batch_setitems.
  void batches(std::size_t n, const std::function<void(std::size_t)>& item, char one, char many);

  int protocol_ = 4;
  std::string body_;
  std::unordered_map<std::string, std::uint64_t> memo_;     // str -> memo index
  std::unordered_map<std::string, std::uint64_t> globals_;  // "module\nname" -> memo index
  std::uint64_t next_memo_ = 0;
};

}  // namespace ms::pickle
