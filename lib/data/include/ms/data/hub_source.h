// The seam between datasets and the hub client: turns OWNER/NAME@REV into a local snapshot folder.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "ms/core/export.h"
#include "ms/hub/repo_id.h"

namespace ms::data {

/// Downloads (or finds in the cache) a dataset repository at `revision` ("" = default branch) and
/// returns the local folder holding its files. Errors are ms::Error (kNotFound, kNetwork, ...).
using SnapshotProvider =
    std::function<std::filesystem::path(const hub::RepoId& repo, const std::string& revision)>;

/// Replaces the provider used for `hub:` dataset specs. The default downloads through the hub
/// client (ms::hub::snapshot_download, endpoint and token from the environment). An empty
/// function removes it, after which hub: specs fail with kMissingComponent.
MS_API void set_dataset_snapshot_provider(SnapshotProvider provider);

/// The local snapshot folder of a hub dataset through the installed provider; without one,
/// ms::Error(kMissingComponent) saying hub datasets are not available in this build.
MS_API std::filesystem::path dataset_snapshot(const hub::RepoId& repo, const std::string& revision);

}  // namespace ms::data
