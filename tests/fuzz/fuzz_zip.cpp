// libFuzzer target: a zip archive -> ms::data::extract_zip (zip: datasets), which lists and checks
// every entry (names, links, sizes, limits) before and while extracting. Each input is written to
// a private temporary folder, extracted under small limits and removed.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_check.h"
#include "ms/core/error.h"
#include "ms/data/archive.h"

namespace fs = std::filesystem;

namespace {

const fs::path& work_dir() {
  static const fs::path dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "ms-fuzz-zip-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    return fs::path(tmpl);
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fs::path archive = work_dir() / "in.zip";
  const fs::path dest = work_dir() / "out";
  {
    std::ofstream out(archive, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  ms::data::ExtractLimits limits;
  limits.max_bytes = 1 << 20;
  limits.max_entries = 256;
  try {
    ms::data::extract_zip(archive, dest, limits);
    // Whatever was extracted stays inside `dest` (links were checked not to climb out).
    for (const auto& entry : fs::recursive_directory_iterator(dest)) {
      const std::string rel = entry.path().lexically_relative(dest).string();
      if (rel.empty() || rel.rfind("..", 0) == 0) __builtin_trap();
    }
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);  // A documented rejection (kIntegrity naming the archive and entry).
  }
  std::error_code ec;
  fs::remove_all(dest, ec);
  // A failed extraction leaves nothing behind (only the input file may remain).
  for (const auto& entry : fs::directory_iterator(work_dir())) {
    if (entry.path() != archive) __builtin_trap();
  }
  return 0;
}
