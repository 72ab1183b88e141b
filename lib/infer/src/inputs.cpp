#include <fmt/ranges.h>

#include <algorithm>
#include <set>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/infer/job.h"

namespace ms::infer {
namespace {

std::string lower_ext(const std::filesystem::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

// The first of `keys` present as a string in `obj`.
const Json* pick(const Json& obj, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = obj.find(k);
    if (it != obj.end() && it->is_string()) return &*it;
  }
  return nullptr;
}

constexpr std::initializer_list<const char*> kTextKeys = {"text",   "sentence",        "sentence1",
                                                          "text_a", "source_sentence", "input"};
constexpr std::initializer_list<const char*> kPairKeys = {"text_pair", "sentence2", "text_b"};

// RFC 4180 CSV: quoted fields may hold separators, doubled quotes and newlines.
std::vector<std::vector<std::string>> parse_csv(const std::string& text,
                                                const std::string& source) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  std::size_t line = 1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
    } else if (c == '"' && !field_started) {
      quoted = field_started = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
      rows.push_back(std::move(row));
      row.clear();
      ++line;
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  MS_CHECK(!quoted, ErrorCode::kUsage, "{}: unterminated quoted field (line {})", source, line);
  if (field_started || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

void read_jsonl(const std::filesystem::path& file, std::vector<PipelineInput>& out) {
  const std::vector<std::string> lines = split_lines(read_file(file));
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    PipelineInput in;
    in.id = i;
    Json j;
    try {
      j = Json::parse(lines[i]);
    } catch (const nlohmann::json::exception& e) {
      in.invalid = fmt::format("{} line {}: not valid JSON ({})", file.string(), i + 1, e.what());
      out.push_back(std::move(in));
      continue;
    }
    if (j.is_string()) {
      in.text = j.get<std::string>();
    } else if (j.is_object()) {
      if (j.contains("id") && !j["id"].is_null()) in.id = j["id"];
      if (const Json* t = pick(j, kTextKeys)) {
        in.text = t->get<std::string>();
      } else if (const Json* p = pick(j, {"path", "image", "file"})) {
        in.path = p->get<std::string>();
        if (in.path.is_relative()) in.path = file.parent_path() / in.path;
      } else {
        in.invalid = fmt::format(
            "{} line {}: no text field (expected one of text, sentence, "
            "sentence1, text_a, source_sentence, input, or path/image)",
            file.string(), i + 1);
      }
      if (const Json* p = pick(j, kPairKeys)) in.text_pair = p->get<std::string>();
    } else {
      in.invalid = fmt::format("{} line {}: expected a JSON object or string, got {}",
                               file.string(), i + 1, Config::type_name(j));
    }
    out.push_back(std::move(in));
  }
}

void read_csv(const std::filesystem::path& file, std::vector<PipelineInput>& out) {
  const auto rows = parse_csv(read_file(file), file.string());
  MS_CHECK(!rows.empty(), ErrorCode::kUsage, "{} is empty (a CSV input needs a header row)",
           file.string());
  const auto& header = rows[0];
  auto column = [&header](std::initializer_list<const char*> names) -> int {
    for (const char* n : names) {
      auto it = std::find(header.begin(), header.end(), n);
      if (it != header.end()) return static_cast<int>(it - header.begin());
    }
    return -1;
  };
  const int text_col = column(kTextKeys);
  const int pair_col = column(kPairKeys);
  const int id_col = column({"id"});
  const int path_col = column({"path", "image", "file"});
  if (text_col < 0 && path_col < 0) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: the header has no text column (columns: {})", file.string(),
                            fmt::join(header, ", ")),
                "name the text column 'text' (and the second sentence 'text_pair' for pairs)");
  }
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    if (row.size() == 1 && row[0].empty()) continue;  // blank line
    PipelineInput in;
    in.id = r - 1;
    if (row.size() != header.size()) {
      in.invalid = fmt::format("{} row {}: {} fields, the header has {}", file.string(), r + 1,
                               row.size(), header.size());
      out.push_back(std::move(in));
      continue;
    }
    if (id_col >= 0) in.id = row[static_cast<std::size_t>(id_col)];
    if (text_col >= 0) in.text = row[static_cast<std::size_t>(text_col)];
    if (pair_col >= 0) in.text_pair = row[static_cast<std::size_t>(pair_col)];
    if (text_col < 0) in.path = row[static_cast<std::size_t>(path_col)];
    out.push_back(std::move(in));
  }
}

}  // namespace

std::vector<PipelineInput> read_inputs(const InputSpec& spec) {
  const int sources = (!spec.texts.empty()) + spec.file.has_value() + spec.dir.has_value();
  MS_CHECK(sources == 1, ErrorCode::kUsage,
           "give exactly one input source: --input TEXT..., --input-file FILE or --input-dir DIR");
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
  if (spec.file) {
    const std::filesystem::path& file = *spec.file;
    std::error_code ec;
    MS_CHECK(std::filesystem::is_regular_file(file, ec), ErrorCode::kNotFound,
             "input file {} does not exist", file.string());
    const std::string ext = lower_ext(file);
    if (ext == ".jsonl" || ext == ".ndjson") {
      read_jsonl(file, out);
    } else if (ext == ".csv") {
      read_csv(file, out);
    } else {
      const std::vector<std::string> lines = split_lines(read_file(file));
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
    MS_CHECK(std::filesystem::is_directory(dir, ec), ErrorCode::kNotFound,
             "input folder {} does not exist", dir.string());
    std::vector<std::filesystem::path> files;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
    MS_CHECK(!ec, ErrorCode::kIo, "cannot list input folder {}: {}", dir.string(), ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      PipelineInput in;
      in.id = std::filesystem::relative(f, dir).generic_string();
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
        key, spec.file ? spec.file->string() : spec.dir->string());
  }
  return out;
}

std::pair<std::size_t, std::size_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  std::size_t i = 0, n = 0;
  bool ok = slash != std::string::npos;
  if (ok) {
    try {
      std::size_t used1 = 0, used2 = 0;
      const std::string a = text.substr(0, slash), b = text.substr(slash + 1);
      ok = !a.empty() && !b.empty() && a[0] != '-' && b[0] != '-';
      if (ok) {
        i = std::stoul(a, &used1);
        n = std::stoul(b, &used2);
        ok = used1 == a.size() && used2 == b.size() && n > 0 && i < n;
      }
    } catch (const std::exception&) {
      ok = false;
    }
  }
  MS_CHECK(ok, ErrorCode::kUsage, "--shard '{}' must be i/n with 0 <= i < n (e.g. 0/4)", text);
  return {i, n};
}

}  // namespace ms::infer
