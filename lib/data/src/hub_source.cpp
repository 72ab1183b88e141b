// hub: dataset specs: the snapshot provider (the hub client by default, replaceable) and loading
// the snapshot as a folder.
#include "ms/data/hub_source.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <set>

#include "dataset_formats.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/hub/download.h"
#include "ms/hub/sha256.h"

namespace ms::data {
namespace {

std::mutex& provider_mutex() {
  static std::mutex m;
  return m;
}

namespace fs = std::filesystem;

// Whether every listed file is in `dir` with its listed size.
bool holds_listing(const fs::path& dir, const std::vector<hub::DownloadedFile>& files) {
  std::error_code ec;
  for (const hub::DownloadedFile& f : files)
    if (fs::file_size(dir / f.path, ec) != f.size || ec) return false;
  return true;
}

// Each revision folder names its revision in this file, for offline reads (no listing then).
constexpr const char* kRevisionMark = ".ms-revision";

// Offline, the folder to read `revision` from: the newest revision folder an online read made for
// it, unless the repo folder was filled at that revision after it (then the repo folder, as a
// branch that moved on may have left no revision folder). Without such a folder, the repo folder
// (snapshot_download has warned when another revision filled it last).
fs::path offline_revision_folder(const fs::path& dir, const std::string& revision) {
  std::error_code ec;
  std::optional<fs::path> newest;
  fs::file_time_type newest_time{};
  const std::string prefix = dir.filename().string() + "-";
  for (const auto& entry : fs::directory_iterator(dir.parent_path() / ".ms-revisions", ec)) {
    // NAME-<16 hex digits> exactly: the folder is the owner's, shared with NAME-other datasets.
    const std::string name = entry.path().filename().string();
    if (name.size() != prefix.size() + 16 || name.rfind(prefix, 0) != 0 ||
        !std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(),
                     [](unsigned char c) { return std::isxdigit(c) != 0; })) {
      continue;
    }
    const fs::path mark = entry.path() / kRevisionMark;
    std::string named;
    try {
      named = std::string(trim(read_file(mark)));
    } catch (const Error&) {
      continue;
    }
    std::error_code time_ec;
    const auto time = fs::last_write_time(mark, time_ec);
    if (named == revision && !time_ec && (!newest || time > newest_time)) {
      newest = entry.path();
      newest_time = time;
    }
  }
  if (!newest) return dir;
  std::error_code mv_ec;
  const auto filled = fs::last_write_time(dir / ".mv", mv_ec);
  if (!mv_ec && hub::cached_revision(dir) == revision && filled > newest_time) return dir;
  log::debug("{}: offline, revision '{}' is read from {}", dir.string(), revision,
             newest->string());
  return *newest;
}

// The folder holding exactly the files of a download's listing. An indexed cache folder (the
// layout of modelscope up to 1.37, and ms's default) keeps the files of every revision downloaded
// into it, one version of each: a dataset read from it at one revision would find the splits of
// another (v1's train beside master's validation). When the folder holds files the listing lacks,
// the revision's files are given as a folder of hard links to them (copies where a link cannot be
// made) beside the repo's, named by a digest of the listing (paths, sizes, commits), so a made one
// never changes and concurrent loads share it. Offline there is no listing to go by: the folder
// is read as it is (snapshot_download warns when it was last filled at another revision).
fs::path revision_folder(const hub::DownloadResult& result) {
  const fs::path& dir = result.local_path;
  std::set<std::string> listed;
  std::string digest_input;
  for (const hub::DownloadedFile& f : result.files) {
    listed.insert(f.path);
    digest_input += fmt::format("{}\n{}\n{}\n", f.path, f.size, f.revision);
  }
  if (result.files.empty() || result.files.front().revision.empty()) return dir;
  bool foreign = false;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && !foreign && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {  // the cache's bookkeeping (.msc, .mv, temp folders)
      std::error_code status_ec;
      if (it->is_directory(status_ec)) it.disable_recursion_pending();
      continue;
    }
    std::error_code entry;
    if (it->is_regular_file(entry))
      foreign = listed.count(it->path().lexically_relative(dir).generic_string()) == 0;
  }
  if (!foreign) return dir;
  const fs::path view =
      dir.parent_path() / ".ms-revisions" /
      (dir.filename().string() + "-" + hub::sha256_hex(digest_input).substr(0, 16));
  if (holds_listing(view, result.files)) {
    // Read online again: the newest folder of its revision for offline reads (see
    // offline_revision_folder), made before the mark existed or not.
    try {
      write_file_atomic(view / kRevisionMark, result.revision + "\n");
    } catch (const Error&) {
    }
    return view;
  }
  // Built under the repo folder's lock, which downloads into it hold: none changes a file while
  // it is linked. One may have changed a file between the download above and this lock, so each
  // linked file is checked against the listing's digest.
  const hub::ExclusiveLock lock(dir, hub::ExclusiveLock::Target::kFolder);
  const fs::path building = view.string() + fmt::format(".tmp-{}", ::getpid());
  // Every build of this repo's views holds the lock: a building (or stale) folder of this view
  // that is there now is a killed load's, and goes.
  for (fs::directory_iterator it(view.parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    for (const std::string prefix :
         {view.filename().string() + ".tmp-", view.filename().string() + ".stale-"}) {
      std::error_code gone;
      // The prefix and a PID: nothing else is this view's.
      if (name.size() > prefix.size() && name.rfind(prefix, 0) == 0 &&
          name.find_first_not_of("0123456789", prefix.size()) == std::string::npos)
        fs::remove_all(it->path(), gone);
    }
  }
  ec.clear();
  auto fail_building = [&](const std::string& why, const std::string& hint) {
    fs::remove_all(building, ec);
    throw Error(ErrorCode::kIo,
                fmt::format("cannot make the folder of revision '{}' at {}: {}", result.revision,
                            view.string(), why),
                hint);
  };
  for (const hub::DownloadedFile& f : result.files) {
    const fs::path target = building / f.path;
    fs::create_directories(target.parent_path(), ec);
    std::error_code link;
    fs::create_hard_link(dir / f.path, target, link);
    if (link) fs::copy_file(dir / f.path, target, fs::copy_options::overwrite_existing, ec);
    if (ec) fail_building(ec.message(), "check the cache folder's permissions and free space");
    std::error_code size;
    if (fs::file_size(target, size) != f.size || size ||
        (!f.sha256.empty() && hub::sha256_file(target) != f.sha256)) {
      fail_building(fmt::format("{} changed in the cache while it was read", f.path),
                    "another download of this dataset ran at the same time: run again");
    }
  }
  try {
    write_file_atomic(building / kRevisionMark, result.revision + "\n");
  } catch (const Error& e) {
    fail_building(e.what(), "check the cache folder's permissions and free space");
  }
  // A complete view another load published meanwhile stays: it may be read already. An
  // incomplete one (a file deleted by hand) goes, moved aside first so that the name is free.
  if (holds_listing(view, result.files)) {
    fs::remove_all(building, ec);
    return view;
  }
  if (fs::exists(view, ec)) {
    const fs::path stale = view.string() + fmt::format(".stale-{}", ::getpid());
    fs::rename(view, stale, ec);
    fs::remove_all(stale, ec);
  }
  fs::rename(building, view, ec);
  if (ec) {  // another load published it between the check and the rename
    fs::remove_all(building, ec);
    MS_CHECK(holds_listing(view, result.files), ErrorCode::kIo,
             "cannot make the folder of revision '{}' at {}", result.revision, view.string());
  }
  log::debug("{}: revision '{}' read from {} (the cache folder holds other revisions' files)",
             dir.string(), result.revision, view.string());
  return view;
}

// Downloads the dataset repo into the modelscope cache (or finds it there), with the endpoint and
// token from the environment and stored credentials; snapshot_download() honours
// MODELSCOPE_OFFLINE=1 and MS_DOWNLOAD_PARTS.
fs::path download_with_hub_client(const hub::RepoId& repo, const std::string& revision) {
  hub::DownloadOptions options;
  options.type = hub::RepoType::kDataset;
  options.repo = repo;
  options.revision = revision;
  const hub::DownloadResult result =
      hub::snapshot_download(options, hub::resolve_hub_options(std::nullopt, std::nullopt));
  // Offline there is no listing to tell the revision's files by: a revision folder an online read
  // made holds them.
  if (offline_mode() && !revision.empty())
    return offline_revision_folder(result.local_path, revision);
  return revision_folder(result);
}

SnapshotProvider& provider() {
  static SnapshotProvider p = download_with_hub_client;
  return p;
}

}  // namespace

void set_dataset_snapshot_provider(SnapshotProvider p) {
  std::lock_guard<std::mutex> lock(provider_mutex());
  provider() = std::move(p);
}

std::filesystem::path dataset_snapshot(const hub::RepoId& repo, const std::string& revision) {
  SnapshotProvider p;
  {
    std::lock_guard<std::mutex> lock(provider_mutex());
    p = provider();
  }
  if (!p) {
    throw Error(
        ErrorCode::kMissingComponent,
        fmt::format("cannot load hub dataset '{}': hub datasets are not available in this build",
                    repo.str()),
        "download the dataset with the hub client and load its folder (folder:DIR), or use "
        "csv:, jsonl:, imagefolder:, zip: specs");
  }
  return p(repo, revision);
}

namespace detail {

void load_hub(const DatasetSpec& spec, const LoadOptions& options,
              const std::optional<std::string>& subset,
              const std::optional<std::string>& wanted_split, Dataset& ds) {
  // A bare name is MsDataset.load's default namespace's (DEFAULT_DATASET_NAMESPACE, "modelscope"),
  // not the models' "damo".
  const hub::RepoId repo = hub::parse_repo_id(
      spec.location.find('/') == std::string::npos ? "modelscope/" + spec.location : spec.location);
  const std::string revision = options.revision ? *options.revision : spec.revision;
  // ModelScope names a dataset's config file after the repository: <name>.json.
  load_folder(dataset_snapshot(repo, revision), ds, options, subset, wanted_split, repo.name);
  ds.kind = SourceKind::kHub;
}

}  // namespace detail
}  // namespace ms::data
