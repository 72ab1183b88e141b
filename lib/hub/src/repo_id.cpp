#include "ms/hub/repo_id.h"

#include <cctype>

#include "ms/core/error.h"
#include "ms/core/text.h"

namespace ms::hub {

const char* repo_type_name(RepoType type) { return type == RepoType::kModel ? "model" : "dataset"; }
const char* repo_type_plural(RepoType type) {
  return type == RepoType::kModel ? "models" : "datasets";
}

std::string RepoId::cache_name() const {
  std::string out;
  for (char c : name) {
    if (c == '.') {
      out += "___";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

bool valid_part(std::string_view part) {
  if (part.empty() || part == "." || part == ".." || part.size() > 128) return false;
  for (char c : part) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (!std::isalnum(u) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

}  // namespace

RepoId parse_repo_id(std::string_view text) {
  const std::vector<std::string> parts = split(text, '/');
  RepoId id;
  if (parts.size() == 1) {
    id = {"damo", parts[0]};
  } else if (parts.size() == 2) {
    id = {parts[0], parts[1]};
  } else {
    fail(ErrorCode::kUsage, "invalid repo id '{}': expected OWNER/NAME", text);
  }
  if (!valid_part(id.owner) || !valid_part(id.name)) {
    throw Error(ErrorCode::kUsage, fmt::format("invalid repo id '{}'", text),
                "owner and name use letters, digits, '_', '-' and '.', e.g. damo/nlp_bert_base");
  }
  return id;
}

bool is_safe_repo_path(std::string_view path) {
  if (path.empty() || path.size() > 4096 || path.front() == '/') return false;
  for (char c : path) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '\\' || u < 0x20 || u == 0x7f) return false;  // includes NUL
  }
  for (const std::string& segment : split(path, '/')) {
    if (segment.empty() || segment == "." || segment == "..") return false;
  }
  return true;
}

const std::string& check_repo_path(const std::string& path) {
  if (!is_safe_repo_path(path)) {
    std::string shown;
    for (char c : path) {
      const unsigned char u = static_cast<unsigned char>(c);
      shown += (u < 0x20 || u == 0x7f) ? fmt::format("\\x{:02x}", u) : std::string(1, c);
    }
    throw Error(ErrorCode::kUsage, fmt::format("unsafe repo path '{}'", shown),
                "repo paths are relative, use '/' and contain no '..', '.', empty segments, "
                "backslashes or control characters");
  }
  return path;
}

}  // namespace ms::hub
