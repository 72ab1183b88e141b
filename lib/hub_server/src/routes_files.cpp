// Routes that read files: recursive listings (models and paged dataset trees) and file content
// with HTTP Range and the test-only fault injection.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/hub/repo_id.h"
#include "ms/hub/sha256_checkpoints.h"
#include "service.h"

namespace ms::hub_server {
namespace {

using nlohmann::json;

constexpr std::size_t kChunk = 1 << 20;

bool truthy(const std::string& s) { return s == "True" || s == "true" || s == "1"; }

// The entries (files, and folders as "tree" entries) under `root`, recursively or one level
// deep, each given to `visit` as its listing object, one at a time: a repo of 20,000 files lists
// 8 MB of JSON, and a document of all of them at once took 60-140 MB per request.
void for_each_entry(Service& service, const CommitRecord& commit, std::string root, bool recursive,
                    const std::function<void(const json& entry)>& visit) {
  while (!root.empty() && root.front() == '/') root.erase(0, 1);
  while (!root.empty() && root.back() == '/') root.pop_back();
  if (!root.empty() && !hub::is_safe_repo_path(root)) {
    throw HttpError{400, "invalid Root '" + root + "'"};
  }
  const std::string prefix = root.empty() ? "" : root + "/";
  auto tree = service.store.tree(commit);
  std::map<std::string, std::string> messages;  // commit id -> message
  auto message_of = [&](const std::string& id) -> const std::string& {
    auto it = messages.find(id);
    if (it == messages.end()) {
      auto c = service.store.find_commit(id);
      it = messages.emplace(id, c ? c->message : "").first;
    }
    return it->second;
  };
  std::set<std::string> dirs;
  // One listing entry; folders take their newest file's commit, as the hub shows them.
  auto entry = [&](const std::string& path, bool folder, const TreeEntry& e) {
    const std::size_t slash = path.rfind('/');
    visit(json{{"Name", slash == std::string::npos ? path : path.substr(slash + 1)},
               {"Path", path},
               {"Type", folder ? "tree" : "blob"},
               {"Size", folder ? 0 : e.size},
               {"Sha256", folder ? "" : e.sha256},
               {"IsLFS", folder ? false : e.lfs},
               {"Mode", folder ? "40000" : "33188"},
               {"Revision", e.commit_id},
               {"CommitId", e.commit_id},
               {"CommitMessage", message_of(e.commit_id)},
               {"CommittedDate", e.committed_at},
               {"CommitterName", commit.author},
               {"InCheck", false}});
  };
  auto add_dir = [&](const std::string& dir, const TreeEntry& e) {
    if (dirs.insert(dir).second) entry(dir, true, e);
  };
  for (const TreeEntry& e : *tree) {
    if (e.path.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string rest = e.path.substr(prefix.size());
    const std::size_t slash = rest.find('/');
    if (!recursive && slash != std::string::npos) {
      add_dir(prefix + rest.substr(0, slash), e);
      continue;
    }
    if (recursive) {
      for (std::size_t s = rest.find('/'); s != std::string::npos; s = rest.find('/', s + 1)) {
        add_dir(prefix + rest.substr(0, s), e);
      }
    }
    entry(e.path, false, e);
  }
}

// A single "bytes=" range resolved against `size`: [first, last], or nullopt when unsatisfiable.
// Returns {0, size-1} with `whole` set when there is no usable Range header.
struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  bool partial = false;
  bool satisfiable = true;
};

ByteRange parse_range(const std::string& header, std::uint64_t size) {
  ByteRange r;
  r.last = size == 0 ? 0 : size - 1;
  if (header.empty()) return r;
  if (header.rfind("bytes=", 0) != 0 || header.find(',') != std::string::npos) {
    // Other units and multi-range requests: answer with the whole file (allowed by RFC 9110).
    return r;
  }
  const std::string spec = header.substr(6);
  const std::size_t dash = spec.find('-');
  const std::string a = spec.substr(0, dash),
                    b = dash == std::string::npos ? "" : spec.substr(dash + 1);
  auto number = [](const std::string& s, std::uint64_t& out) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    out = std::stoull(s);
    return true;
  };
  r.partial = true;
  std::uint64_t x = 0, y = 0;
  if (dash == std::string::npos) {
    r.satisfiable = false;
  } else if (a.empty()) {  // suffix: the last y bytes
    if (!number(b, y) || y == 0 || size == 0) {
      r.satisfiable = false;
    } else {
      r.first = y >= size ? 0 : size - y;
      r.last = size - 1;
    }
  } else if (!number(a, x) || x >= size || (!b.empty() && (!number(b, y) || y < x))) {
    r.satisfiable = false;
  } else {
    r.first = x;
    r.last = b.empty() ? size - 1 : std::min(y, size - 1);
  }
  return r;
}

struct FileHandle {
  int fd = -1;
  ~FileHandle() {
    if (fd >= 0) ::close(fd);
  }
};

enum class Fault { kNone, kStatus500, kReset, kStall };

Fault next_fault(Service& service) {
  const FaultSpec& f = service.options.faults;
  if (!f.any()) return Fault::kNone;
  const std::uint64_t n = ++service.content_gets;
  if (f.status500 > 0 && n % static_cast<std::uint64_t>(f.status500) == 0) return Fault::kStatus500;
  if (f.reset > 0 && n % static_cast<std::uint64_t>(f.reset) == 0) return Fault::kReset;
  if (f.stall > 0 && n % static_cast<std::uint64_t>(f.stall) == 0) return Fault::kStall;
  return Fault::kNone;
}

// Streams a stored blob as the response, honouring a Range header (206, or 416 naming the size).
// `fault` (tests only) cuts or stalls the body half way.
void stream_blob(Service& service, const httplib::Request& req, httplib::Response& res,
                 const std::string& sha256, const std::string& what, Fault fault) {
  auto file = std::make_shared<FileHandle>();
  const std::string blob = service.store.blob_path(sha256).string();
  file->fd = ::open(blob.c_str(), O_RDONLY | O_CLOEXEC);
  if (file->fd < 0) {
    throw Error(ErrorCode::kIo, fmt::format("blob {} of {} is missing on the server: {}", sha256,
                                            what, std::strerror(errno)));
  }
  // The size on disk is what gets served (a corrupted blob is served as stored).
  const off_t disk_size = ::lseek(file->fd, 0, SEEK_END);
  const std::uint64_t size = disk_size < 0 ? 0 : static_cast<std::uint64_t>(disk_size);
  // If-Range (RFC 9110 section 13.1.5): the range only if the client's copy is this version, by
  // its ETag (the quoted sha256, compared strongly); else the whole file. Without this a client
  // resuming a branch's file after a commit would join the new version's tail to the old head.
  // A date never matches: the hub sends no Last-Modified.
  const bool same_version =
      !req.has_header("If-Range") || req.get_header_value("If-Range") == "\"" + sha256 + "\"";
  const ByteRange range = parse_range(same_version ? req.get_header_value("Range") : "", size);
  res.set_header("Accept-Ranges", "bytes");
  if (!range.satisfiable) {
    res.set_header("Content-Range", fmt::format("bytes */{}", size));
    send_envelope(req, res, 416, nullptr,
                  fmt::format("range '{}' is not satisfiable for {} bytes",
                              req.get_header_value("Range"), size));
    return;
  }
  const std::uint64_t length = size == 0 ? 0 : range.last - range.first + 1;
  if (range.partial) {
    res.status = 206;
    res.set_header("Content-Range", fmt::format("bytes {}-{}/{}", range.first, range.last, size));
  } else {
    res.status = 200;
  }
  res.set_header("X-Sha256", sha256);
  // Only clients that ask get the checkpoints: the header reaches about 1 KiB.
  if (hub::sha256_checkpoint_interval(size) != 0 &&
      req.has_header(hub::kWantSha256CheckpointsHeader)) {
    if (auto checkpoints = service.store.blob_checkpoints(sha256, size)) {
      res.set_header(hub::kSha256CheckpointsHeader, checkpoints->to_text());
    } else {
      service.backfill.request(sha256);  // stored before checkpoints were recorded
    }
  }
  if (length == 0) {
    res.set_content("", "application/octet-stream");
    return;
  }
  const std::uint64_t base = range.first;
  const std::uint64_t middle = length / 2;
  const double stall_seconds = service.options.faults.stall_seconds;
  auto buffer = std::make_shared<std::vector<char>>();
  auto stalled = std::make_shared<bool>(false);
  res.set_content_provider(
      static_cast<std::size_t>(length), "application/octet-stream",
      [file, buffer, base, middle, fault, stall_seconds, stalled, what](
          std::size_t offset, std::size_t want, httplib::DataSink& sink) {
        if (fault != Fault::kNone && offset == middle) {
          if (fault == Fault::kReset) return false;
          if (fault == Fault::kStall && !*stalled) {
            *stalled = true;
            // Tests wait for this line to know that a transfer has reached its stall.
            log::warn("injected fault: {} stalls at byte {} for {} s", what, base + middle,
                      stall_seconds);
            std::this_thread::sleep_for(std::chrono::duration<double>(stall_seconds));
          }
        }
        std::size_t n = std::min(want, kChunk);
        if (fault != Fault::kNone && offset < middle) n = std::min<std::size_t>(n, middle - offset);
        if (buffer->size() < n) buffer->resize(kChunk);
        const ssize_t got = ::pread(file->fd, buffer->data(), n, static_cast<off_t>(base + offset));
        if (got <= 0) return false;  // the blob shrank underneath us: drop the connection
        return sink.write(buffer->data(), static_cast<std::size_t>(got));
      });
}

// Serves one file of a repo at a revision, for the file route (?FilePath=&Revision=) and the
// Hugging Face style resolve routes alike. ETag (the file's sha256, quoted) and X-Repo-Commit
// (the commit the revision resolved to) are what huggingface_hub's file metadata reads.
// `main_is_default`: huggingface_hub's default revision "main" names the default branch when the
// repo has no branch "main" (this hub's default is "master", and no tag may be called "main").
void serve_repo_file(Service& service, const httplib::Request& req, httplib::Response& res,
                     hub::RepoType type, const std::string& owner, const std::string& name,
                     std::string revision, const std::string& path, bool main_is_default) {
  const Caller caller = identify(service, req);
  RepoRecord repo = repo_for_read(service, caller, type, owner, name);
  if (path.empty()) throw HttpError{400, "FilePath is required"};
  if (!hub::is_safe_repo_path(path)) throw HttpError{400, "invalid FilePath '" + path + "'"};
  if (main_is_default && revision == "main" && !service.store.resolve(repo.id, revision)) {
    revision = hub::kDefaultRevision;
  }
  const CommitRecord commit = resolve_revision(service, repo, revision);
  auto tree = service.store.tree(commit);
  auto it = std::lower_bound(tree->begin(), tree->end(), path,
                             [](const TreeEntry& e, const std::string& p) { return e.path < p; });
  if (it == tree->end() || it->path != path) {
    throw HttpError{
        404, fmt::format("file '{}' does not exist in {}/{} at revision '{}'", path, repo.owner,
                         repo.name, revision.empty() ? hub::kDefaultRevision : revision)};
  }
  const TreeEntry entry = *it;
  const Fault fault = req.method == "HEAD" ? Fault::kNone : next_fault(service);
  if (fault == Fault::kStatus500) {
    send_envelope(req, res, 500, nullptr, "injected fault: status 500");
    return;
  }
  res.set_header("ETag", "\"" + entry.sha256 + "\"");
  res.set_header("X-Repo-Commit", commit.id);
  stream_blob(service, req, res, entry.sha256, "'" + path + "'", fault);
}

void serve_content(Service& service, const httplib::Request& req, httplib::Response& res) {
  serve_repo_file(service, req, res, parse_type(req.matches[1]), req.matches[2], req.matches[3],
                  param(req, "Revision"), param(req, "FilePath"), false);
}

// GET/HEAD /{models|datasets}/O/N/resolve/REV/PATH and the Hugging Face model form
// /O/N/resolve/REV/PATH (huggingface_hub's hf_hub_url, which `datasets` uses under modelscope's
// patches). The parts come from the raw request target, each percent-decoded on its own: httplib
// routes on the decoded path, where a revision "release%2Fv1" (huggingface_hub quotes it with
// no safe characters) already reads as two segments.
void serve_resolve(Service& service, const httplib::Request& req, httplib::Response& res) {
  const std::string raw = req.target.substr(0, req.target.find('?'));
  const std::vector<std::string> segments = split(std::string_view(raw).substr(1), '/');
  std::size_t first = 0;  // index of the owner
  hub::RepoType type = hub::RepoType::kModel;
  if (segments.size() > 3 && (segments[0] == "models" || segments[0] == "datasets") &&
      segments[3] == "resolve") {
    type = parse_type(segments[0]);
    first = 1;
  }
  if (segments.size() < first + 5 || segments[first + 2] != "resolve") {
    throw HttpError{404, "not a resolve URL: " + req.path};
  }
  const std::string path =
      join(std::vector<std::string>(segments.begin() + first + 4, segments.end()), "/");
  auto decode = [](const std::string& s) { return httplib::detail::decode_url(s, false); };
  serve_repo_file(service, req, res, type, decode(segments[first]), decode(segments[first + 1]),
                  decode(segments[first + 3]), decode(path), true);
}

}  // namespace

void send_stored_blob(Service& service, const httplib::Request& req, httplib::Response& res,
                      const std::string& sha256, const std::string& what) {
  stream_blob(service, req, res, sha256, what, Fault::kNone);
}

void add_file_routes(httplib::Server& server, Service& service) {
  const std::string repo_re = R"(/api/v1/(models|datasets)/([^/]+)/([^/]+))";

  server.Get(repo_re + "/repo/files", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] {
      const Caller caller = identify(service, req);
      RepoRecord repo = repo_for_read(service, caller, parse_type(req.matches[1]), req.matches[2],
                                      req.matches[3]);
      const CommitRecord commit = resolve_revision(service, repo, param(req, "Revision"));
      // The Files array is written as text entry by entry (see for_each_entry).
      std::string data = "{\"Files\":[";
      bool first = true;
      for_each_entry(service, commit, param(req, "Root"), truthy(param(req, "Recursive", "False")),
                     [&](const json& entry) {
                       if (!first) data += ',';
                       first = false;
                       data += response_text(entry);
                     });
      data += "],\"LatestCommitter\":";
      data += response_text(json{{"CommitterName", commit.author},
                                 {"CommittedDate", commit.created_at},
                                 {"Id", commit.id},
                                 {"Message", commit.message}});
      data += '}';
      send_ok_text(req, res, std::move(data));
    });
  });

  // Paged dataset tree, by numeric hub id (modelscope up to 1.36) or by owner/name (1.40).
  const std::string tree_re = R"(/api/v1/datasets/(?:(\d+)|([^/]+)/([^/]+))/repo/tree)";
  server.Get(tree_re, [&](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] {
      const Caller caller = identify(service, req);
      std::string owner = req.matches[2], name = req.matches[3];
      if (req.matches[1].matched) {
        const RepoRecord found = dataset_for_read_by_id(service, caller, req.matches[1]);
        owner = found.owner;
        name = found.name;
      }
      RepoRecord repo = repo_for_read(service, caller, hub::RepoType::kDataset, owner, name);
      const CommitRecord commit = resolve_revision(service, repo, param(req, "Revision"));
      std::size_t page = 1, size = 100;
      try {
        page = std::stoul(param(req, "PageNumber", "1"));
        size = std::stoul(param(req, "PageSize", "100"));
      } catch (const std::exception&) {
        throw HttpError{400, "PageNumber and PageSize must be positive integers"};
      }
      if (page < 1 || size < 1) throw HttpError{400, "PageNumber and PageSize must be positive"};
      size = std::min<std::size_t>(size, 10000);
      // Only the page's entries are kept; all are counted. (page - 1) * size can wrap for a
      // huge PageNumber: such pages are past the end.
      const std::size_t first = page - 1 > std::numeric_limits<std::size_t>::max() / size
                                    ? std::numeric_limits<std::size_t>::max()
                                    : (page - 1) * size;
      json files = json::array();
      std::size_t total = 0;
      for_each_entry(service, commit, param(req, "Root"), truthy(param(req, "Recursive", "False")),
                     [&](const json& entry) {
                       if (total >= first && files.size() < size) files.push_back(entry);
                       ++total;
                     });
      send_ok(req, res, {{"Files", files}, {"TotalCount", total}});
    });
  });

  server.Get(repo_re + "/repo", [&](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] { serve_content(service, req, res); });
  });
  // httplib answers HEAD with the GET handler, without the body.
  add_routes(server, service,
             {{Method::kGet, R"(/(models|datasets)/[^/]+/[^/]+/resolve/[^/]+/.+)", serve_resolve},
              {Method::kGet, R"(/[^/]+/[^/]+/resolve/[^/]+/.+)", serve_resolve}});
}

}  // namespace ms::hub_server
