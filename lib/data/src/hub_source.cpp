// hub: dataset specs: the snapshot provider (the hub client by default, replaceable) and loading
// the snapshot as a folder.
#include "ms/data/hub_source.h"

#include <mutex>

#include "dataset_formats.h"
#include "ms/core/error.h"
#include "ms/core/settings.h"
#include "ms/hub/download.h"

namespace ms::data {
namespace {

std::mutex& provider_mutex() {
  static std::mutex m;
  return m;
}

// Downloads the dataset repo into the modelscope cache (or finds it there), with the endpoint and
// token from the environment and stored credentials; snapshot_download() honours
// MODELSCOPE_OFFLINE=1 and MS_DOWNLOAD_PARTS.
std::filesystem::path download_with_hub_client(const hub::RepoId& repo,
                                               const std::string& revision) {
  hub::DownloadOptions options;
  options.type = hub::RepoType::kDataset;
  options.repo = repo;
  options.revision = revision;
  return hub::snapshot_download(options, hub::resolve_hub_options(std::nullopt, std::nullopt))
      .local_path;
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
  const hub::RepoId repo = hub::parse_repo_id(spec.location);
  const std::string revision = options.revision ? *options.revision : spec.revision;
  // ModelScope names a dataset's config file after the repository: <name>.json.
  load_folder(dataset_snapshot(repo, revision), ds, options, subset, wanted_split, repo.name);
  ds.kind = SourceKind::kHub;
}

}  // namespace detail
}  // namespace ms::data
