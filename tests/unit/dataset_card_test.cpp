// Hugging Face dataset cards (README.md `configs`): which files, subsets and options are read.
// Expectations are what Hugging Face's datasets 4.8.4 and 5.2.0 read from the same folders.
#include <unistd.h>

#include <filesystem>
#include <map>
#include <optional>
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

LoadOptions choosing(std::optional<std::string> subset, std::optional<std::string> split = {}) {
  LoadOptions o;
  o.subset = std::move(subset);
  o.split = std::move(split);
  return o;
}

std::string card(const std::string& configs) { return "---\nconfigs:\n" + configs + "---\n# c\n"; }

}  // namespace

TEST_CASE("card data_files: * stays in its folder, ** is any folders, as fsspec's glob", "[data]") {
  using Rows = std::map<std::string, std::vector<std::int64_t>>;
  Folder f("glob");
  f.write({{"data/top.csv", "a\n1\n"},
           {"data/sub/y.csv", "a\n2\n"},
           {"data/sub/deep/z.csv", "a\n3\n"}});
  const auto rows_for = [&](const std::string& pattern) {
    f.write({{"README.md", card("- config_name: default\n  data_files: \"" + pattern + "\"\n")}});
    return first_column(load_dataset(f.dir.string()));
  };
  CHECK(rows_for("data/*.csv") == Rows{{"train", {1}}});           // fnmatch took data/sub too
  CHECK(rows_for("data/**/*.csv") == Rows{{"train", {3, 2, 1}}});  // and missed data/top.csv
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

TEST_CASE("card configs: the config named default is read when none is marked default", "[data]") {
  using Rows = std::map<std::string, std::vector<std::int64_t>>;
  Folder f("default");
  f.write({{"other.csv", "a\n1\n"}, {"default.csv", "a\n2\n"}, {"third.csv", "a\n3\n"}});
  f.write({{"README.md", card("- config_name: other\n  data_files: other.csv\n"
                              "- config_name: default\n  data_files: default.csv\n")}});
  Dataset ds = load_dataset(f.dir.string());
  CHECK(ds.subset == "default");
  CHECK(ds.subsets == std::vector<std::string>{"other", "default"});
  CHECK(first_column(ds) == Rows{{"train", {2}}});
  CHECK(first_column(load_dataset(f.dir.string(), choosing("other"))) == Rows{{"train", {1}}});
  // One marked `default: true` comes first; without either, the subset must be named.
  f.write(
      {{"README.md", card("- config_name: default\n  data_files: default.csv\n"
                          "- config_name: third\n  data_files: third.csv\n  default: true\n")}});
  CHECK(first_column(load_dataset(f.dir.string())) == Rows{{"train", {3}}});
  f.write({{"README.md", card("- config_name: other\n  data_files: other.csv\n"
                              "- config_name: third\n  data_files: third.csv\n")}});
  CHECK(code_of([&] { load_dataset(f.dir.string()); }) == ms::ErrorCode::kUsage);
}

TEST_CASE("card configs: data_dir is the folder the files are found or named in", "[data]") {
  using Rows = std::map<std::string, std::vector<std::int64_t>>;
  Folder f("datadir");
  f.write({{"sub/train.csv", "a\n1\n"}, {"sub/test.csv", "a\n2\n"}, {"top.csv", "a\n9\n"}});
  const auto rows_for = [&](const std::string& config) {
    f.write({{"README.md", card("- config_name: default\n" + config)}});
    return first_column(load_dataset(f.dir.string()));
  };
  // Without data_files: the splits of sub/ as load_dataset("sub") finds them.
  CHECK(rows_for("  data_dir: sub\n") == Rows{{"train", {1}}, {"test", {2}}});
  CHECK(first_column(load_dataset(f.dir.string(), choosing(std::nullopt, "test"))) ==
        Rows{{"test", {2}}});
  CHECK(code_of([&] { load_dataset(f.dir.string(), choosing(std::nullopt, "dev")); }) ==
        ms::ErrorCode::kNotFound);
  // With data_files: patterns relative to it.
  CHECK(rows_for("  data_dir: sub\n  data_files: tr*.csv\n") == Rows{{"train", {1}}});
  CHECK(code_of([&] { rows_for("  data_dir: ../elsewhere\n"); }) == ms::ErrorCode::kConfig);
  CHECK(code_of([&] { rows_for("  data_dir: gone\n"); }) == ms::ErrorCode::kNotFound);
}

TEST_CASE("card configs: sep and delimiter are the CSV separator, as pandas reads them", "[data]") {
  Folder f("sep");
  f.write({{"a.csv", "a;b\n1;x\n"}, {"t.csv", "a\tb\n1\tx\n"}});
  const auto table_for = [&](const std::string& config) {
    f.write({{"README.md", card("- config_name: default\n" + config)}});
    return load_dataset(f.dir.string()).splits.at(0).table;
  };
  for (const std::string config :
       {"  data_files: a.csv\n  sep: ';'\n", "  data_files: a.csv\n  delimiter: ';'\n",
        "  data_files: t.csv\n  sep: \"\\t\"\n"}) {
    const Table t = table_for(config);
    REQUIRE(t.columns.size() == 2);
    CHECK(t.columns[1].name == "b");
    CHECK(std::get<std::int64_t>(t.rows[0][0]) == 1);
  }
  CHECK(code_of([&] { table_for("  data_files: a.csv\n  sep: ';;'\n"); }) ==
        ms::ErrorCode::kConfig);
  CHECK(code_of([&] { table_for("  data_files: a.csv\n  sep: ';'\n  delimiter: ';'\n"); }) ==
        ms::ErrorCode::kConfig);
}
