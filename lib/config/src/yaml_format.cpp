#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "formats.h"
#include "ms/config/json_file.h"
#include "ms/core/log.h"
#include "ms/core/utf8.h"

namespace ms::detail {
namespace {

// Plain scalars are typed as PyYAML (ModelScope's reader, YAML 1.1) types them where the two
// schemas differ in ways configurations meet: yes/no/on/off are booleans, and digits may be
// grouped with '_' (1_000). Number forms are matched by hand: libstdc++'s std::regex recurses
// once per character and overflows the stack on a long scalar.
bool all_digits(std::string_view s, bool hex) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [hex](unsigned char c) {
    return hex ? std::isxdigit(c) != 0 : std::isdigit(c) != 0;
  });
}
std::string_view unsigned_part(std::string_view s) {
  return !s.empty() && (s[0] == '-' || s[0] == '+') ? s.substr(1) : s;
}
bool is_int(std::string_view s) { return all_digits(unsigned_part(s), false); }
bool is_hex(std::string_view s) {
  return s.size() > 2 && s.substr(0, 2) == "0x" && all_digits(s.substr(2), true);
}
// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool is_float(std::string_view s) {
  s = unsigned_part(s);
  const std::size_t e = s.find_first_of("eE");
  const std::string_view mantissa = s.substr(0, e);
  if (e != std::string_view::npos && !is_int(s.substr(e + 1))) return false;
  const std::size_t dot = mantissa.find('.');
  if (dot == std::string_view::npos) return all_digits(mantissa, false);
  const std::string_view whole = mantissa.substr(0, dot), fraction = mantissa.substr(dot + 1);
  if (whole.empty()) return all_digits(fraction, false);
  return all_digits(whole, false) && (fraction.empty() || all_digits(fraction, false));
}

bool one_of(const std::string& s, std::initializer_list<const char*> words) {
  return std::any_of(words.begin(), words.end(), [&s](const char* w) { return s == w; });
}

// "1_000" -> "1000": PyYAML's int and float forms take underscores anywhere after the first
// digit ("1__0" and "1_000_" too), its hex form after "0x".
std::string without_digit_groups(const std::string& s) {
  if (s.find('_') == std::string::npos) return s;
  const std::string_view digits = unsigned_part(s);
  if (digits.empty() || !std::isdigit(static_cast<unsigned char>(digits.front()))) return s;
  std::string out;
  for (char c : s)
    if (c != '_') out += c;
  return out;
}

// Resolution of an untagged plain scalar.
Json plain_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (one_of(s, {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})) return true;
  if (one_of(s, {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})) return false;
  const std::string number = without_digit_groups(s);
  // strtod, not stod: as Python's float(), a value beyond a double is infinite (1e999) and one
  // below the smallest is 0 (1e-999), instead of an exception.
  try {
    if (is_int(number)) {
      try {
        return std::stoll(number);
      } catch (const std::out_of_range&) {
        if (number.front() == '-') throw;
        return std::stoull(number);  // 2^63 .. 2^64 - 1, as the JSON reader keeps them
      }
    }
    if (is_hex(number)) return std::stoll(number, nullptr, 16);
    if (is_float(number)) return std::strtod(number.c_str(), nullptr);
  } catch (const std::out_of_range&) {
    // Integers beyond 64 bits become doubles, as the JSON reader makes them.
    return std::strtod(number.c_str(), nullptr);
  }
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf")
    return std::numeric_limits<double>::infinity();
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return -std::numeric_limits<double>::infinity();
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return s;
}

// Aliases let a small YAML file describe a huge tree ("billion laughs") or, with an anchor used
// inside its own node, an endless one: conversion stops at these limits.
constexpr std::size_t kMaxYamlValues = 1000000;

struct Budget {
  const std::string& source;
  std::size_t values = 0;
};

Json to_json(const YAML::Node& node, Budget& budget, std::size_t depth) {
  const std::string& source = budget.source;
  if (depth > kMaxJsonDepth || ++budget.values > kMaxYamlValues) {
    throw Error(
        ErrorCode::kConfig,
        fmt::format(
            "{}:{}:{}: invalid YAML: {}", source, node.Mark().line + 1, node.Mark().column + 1,
            depth > kMaxJsonDepth
                ? fmt::format("nested deeper than {} levels (or an alias inside "
                              "its own anchor)",
                              kMaxJsonDepth)
                : fmt::format("more than {} values once aliases are expanded", kMaxYamlValues)),
        "a configuration needs neither; check the anchors (&) and aliases (*)");
  }
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      // Escapes ("\xA0") and tags can make bytes that are not UTF-8 out of UTF-8 text.
      if (first_invalid_utf8(node.Scalar()) != std::string::npos) {
        throw Error(ErrorCode::kConfig,
                    fmt::format("{}:{}:{}: invalid YAML: the value is not UTF-8 text", source,
                                node.Mark().line + 1, node.Mark().column + 1),
                    "write the character itself, or \\u escapes, in a UTF-8 file");
      }
      // A quoted scalar carries the tag "!"; only plain scalars are typed.
      if (node.Tag() == "!") return node.Scalar();
      if (Json value = plain_scalar(node.Scalar());
          !value.is_number_float() || std::isfinite(value.get<double>())) {
        return value;
      }
      // PyYAML reads .nan, .inf and 1e999 as floats; a configuration is JSON, which has none
      // (written out, they would turn into null without a word).
      throw Error(ErrorCode::kConfig,
                  fmt::format("{}:{}:{}: {} is not a finite number, which a configuration cannot "
                              "hold",
                              source, node.Mark().line + 1, node.Mark().column + 1,
                              node.Scalar().size() <= 40 ? node.Scalar()
                                                         : node.Scalar().substr(0, 40) + "..."),
                  "give a finite value, or quote it to make it a string");
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const auto& item : node) out.push_back(to_json(item, budget, depth + 1));
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      // Keys are placed through an index: ordered_json finds a key by a linear search, which
      // made a big map (or one merged in again and again through aliases) quadratic.
      auto& fields = out.get_ref<Json::object_t&>();
      std::unordered_map<std::string, std::size_t> index;
      auto put = [&fields, &index](const std::string& key, Json value) {
        const auto [at, added] = index.emplace(key, fields.size());
        if (added) {
          fields.emplace_back(key, std::move(value));
        } else {
          (fields.begin() + static_cast<std::ptrdiff_t>(at->second))->second = std::move(value);
        }
      };
      // The merge key (`<<: *base`, or `<<: [*a, *b]`), as PyYAML reads it: the merged maps'
      // entries come first (an earlier map's over a later one's), the node's own keys override
      // them.
      std::unordered_set<std::string> own_keys;
      for (const auto& entry : node) {
        const YAML::Node& key = entry.first;
        if (!key.IsScalar() || key.Tag() == "!" || key.Scalar() != "<<") continue;
        const YAML::Node& merged = entry.second;
        std::vector<YAML::Node> maps;
        if (merged.IsMap()) maps.push_back(merged);
        if (merged.IsSequence())
          for (const auto& item : merged) maps.push_back(item);
        if (maps.empty() ||
            std::any_of(maps.begin(), maps.end(), [](const YAML::Node& m) { return !m.IsMap(); })) {
          throw Error(ErrorCode::kConfig,
                      fmt::format("{}:{}:{}: invalid YAML: a merge key (<<) takes a mapping or a "
                                  "list of mappings",
                                  source, key.Mark().line + 1, key.Mark().column + 1));
        }
        for (auto m = maps.rbegin(); m != maps.rend(); ++m) {
          Json part = to_json(*m, budget, depth + 1);
          for (auto& [key, value] : part.get_ref<Json::object_t&>()) put(key, std::move(value));
        }
      }
      for (const auto& entry : node) {
        const YAML::Node& key = entry.first;
        if (key.IsScalar() && key.Tag() != "!" && key.Scalar() == "<<") continue;
        if (!key.IsScalar()) {
          throw Error(ErrorCode::kConfig,
                      fmt::format("{}:{}:{}: mapping keys must be plain strings", source,
                                  key.Mark().line + 1, key.Mark().column + 1));
        }
        const std::string name = key.Scalar();
        if (first_invalid_utf8(name) != std::string::npos) {
          throw Error(ErrorCode::kConfig,
                      fmt::format("{}:{}:{}: invalid YAML: the key is not UTF-8 text", source,
                                  key.Mark().line + 1, key.Mark().column + 1));
        }
        // The last one wins, as PyYAML (ModelScope's reader) and the JSON reader have it; said,
        // since the first is then dropped.
        if (!own_keys.insert(name).second) {
          log::warn("{}:{}:{}: the key '{}' is given again; this later value wins", source,
                    key.Mark().line + 1, key.Mark().column + 1, name);
        }
        put(name, to_json(entry.second, budget, depth + 1));
      }
      return out;
    }
  }
  return nullptr;
}

// Where a second document of the stream starts, if there is one. Counted with two parser steps
// at most: yaml-cpp's LoadAll never ends on some malformed streams (",!" gives document after
// empty document, and ate memory until it ran out).
std::optional<YAML::Mark> second_document(std::string_view text) {
  struct DocumentStarts final : YAML::EventHandler {
    std::optional<YAML::Mark> start;
    void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  };
  std::istringstream stream{std::string(text)};
  YAML::Parser parser(stream);
  DocumentStarts starts;
  if (!parser.HandleNextDocument(starts)) return std::nullopt;
  starts.start.reset();
  if (!parser.HandleNextDocument(starts)) return std::nullopt;
  return starts.start.value_or(YAML::Mark());
}

// Whether a string may be written as a plain (unquoted) scalar: only when every reader reads it
// back as this same string. yaml-cpp quotes what its own reader needs; PyYAML (ModelScope's)
// reads YAML 1.1, where "no", "on", "1:30" (sexagesimal 90), "2024-01-01" (a date) and digit
// keys are other types, and refuses a raw DEL; "<<" is a merge key, "--- a" at a line's start a
// document marker. So plain only for a name of letters, digits and "_./-" that starts with a
// letter, "_" or "/" and is no YAML 1.1 boolean or null; everything else is quoted (harmless
// where it was not needed). Letters beyond ASCII count as letters (label names in Chinese stay
// readable), but not the line and paragraph separators or the byte-order mark.
bool plain_safe(const std::string& s) {
  static const std::unordered_set<std::string_view> kYaml11Words = {
      "y",  "Y",    "yes",  "Yes",  "YES",   "n",     "N",     "no", "No",
      "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On",
      "ON", "off",  "Off",  "OFF",  "null",  "Null",  "NULL"};
  if (s.empty() || kYaml11Words.count(s) != 0) return false;
  const auto first = static_cast<unsigned char>(s[0]);
  if (!(std::isalpha(first) || first == '_' || first == '/' || first >= 0x80)) return false;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (!(std::isalnum(c) || c == '_' || c == '.' || c == '/' || c == '-')) return false;
      ++i;
      continue;
    }
    const std::size_t length = utf8_sequence_length(s, i);
    if (length == 0) return false;
    const char32_t cp = decode_utf8(std::string_view(s).substr(i, length))[0];
    if (cp < 0xA0 || cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF)
      return false;
    i += length;
  }
  return plain_scalar(s).is_string();
}

void emit_string(YAML::Emitter& out, const std::string& s) {
  if (plain_safe(s)) {
    out << s;
  } else {
    out << YAML::DoubleQuoted << s;
  }
}

void emit(YAML::Emitter& out, const Json& value) {
  if (value.is_object()) {
    out << YAML::BeginMap;
    for (auto it = value.begin(); it != value.end(); ++it) {
      out << YAML::Key;
      emit_string(out, it.key());
      out << YAML::Value;
      emit(out, it.value());
    }
    out << YAML::EndMap;
  } else if (value.is_array()) {
    // Short lists of scalars read best inline: [1, 2, 3].
    bool flat = value.size() <= 8 && std::all_of(value.begin(), value.end(),
                                                 [](const Json& v) { return v.is_primitive(); });
    if (flat) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (const auto& item : value) emit(out, item);
    out << YAML::EndSeq;
  } else if (value.is_string()) {
    emit_string(out, value.get_ref<const std::string&>());
  } else if (value.is_null()) {
    out << YAML::Null;
  } else if (value.is_boolean()) {
    out << value.get<bool>();
  } else if (value.is_number_unsigned()) {
    out << value.get<unsigned long long>();  // as long long, 2^64 - 1 would print as -1
  } else if (value.is_number_integer()) {
    out << value.get<long long>();
  } else {
    out << value.dump();
  }
}

}  // namespace

Json parse_yaml_config(std::string_view text, const std::string& source) {
  // yaml-cpp passes any bytes through, but a config tree is JSON text (as the JSON parser
  // enforces): invalid UTF-8 would only fail later, when the tree is written out.
  if (const std::size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < bad; ++i) {
      column = text[i] == '\n' ? 1 : column + 1;
      line += text[i] == '\n' ? 1 : 0;
    }
    throw Error(ErrorCode::kConfig,
                fmt::format("{}:{}:{}: invalid YAML: not UTF-8 text", source, line, column),
                "save the file as UTF-8");
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
    // Python's yaml.load (ModelScope's) refuses a stream of several documents too; reading the
    // first alone would drop the rest without a word.
    if (const std::optional<YAML::Mark> second = second_document(text)) {
      throw Error(ErrorCode::kConfig,
                  fmt::format("{}:{}:{}: invalid YAML: a second document (---); a configuration "
                              "is one",
                              source, second->line + 1, second->column + 1),
                  "keep one document, or split the file in two");
    }
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's parser stops at 2000 levels of its own recursion (about 500 of nested flow
    // collections), before the 1000-level limit below, and says "bad file".
    throw Error(ErrorCode::kConfig,
                fmt::format("{}:{}:{}: invalid YAML: nested deeper than the YAML reader goes "
                            "(about 500 levels of [ ] or {{ }})",
                            source, e.mark.line + 1, e.mark.column + 1),
                "flatten the nesting");
  } catch (const YAML::Exception& e) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{}:{}:{}: invalid YAML: {}", source, e.mark.line + 1,
                            e.mark.column + 1, e.msg),
                "check indentation and quoting at that line");
  }
  Budget budget{source};
  return to_json(root, budget, 0);
}

std::string dump_yaml(const Json& value) {
  YAML::Emitter out;
  emit(out, value);
  // yaml-cpp writes these raw inside double quotes, where PyYAML refuses DEL ("special
  // characters are not allowed") and reads U+2028/U+2029 as line breaks, folded away. (It writes
  // the noncharacters U+FFFE/U+FFFF as U+FFFD, which no config holds.)
  // Only quoted scalars hold them (plain_safe() lets none through), and there they are escapes.
  std::string text;
  const std::string raw = out.c_str();
  text.reserve(raw.size() + 1);
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const std::string_view rest = std::string_view(raw).substr(i);
    if (raw[i] == '\x7f') {
      text += "\\x7f";
    } else if (rest.substr(0, 3) == "\xE2\x80\xA8" || rest.substr(0, 3) == "\xE2\x80\xA9") {
      text +=
          fmt::format("\\u{:04X}", static_cast<std::uint32_t>(decode_utf8(rest.substr(0, 3))[0]));
      i += 2;
    } else {
      text += raw[i];
    }
  }
  return text + "\n";
}

}  // namespace ms::detail
