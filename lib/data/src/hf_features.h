// Hugging Face datasets' features, as `to_parquet` / `push_to_hub` store them in a Parquet file's
// key-value metadata (key "huggingface": {"info": {"features": {column: feature}}}), applied to
// the columns read from the file.
#pragma once

#include <string>
#include <string_view>

#include "ms/data/table.h"

namespace ms::data::detail {

/// Applies `metadata` (the "huggingface" value) to `table`, as datasets reads the file:
///  - a column of the Json feature (pyarrow's extension<arrow.json>, strings of JSON text) holds
///    JSON values: kJson cells, a JSON null a null (kIntegrity naming `source`, the column and
///    the row for a cell that is not JSON);
///  - a ClassLabel column (or a list of them) gets its class names; the cells stay the ids.
/// Other features change nothing: the Parquet types already are what datasets gives. Metadata
/// that is not JSON of that shape is passed over with a warning naming `source`: the file's
/// columns are then read as their Parquet types say (the rows are still there to read).
void apply_hf_features(Table& table, std::string_view metadata, const std::string& source);

}  // namespace ms::data::detail
