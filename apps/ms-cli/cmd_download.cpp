// `ms download OWNER/NAME [FILES...]`: fetch a model or dataset into the modelscope cache.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "ms/core/progress.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/hub/download.h"

namespace ms::cli {
namespace {

// The folder the user named, absolute, without "." parts ("./bert" was printed as
// "/work/./bert"); ".." stays, since a symlink before it makes its lexical removal wrong.
std::filesystem::path absolute_path(const std::string& given) {
  const std::filesystem::path path = std::filesystem::absolute(given);
  for (const auto& part : path)
    if (part == "..") return path;
  std::filesystem::path normal = path.lexically_normal();
  // "." and "dir/" leave a trailing separator ("/work/"), which Python's client does not print.
  if (!normal.has_filename() && normal.has_relative_path()) normal = normal.parent_path();
  return normal;
}

struct DownloadCliOptions {
  std::string repo;
  std::vector<std::string> files;
  bool dataset = false;
  std::string revision;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::string local_dir;
  std::string cache_dir;
  int max_workers = 8;
  std::string endpoint;
  std::string token;
  bool offline = false;
  bool dry_run = false;
  bool json = false;
};

// The --json document of a run a signal (SIGINT, SIGTERM, SIGHUP) stopped says what to do.
constexpr const char* kDownloadInterruptedHint =
    "run the same command again: the download resumes where it stopped (files already whole are "
    "kept, a partial file goes on from its last byte)";

void run_download(const DownloadCliOptions& o) {
  // Before any thread starts (the transfers' workers inherit the blocked signals): as ms
  // train, a stop by a signal still prints the one --json document, code "interrupted".
  if (o.json) report_as_json(kDownloadInterruptedHint);
  hub::DownloadOptions options;
  options.type = o.dataset ? hub::RepoType::kDataset : hub::RepoType::kModel;
  options.repo = hub::parse_repo_id(o.repo);
  options.revision = o.revision;
  options.files = o.files;
  options.include = split_patterns(o.include);
  options.exclude = split_patterns(o.exclude);
  // Absolute, so that the path printed (local_path) is one a script can use from anywhere, as
  // the default cache's is.
  if (!o.local_dir.empty()) options.local_dir = absolute_path(o.local_dir);
  if (!o.cache_dir.empty()) options.cache_dir = absolute_path(o.cache_dir);
  options.max_workers = o.max_workers;
  options.offline = o.offline;
  options.dry_run = o.dry_run;
  const hub::HubOptions hub =
      hub::resolve_hub_options(optional_string(o.endpoint), optional_string(o.token));
  const hub::DownloadResult result = hub::snapshot_download(options, hub);

  std::size_t to_fetch = 0;
  for (const auto& f : result.files) to_fetch += f.cached ? 0 : 1;
  if (o.json) {
    nlohmann::ordered_json out;
    out["local_path"] = result.local_path.string();
    out["repo"] = options.repo.str();
    out["revision"] = result.revision;
    if (o.dry_run) out["dry_run"] = true;
    out["files_to_fetch"] = to_fetch;
    out["bytes_to_fetch"] = result.bytes_to_fetch;
    out["bytes_cached"] = result.bytes_cached;
    nlohmann::ordered_json files = nlohmann::ordered_json::array();
    for (const auto& f : result.files) {
      files.push_back({{"path", f.path}, {"size", f.size}, {"cached", f.cached}});
    }
    out["files"] = files;
    print_json_document(json_text(out, 2));
    return;
  }
  if (o.dry_run) {
    std::printf("Will download %zu file(s) (out of %zu) totalling %s; %s already cached.\n",
                to_fetch, result.files.size(),
                Progress::format_bytes(static_cast<double>(result.bytes_to_fetch)).c_str(),
                Progress::format_bytes(static_cast<double>(result.bytes_cached)).c_str());
    for (const auto& f : result.files) {
      std::printf("%-8s %12s  %s\n", f.cached ? "cached" : "fetch",
                  Progress::format_bytes(static_cast<double>(f.size)).c_str(), f.path.c_str());
    }
    return;
  }
  std::printf("%s\n", result.local_path.string().c_str());
}

}  // namespace

std::vector<std::string> split_patterns(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const std::string& v : values) {
    for (std::string& piece : split(v, ',')) {
      if (!piece.empty()) out.push_back(piece);
    }
  }
  return out;
}

std::optional<std::string> optional_string(const std::string& value) {
  if (value.empty()) return std::nullopt;
  return value;
}

void add_download_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto o = std::make_shared<DownloadCliOptions>();
  CLI::App* c = app.add_subcommand(
      "download",
      "Download a model or dataset (or some of its files) into the ModelScope cache or a folder");
  c->add_option("repo", o->repo,
                "OWNER/NAME of the model or dataset (a bare NAME means damo/NAME, as in "
                "modelscope)")
      ->required();
  c->add_option("files", o->files,
                "Only these files: repo paths or globs (each must match; else exit 4)");
  c->add_flag("--dataset", o->dataset, "The repo is a dataset (default: a model)");
  c->add_option("--revision", o->revision,
                std::string("Branch or tag (default: ") + hub::kDefaultRevision + ")");
  c->add_option("--include", o->include,
                "Only paths matching these globs, e.g. '*.json' 'onnx/*' (comma lists allowed; "
                "matching nothing is an error, exit 4)")
      ->expected(1, -1);
  c->add_option("--exclude", o->exclude, "Skip paths matching these globs (comma lists allowed)")
      ->expected(1, -1);
  auto* local = c->add_option("--local-dir", o->local_dir,
                              "Put the files in this folder (as laid out in the repo) instead "
                              "of the cache; excludes --cache-dir")
                    ->check(non_empty("a folder (leave out --local-dir for the cache)"));
  auto* cache =
      c->add_option("--cache-dir", o->cache_dir,
                    "Cache root instead of $MODELSCOPE_CACHE/models (files go to DIR/OWNER/NAME, "
                    "or DIR/models/OWNER--NAME/snapshots/REV in the snapshot layout)")
          ->check(non_empty("a folder (leave out --cache-dir for $MODELSCOPE_CACHE)"));
  local->excludes(cache);
  c->add_option("--max-workers", o->max_workers, "Parallel connections, 1-64 (default 8)")
      ->check(CLI::Range(1, 64));
  c->add_option("--endpoint", o->endpoint, kEndpointHelp);
  c->add_option("--token", o->token, kTokenHelp);
  c->add_flag("--offline", o->offline,
              "Use only what is cached; make no network call (also MODELSCOPE_OFFLINE=1)");
  c->add_flag("--dry-run", o->dry_run,
              "List each file with its size and whether it is cached, and the bytes to fetch; "
              "download nothing");
  c->add_flag("--json", o->json,
              "Print one JSON object on stdout: local_path, repo, revision, files_to_fetch, "
              "bytes_to_fetch, bytes_cached, files [{path, size, cached}] (and dry_run: true); "
              "on failure, or a stop by SIGINT/SIGTERM/SIGHUP (then exit_code 128 + the signal), "
              "{\"error\": {code, exit_code, message, hint, context}}");
  c->footer(
      std::string(
          "Prints the local folder on stdout. Files already cached at this revision are not\n"
          "fetched again; an interrupted (or killed) download resumes where it stopped.\n"
          "Both of Python modelscope's cache layouts are read and written: OWNER/NAME with a\n"
          ".msc index (1.37 and older; every version reads it) and OWNER--NAME/snapshots/REV\n"
          "(1.38 and newer). A repo stays in the layout it is cached in; a new one follows the\n"
          "layout the cache already uses (MS_CACHE_LAYOUT=indexed|snapshots forces one).\n"
          "\n"
          "Examples:\n"
          "  ms download damo/nlp_structbert_sentiment-classification_chinese-base\n"
          "  ms download alice/bert config.json '*.safetensors' --local-dir ./bert\n"
          "  ms download alice/corpus --dataset --include 'train/*' --dry-run --json\n"
          "\n"
          "Environment: MODELSCOPE_CACHE (cache root, default ~/.cache/modelscope/hub),\n"
          "MODELSCOPE_ENDPOINT / MODELSCOPE_DOMAIN, MODELSCOPE_API_TOKEN, MODELSCOPE_OFFLINE=1,\n"
          "MS_CACHE_LAYOUT (auto|indexed|snapshots),\n"
          "MS_DOWNLOAD_PARTS (ranged parts per big file), MS_HUB_RETRIES (tries per request,\n"
          "default 6), MS_HUB_STALL_TIMEOUT (seconds without data before a retry, default 30),\n"
          "REQUESTS_CA_BUNDLE (CA file for a hub with a private certificate), MS_NO_PROGRESS=1,\n"
          "MS_HASH_LANES (threads hashing one big file from ms hub serve's sha256 checkpoints;\n"
          "default: cores - 2, at most 4, at least 2 for ranged parts; 1: one chain).\n"
          "A progress bar (bytes, and a line per file) is drawn on stderr only when it is a\n"
          "terminal; -v also logs each retry and resume.\n"
          "\n") +
      kExitCodesHelp);
  c->callback([o] { run_download(*o); });
}

}  // namespace ms::cli
