// Zip datasets: an archive, local or a URL (downloaded once), extracted once into the cache and
// loaded as a folder; also the archives and URLs that dataset configs name per split.
#include <algorithm>
#include <fstream>
#include <system_error>

#include "dataset_formats.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/data/archive.h"
#include "ms/hub/repo_id.h"
#include "ms/hub/sha256.h"
#include "ms/io/resource.h"

namespace fs = std::filesystem;

namespace ms::data::detail {

namespace {

// Whether `tail` (a file's last bytes) holds a zip's end-of-central-directory record, which
// comes last in every complete archive (after at most a 64 KiB comment): a download cut short
// by a server that closed early, with no Content-Length to tell, lacks it.
bool ends_like_a_zip(std::string_view tail) {
  constexpr std::string_view kEndRecord("PK\x05\x06", 4);
  constexpr std::size_t kEndRecordSize = 22;
  if (tail.size() < kEndRecordSize) return false;
  return tail.rfind(kEndRecord, tail.size() - kEndRecordSize) != std::string_view::npos;
}

constexpr std::size_t kZipTailBytes = 22 + 65535;

// The last kZipTailBytes of a file (a cached archive may be gigabytes: only its end is read).
std::string file_tail(const fs::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  const std::streamoff size = in.tellg();
  const std::streamoff start =
      std::max<std::streamoff>(0, size - static_cast<std::streamoff>(kZipTailBytes));
  in.seekg(start);
  std::string tail(static_cast<std::size_t>(size - start), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  tail.resize(static_cast<std::size_t>(std::max<std::streamsize>(0, in.gcount())));
  return tail;
}

}  // namespace

fs::path fetch_to_cache(const std::string& location, const fs::path& cache_root) {
  if (!io::is_url(location) || io::scheme_of(location) == "file")
    return io::local_path_of(location);
  const fs::path target =
      cache_root / "downloads" / (hub::sha256_hex(location).substr(0, 16) + ".zip");
  std::error_code ec;
  if (fs::is_regular_file(target, ec)) {
    if (ends_like_a_zip(file_tail(target))) {
      log::info("reusing downloaded {} at {}", location, target.string());
      return target;
    }
    // A cut-short download an older ms kept: fetched again rather than failing for good.
    log::warn("{}: the cached download {} is incomplete; downloading it again", location,
              target.string());
  }
  log::info("downloading {}", location);
  const std::string bytes = io::read_resource(location);
  if (!ends_like_a_zip(std::string_view(bytes).substr(
          bytes.size() > kZipTailBytes ? bytes.size() - kZipTailBytes : 0))) {
    // A body cut short is refused by the download itself where the server said its length; one
    // that starts as a zip and lacks its end was still cut (a server that said none), and may
    // come whole next time. Anything else is what the URL serves (a login page): no retry
    // mends that.
    if (bytes.size() < 4 || bytes.compare(0, 4, "PK\x03\x04") == 0) {
      throw Error(ErrorCode::kNetwork,
                  fmt::format("the download of {} ({} bytes) is no complete zip archive: it has "
                              "no end record, so the server closed the connection early",
                              location, bytes.size()),
                  "try again; nothing was cached");
    }
    throw Error(ErrorCode::kIntegrity,
                fmt::format("{} serves no zip archive: its {} bytes start with {:?}", location,
                            bytes.size(), bytes.substr(0, 16)),
                "check the URL (a page asking to log in, or an error page, is served with "
                "status 200 by some sites); nothing was cached");
  }
  write_file_atomic(target, bytes);
  return target;
}

fs::path materialize_file(const fs::path& folder, const std::string& file,
                          const fs::path& cache_root, const std::string& source) {
  fs::path local;
  if (io::is_url(file)) {
    local = fetch_to_cache(file, cache_root);
  } else {
    MS_CHECK(hub::is_safe_repo_path(file), ErrorCode::kConfig,
             "{}: file '{}' must be a relative path inside the dataset", source, file);
    local = folder / file;
  }
  if (lower_extension(local) == ".zip") {
    MS_CHECK(fs::exists(local), ErrorCode::kNotFound, "{}: archive '{}' does not exist", source,
             local.string());
    return extract_zip_cached(local, cache_root / "extracted");
  }
  MS_CHECK(fs::is_directory(local), ErrorCode::kNotFound, "{}: data folder '{}' does not exist",
           source, local.string());
  return local;
}

// A folder whose only content is one folder (zips often wrap everything in a top folder).
fs::path unwrap_single_folder(fs::path dir) {
  for (int depth = 0; depth < 4; ++depth) {
    std::vector<fs::path> entries;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!is_hidden(e.path()) && e.path().filename() != "__MACOSX") entries.push_back(e.path());
    }
    if (entries.size() != 1 || !fs::is_directory(entries[0]) ||
        !split_name_of(entries[0].filename().string()).empty()) {
      return dir;
    }
    dir = entries[0];
  }
  return dir;
}

void load_zip(const DatasetSpec& spec, const LoadOptions& options,
              const std::optional<std::string>& subset,
              const std::optional<std::string>& wanted_split, Dataset& ds) {
  const fs::path zip = fetch_to_cache(spec.location, options.cache_root);
  MS_CHECK(fs::exists(zip), ErrorCode::kNotFound, "zip dataset '{}' does not exist", spec.location);
  const fs::path dir = extract_zip_cached(zip, options.cache_root / "extracted");
  // The folder inside decides how rows are read; the dataset still reports itself as a zip.
  load_folder(unwrap_single_folder(dir), ds, options, subset, wanted_split);
  ds.kind = SourceKind::kZip;
}

}  // namespace ms::data::detail
