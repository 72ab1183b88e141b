#include "ms/hub/repo_id.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <unordered_map>

#include "ms/core/error.h"
#include "ms/core/text.h"
#include "ms/core/utf8.h"

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

bool is_valid_ref_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "@" || name.back() == '.') return false;
  // Listed in JSON, which carries UTF-8 only.
  if (!is_valid_utf8(name)) return false;
  if (name.find("..") != std::string_view::npos || name.find("@{") != std::string_view::npos)
    return false;
  for (char c : name) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || std::strchr("~^:?*[\\", c) != nullptr) return false;
  }
  for (const std::string& part : split(name, '/')) {
    if (part.empty() || part.front() == '.') return false;
    if (ends_with(part, ".lock")) return false;
  }
  return true;
}

bool ref_names_nest(std::string_view a, std::string_view b) {
  const std::string_view& shorter = a.size() < b.size() ? a : b;
  const std::string_view& longer = a.size() < b.size() ? b : a;
  return longer.size() > shorter.size() && longer.compare(0, shorter.size(), shorter) == 0 &&
         longer[shorter.size()] == '/';
}

bool is_valid_tag_name(std::string_view name) {
  return name.size() <= 128 && name != "main" && name != kDefaultRevision &&
         is_valid_ref_name(name);
}

bool is_commit_id_shaped(std::string_view text) {
  return text.size() == 40 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string cache_folder_ambiguity(const RepoId& repo) {
  // OWNER--NAME splits at its first "--" only when the owner has none and does not end in '-'.
  if (repo.owner.find("--") != std::string::npos || ends_with(repo.owner, "-"))
    return fmt::format("the owner '{}' holds \"--\" or ends in '-'", repo.owner);
  // NAME___ reads back only when every run of underscores is all the name's own (at most two) or
  // all written for dots (three per dot).
  for (const char* part : {"___", "_.", "._"}) {
    if (repo.name.find(part) != std::string::npos)
      return fmt::format("the name '{}' holds \"{}\"", repo.name, part);
  }
  return "";
}

namespace {

bool valid_part(std::string_view part) {
  // is_safe_repo_path() also refuses ".git" (in any case), a name that is git's own folder.
  if (part.size() > 128 || !is_safe_repo_path(part)) return false;
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

namespace {

// Characters that reorder or hide text when a name is shown (Trojan Source, CVE-2021-42574): a
// listing would show a name other than the one written to disk.
bool is_bidi_control(char32_t cp) {
  return cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

// Code points that macOS's HFS+ drops from names, so ".g\u200cit" is ".git" there (what git's
// own is_hfs_dotgit() guards against).
bool is_hfs_ignorable(char32_t cp) {
  return cp == 0x200C || cp == 0x200D || (cp >= 0x206A && cp <= 0x206F) || cp == 0xFEFF;
}

// Whether a path segment names git's own folder on some file system: ".git" in any case, also
// with HFS+-ignorable code points inside, trailing dots or spaces (dropped by Windows) or as the
// Windows short name "GIT~1". Written there, a ".git/config" with core.fsmonitor runs a command
// on the next `git status`. ".gitattributes", ".gitignore" and the like are ordinary files.
bool is_git_dir_name(const std::u32string& segment) {
  std::u32string name;
  for (char32_t cp : segment) {
    if (!is_hfs_ignorable(cp)) name.push_back(cp < 0x80 ? std::tolower(static_cast<int>(cp)) : cp);
  }
  while (!name.empty() && (name.back() == '.' || name.back() == ' ')) name.pop_back();
  return name == U".git" || name == U"git~1";
}

}  // namespace

std::string repo_path_problem(std::string_view path) {
  if (path.empty()) return "it is empty";
  if (path.size() > 4096) return "it is longer than 4096 bytes";
  if (path.front() == '/') return "it is absolute";
  for (const std::string& segment : split(path, '/')) {
    if (segment.empty() || segment == "." || segment == "..") {
      return "it has an empty, '.' or '..' segment";
    }
    // A file or folder name no Linux or macOS file system stores: accepted by the hub, such a
    // file could not be downloaded by anyone.
    if (segment.size() > 255) return "a name in it is longer than 255 bytes";
    // Bytes that are not UTF-8 (zip entries in a legacy code page) pass as they are: JSON, the
    // hub's only way in, cannot carry them; the characters checked are the valid ones.
    std::u32string cps;
    for (std::size_t i = 0; i < segment.size();) {
      const std::size_t len = utf8_sequence_length(segment, i);
      const unsigned char u = static_cast<unsigned char>(segment[i]);
      if (len <= 1) {
        cps.push_back(len == 0 ? 0xFFFD : u);
        i += 1;
      } else {
        cps += decode_utf8(std::string_view(segment).substr(i, len));
        i += len;
      }
    }
    for (char32_t cp : cps) {
      if (cp == '\\') return "it contains a backslash";
      if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return "it contains a control character";
      if (is_bidi_control(cp)) {
        return fmt::format("it contains the bidirectional control character U+{:04X}",
                           static_cast<std::uint32_t>(cp));
      }
    }
    if (is_git_dir_name(cps)) {
      return fmt::format("'{}' names git's own folder, which holds its config and hooks",
                         printable_path(segment));
    }
  }
  return {};
}

bool is_safe_repo_path(std::string_view path) { return repo_path_problem(path).empty(); }

void check_repo_path(std::string_view path) {
  const std::string problem = repo_path_problem(path);
  if (!problem.empty()) {
    throw Error(ErrorCode::kUsage,
                fmt::format("unsafe repo path '{}': {}", printable_path(path), problem),
                "repo paths are relative UTF-8, use '/' and contain no '..', '.', empty "
                "segments, names over 255 bytes, '.git' folders, backslashes, control or "
                "bidirectional characters");
  }
}

std::string printable_path(std::string_view path) {
  std::string shown;
  for (std::size_t i = 0; i < path.size();) {
    const std::size_t len = utf8_sequence_length(path, i);
    const unsigned char u = static_cast<unsigned char>(path[i]);
    char32_t cp = 0;
    if (len > 0) cp = decode_utf8(path.substr(i, len))[0];
    if (len == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || is_bidi_control(cp)) {
      // Escaped, so an error message cannot itself reorder or hide what it shows.
      shown += len <= 1 ? fmt::format("\\x{:02x}", u)
                        : fmt::format("\\u{:04x}", static_cast<std::uint32_t>(cp));
      i += len == 0 ? 1 : len;
    } else {
      shown.append(path.substr(i, len));
      i += len;
    }
  }
  return shown;
}

std::optional<std::pair<std::string, std::string>> find_normalization_clash(
    const std::vector<std::string>& paths) {
  // macOS file systems treat canonically equivalent names (e.g. "e\u0301" and "\u00e9") as one
  // file, so two such paths in one repo would overwrite each other there. NFD is the comparison
  // key: equal NFD forms is the definition of canonical equivalence.
  std::unordered_map<std::string, const std::string*> seen;
  for (const std::string& p : paths) {
    if (!is_valid_utf8(p)) continue;  // refused elsewhere by repo_path_problem()
    auto [it, added] = seen.emplace(to_nfd(p), &p);
    if (!added && *it->second != p) return std::make_pair(*it->second, p);
  }
  return std::nullopt;
}

}  // namespace ms::hub
