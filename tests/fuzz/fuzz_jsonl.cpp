// libFuzzer target: JSON lines text -> ms::data::parse_json_lines (the one JSONL reader: datasets,
// `ms infer` inputs, --resume outputs) and parse_jsonl (its table form for `ms dataset`).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "ms/core/error.h"
#include "ms/data/csv.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Bad lines are reported in JsonLine::error, never thrown.
  for (const ms::data::JsonLine& line : ms::data::parse_json_lines(text)) {
    if (line.line == 0 || (!line.error.empty() && !line.value.is_null())) __builtin_trap();
  }
  try {
    const ms::data::Table table = ms::data::parse_jsonl(text, "fuzz.jsonl");
    for (const auto& row : table.rows) {
      if (row.size() != table.columns.size()) __builtin_trap();
    }
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);  // A documented rejection (kIntegrity naming the line).
  }
  return 0;
}
