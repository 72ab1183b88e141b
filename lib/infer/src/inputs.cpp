#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/core/utf8.h"
#include "ms/data/archive.h"
#include "ms/data/csv.h"
#include "ms/data/dataset.h"
#include "ms/infer/job.h"

namespace ms::infer {
namespace {

std::string lower_ext(const std::filesystem::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

// An input file's text, decoded as a data file is (data::decode_data_file): gzip decompressed and
// UTF-16 refused by the first bytes, whatever the name, as --dataset and .csv inputs read them (a
// UTF-16 .txt became made-up inputs with exit 0). Whatever standard input is (a terminal, a pipe,
// a socket of inetd or systemd) is read to its end first (refuse_device() kept out the others).
std::string read_input_text(const std::filesystem::path& file) {
  return data::decode_data_file(read_file(file), file);
}

// How an input file is read: `given` (--input-format), else by the extension.
std::string input_file_format(const std::filesystem::path& file, const std::string& given) {
  if (!given.empty()) return given;
  const std::string ext = lower_ext(file);
  if (ext == ".jsonl" || ext == ".ndjson" || ext == ".json") return "jsonl";
  if (ext == ".csv" || ext == ".tsv") return ext.substr(1);
  return "txt";
}

// The fields (JSON keys, table columns) an input's text and second sentence are read from, the
// first present winning: the model's own names (InputSpec::text_field, pair_field) before the
// default names. A model that names its text column `review` reads it from a dataset with a
// `text` column too, as ms train and ms eval do on the same configuration.
struct FieldNames {
  std::vector<std::string> text, pair;
  std::string named_text, named_pair, source;

  explicit FieldNames(const InputSpec& spec)
      : named_text(spec.text_field), named_pair(spec.pair_field), source(spec.fields_source) {
    if (!named_text.empty()) text.push_back(named_text);
    for (const char* k : kTextFields)
      if (k != named_text) text.emplace_back(k);
    if (!named_pair.empty()) pair.push_back(named_pair);
    for (const char* k : kPairFields)
      if (k != named_pair) pair.emplace_back(k);
  }

  // Says once that the model's name for a field is not in `input`, which is read from `used`
  // instead: the default names are a guess, which the user may want to correct.
  void warn_named_missing(const std::string& input, const std::string& named, const char* key,
                          const std::string& used) const {
    log::warn("{}: no field '{}' ({} in {}); reading '{}' instead", input, named, key, source,
              used);
  }
};

// The first of `keys` present as a string in `obj`; its key goes into `read`.
const Json* pick(const Json& obj, const std::vector<std::string>& keys,
                 std::set<std::string>& read) {
  for (const std::string& k : keys) {
    auto it = obj.find(k);
    if (it != obj.end() && it->is_string()) {
      read.insert(k);
      return &*it;
    }
  }
  return nullptr;
}

// Whether `d` is a whole number a double need not hold exactly: past 2^53 an integer read as a
// float (a JSON integer beyond 64 bits, a type-inferring reader's column) may have been another.
bool inexact_integer(double d) {
  constexpr double kExactLimit = 9007199254740992.0;  // 2^53
  return std::isfinite(d) && std::fabs(d) >= kExactLimit && std::trunc(d) == d;
}

// A record's "id" as the input's id: a float that cannot be the integer written (a JSON integer
// beyond 64 bits is read as a float) is an error, as for a dataset's id column; it came out
// rewritten ("1.2345678901234568e+29"), and two such ids could become one.
Json record_id(const Json& id, const std::string& where) {
  if (id.is_number_float() && inexact_integer(id.get<double>())) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: id {} is an integer too large to keep exactly", where, id.dump()),
                "write such ids as text (quoted JSON strings)");
  }
  return id;
}

// One record of JSON lines or of a JSON array: a string (the text), or an object with a text (or
// path) field, an optional "id" and a second-sentence field. `where` names it in errors ("F line
// 3"); `index` is its id when it has none. The object's keys an input is made from go into `read`.
PipelineInput input_from_json(const Json& j, std::size_t index, const std::string& where,
                              const std::filesystem::path& file, const FieldNames& fields,
                              std::set<std::string>& read) {
  PipelineInput in;
  in.id = index;
  if (j.is_string()) {
    in.text = j.get<std::string>();
  } else if (j.is_object()) {
    if (j.contains("id") && !j["id"].is_null()) {
      in.id = record_id(j["id"], where);
      read.insert("id");
    }
    if (const Json* t = pick(j, fields.text, read)) {
      in.text = t->get<std::string>();
    } else if (const Json* p = pick(j, {"path", "image", "file"}, read)) {
      in.path = p->get<std::string>();
      if (in.path.is_relative()) in.path = file.parent_path() / in.path;
    } else if (const auto named = std::find_if(
                   fields.text.begin(), fields.text.end(),
                   [&j](const std::string& k) { return j.contains(k) && !j[k].is_null(); });
               named != fields.text.end()) {
      in.invalid = fmt::format("{}: field '{}' is {}, not a string", where, *named,
                               Config::type_name(j[*named]));
      read.insert(*named);  // named here; the warning about unread fields need not repeat it
    } else {
      in.invalid = fmt::format("{}: no text field (expected one of {}, or path/image)", where,
                               join(fields.text, ", "));
    }
    if (const Json* p = pick(j, fields.pair, read)) {
      in.text_pair = p->get<std::string>();
    } else if (const auto named = std::find_if(
                   fields.pair.begin(), fields.pair.end(),
                   [&j](const std::string& k) { return j.contains(k) && !j[k].is_null(); });
               named != fields.pair.end()) {
      // Dropped, the pair was scored as one sentence with only a warning about an unread field.
      if (in.invalid.empty()) {
        in.invalid = fmt::format("{}: field '{}' is {}, not a string", where, *named,
                                 Config::type_name(j[*named]));
      }
      read.insert(*named);
    }
  } else {
    in.invalid =
        fmt::format("{}: expected a JSON object or string, got {}", where, Config::type_name(j));
  }
  return in;
}

// Says once which fields or columns of an input file no input is read from: a misspelled
// second-sentence field ("txet_pair") would otherwise turn every pair into a single sentence
// without a word, and of two text fields ("text" and "sentence") only the first is read.
void warn_unread(const std::filesystem::path& file, const std::set<std::string>& unread,
                 const char* what, const FieldNames& fields) {
  if (unread.empty()) return;
  log::warn(
      "{}: {} not read: {} (text: the first of {}; second sentence: the first of {}; files: "
      "path, image, file; and id)",
      file.string(), what, join(std::vector<std::string>(unread.begin(), unread.end()), ", "),
      join(fields.text, ", "), join(fields.pair, ", "));
}

// JSON lines (.jsonl, .ndjson, .json), one JSON array of records, or one (pretty-printed) JSON
// object: the file's first character decides between lines and an array
// (data::holds_json_array), as for `--dataset jsonl:F`, not its name; a file whose lines are not
// JSON but whose whole text is one object is that one record.
void read_json_records(const std::filesystem::path& file, const FieldNames& fields,
                       std::vector<PipelineInput>& out) {
  const std::string text = read_input_text(file);
  std::set<std::string> unread;
  bool warned_text = false, warned_pair = false;
  // Says once per file that a record lacks a field the model names (names[0]) and another of
  // `names` was read.
  auto warn_if_named_missing = [&](const Json& record, const std::string& where,
                                   const std::set<std::string>& read) {
    auto check = [&](const std::string& named, const std::vector<std::string>& names,
                     const char* key, bool& warned) {
      if (named.empty() || warned || record.contains(named)) return;
      for (std::size_t k = 1; k < names.size() && !warned; ++k) {
        if (read.count(names[k]) != 0) {
          fields.warn_named_missing(where, named, key, names[k]);
          warned = true;
        }
      }
    };
    check(fields.named_text, fields.text, "preprocessor.first_sequence", warned_text);
    check(fields.named_pair, fields.pair, "preprocessor.second_sequence", warned_pair);
  };
  auto add = [&](const Json& record, std::size_t index, const std::string& where) {
    std::set<std::string> read;
    out.push_back(input_from_json(record, index, where, file, fields, read));
    if (record.is_object()) {
      warn_if_named_missing(record, where, read);
      // A null is no value left unread (pandas writes "text_pair": null for a single sentence).
      for (auto it = record.begin(); it != record.end(); ++it)
        if (read.count(it.key()) == 0 && !it->is_null()) unread.insert(it.key());
    }
  };
  // A record with an id of its own (null is none).
  auto has_own_id = [](const Json& record) {
    return record.is_object() && record.contains("id") && !record["id"].is_null();
  };
  if (data::holds_json_array(text)) {
    const Json doc = parse_json(text, file.string(), ErrorCode::kIntegrity,
                                /*refuse_repeated_keys=*/true);
    const bool elements_have_ids = std::any_of(doc.begin(), doc.end(), has_own_id);
    for (std::size_t k = 0; k < doc.size(); ++k) {
      add(doc[k], k, fmt::format("{} element {}", file.string(), k));
      // Where records have ids, one without stands as "element K": its index could be another
      // record's own id (a false "duplicate input id").
      if (elements_have_ids && !has_own_id(doc[k])) out.back().id = fmt::format("element {}", k);
    }
    warn_unread(file, unread, "fields", fields);
    return;
  }
  std::vector<data::JsonLine> lines = data::parse_json_lines(text);
  const bool some_line_invalid = std::any_of(
      lines.begin(), lines.end(), [](const data::JsonLine& l) { return !l.error.empty(); });
  if (some_line_invalid) {
    Json whole;
    JsonParseError repeated;
    if (try_parse_json(text, whole, repeated, /*refuse_repeated_keys=*/true) && whole.is_object()) {
      add(whole, 0, file.string());
      warn_unread(file, unread, "fields", fields);
      return;
    }
    // One record over several lines that names a key twice is that one record's error, not an
    // error for each of its lines.
    JsonParseError ignored;
    if (try_parse_json(text, whole, ignored) && whole.is_object()) {
      PipelineInput in;
      in.id = 0;
      if (whole.contains("id") && !whole["id"].is_null())
        in.id = record_id(whole["id"], file.string());
      in.invalid = fmt::format("{}: {}", file.string(), repeated.reason);
      out.push_back(std::move(in));
      return;
    }
  }
  // A line that is not valid JSON still gets an error line of its own: a line that is JSON but
  // for a repeated key under its own id (read leniently); another under its line number where
  // records have no ids (as a record without an id gets), else under "line N" (a number stood
  // for it, and line 2's stand-in 1 clashed with a record's own id 1, stopping the whole job as
  // a "duplicate input id").
  const std::string_view body = without_bom(text);
  std::vector<std::optional<Json>> own_ids(lines.size());
  for (std::size_t k = 0, start = 0; k < lines.size(); start = lines[k].end, ++k) {
    Json lenient;
    JsonParseError ignored_error;
    if (!lines[k].error.empty() &&
        try_parse_json(body.substr(start, lines[k].end - start), lenient, ignored_error) &&
        lenient.is_object() && lenient.contains("id") && !lenient["id"].is_null()) {
      own_ids[k] = lenient["id"];
    }
  }
  bool records_have_ids = std::any_of(own_ids.begin(), own_ids.end(),
                                      [](const std::optional<Json>& id) { return id.has_value(); });
  for (const data::JsonLine& l : lines) records_have_ids |= l.error.empty() && has_own_id(l.value);
  for (std::size_t k = 0; k < lines.size(); ++k) {
    const data::JsonLine& line = lines[k];
    const std::string where = fmt::format("{} line {}", file.string(), line.line);
    if (line.error.empty()) {
      add(line.value, line.line - 1, where);
      // A record without an id (a bare string, "id": null) among records with ids stands as
      // "line N", as an unreadable line does: its line number could be another record's id.
      if (records_have_ids && !has_own_id(line.value))
        out.back().id = fmt::format("line {}", line.line);
      continue;
    }
    PipelineInput in;
    if (own_ids[k]) {
      in.id = record_id(*own_ids[k], where);
    } else {
      in.id = records_have_ids ? Json(fmt::format("line {}", line.line)) : Json(line.line - 1);
    }
    in.invalid = fmt::format("{} column {}: not valid JSON ({})", where, line.column, line.error);
    out.push_back(std::move(in));
  }
  warn_unread(file, unread, "fields", fields);
}

// An "id" cell as the input's id, exactly: a string or a number. A cell that is none (empty, a
// boolean), or a number a double cannot hold exactly (an integer past 2^53 that a type-inferring
// reader turned into a float), is an error naming the row: replacing it by the row number, as
// before, gave some rows ids of another kind, or another row's id.
Json cell_id(const data::Value& v, std::size_t row, const std::string& source) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* d = std::get_if<double>(&v); d != nullptr && std::isfinite(*d)) {
    if (!inexact_integer(*d)) return *d;
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: row {}: id {} is an integer too large to keep exactly", source,
                            row + 1, *d),
                "write such ids as text (quoted JSON strings), or drop the id column to number "
                "the rows");
  }
  throw Error(ErrorCode::kUsage,
              fmt::format("{}: row {}: the id is {}", source, row + 1,
                          std::holds_alternative<std::monostate>(v) ? "empty"
                                                                    : "neither text nor a number"),
              "give every row an id (text or a number), or drop the id column to number the rows");
}

// Rows of a table (a CSV input or a dataset split) as inputs: a text column (and optionally a
// second-sentence column), or a file/image column; an "id" column names them, else the row number
// (image rows: their path relative to `base`). Paths in a text column are relative to `base`; an
// image or file column holds paths the dataset loader resolved already (relative to the working
// folder when the dataset's was). Returns the names of the columns read.
std::set<std::string> inputs_from_table(const data::Table& table, const std::string& source,
                                        const std::filesystem::path& base, const FieldNames& fields,
                                        std::vector<PipelineInput>& out) {
  auto column = [&table](const std::vector<std::string>& names) -> int {
    for (const std::string& n : names) {
      if (int i = table.column_index(n); i >= 0) return i;
    }
    return -1;
  };
  const int text_col = column(fields.text);
  const int pair_col = column(fields.pair);
  const int id_col = column({"id"});
  auto name_of = [&table](int c) { return table.columns[static_cast<std::size_t>(c)].name; };
  if (!fields.named_text.empty() && text_col >= 0 && name_of(text_col) != fields.named_text)
    fields.warn_named_missing(source, fields.named_text, "preprocessor.first_sequence",
                              name_of(text_col));
  if (!fields.named_pair.empty() && pair_col >= 0 && name_of(pair_col) != fields.named_pair)
    fields.warn_named_missing(source, fields.named_pair, "preprocessor.second_sequence",
                              name_of(pair_col));
  int path_col = column({"path", "image", "file"});
  for (std::size_t c = 0; path_col < 0 && c < table.columns.size(); ++c) {
    const data::ColumnType t = table.columns[c].type;
    if (t == data::ColumnType::kImage || t == data::ColumnType::kFile)
      path_col = static_cast<int>(c);
  }
  const bool paths_resolved =
      path_col >= 0 &&
      (table.columns[static_cast<std::size_t>(path_col)].type == data::ColumnType::kImage ||
       table.columns[static_cast<std::size_t>(path_col)].type == data::ColumnType::kFile);
  if (text_col < 0 && path_col < 0) {
    std::vector<std::string> names;
    for (const auto& c : table.columns) names.push_back(c.name);
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: the header has no text column (columns: {})", source,
                            fmt::join(names, ", ")),
                fields.named_text.empty()
                    ? std::string("name the text column 'text' (and the second sentence "
                                  "'text_pair' for pairs), or the file column 'path' or 'image'; "
                                  "or name it with --set preprocessor.first_sequence=COLUMN")
                    : fmt::format("the model reads '{}' (preprocessor.first_sequence in {}); "
                                  "name another with --set preprocessor.first_sequence=COLUMN",
                                  fields.named_text, fields.source));
  }
  // A cell as text: a JSON string of a JSON lines column whose values mix kinds is its text, not
  // its quoted JSON (data::cell_text).
  auto text_of = [&table](const std::vector<data::Value>& row, int column) {
    const auto c = static_cast<std::size_t>(column);
    return data::cell_text(row[c], table.columns[c].type);
  };
  // A list or object where a text belongs (a Parquet list<string> column named text) fails its
  // row, as such a field of a JSON lines input does, rather than run its JSON as the text.
  auto structure_of = [&table](const std::vector<data::Value>& row, int column) {
    if (column < 0) return std::string();
    const auto c = static_cast<std::size_t>(column);
    return data::cell_structure(row[c], table.columns[c].type);
  };
  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    const auto& row = table.rows[r];
    PipelineInput in;
    in.id = r;
    if (text_col >= 0) {
      for (const int c : {text_col, pair_col}) {
        if (const std::string kind = structure_of(row, c); !kind.empty() && in.invalid.empty()) {
          in.invalid = fmt::format("{}: row {}: field '{}' is {}, not a string", source, r + 1,
                                   table.columns[static_cast<std::size_t>(c)].name, kind);
        }
      }
      in.text = text_of(row, text_col);
      if (pair_col >= 0) in.text_pair = text_of(row, pair_col);
    } else {
      in.path = text_of(row, path_col);
      if (!paths_resolved && in.path.is_relative()) in.path = base / in.path;
      // Lexically, as for --input-dir: relative() would resolve a linked file or class folder to
      // its target (ids from outside the dataset, or two rows with one id).
      std::error_code ec;
      const auto path = std::filesystem::absolute(in.path, ec).lexically_normal();
      const auto folder = std::filesystem::absolute(base, ec).lexically_normal();
      const auto relative = path.lexically_relative(folder);
      if (!ec && !relative.empty() && *relative.begin() != "..")
        in.id = escape_invalid_utf8(relative.generic_string());
    }
    if (id_col >= 0) {
      const auto c = static_cast<std::size_t>(id_col);
      in.id = cell_id(data::cell_value(row[c], table.columns[c].type), r, source);
    }
    out.push_back(std::move(in));
  }
  std::set<std::string> read;
  const int pair_read = text_col >= 0 ? pair_col : -1;
  for (const int c : {text_col >= 0 ? text_col : path_col, pair_read, id_col})
    if (c >= 0) read.insert(table.columns[static_cast<std::size_t>(c)].name);
  return read;
}

void read_csv(const std::filesystem::path& file, char delimiter, const FieldNames& fields,
              std::vector<PipelineInput>& out) {
  data::CsvOptions options;
  options.infer_types = false;  // ids and texts stay exactly as written
  // A row short of its text or path would run as an empty input: an error naming the line.
  options.fill_short_rows = false;
  options.delimiter = delimiter;
  const data::Table table = data::read_csv(file, options);
  const std::set<std::string> read =
      inputs_from_table(table, file.string(), file.parent_path(), fields, out);
  std::set<std::string> unread;
  for (const data::Column& column : table.columns)
    if (read.count(column.name) == 0) unread.insert(column.name);
  warn_unread(file, unread, "columns", fields);
}

// Refuses an output that is the input file `input` itself (a link to it or another name of it
// included): the results would overwrite the inputs, and --resume would take them for results.
void check_output_is_not(const std::filesystem::path& input,
                         const std::optional<std::filesystem::path>& output) {
  std::error_code ec;
  if (output && std::filesystem::equivalent(input, *output, ec)) {
    throw Error(ErrorCode::kUsage,
                fmt::format("--output {} is the input file itself", output->string()),
                "write the results to another file");
  }
}

// Refuses an input file that is a device: /dev/zero or /dev/urandom never end, and were read
// until memory ran out (the process killed at 23 GB). Standard input (`--input-file -`) may be a
// terminal, typed into; pipes are read. (Checked by stat alone: opening a device can act, as a
// tape rewinds.) --dataset and image paths refuse devices alike.
void refuse_device(const std::filesystem::path& file, bool standard_input) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) return;
  if (standard_input && ::isatty(STDIN_FILENO) == 1) return;
  throw Error(ErrorCode::kUsage,
              fmt::format("input file {} is a {} device, not a file of inputs", file.string(),
                          S_ISCHR(st.st_mode) ? "character" : "block"),
              "give a file (JSON lines, CSV, TSV or text lines), or '-' with the inputs piped in");
}

void read_dataset(const InputSpec& spec, const FieldNames& fields,
                  std::vector<PipelineInput>& out) {
  const std::optional<std::filesystem::path>& output = spec.output;
  data::LoadOptions options;
  options.subset = spec.subset;
  options.split = spec.split;
  const data::Dataset ds = data::load_dataset(*spec.dataset, options);
  check_output_is_not(ds.root, output);
  // Inside a dataset folder the output would be one of its data files (a shard overwritten with
  // results) or become one the next time the folder is read.
  std::error_code ec;
  if (output && std::filesystem::is_directory(ds.root, ec)) {
    if (is_inside_folder(*output, ds.root)) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("--output {} is inside the dataset folder {}", output->string(),
                              ds.root.string()),
                  "write the results outside the dataset's folder: a file there is one of its "
                  "data files, or becomes one the next time the folder is read");
    }
  }
  const data::Split& split = ds.only_split();
  const std::filesystem::path base =
      std::filesystem::is_directory(ds.root) ? ds.root : ds.root.parent_path();
  inputs_from_table(split.table, fmt::format("{} ({})", *spec.dataset, split.selection), base,
                    fields, out);
}

}  // namespace

std::vector<PipelineInput> read_inputs(const InputSpec& spec) {
  const int sources = (!spec.texts.empty()) + spec.file.has_value() + spec.dir.has_value() +
                      spec.dataset.has_value();
  MS_CHECK(sources == 1, ErrorCode::kUsage,
           "give exactly one input source: --input TEXT..., --input-file FILE, --input-dir DIR "
           "or --dataset SPEC");
  MS_CHECK(!spec.split || spec.dataset, ErrorCode::kUsage, "--split goes with --dataset");
  MS_CHECK(!spec.subset || spec.dataset, ErrorCode::kUsage, "--subset goes with --dataset");
  const FieldNames fields(spec);
  std::vector<PipelineInput> out;
  if (!spec.texts.empty()) {
    for (std::size_t i = 0; i < spec.texts.size(); ++i) {
      PipelineInput in;
      in.id = i;
      in.text = spec.texts[i];
      out.push_back(std::move(in));
    }
    return out;
  }
  if (spec.dataset) {
    read_dataset(spec, fields, out);
    MS_CHECK(!out.empty(), ErrorCode::kUsage, "dataset {} holds no rows", *spec.dataset);
  } else if (spec.file) {
    // "-" is standard input (`... | ms infer --input-file -`); pipes read as files.
    const std::filesystem::path file = *spec.file == "-" ? "/dev/stdin" : *spec.file;
    std::error_code ec;
    check_reachable(file);
    MS_CHECK(std::filesystem::exists(file, ec), ErrorCode::kNotFound,
             "input file {} does not exist", file.string());
    check_output_is_not(file, spec.output);
    if (std::filesystem::is_directory(file, ec)) {
      throw Error(ErrorCode::kUsage, fmt::format("input file {} is a folder", file.string()),
                  "give a folder of inputs with --input-dir");
    }
    refuse_device(file, *spec.file == "-");
    const std::string format = input_file_format(file, spec.file_format);
    if (format == "jsonl" || format == "json") {
      read_json_records(file, fields, out);
    } else if (format == "csv" || format == "tsv") {
      read_csv(file, format == "tsv" ? '\t' : ',', fields, out);
    } else {
      const std::string text = read_input_text(file);
      const std::vector<std::string_view> lines = split_universal_lines(without_bom(text));
      // JSON records piped in (`jq -c ... | ms infer --input-file -`) would be embedded as text.
      if (spec.file_format.empty() && !lines.empty() && lines[0].size() >= 2 &&
          lines[0].front() == '{' && lines[0].back() == '}') {
        log::warn(
            "{}: its lines look like JSON records but are read as text lines; "
            "--input-format jsonl reads them as records",
            *spec.file == "-" ? std::string("standard input") : spec.file->string());
      }
      for (std::size_t i = 0; i < lines.size(); ++i) {
        PipelineInput in;
        in.id = i;
        in.text = lines[i];
        out.push_back(std::move(in));
      }
    }
    MS_CHECK(!out.empty(), ErrorCode::kUsage, "input file {} holds no inputs", file.string());
  } else {
    const std::filesystem::path& dir = *spec.dir;
    std::error_code ec;
    check_reachable(dir);
    MS_CHECK(std::filesystem::exists(dir, ec), ErrorCode::kNotFound,
             "input folder {} does not exist", dir.string());
    if (!std::filesystem::is_directory(dir, ec)) {
      throw Error(ErrorCode::kUsage, fmt::format("--input-dir {} is not a folder", dir.string()),
                  "give one file of inputs with --input-file");
    }
    std::vector<std::filesystem::path> files;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      // An entry's own trouble (a broken link) is its alone: the listing goes on.
      std::error_code entry, same;
      if (spec.output && std::filesystem::equivalent(it->path(), *spec.output, same)) {
        log::debug("{}: left out, it is the --output file", it->path().string());
      } else if (it->is_regular_file(entry)) {
        files.push_back(it->path());
      } else if (!it->is_directory(entry)) {
        log::warn("{}: skipped, not a regular file (a broken link, a pipe or a device)",
                  it->path().string());
      }
    }
    MS_CHECK(!ec, ErrorCode::kIo, "cannot list input folder {}: {}", dir.string(), ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      PipelineInput in;
      // The entry's own path below the folder: relative() would resolve a link to its target.
      // A name that is not UTF-8 gets \xHH escapes in its id (JSON holds only UTF-8).
      in.id = escape_invalid_utf8(f.lexically_relative(dir).generic_string());
      in.path = f;
      out.push_back(std::move(in));
    }
    MS_CHECK(!out.empty(), ErrorCode::kUsage, "input folder {} holds no files", dir.string());
  }
  // Ids must be unique: --resume finds finished work by id.
  std::set<std::string> seen;
  for (const PipelineInput& in : out) {
    const std::string key = in.id.dump();
    MS_CHECK(
        seen.insert(key).second, ErrorCode::kUsage,
        "duplicate input id {} in {}: ids must be unique so that --resume can tell inputs apart",
        key,
        spec.dataset ? *spec.dataset
        : spec.file  ? spec.file->string()
                     : spec.dir->string());
  }
  return out;
}

}  // namespace ms::infer
