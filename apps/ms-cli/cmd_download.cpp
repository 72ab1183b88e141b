// `ms download OWNER/NAME [FILES...]`: fetch a model or dataset into the modelscope cache.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "ms/core/progress.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/hub/download.h"

namespace ms::cli {
namespace {

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

void run_download(const DownloadCliOptions& o) {
  hub::DownloadOptions options;
  options.type = o.dataset ? hub::RepoType::kDataset : hub::RepoType::kModel;
  options.repo = hub::parse_repo_id(o.repo);
  options.revision = o.revision;
  options.files = o.files;
  options.include = split_patterns(o.include);
  options.exclude = split_patterns(o.exclude);
  if (!o.local_dir.empty()) options.local_dir = o.local_dir;
  if (!o.cache_dir.empty()) options.cache_dir = o.cache_dir;
  options.max_workers = o.max_workers;
  options.offline = o.offline || env_flag("MODELSCOPE_OFFLINE");
  options.dry_run = o.dry_run;
  if (auto parts = env_var("MS_DOWNLOAD_PARTS"))
    options.max_parts = std::max(1, std::atoi(parts->c_str()));
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
    std::printf("%s\n", out.dump(2).c_str());
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
      "download", "Download a model or dataset (or some of its files) into the ModelScope cache");
  c->add_option("repo", o->repo, "OWNER/NAME of the model or dataset")->required();
  c->add_option("files", o->files, "Only these files (repo paths or globs)");
  c->add_flag("--dataset", o->dataset, "The repo is a dataset");
  c->add_option("--revision", o->revision, "Branch or tag (default: master)");
  c->add_option("--include", o->include, "Only paths matching these globs (comma lists allowed)")
      ->expected(1, -1);
  c->add_option("--exclude", o->exclude, "Skip paths matching these globs (comma lists allowed)")
      ->expected(1, -1);
  auto* local = c->add_option("--local-dir", o->local_dir,
                              "Put the files in this folder instead of the cache");
  auto* cache =
      c->add_option("--cache-dir", o->cache_dir, "Cache root to use instead of $MODELSCOPE_CACHE");
  local->excludes(cache);
  c->add_option("--max-workers", o->max_workers, "Parallel connections (default 8)")
      ->check(CLI::Range(1, 64));
  c->add_option("--endpoint", o->endpoint,
                "Hub URL (default: $MODELSCOPE_ENDPOINT, else modelscope.cn)");
  c->add_option("--token", o->token,
                "Access token (default: $MODELSCOPE_API_TOKEN, else ms login's)");
  c->add_flag("--offline", o->offline,
              "Use only the cache; no network (also MODELSCOPE_OFFLINE=1)");
  c->add_flag("--dry-run", o->dry_run, "List the files and bytes to fetch; download nothing");
  c->add_flag("--json", o->json, "Print the local path and the files as JSON on stdout");
  c->footer(
      "Prints the local folder. Exits 4 when the repo, revision or a file does not exist, 5 on\n"
      "network failure, 7 when a file keeps failing its sha256 check (nothing is cached then).");
  c->callback([o] { run_download(*o); });
}

}  // namespace ms::cli
