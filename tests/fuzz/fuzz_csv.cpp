// libFuzzer target: CSV/TSV text -> ms::data::parse_csv, as `ms dataset` reads a csv: file. The
// first byte picks the options (delimiter, header, type inference), the rest is the file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "ms/core/error.h"
#include "ms/data/csv.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  ms::data::CsvOptions options;
  options.delimiter = (data[0] & 1) != 0 ? '\t' : ',';
  options.header = (data[0] & 2) == 0;
  options.infer_types = (data[0] & 4) == 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const ms::data::Table table = ms::data::parse_csv(text, "fuzz.csv", options);
    // Rows of equal width is the Table's promise (a ragged row is an error, not a table).
    for (const auto& row : table.rows) {
      if (row.size() != table.columns.size()) __builtin_trap();
    }
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);  // A documented rejection (kIntegrity naming the line).
  }
  return 0;
}
