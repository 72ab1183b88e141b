#include "help_format.h"

#include <regex>
#include <string>
#include <vector>

#include "ms/core/text.h"

namespace ms::cli {
namespace {

// CLI11's full type name: the type, then each validator's description, joined by ':'. The type
// (INT, TEXT, or a name ms sets) has no ':' of its own; a description may ({cuda:0,cpu}).
std::string type_of(const CLI::Option* option) {
  const std::string full = option->get_type_name();
  return full.substr(0, full.find(':'));
}

// What the validators take, in words: CLI::Range's "INT in [1 - 65536]" is "1 to 65536", a
// whole number's lower bound ("a whole number of at least 1") "at least 1" unless a range says
// more (at least 0 says nothing a UINT does not), CLI::IsMember's "{a,b}" as it is.
std::string accepted_values(const CLI::Option* option) {
  static const std::regex range(R"(\w+ in \[([^\]]*) - ([^\]]*)\])");
  static const std::regex at_least(R"(a whole number of at least (\d+))");
  static const std::regex members(R"(\{[^}]*\})");
  const std::string full = option->get_type_name();
  const std::size_t colon = full.find(':');
  if (colon == std::string::npos) return "";
  const std::string validators = full.substr(colon + 1);
  std::vector<std::string> words;
  for (std::sregex_iterator it(validators.begin(), validators.end(), range), end; it != end; ++it)
    words.push_back((*it)[1].str() + " to " + (*it)[2].str());
  std::smatch m;
  if (words.empty() && std::regex_search(validators, m, at_least) && m[1].str() != "0")
    words.push_back("at least " + m[1].str());
  for (std::sregex_iterator it(validators.begin(), validators.end(), members), end; it != end; ++it)
    words.push_back(it->str());
  // A validator of another kind says it in its own words.
  if (words.empty() && !std::regex_search(validators, at_least)) words.push_back(validators);
  return join(words, "; ");
}

}  // namespace

std::string HelpFormatter::make_option_opts(const CLI::Option* option) const {
  if (!option->get_option_text().empty()) return " " + option->get_option_text();
  std::string out;
  if (option->get_type_size() != 0) {
    const std::string type = type_of(option);
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
  // First, in brackets: after the description it read as a bound of whatever the last sentence
  // named ("... MS_DIST_TIMEOUT: seconds a worker waits (1 to 1024)").
  const std::string values = accepted_values(option);
  if (values.empty()) return description;
  return "[" + values + "]" + (description.empty() ? "" : " " + description);
}

}  // namespace ms::cli
