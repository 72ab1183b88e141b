#include "ms/config/config.h"

#include <algorithm>
#include <cctype>

#include "formats.h"
#include "ms/config/components.h"
#include "ms/config/json_file.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/core/utf8.h"

namespace ms {
namespace fs = std::filesystem;

namespace {

bool is_index(const std::string& segment) {
  return !segment.empty() && segment.size() < 10 &&
         std::all_of(segment.begin(), segment.end(),
                     [](unsigned char c) { return std::isdigit(c); });
}

// Position in `list` addressed by `segment`: an index, or the element whose "type" equals it.
// Returns list.size() when nothing matches.
std::size_t list_position(const Json& list, const std::string& segment) {
  if (is_index(segment)) {
    std::size_t index = std::stoul(segment);
    return index < list.size() ? index : list.size();
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Json& item = list[i];
    if (item.is_object() && item.contains("type") && item["type"].is_string() &&
        item["type"].get_ref<const std::string&>() == segment) {
      return i;
    }
  }
  return list.size();
}

std::string list_choices(const Json& list) {
  std::vector<std::string> types;
  for (const Json& item : list) {
    if (item.is_object() && item.contains("type") && item["type"].is_string()) {
      types.push_back(item["type"].get<std::string>());
    }
  }
  std::string out = fmt::format("indices 0..{}", list.empty() ? 0 : list.size() - 1);
  if (list.empty()) out = "the list is empty";
  if (!types.empty()) out += ", or a type: " + join(types, ", ");
  return out;
}

std::string describe(const Json& value) {
  std::string text = value.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

bool all_typed_objects(const Json& list) {
  return list.is_array() && !list.empty() &&
         std::all_of(list.begin(), list.end(), [](const Json& item) {
           return item.is_object() && item.contains("type") && item["type"].is_string();
         });
}

// Levels of containers in `value` (a scalar: 0); parsed values are at most kMaxJsonDepth deep.
std::size_t nesting(const Json& value) {
  std::size_t deepest = 0;
  if (value.is_structured())
    for (const Json& child : value) deepest = std::max(deepest, nesting(child));
  return value.is_structured() ? deepest + 1 : 0;
}
}  // namespace

std::vector<std::string> split_key(std::string_view key) {
  if (key.empty()) throw Error(ErrorCode::kUsage, "empty configuration key");
  std::vector<std::string> segments = split(key, '.');
  for (const std::string& segment : segments) {
    if (segment.empty()) {
      throw Error(ErrorCode::kUsage, fmt::format("invalid key '{}': empty segment", key),
                  "keys are dot-separated names such as train.optimizer.lr");
    }
  }
  return segments;
}

void merge_json(Json& base, const Json& other) {
  if (base.is_object() && other.is_object()) {
    for (auto it = other.begin(); it != other.end(); ++it) {
      if (base.contains(it.key())) {
        merge_json(base[it.key()], it.value());
      } else {
        base[it.key()] = it.value();
      }
    }
    return;
  }
  if (all_typed_objects(base) && all_typed_objects(other)) {
    for (const Json& item : other) {
      std::size_t at = list_position(base, item["type"].get<std::string>());
      if (at < base.size()) {
        merge_json(base[at], item);
      } else {
        base.push_back(item);
      }
    }
    return;
  }
  base = other;
}

Config::Config(Json root, std::string source)
    : root_(std::move(root)), source_(std::move(source)) {}

Config Config::from_file(const fs::path& given) {
  fs::path path = given;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    path /= "configuration.json";
    if (!fs::exists(path, ec)) {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("{}: folder has no configuration.json", given.string()),
                  "pass a .json/.yaml file, or a model folder in ModelScope layout");
    }
  }
  // A path that is not there is a missing file (exit 4) whatever its name says; one that cannot
  // be looked at (a loop of links, a folder without search permission, a link to nowhere) says
  // why.
  check_reachable(path);
  if (!fs::exists(path, ec)) {
    throw Error(ErrorCode::kNotFound, fmt::format("{}: no such file or folder", path.string()),
                "pass a .json/.yaml file, or a model folder in ModelScope layout");
  }
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  std::string format;
  if (extension == ".json") format = "json";
  if (extension == ".yaml" || extension == ".yml") format = "yaml";
  if (format.empty()) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: unsupported configuration format '{}'", path.string(), extension),
                "use a .json, .yaml or .yml file");
  }
  const std::string text = read_file(path);
  return parse(text, format, path.string());
}

Config Config::parse(std::string_view text, std::string_view format, std::string source) {
  // The format is the caller's choice, not something looked up in the world: kUsage, not
  // kNotFound.
  MS_CHECK(config_formats().contains(format), ErrorCode::kUsage,
           "{}: unknown configuration format '{}' (known: {})", source, format,
           join(config_formats().types(), ", "));
  const ConfigParser& parser = config_formats().get(format);
  Json root = parser(text, source);
  if (root.is_null()) root = Json::object();  // an empty YAML file is an empty configuration
  if (!root.is_object()) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: the top level must be an object (key: value pairs), got {}",
                            source, type_name(root)));
  }
  return Config(std::move(root), std::move(source));
}

std::string Config::type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "object";
    case Json::value_t::array:
      return "list";
    case Json::value_t::string:
      return "string";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer";
    case Json::value_t::number_float:
      return "number";
    default:
      return "value";
  }
}

const Json* Config::find(std::string_view key, std::string* canonical) const {
  const Json* node = &root_;
  std::string path;
  for (const std::string& segment : split_key(key)) {
    std::string step = segment;
    if (node->is_object()) {
      auto it = node->find(segment);
      if (it == node->end()) return nullptr;
      node = &*it;
    } else if (node->is_array()) {
      std::size_t at = list_position(*node, segment);
      if (at >= node->size()) return nullptr;
      step = std::to_string(at);
      node = &(*node)[at];
    } else {
      return nullptr;
    }
    path += path.empty() ? step : "." + step;
  }
  if (canonical != nullptr) *canonical = path;
  return node;
}

void Config::mark_read(const std::string& canonical) const {
  std::lock_guard<std::mutex> lock(read_.mutex);
  read_.keys.insert(canonical);
}

bool Config::has(std::string_view key) const {
  std::string canonical;
  const Json* node = find(key, &canonical);
  if (node != nullptr) mark_read(canonical);
  return node != nullptr;
}

const Json& Config::at(std::string_view key) const {
  std::string canonical;
  const Json* node = find(key, &canonical);
  if (node == nullptr) {
    // Name the deepest existing parent and its keys, which is what the user needs to fix a typo.
    std::vector<std::string> segments = split_key(key);
    std::string parent;
    const Json* scope = &root_;
    for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
      std::string probe = parent.empty() ? segments[i] : parent + "." + segments[i];
      const Json* next = find(probe, nullptr);
      if (next == nullptr) break;
      parent = probe;
      scope = next;
    }
    std::string hint;
    if (scope->is_object()) {
      std::vector<std::string> keys;
      for (auto it = scope->begin(); it != scope->end(); ++it) keys.push_back(it.key());
      const std::string& missing = segments[parent.empty() ? 0 : split_key(parent).size()];
      // A key whose own name holds the dots ("a.b": 5) is there, but a dotted path reads it as
      // nested keys: the close match offered was that very name.
      std::string rest;
      for (std::size_t i = parent.empty() ? 0 : split_key(parent).size(); i < segments.size(); ++i)
        rest += rest.empty() ? segments[i] : "." + segments[i];
      if (scope->count(rest) != 0) {
        throw Error(ErrorCode::kConfig,
                    fmt::format("{}: missing key '{}': there is a key named '{}' (with the dots "
                                "in its name), which a dotted path cannot name",
                                source_, key, rest),
                    "rename the key in the file, or read the whole object it is in");
      }
      hint = did_you_mean(missing, keys);
      if (hint.empty() && !keys.empty()) {
        hint =
            fmt::format("keys under '{}': {}", parent.empty() ? "<top>" : parent, join(keys, ", "));
      }
    } else if (scope->is_array()) {
      hint = "in '" + parent + "' use " + list_choices(*scope);
    }
    throw Error(ErrorCode::kConfig, fmt::format("{}: missing key '{}'", source_, key), hint);
  }
  mark_read(canonical);
  return *node;
}

void Config::type_error(std::string_view key, std::string_view expected, const Json& value) const {
  // The type, then the value, unless it says no more than the type ("got null", not "got null
  // null").
  const std::string got =
      value.is_null() ? type_name(value) : type_name(value) + " " + describe(value);
  throw Error(ErrorCode::kConfig,
              fmt::format("{}: key '{}' must be {}, got {}", source_, key, expected, got));
}

void Config::set(std::string_view key, Json value) {
  std::vector<std::string> segments = split_key(key);
  Json* node = &root_;
  std::string walked;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string& segment = segments[i];
    const bool last = i + 1 == segments.size();
    if (node->is_null()) *node = Json::object();
    if (node->is_object()) {
      node = &(*node)[segment];
    } else if (node->is_array()) {
      std::size_t at = list_position(*node, segment);
      if (at >= node->size()) {
        throw Error(ErrorCode::kConfig,
                    node->empty() ? fmt::format("{}: cannot set '{}': '{}' is an empty list",
                                                source_, key, walked)
                                  : fmt::format("{}: cannot set '{}': '{}' has no element '{}'",
                                                source_, key, walked, segment),
                    node->empty() ? std::string() : "use " + list_choices(*node));
      }
      node = &(*node)[at];
    } else {
      throw Error(ErrorCode::kConfig, fmt::format("{}: cannot set '{}': '{}' is {}, not an object",
                                                  source_, key, walked, describe(*node)));
    }
    walked += walked.empty() ? segment : "." + segment;
    if (last) *node = std::move(value);
  }
}

void Config::apply_override(std::string_view assignment) {
  const std::size_t eq = assignment.find('=');
  if (eq == std::string_view::npos) {
    throw Error(ErrorCode::kUsage, fmt::format("--set '{}': expected KEY=VALUE", assignment),
                "for example --set train.max_epochs=3");
  }
  // A configuration is JSON text: bytes that are not UTF-8 could not be written out again.
  if (!is_valid_utf8(assignment)) {
    throw Error(ErrorCode::kUsage,
                fmt::format("--set '{}': not UTF-8 text", escape_invalid_utf8(assignment)),
                "give the key and value as UTF-8 (\\xHH marks the bytes that are not)");
  }
  const std::string_view key = assignment.substr(0, eq);
  const std::string_view text = assignment.substr(eq + 1);
  Json value;
  JsonParseError e;
  if (!try_parse_json(text, value, e)) {
    // A bare word ("bert", "cuda:0") is a string; text that starts like a JSON literal but does
    // not parse is a mistake worth reporting rather than silently storing as a string.
    const char first = text.empty() ? '\0' : text.front();
    if (first == '[' || first == '{' || first == '"' || e.over_limit) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("--set '{}': value is not valid JSON: column {}: {}", assignment,
                              e.column, e.reason),
                  e.over_limit
                      ? "give a value within the limits (numbers a 64-bit float holds, nesting "
                        "up to 1000 levels)"
                      : "quote the whole argument for the shell, e.g. --set "
                        "'evaluation.metrics=[\"accuracy\"]'");
    }
    value = std::string(text);
  }
  try {
    // A list of hooks merges into the list there by type, as ModelScope's merge_from_dict does
    // with its cfg_options: `--set 'train.hooks=[{"type": "CheckpointHook", ...}]'` replaced
    // every other hook of the recipe. Only hooks: merge_from_dict merges every typed list so,
    // "not guaranteeing the order", which for a list of transforms is its meaning (a Normalize
    // set before ToTensor would be merged into the valid order and run).
    const Json* there = find(key, nullptr);  // not has()/at(): a look is no read of the key
    const std::vector<std::string> segments = split_key(key);
    // The key's levels count as the value's do: a key of 20000 parts was written as a
    // configuration ms refuses to read (and crashed `ms config show`'s YAML writer).
    if (segments.size() + nesting(value) > kMaxJsonDepth) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("the key and value nest {} levels deep, over the limit of {}",
                              segments.size() + nesting(value), kMaxJsonDepth),
                  "give a shorter key (the dots in KEY each add a level)");
    }
    if (there != nullptr && !segments.empty() && segments.back() == "hooks" &&
        all_typed_objects(*there) && all_typed_objects(value)) {
      Json merged = *there;
      merge_json(merged, value);
      value = std::move(merged);
    }
    set(key, std::move(value));
  } catch (Error& e) {
    throw Error(ErrorCode::kUsage, fmt::format("--set '{}': {}", assignment, e.what()), e.hint());
  }
  // Errors about the tree now name the command line too: the value at fault may be this one.
  constexpr std::string_view kOverridden = " + --set";
  if (source_.size() < kOverridden.size() ||
      source_.compare(source_.size() - kOverridden.size(), kOverridden.size(), kOverridden) != 0) {
    source_ += kOverridden;
  }
}

void Config::merge(const Json& other) { merge_json(root_, other); }

std::vector<std::string> Config::unread_keys() const {
  std::vector<std::string> out;
  const std::set<std::string> read = read_.copy();
  auto covered = [&read](const std::string& path) {
    std::string prefix = path;
    while (true) {
      if (read.count(prefix) != 0) return true;
      std::size_t dot = prefix.rfind('.');
      if (dot == std::string::npos) return false;
      prefix.resize(dot);
    }
  };
  std::function<void(const Json&, const std::string&)> walk = [&](const Json& node,
                                                                  const std::string& path) {
    if ((node.is_object() || node.is_array()) && !node.empty()) {
      std::size_t index = 0;
      for (auto it = node.begin(); it != node.end(); ++it, ++index) {
        std::string step = node.is_object() ? it.key() : std::to_string(index);
        walk(it.value(), path.empty() ? step : path + "." + step);
      }
      return;
    }
    if (!path.empty() && !covered(path)) out.push_back(path);
  };
  walk(root_, "");
  return out;
}

void Config::check_all_read() const {
  std::vector<std::string> unread = unread_keys();
  if (unread.empty()) return;
  throw Error(
      ErrorCode::kConfig,
      fmt::format("{}: {} key(s) were not used: {}", source_, unread.size(), join(unread, ", ")),
      "these are often misspelt; remove them or fix their names");
}

std::string Config::dump(std::string_view format) const {
  if (format == "json") return root_.dump(2) + "\n";
  if (format == "yaml") return detail::dump_yaml(root_);
  fail(ErrorCode::kUsage, "unknown output format '{}' (use json or yaml)", format);
}

}  // namespace ms
