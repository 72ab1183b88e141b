// The checked JSON parser: nlohmann's iterative parser driven through our own SAX builder, which
// enforces the nesting limit and turns every parser complaint into a JsonParseError.
#include "ms/config/json_file.h"

#include <algorithm>
#include <memory>
#include <unordered_map>
#include <vector>

#include "ms/core/file.h"

namespace ms {
namespace {

// Messages quote the offending token; a 100,000-digit number or a megabyte of unterminated string
// must not be echoed whole.
std::string shorten(std::string text, std::size_t max = 80) {
  if (text.size() <= max) return text;
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  return text + "...";
}

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 3, column 5:
// "; keep only the part after that prefix, since the location is given in our own form.
std::string reason_of(const std::string& what) {
  std::size_t pos = what.find("parse error");
  if (pos != std::string::npos) {
    const std::size_t after = what.find(": ", pos);
    if (after != std::string::npos) return shorten(what.substr(after + 2), 200);
  }
  pos = what.find("] ");
  return shorten(pos == std::string::npos ? what : what.substr(pos + 2), 200);
}

// 1-based line and column of a byte offset.
void locate(std::string_view text, std::size_t offset, JsonParseError& error) {
  offset = std::min(offset, text.size());
  const std::string_view before = text.substr(0, offset);
  error.line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
  const std::size_t newline = before.rfind('\n');
  error.column = offset - (newline == std::string_view::npos ? 0 : newline + 1) + 1;
}

// Walks the brackets of JSON text from `begin`, strings and their escapes skipped: after each
// bracket, `stop(depth)` says whether to stop there. Returns that bracket's offset, or the text's
// size when it ends first.
template <class Stop>
std::size_t walk_brackets(std::string_view text, std::size_t begin, const Stop& stop) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = begin; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (stop(++depth)) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      if (stop(--depth)) return i;
    }
  }
  return text.size();
}

// The offset of the bracket that opens level kMaxJsonDepth + 1 (only called once the parser has
// stopped there, so the text up to it is valid JSON and strings are well formed).
std::size_t too_deep_offset(std::string_view text) {
  return walk_brackets(text, 0, [](std::size_t depth) { return depth > kMaxJsonDepth; });
}

// Builds the DOM as nlohmann's own SAX DOM parser does (that one is in its detail namespace),
// refusing to open a container past kMaxJsonDepth.
class CheckedBuilder {
 public:
  using number_integer_t = Json::number_integer_t;
  using number_unsigned_t = Json::number_unsigned_t;
  using number_float_t = Json::number_float_t;
  using string_t = Json::string_t;
  using binary_t = Json::binary_t;

  CheckedBuilder(std::string_view text, Json& root, JsonParseError& error,
                 bool refuse_repeated_keys)
      : text_(text), root_(root), error_(error), refuse_repeated_keys_(refuse_repeated_keys) {}

  bool null() { return add(nullptr); }
  bool boolean(bool v) { return add(v); }
  bool number_integer(number_integer_t v) { return add(v); }
  bool number_unsigned(number_unsigned_t v) { return add(v); }
  bool number_float(number_float_t v, const string_t&) { return add(v); }
  bool string(string_t& v) { return add(std::move(v)); }
  bool binary(binary_t& v) { return add(Json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(Json::value_t::object); }
  bool start_array(std::size_t) { return open(Json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(string_t& k) {
    Frame& frame = stack_.back();
    auto& object = frame.value->get_ref<Json::object_t&>();
    // ordered_json finds keys by a linear search: fine for small objects, quadratic for one with
    // 100,000 keys, so larger objects get a hash index of their keys.
    if (!frame.keys && object.size() < kIndexFrom) {
      if (refuse_repeated_keys_ && object.count(k) != 0) return repeated(k);
      slot_ = &object[k];
      return true;
    }
    if (!frame.keys) {
      frame.keys = std::make_unique<std::unordered_map<std::string, std::size_t>>();
      for (std::size_t i = 0; i < object.size(); ++i)
        frame.keys->emplace(object.begin()[i].first, i);
    }
    const auto [at, inserted] = frame.keys->emplace(k, object.size());
    if (!inserted && refuse_repeated_keys_) return repeated(k);
    if (inserted) {
      object.emplace_back(std::move(k), nullptr);
      slot_ = &object.back().second;
    } else {
      slot_ = &object.begin()[at->second]
                   .second;  // a repeated key: the last value wins, as in nlohmann
    }
    return true;
  }

  template <typename Exception>
  bool parse_error(std::size_t position, const std::string& token, const Exception& e) {
    if (e.id == 406) {
      // Number overflow: the lexer has read the whole number; point at its first digit.
      locate(text_, position >= token.size() ? position - token.size() : 0, error_);
      error_.reason = "number " + shorten(token, 40) + " is beyond the range of a 64-bit float";
      error_.over_limit = true;
    } else {
      // `position` is one past the offending character; past the last one, the end of the text.
      locate(text_, position == 0 ? 0 : position - 1, error_);
      error_.reason = reason_of(e.what());
      error_.ends_early = position > text_.size();
    }
    return false;
  }

  bool too_deep() const { return too_deep_; }

 private:
  // The SAX interface gives no position for a key: the error points at the value's start.
  bool repeated(const std::string& key) {
    locate(text_, text_.find_first_not_of(" \t\r\n"), error_);
    error_.reason = fmt::format("key \"{}\" appears twice in one object", shorten(key, 40));
    return false;
  }

  template <typename Value>
  bool add(Value&& v) {
    place(Json(std::forward<Value>(v)));
    return true;
  }

  Json* place(Json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json& parent = *stack_.back().value;
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    *slot_ = std::move(v);
    return slot_;
  }

  bool open(Json::value_t type) {
    if (stack_.size() >= kMaxJsonDepth) {
      too_deep_ = true;
      locate(text_, too_deep_offset(text_), error_);
      error_.reason = fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth);
      error_.over_limit = true;
      return false;
    }
    Json* value = place(Json(type));
    stack_.push_back(Frame{value, nullptr});
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  // An open array or object; `keys` indexes a large object's keys.
  struct Frame {
    Json* value;
    std::unique_ptr<std::unordered_map<std::string, std::size_t>> keys;
  };
  static constexpr std::size_t kIndexFrom = 32;

  std::string_view text_;
  Json& root_;
  JsonParseError& error_;
  std::vector<Frame> stack_;
  Json* slot_ = nullptr;
  bool too_deep_ = false;
  bool refuse_repeated_keys_ = false;
};

}  // namespace

std::size_t json_container_end(std::string_view text, std::size_t begin) {
  const std::size_t closing =
      walk_brackets(text, begin, [](std::size_t depth) { return depth == 0; });
  return closing == text.size() ? closing : closing + 1;
}

bool try_parse_json(std::string_view text, Json& out, JsonParseError& error,
                    bool refuse_repeated_keys) {
  error = JsonParseError();
  // nlohmann's lexer reads a NUL byte as the end of the text: "{}<NUL>anything" parsed as {}.
  // JSON holds none (inside a string one is written \u0000).
  if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos) {
    locate(text, nul, error);
    error.reason = "a NUL byte (JSON text holds none; in a string it is written \\u0000)";
    return false;
  }
  CheckedBuilder builder(text, out, error, refuse_repeated_keys);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &builder);
  } catch (const nlohmann::json::exception& e) {
    // The parser reports through parse_error(); this only guards other nlohmann versions.
    locate(text, 0, error);
    error.reason = reason_of(e.what());
    return false;
  }
  if (!ok && error.reason.empty()) {
    locate(text, 0, error);
    error.reason = "not JSON";
  }
  return ok;
}

bool try_parse_json(std::string_view text, nlohmann::json& out, JsonParseError& error) {
  Json parsed;
  if (!try_parse_json(text, parsed, error)) return false;
  out = nlohmann::json(parsed);  // recursive, but at most kMaxJsonDepth deep
  return true;
}

Error json_parse_error(const std::string& source, const JsonParseError& error,
                       ErrorCode syntax_code, const std::string& what, const std::string& hint) {
  const std::string where = fmt::format("{}:{}:{}", source, error.line, error.column);
  if (error.over_limit) {
    // The two limits' reasons are written above: "JSON nested deeper ..." and "number ...".
    const bool depth = error.reason.rfind("JSON nested", 0) == 0;
    return Error(ErrorCode::kConfig, fmt::format("{}: {}", where, error.reason),
                 depth ? fmt::format("ms reads JSON nested at most {} levels deep, as Python's "
                                     "json module does; flatten the value",
                                     kMaxJsonDepth)
                       : "numbers must fit a 64-bit float; store larger ones as strings");
  }
  return Error(syntax_code, fmt::format("{}: {}: {}", where, what, error.reason), hint);
}

Json parse_json(std::string_view text, const std::string& source, ErrorCode syntax_code,
                bool refuse_repeated_keys) {
  Json out;
  JsonParseError e;
  if (try_parse_json(text, out, e, refuse_repeated_keys)) return out;
  throw json_parse_error(
      source, e, syntax_code, "invalid JSON",
      "fix the syntax at that line (a missing comma, quote or bracket is the usual cause)");
}

std::optional<Json> read_json_file(const std::filesystem::path& path) {
  if (!optional_regular_file(path)) return std::nullopt;
  Json out;
  JsonParseError e;
  if (try_parse_json(read_file(path), out, e)) return out;
  throw json_parse_error(path.string(), e, ErrorCode::kConfig, "not valid JSON",
                         "fix or delete the file");
}

}  // namespace ms
