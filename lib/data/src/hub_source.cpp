// Holder of the hub snapshot provider used by hub: dataset specs.
#include "ms/data/hub_source.h"

#include <mutex>

#include "ms/core/error.h"

namespace ms::data {
namespace {

std::mutex& provider_mutex() {
  static std::mutex m;
  return m;
}

SnapshotProvider& provider() {
  static SnapshotProvider p;
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

}  // namespace ms::data
