// In-memory rows of one dataset split: typed columns (int, float, bool, string, json, file, image).
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "ms/core/export.h"

namespace ms::data {

/// Type of a column. CSV types are inferred per column; `kFile` holds a resolved path (ModelScope's
/// `:FILE` columns), `kImage` a path to an image file (imagefolder), `kJson` a nested JSON value.
enum class ColumnType { kNull, kInt, kFloat, kBool, kString, kJson, kFile, kImage };

/// "int", "float", "bool", "string", "json", "file", "image" ("null" for an all-empty column).
MS_API const char* column_type_name(ColumnType type);

/// One cell: null (empty CSV field or missing JSON key), integer, float, bool or text. kJson,
/// kFile and kImage cells hold text (the JSON dump or the path).
using Value = std::variant<std::monostate, std::int64_t, double, bool, std::string>;

/// A column's name and type.
struct Column {
  std::string name;
  ColumnType type = ColumnType::kNull;
  /// Class names by id of a column of Hugging Face's ClassLabel feature (or of a list of them),
  /// as a Parquet file's "huggingface" metadata names them; the cells stay the integer ids.
  std::vector<std::string> class_names = {};
};

/// Rows of equal width; row i, column j is rows[i][j].
struct MS_API Table {
  std::vector<Column> columns;
  std::vector<std::vector<Value>> rows;

  /// Index of a column by name, or -1.
  int column_index(const std::string& name) const;
  /// A 64-bit hash (FNV-1a) of the column names and every cell, kind and value: equal for the
  /// same rows in the same order. Tells whether a resumed run reads the data its checkpoint was
  /// trained on (the same row count is not the same data).
  std::uint64_t content_hash() const;
};

/// Infers one column type from raw text fields and converts them, as pandas' read_csv (so
/// ModelScope and Hugging Face's datasets) types a CSV column: all integers -> kInt (kFloat when
/// a field is missing: pandas has no missing integer), all numbers -> kFloat, all true/false (any
/// case) -> kBool, else kString. Empty fields are nulls; a column of only empty fields is kNull.
/// pandas' missing-value markers (NA, N/A, NULL, None, NaN, ...) are nulls in an int, float or bool
/// column (and a column of nothing else is kNull), and stay text in a text one.
MS_API ColumnType infer_and_convert(std::vector<Value*>& cells);

/// infer_and_convert() for every column of a table whose cells are still text or null.
MS_API void infer_table_types(Table& table);

/// A cell as the value its row wrote. A JSON lines column whose values mix kinds (text and
/// numbers, say) is typed kJson, each cell holding its value's JSON text ("\"hello\"", "5"): a
/// JSON string, integer, float or boolean there is read back as one. Objects, arrays and
/// integers no int64 holds stay their JSON text (the last keep every digit so); cells of other
/// columns are returned as they are.
MS_API Value cell_value(const Value& cell, ColumnType type);

/// A cell as text, what a text input or a path reads: text as it is (a JSON string of a kJson
/// column unquoted, by cell_value), numbers as written, booleans "true" / "false", null "".
MS_API std::string cell_text(const Value& cell, ColumnType type);

/// The JSON kind of a cell that holds a list or an object ("list", "object"), else "": a Parquet
/// list column, a JSON lines value written as [...] or {...}. Such a cell is data, not a text:
/// a text input that read its JSON would tokenize the brackets and quotes.
MS_API std::string cell_structure(const Value& cell, ColumnType type);

}  // namespace ms::data
