// libFuzzer target: a .parquet file -> ms::data::parse_parquet (footer, schema, pages, levels,
// encodings, decompression). Every input is a table or a documented rejection.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "ms/core/error.h"
#include "ms/data/parquet.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view file(reinterpret_cast<const char*>(data), size);
  try {
    const ms::data::Table table = ms::data::parse_parquet(file, "fuzz.parquet");
    // What the rest of ms relies on: every row as wide as the columns.
    for (const auto& row : table.rows)
      if (row.size() != table.columns.size()) __builtin_trap();
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);  // kIntegrity (malformed) or kMissingComponent (not read)
  }
  return 0;
}
