// Dataset spec and split-slice parsing.
#include "ms/data/spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "dataset_formats.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/data/archive.h"
#include "ms/io/resource.h"

namespace fs = std::filesystem;

namespace ms::data {

const char* source_kind_name(SourceKind kind) {
  switch (kind) {
    case SourceKind::kCsv:
      return "csv";
    case SourceKind::kJsonl:
      return "jsonl";
    case SourceKind::kText:
      return "text";
    case SourceKind::kParquet:
      return "parquet";
    case SourceKind::kImageFolder:
      return "imagefolder";
    case SourceKind::kFolder:
      return "folder";
    case SourceKind::kZip:
      return "zip";
    case SourceKind::kHub:
      return "hub";
  }
  return "?";
}

namespace {

using detail::lower_extension;

DatasetSpec infer_from_path(const std::string& location) {
  DatasetSpec spec;
  spec.location = location;
  if (io::is_url(location) && io::scheme_of(location) != "file") {
    MS_CHECK(lower_extension(fs::path(location.substr(0, location.find('?')))) == ".zip",
             ErrorCode::kUsage, "cannot tell the dataset kind of URL '{}'", location);
    spec.kind = SourceKind::kZip;
    return spec;
  }
  const fs::path path = io::local_path_of(location);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    check_reachable(path);
    throw Error(
        ErrorCode::kNotFound, fmt::format("dataset path '{}' does not exist", location),
        "give a path, or a spec such as csv:PATH, imagefolder:DIR, zip:URL, hub:OWNER/NAME");
  }
  if (fs::is_directory(path, ec)) {
    // A folder is read as its dataset config, card or data files say (an image folder among
    // them).
    spec.kind = SourceKind::kFolder;
    return spec;
  }
  const std::string ext = data_file_extension(path);
  if (ext == ".csv") {
    spec.kind = SourceKind::kCsv;
  } else if (ext == ".tsv") {
    spec.kind = SourceKind::kCsv;
    spec.delimiter = '\t';
  } else if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") {
    spec.kind = SourceKind::kJsonl;
  } else if (ext == ".txt") {
    spec.kind = SourceKind::kText;
  } else if (ext == ".parquet") {
    spec.kind = SourceKind::kParquet;
  } else if (ext == ".zip") {
    spec.kind = SourceKind::kZip;
  } else {
    throw Error(ErrorCode::kUsage, fmt::format("cannot tell the dataset kind of '{}'", location),
                "use a prefix: csv:, tsv:, jsonl:, parquet:, imagefolder:, folder:, zip:");
  }
  return spec;
}

void parse_hub(std::string_view rest, DatasetSpec& spec) {
  // OWNER/NAME[@REV][:SUBSET[/SPLIT]]
  std::string_view repo = rest;
  std::string_view tail;
  if (auto colon = rest.find(':'); colon != std::string_view::npos) {
    repo = rest.substr(0, colon);
    tail = rest.substr(colon + 1);
    MS_CHECK(!tail.empty(), ErrorCode::kUsage, "dataset spec 'hub:{}' has an empty subset", rest);
  }
  if (auto at = repo.find('@'); at != std::string_view::npos) {
    spec.revision = std::string(repo.substr(at + 1));
    repo = repo.substr(0, at);
    MS_CHECK(!spec.revision.empty(), ErrorCode::kUsage,
             "dataset spec 'hub:{}' has an empty revision", rest);
  }
  MS_CHECK(!repo.empty(), ErrorCode::kUsage, "dataset spec 'hub:{}' has no OWNER/NAME", rest);
  spec.location = std::string(repo);
  if (!tail.empty()) {
    if (auto slash = tail.find('/'); slash != std::string_view::npos) {
      spec.subset = std::string(tail.substr(0, slash));
      spec.split = std::string(tail.substr(slash + 1));
      MS_CHECK(!spec.subset->empty() && !spec.split->empty(), ErrorCode::kUsage,
               "dataset spec 'hub:{}': expected SUBSET/SPLIT after ':'", rest);
    } else {
      spec.subset = std::string(tail);
    }
  }
}

}  // namespace

namespace {
DatasetSpec parse_dataset_spec_impl(std::string_view text);
}  // namespace

DatasetSpec parse_dataset_spec(std::string_view text) {
  DatasetSpec spec = parse_dataset_spec_impl(text);
  spec.text = std::string(text);
  return spec;
}

namespace {

DatasetSpec parse_dataset_spec_impl(std::string_view text) {
  MS_CHECK(!text.empty(), ErrorCode::kUsage, "empty dataset spec");
  static const std::vector<std::string> kPrefixes = {
      "csv", "tsv", "jsonl", "json", "text", "parquet", "imagefolder", "folder", "zip", "hub"};
  const auto colon = text.find(':');
  if (colon != std::string_view::npos && colon > 1) {
    const std::string prefix(text.substr(0, colon));
    const std::string rest(text.substr(colon + 1));
    bool known = false;
    for (const auto& p : kPrefixes) known = known || p == prefix;
    if (known) {
      MS_CHECK(!rest.empty(), ErrorCode::kUsage, "dataset spec '{}' has an empty location", text);
      DatasetSpec spec;
      spec.location = rest;
      if (prefix == "csv") {
        spec.kind = SourceKind::kCsv;
      } else if (prefix == "tsv") {
        spec.kind = SourceKind::kCsv;
        spec.delimiter = '\t';
      } else if (prefix == "jsonl" || prefix == "json") {
        spec.kind = SourceKind::kJsonl;
      } else if (prefix == "text") {
        spec.kind = SourceKind::kText;
      } else if (prefix == "parquet") {
        spec.kind = SourceKind::kParquet;
      } else if (prefix == "imagefolder") {
        spec.kind = SourceKind::kImageFolder;
      } else if (prefix == "folder") {
        spec.kind = SourceKind::kFolder;
      } else if (prefix == "zip") {
        spec.kind = SourceKind::kZip;
      } else {
        spec.kind = SourceKind::kHub;
        parse_hub(rest, spec);
      }
      return spec;
    }
    // URLs (http://, file://) and paths are not prefixes; anything else that looks like one is.
    const bool looks_like_prefix = prefix.find_first_of("/\\.") == std::string::npos &&
                                   !(rest.size() >= 2 && rest.substr(0, 2) == "//");
    std::error_code ec;
    if (looks_like_prefix && !fs::exists(fs::path(std::string(text)), ec)) {
      throw Error(
          ErrorCode::kUsage, fmt::format("unknown dataset kind '{}' in '{}'", prefix, text),
          did_you_mean(prefix, kPrefixes).empty()
              ? "kinds: " + join(kPrefixes, ", ")
              : did_you_mean(prefix, kPrefixes) + " (kinds: " + join(kPrefixes, ", ") + ")");
    }
  }
  return infer_from_path(std::string(text));
}

}  // namespace

namespace {

std::optional<long long> parse_bound(std::string_view text, bool& percent, bool& has_percent,
                                     std::string_view whole) {
  if (text.empty()) return std::nullopt;
  bool pct = false;
  if (text.back() == '%') {
    pct = true;
    text.remove_suffix(1);
  }
  long long value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  MS_CHECK(ec == std::errc() && ptr == end && !text.empty(), ErrorCode::kUsage,
           "bad split slice '{}': '{}' is not an integer", whole, text);
  if (has_percent) {
    MS_CHECK(pct == percent, ErrorCode::kUsage,
             "bad split slice '{}': do not mix percent and absolute bounds", whole);
  }
  has_percent = true;
  percent = pct;
  if (pct) {
    MS_CHECK(value >= -100 && value <= 100, ErrorCode::kUsage,
             "bad split slice '{}': percent must be within -100%..100%", whole);
  }
  return value;
}

}  // namespace

SplitSelector parse_split(std::string_view text) {
  SplitSelector sel;
  const auto open = text.find('[');
  if (open == std::string_view::npos) {
    MS_CHECK(!text.empty() && text.find(']') == std::string_view::npos, ErrorCode::kUsage,
             "bad split '{}'", text);
    sel.name = std::string(text);
    return sel;
  }
  MS_CHECK(open > 0, ErrorCode::kUsage, "bad split '{}': no split name before '['", text);
  MS_CHECK(text.back() == ']', ErrorCode::kUsage, "bad split slice '{}': expected NAME[FROM:TO]",
           text);
  sel.name = std::string(text.substr(0, open));
  std::string_view inner = text.substr(open + 1, text.size() - open - 2);
  const auto colon = inner.find(':');
  MS_CHECK(colon != std::string_view::npos && inner.find(':', colon + 1) == std::string_view::npos,
           ErrorCode::kUsage, "bad split slice '{}': expected NAME[FROM:TO], e.g. train[:10%]",
           text);
  bool has_percent = false;
  sel.sliced = true;
  sel.from = parse_bound(inner.substr(0, colon), sel.percent, has_percent, text);
  sel.to = parse_bound(inner.substr(colon + 1), sel.percent, has_percent, text);
  return sel;
}

std::pair<std::size_t, std::size_t> SplitSelector::resolve(std::size_t rows) const {
  if (!sliced) return {0, rows};
  const long long n = static_cast<long long>(rows);
  auto absolute = [&](std::optional<long long> bound, long long fallback) {
    if (!bound) return fallback;
    long long v = *bound;
    // As Hugging Face's round(pct * rows / 100): a half goes to the even number (Python's
    // round; nearbyint in the default rounding mode), so 10% of 25 rows is 2, not 3.
    if (percent) v = static_cast<long long>(std::nearbyint(static_cast<double>(v) * n / 100.0));
    if (v < 0) v += n;
    return std::clamp(v, 0LL, n);
  };
  const long long begin = absolute(from, 0);
  const long long end = absolute(to, n);
  if (rows > 0 && begin >= end) {
    throw Error(ErrorCode::kUsage,
                fmt::format("split slice '{}' selects no rows of {} (rows {}..{})", str(), rows,
                            begin, end),
                "slices are NAME[FROM:TO] with 0 <= FROM < TO <= rows, or percentages");
  }
  return {static_cast<std::size_t>(begin), static_cast<std::size_t>(std::max(begin, end))};
}

std::string SplitSelector::str() const {
  if (!sliced) return name;
  auto bound = [&](const std::optional<long long>& b) {
    return b ? std::to_string(*b) + (percent ? "%" : "") : std::string();
  };
  return name + "[" + bound(from) + ":" + bound(to) + "]";
}

}  // namespace ms::data
