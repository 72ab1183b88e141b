#include "help_format.h"

#include <regex>
#include <string>
#include <vector>

#include "ms/core/text.h"

namespace ms::cli {
namespace {

// CLI11's full type name: the type, then each validator's description, joined by ':'.
std::vector<std::string> type_name_parts(const CLI::Option* option) {
  std::vector<std::string> parts;
  const std::string full = option->get_type_name();
  std::size_t start = 0;
  for (std::size_t colon; (colon = full.find(':', start)) != std::string::npos; start = colon + 1)
    parts.push_back(full.substr(start, colon - start));
  parts.push_back(full.substr(start));
  return parts;
}

// What the validators take, in words: CLI::Range's "INT in [1 - 65536]" is "1 to 65536", and
// a whole number's lower bound is left to the range that follows it, if any.
std::string accepted_values(const CLI::Option* option) {
  static const std::regex range(R"(^\w+ in \[(.*) - (.*)\]$)");
  static const std::regex at_least(R"(^a whole number of (at least .*)$)");
  const std::vector<std::string> parts = type_name_parts(option);
  std::vector<std::string> words;
  bool has_range = false;
  for (std::size_t k = 1; k < parts.size(); ++k) has_range |= std::regex_match(parts[k], range);
  for (std::size_t k = 1; k < parts.size(); ++k) {
    std::smatch m;
    if (std::regex_match(parts[k], m, range)) {
      words.push_back(m[1].str() + " to " + m[2].str());
    } else if (std::regex_match(parts[k], m, at_least)) {
      if (!has_range) words.push_back(m[1].str());
    } else if (!parts[k].empty()) {
      words.push_back(parts[k]);
    }
  }
  return join(words, "; ");
}

}  // namespace

std::string HelpFormatter::make_option_opts(const CLI::Option* option) const {
  if (!option->get_option_text().empty()) return " " + option->get_option_text();
  std::string out;
  if (option->get_type_size() != 0) {
    const std::string type = type_name_parts(option).front();
    if (!type.empty()) out += " " + get_label(type);
    if (!option->get_default_str().empty()) out += "=" + option->get_default_str();
    if (option->get_expected_max() == CLI::detail::expected_max_vector_size) {
      out += " ...";
    } else if (option->get_expected_min() > 1) {
      out += " x " + std::to_string(option->get_expected());
    }
    if (option->get_required()) out += " " + get_label("REQUIRED");
  }
  if (!option->get_envname().empty())
    out += " (" + get_label("Env") + ":" + option->get_envname() + ")";
  if (!option->get_needs().empty()) {
    out += " " + get_label("Needs") + ":";
    for (const CLI::Option* other : option->get_needs()) out += " " + other->get_name();
  }
  if (!option->get_excludes().empty()) {
    out += " " + get_label("Excludes") + ":";
    for (const CLI::Option* other : option->get_excludes()) out += " " + other->get_name();
  }
  return out;
}

std::string HelpFormatter::make_option_desc(const CLI::Option* option) const {
  const std::string description = option->get_description();
  if (option->get_type_size() == 0) return description;
  const std::string values = accepted_values(option);
  if (values.empty()) return description;
  return description.empty() ? "(" + values + ")" : description + " (" + values + ")";
}

}  // namespace ms::cli
