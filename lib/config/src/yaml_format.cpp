#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string_view>

#include "formats.h"
#include "ms/config/json_file.h"
#include "ms/core/utf8.h"

namespace ms::detail {
namespace {

// The YAML 1.2 core schema's number forms, matched by hand: libstdc++'s std::regex recurses once
// per character and overflows the stack on a long scalar.
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

// YAML 1.2 core schema resolution of an untagged plain scalar.
Json plain_scalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  // strtod, not stod: as Python's float(), a value beyond a double is infinite (1e999) and one
  // below the smallest is 0 (1e-999), instead of an exception.
  try {
    if (is_int(s)) return std::stoll(s);
    if (is_hex(s)) return std::stoll(s, nullptr, 16);
    if (is_float(s)) return std::strtod(s.c_str(), nullptr);
  } catch (const std::out_of_range&) {
    // Integers beyond 64 bits become doubles, as in Python's yaml.
    return std::strtod(s.c_str(), nullptr);
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
      return plain_scalar(node.Scalar());
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const auto& item : node) out.push_back(to_json(item, budget, depth + 1));
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& entry : node) {
        const YAML::Node& key = entry.first;
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
        if (out.contains(name)) {
          throw Error(ErrorCode::kConfig,
                      fmt::format("{}:{}:{}: duplicate key '{}'", source, key.Mark().line + 1,
                                  key.Mark().column + 1, name));
        }
        out[name] = to_json(entry.second, budget, depth + 1);
      }
      return out;
    }
  }
  return nullptr;
}

void emit(YAML::Emitter& out, const Json& value) {
  if (value.is_object()) {
    out << YAML::BeginMap;
    for (auto it = value.begin(); it != value.end(); ++it) {
      out << YAML::Key << it.key() << YAML::Value;
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
    const std::string& s = value.get_ref<const std::string&>();
    // Quote strings that would otherwise read back as another type (numbers, booleans, null).
    Json reread = plain_scalar(s);
    if (!reread.is_string()) {
      out << YAML::DoubleQuoted << s;
    } else {
      out << s;
    }
  } else if (value.is_null()) {
    out << YAML::Null;
  } else if (value.is_boolean()) {
    out << value.get<bool>();
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
  return std::string(out.c_str()) + "\n";
}

}  // namespace ms::detail
