// Hugging Face dataset cards (README.md `configs`): which files, subsets and options are read.
// Expectations are what Hugging Face's datasets 4.8.4 and 5.2.0 read from the same folders.
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "catch.h"
#include "error_capture.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/data/dataset.h"

namespace fs = std::filesystem;
using namespace ms::data;

namespace {

// A folder holding `files` (relative path -> text), emptied first and removed on scope exit.
struct Folder {
  fs::path dir;
  explicit Folder(const std::string& tag)
      : dir(fs::temp_directory_path() / ("ms-card-" + tag + "-" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
  }
  ~Folder() { fs::remove_all(dir); }
  void write(const std::map<std::string, std::string>& files) const {
    for (const auto& [rel, text] : files) ms::write_file_atomic(dir / rel, text);
  }
};

// Split name -> the first column's values (integers) of its rows.
std::map<std::string, std::vector<std::int64_t>> first_column(const Dataset& ds) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (const Split& s : ds.splits)
    for (const auto& row : s.table.rows) out[s.name].push_back(std::get<std::int64_t>(row[0]));
  return out;
}

std::string card(const std::string& configs) { return "---\nconfigs:\n" + configs + "---\n# c\n"; }

}  // namespace

TEST_CASE("card data_files: * stays in its folder, ** is any folders, as fsspec's glob", "[data]") {
  using Rows = std::map<std::string, std::vector<std::int64_t>>;
  Folder f("glob");
  f.write({{"data/top.csv", "a\n1\n"}, {"data/sub/y.csv", "a\n2\n"}, {"data/sub/deep/z.csv", "a\n3\n"}});
  const auto rows_for = [&](const std::string& pattern) {
    f.write({{"README.md", card("- config_name: default\n  data_files: \"" + pattern + "\"\n")}});
    return first_column(load_dataset(f.dir.string()));
  };
  CHECK(rows_for("data/*.csv") == Rows{{"train", {1}}});              // fnmatch took data/sub too
  CHECK(rows_for("data/**/*.csv") == Rows{{"train", {3, 2, 1}}});     // and missed data/top.csv
  CHECK(rows_for("data/*/*.csv") == Rows{{"train", {2}}});
  CHECK(rows_for("data/**") == Rows{{"train", {3, 2, 1}}});
  CHECK(rows_for("data/**/deep/?.csv") == Rows{{"train", {3}}});
  CHECK(rows_for("data/s[u]b/**") == Rows{{"train", {3, 2}}});
  // Many `**` are not tried against every way of spreading the folders among them.
  std::string many;
  for (int i = 0; i < 40; ++i) many += "**/";
  CHECK(rows_for(many + "z.csv") == Rows{{"train", {3}}});
  CHECK(code_of([&] { rows_for("*.csv"); }) == ms::ErrorCode::kNotFound);  // none at the top
}
