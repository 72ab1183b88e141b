// Table datasets: one CSV / TSV / JSON lines / text / Parquet file (csv:, tsv:, jsonl:, text:,
// parquet: specs), and folders of table files named by split (train.csv, test.jsonl,
// data/train-00000-of-00002.parquet).
#include <algorithm>
#include <functional>
#include <map>
#include <system_error>

#include "dataset_formats.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/data/archive.h"
#include "ms/data/image.h"
#include "ms/data/parquet.h"
#include "ms/hub/repo_id.h"
#include "ms/io/resource.h"

namespace fs = std::filesystem;

namespace ms::data::detail {

namespace {

// "a (int), b (string)" (CSV files are typed together afterwards: their names only).
std::string describe_columns(const Table& table, bool names_only) {
  std::vector<std::string> parts;
  for (const Column& c : table.columns)
    parts.push_back(names_only ? c.name : fmt::format("{} ({})", c.name, column_type_name(c.type)));
  return parts.empty() ? "no columns" : join(parts, ", ");
}

// One split's files read by `read_one` and concatenated; they must share their columns (and,
// but for CSV, whose types are inferred over them all afterwards, the columns' types). With
// `max_rows`, the files after the one that reaches it are not read.
Table concatenate(const std::vector<fs::path>& files, bool csv,
                  const std::function<Table(const fs::path&)>& read_one,
                  std::size_t max_rows = SIZE_MAX) {
  Table all;
  for (const auto& f : files) {
    if (all.rows.size() >= max_rows && !(all.columns.empty() && all.rows.empty())) break;
    Table t = read_one(f);
    if (all.columns.empty() && all.rows.empty()) {
      all = std::move(t);
      continue;
    }
    bool same = t.columns.size() == all.columns.size();
    for (std::size_t c = 0; same && c < t.columns.size(); ++c) {
      same = t.columns[c].name == all.columns[c].name &&
             (csv || t.columns[c].type == all.columns[c].type);
    }
    if (!same) {
      throw Error(
          ErrorCode::kIntegrity,
          fmt::format("'{}' has other columns than '{}': {} against {}", f.string(),
                      files[0].string(), describe_columns(t, csv), describe_columns(all, csv)),
          "files of one split must share their columns, in the same order");
    }
    all.rows.insert(all.rows.end(), std::make_move_iterator(t.rows.begin()),
                    std::make_move_iterator(t.rows.end()));
  }
  if (all.rows.size() > max_rows) all.rows.resize(max_rows);
  if (csv) infer_table_types(all);
  return all;
}

Table read_csv_untyped(const fs::path& f, char delimiter, std::size_t max_rows) {
  CsvOptions o;
  o.delimiter = delimiter;
  o.infer_types = false;
  o.max_rows = max_rows;
  return read_csv(f, o);
}

}  // namespace

Table read_tables(const std::vector<fs::path>& files, std::size_t max_rows,
                  std::optional<char> delimiter) {
  // Parquet files are typed: each keeps its types, and the files must agree on them.
  if (std::all_of(files.begin(), files.end(),
                  [](const fs::path& f) { return data_file_extension(f) == ".parquet"; })) {
    return concatenate(
        files, false, [max_rows](const fs::path& f) { return read_parquet(f, max_rows); },
        max_rows);
  }
  bool csv = true;
  for (const auto& f : files) {
    const std::string ext = data_file_extension(f);
    csv = csv && ext != ".jsonl" && ext != ".ndjson" && ext != ".json";
  }
  if (csv && delimiter) return read_tables_as(files, false, *delimiter, max_rows);
  if (files.size() == 1) return read_table(files[0], ',', max_rows);
  return concatenate(
      files, csv,
      [csv, max_rows](const fs::path& f) {
        return csv ? read_csv_untyped(f, data_file_extension(f) == ".tsv" ? '\t' : ',', max_rows)
                   : read_table(f, ',', max_rows);
      },
      max_rows);
}

Table read_tables_as(const std::vector<fs::path>& files, bool json, char delimiter,
                     std::size_t max_rows) {
  return concatenate(
      files, !json,
      [&](const fs::path& f) {
        return json ? read_jsonl(f, max_rows) : read_csv_untyped(f, delimiter, max_rows);
      },
      max_rows);
}

Table read_table(const fs::path& path, char delimiter, std::size_t max_rows) {
  const std::string ext = data_file_extension(path);
  if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") return read_jsonl(path, max_rows);
  CsvOptions options;
  options.delimiter = ext == ".tsv" ? '\t' : delimiter;
  options.max_rows = max_rows;
  return read_csv(path, options);
}

// ModelScope's convention: a column named "x:FILE" holds paths inside the extracted archive.
void resolve_file_columns(Table& table, const fs::path& base, const std::string& source) {
  for (std::size_t c = 0; c < table.columns.size(); ++c) {
    const std::string& name = table.columns[c].name;
    if (name.size() < 5 || name.compare(name.size() - 5, 5, ":FILE") != 0) continue;
    bool all_images = true;
    for (std::size_t r = 0; r < table.rows.size(); ++r) {
      Value& v = table.rows[r][c];
      if (std::holds_alternative<std::monostate>(v)) continue;
      std::string rel = std::visit(
          [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string>)
              return x;
            else if constexpr (std::is_same_v<T, std::monostate>)
              return "";
            else
              return fmt::format("{}", x);
          },
          v);
      if (!hub::is_safe_repo_path(rel)) {
        throw Error(
            ErrorCode::kIntegrity,
            fmt::format("{}: row {}: column '{}' holds unsafe path '{}'", source, r + 1, name, rel),
            "paths in :FILE columns are relative to the extracted archive, without '..'");
      }
      const fs::path full = base / rel;
      std::error_code ec;
      if (!fs::exists(full, ec)) {
        throw Error(ErrorCode::kNotFound,
                    fmt::format("{}: row {}: file '{}' of column '{}' is not in '{}'", source,
                                r + 1, rel, name, base.string()),
                    "check that the split's archive matches its meta file");
      }
      all_images = all_images && has_image_extension(rel);
      v = full.string();
    }
    // A column the meta file names "image:FILE" holds images whatever their names end in (one
    // ".jfif" row made the whole column plain files, and `ms dataset iter` decoded none); a row
    // that is no image then fails as that row.
    const bool named_image = ascii_lower(name.substr(0, name.size() - 5)) == "image";
    table.columns[c].type =
        (named_image || all_images) && !table.rows.empty() ? ColumnType::kImage : ColumnType::kFile;
  }
}

void load_table_file(const DatasetSpec& spec, const LoadOptions& options, Dataset& ds) {
  MS_CHECK(!io::is_url(spec.location) || io::scheme_of(spec.location) == "file", ErrorCode::kUsage,
           "{} datasets are read from local files; got URL '{}'", source_kind_name(spec.kind),
           spec.location);
  const fs::path path = io::local_path_of(spec.location);
  Split split;
  split.name = split.selection = "train";
  if (spec.kind == SourceKind::kText) {
    split.table = read_text_lines(path, options.max_rows);
  } else if (spec.kind == SourceKind::kParquet) {
    split.table = read_parquet(path, options.max_rows);
    resolve_file_columns(split.table, path.parent_path(), path.string());
  } else if (spec.kind == SourceKind::kJsonl) {
    split.table = read_jsonl(path, options.max_rows);
    resolve_file_columns(split.table, path.parent_path(), path.string());
  } else {
    CsvOptions csv;
    csv.delimiter = options.delimiter ? *options.delimiter : spec.delimiter;
    csv.header = options.header;
    csv.max_rows = options.max_rows;
    split.table = read_csv(path, csv);
    resolve_file_columns(split.table, path.parent_path(), path.string());
  }
  ds.splits.push_back(std::move(split));
  ds.root = path;
}

bool load_table_folder(const fs::path& dir, Dataset& ds, std::size_t max_rows,
                       std::optional<char> delimiter) {
  const std::optional<DataFiles> found = find_data_files(dir);
  if (!found || found->format == "imagefolder") return false;
  const std::string& format = found->format;
  const std::string example = found->splits.front().second.empty()
                                  ? std::string()
                                  : " (e.g. " + found->splits.front().second.front() + ")";
  if (format != "csv" && format != "tsv" && format != "json" && format != "parquet") {
    throw Error(
        ErrorCode::kMissingComponent,
        fmt::format("{}: its data files are {} data{}, which ms does not read", dir.string(),
                    format == "zip" ? "zip archives of" : format, example),
        "ms reads CSV, TSV, JSON and JSON lines tables (gzip-compressed too), Parquet files "
        "and image folders: convert the files, or name the readable ones in a dataset card's "
        "configs (README.md)");
  }
  for (const auto& [name, relative] : found->splits) {
    MS_CHECK(!relative.empty(), ErrorCode::kIntegrity, "{}: split '{}' has no {} files",
             dir.string(), name, format);
    std::vector<fs::path> paths;
    for (const std::string& f : relative) {
      const fs::path path = dir / f;
      // Compression is told by the first bytes (read_data_file): gzip is read, others named.
      paths.push_back(path);
    }
    Split split;
    split.name = split.selection = name;
    // One format for the split, as HF reads it: a majority of .tsv reads its .csv files with
    // tabs too.
    if (format == "parquet") {
      // Typed files: each keeps its types, and the shards of a split must agree on them.
      split.table = concatenate(
          paths, false, [max_rows](const fs::path& f) { return read_parquet(f, max_rows); },
          max_rows);
    } else {
      split.table = read_tables_as(paths, format == "json",
                                   delimiter.value_or(format == "tsv" ? '\t' : ','), max_rows);
    }
    // File columns name files beside the table, as for a csv: spec.
    resolve_file_columns(split.table, paths[0].parent_path(), paths[0].string());
    ds.splits.push_back(std::move(split));
  }
  ds.kind = format == "parquet" ? SourceKind::kParquet
            : format == "json"  ? SourceKind::kJsonl
                                : SourceKind::kCsv;
  ds.root = dir;
  return true;
}

}  // namespace ms::data::detail
