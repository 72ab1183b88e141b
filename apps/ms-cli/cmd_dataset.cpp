// `ms dataset info|head|iter SPEC`: what a dataset holds, its first rows, and a timed pass of the
// batch loader (decode + resize + normalise) for throughput checks.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <tuple>

#include "cli.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/core/utf8.h"
#include "ms/data/dataset.h"
#include "ms/data/loader.h"

namespace ms::cli {
namespace {

struct DatasetOptions {
  std::string spec;
  std::optional<std::string> subset;
  std::optional<std::string> split;
  std::optional<std::string> version;
  bool verify = false;
  bool skip_bad = false;
  bool json = false;
  std::optional<std::string> delimiter;  // given empty is an error, not the default
  bool no_header = false;
  std::size_t rows = 5;
  // iter
  std::size_t batch_size = 32;
  int workers = 0;
  int prefetch = 2;
  bool shuffle = false;
  std::uint64_t seed = 0;
  bool drop_last = false;
  std::string shard;
  std::string transform;
  int epochs = 1;
  std::string save_batch;
};

data::LoadOptions load_options(const DatasetOptions& o) {
  data::LoadOptions l;
  l.subset = o.subset;
  l.split = o.split;
  l.revision = o.version;
  l.verify_images = o.verify;
  l.skip_bad = o.skip_bad;
  l.header = !o.no_header;
  if (o.delimiter) {
    const std::string& d = *o.delimiter;
    if (d == "\\t" || d == "tab" || d == "\t") {
      l.delimiter = '\t';
    } else {
      MS_CHECK(d.size() == 1, ErrorCode::kUsage,
               "--delimiter must be one character (or 'tab'), got '{}'", d);
      // The quote encloses fields and a line break ends records: neither can separate fields.
      MS_CHECK(d != "\"" && d != "\n" && d != "\r", ErrorCode::kUsage,
               "--delimiter cannot be {:?}: CSV uses it to quote fields or end records", d[0]);
      l.delimiter = d[0];
    }
  }
  return l;
}

void print_info(const data::Dataset& ds) {
  std::printf("dataset  %s (%s)\n", ds.spec.c_str(), data::source_kind_name(ds.kind));
  std::printf("root     %s\n", ds.root.string().c_str());
  std::printf("subset   %s (of %s)\n", ds.subset.c_str(), join(ds.subsets, ", ").c_str());
  for (const auto& s : ds.splits) {
    std::printf("split    %s: %zu rows\n", s.selection.c_str(), s.table.rows.size());
    for (const auto& c : s.table.columns) {
      // Padded to 24 columns of the terminal, not 24 bytes (a name in Chinese is 3 bytes a
      // character, 2 columns).
      const std::size_t width = terminal_width(c.name);
      std::printf("  %s%*s %s", c.name.c_str(), static_cast<int>(width < 24 ? 24 - width : 0), "",
                  data::column_type_name(c.type));
      // A ClassLabel column's names by id, as the labels line below shows an imagefolder's.
      for (std::size_t i = 0; i < c.class_names.size(); ++i)
        std::printf("%s%zu=%s", i ? ", " : "  classes: ", i, c.class_names[i].c_str());
      std::printf("\n");
    }
    if (s.skipped_non_image)
      std::printf("  skipped %zu file(s): not images, or images outside the class folders\n",
                  s.skipped_non_image);
    if (s.skipped_bad) std::printf("  skipped %zu bad images\n", s.skipped_bad);
  }
  if (!ds.labels.empty()) {
    std::printf("labels   %zu: ", ds.labels.size());
    for (std::size_t i = 0; i < ds.labels.size(); ++i) {
      std::printf("%s%zu=%s", i ? ", " : "", i, ds.labels[i].c_str());
    }
    std::printf("\n");
  }
}

void run_info(const DatasetOptions& o) {
  // Every error of a --json run is a JSON document on stdout too, not only those of the
  // command line's parse (a script cannot tell in advance which it will meet).
  if (o.json) report_errors_as_json();
  const data::Dataset ds = data::load_dataset(o.spec, load_options(o));
  if (o.json) {
    std::printf("%s\n", json_text(ds.info(), 2).c_str());
  } else {
    print_info(ds);
  }
}

Json cell_json(const data::Value& v, data::ColumnType type) {
  if (std::holds_alternative<std::monostate>(v)) return nullptr;
  if (auto* i = std::get_if<std::int64_t>(&v)) return *i;
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* b = std::get_if<bool>(&v)) return *b;
  const std::string& s = std::get<std::string>(v);
  if (type == data::ColumnType::kJson) return Json::parse(s, nullptr, false);
  // A file name that is not UTF-8 (an imagefolder's) is shown as `ms infer` names it, \xHH for
  // each byte that is not, rather than the U+FFFD JSON writing would put there.
  if (type == data::ColumnType::kImage || type == data::ColumnType::kFile)
    return escape_invalid_utf8(s);
  return s;
}

// `key`, with '_' put before it until no split's column has the name (one key for every split);
// said when it moves.
std::string key_beside(const data::Dataset& ds, std::string key) {
  const std::string wanted = key;
  auto taken = [&ds](const std::string& name) {
    return std::any_of(ds.splits.begin(), ds.splits.end(),
                       [&](const data::Split& s) { return s.table.column_index(name) >= 0; });
  };
  while (taken(key)) key.insert(0, "_");
  if (key != wanted) {
    log::warn("the data has a column '{}', so the {} ms adds goes under '{}'", wanted,
              wanted == "_split" ? "split's name" : "class name", key);
  }
  return key;
}

void run_head(const DatasetOptions& o) {
  if (o.json) report_errors_as_json();
  // Only the rows shown are parsed: a look at the top of a 5 GB table reads it, but does not
  // build millions of rows (types come from the rows shown; `ms dataset info` types them all).
  data::LoadOptions options = load_options(o);
  options.max_rows = o.rows;
  const data::Dataset ds = data::load_dataset(o.spec, options);
  const bool with_split = o.json && ds.splits.size() > 1;
  // The keys ms adds beside the columns; a column of that name keeps it, and the added value
  // takes the name with one more leading '_' (a column "_split" replaced the split's name).
  const std::string split_key = with_split ? key_beside(ds, "_split") : "";
  const std::string label_name_key = ds.labels.empty() ? "" : key_beside(ds, "label_name");
  for (const auto& s : ds.splits) {
    if (!o.json && ds.splits.size() > 1) std::printf("# split %s\n", s.name.c_str());
    const int label_col = s.table.column_index("label");
    for (std::size_t r = 0; r < s.table.rows.size() && r < o.rows; ++r) {
      Json row = Json::object();
      if (with_split) row[split_key] = s.name;
      // Column names are unique, and differ from the keys added, so they are appended without
      // ordered_json's linear key search (quadratic for a table of 100,000 columns).
      auto& fields = row.get_ref<Json::object_t&>();
      for (std::size_t c = 0; c < s.table.columns.size(); ++c) {
        fields.emplace_back(s.table.columns[c].name,
                            cell_json(s.table.rows[r][c], s.table.columns[c].type));
      }
      if (label_col >= 0 && !label_name_key.empty()) {
        if (auto* id = std::get_if<std::int64_t>(&s.table.rows[r][label_col])) {
          if (*id >= 0 && static_cast<std::size_t>(*id) < ds.labels.size())
            row[label_name_key] = ds.labels[*id];
        }
      }
      std::printf("%s\n", json_text(row).c_str());
    }
  }
}

void run_iter(const DatasetOptions& o) {
  if (o.json) report_errors_as_json();
  const data::Dataset ds = data::load_dataset(o.spec, load_options(o));
  const data::Split& split = ds.only_split();
  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.workers = o.workers;
  lo.prefetch = o.prefetch;
  lo.shuffle = o.shuffle;
  lo.seed = o.seed;
  lo.drop_last = o.drop_last;
  lo.skip_bad = o.skip_bad;
  if (!o.shard.empty()) std::tie(lo.shard_index, lo.num_shards) = data::parse_shard(o.shard);
  if (!o.transform.empty()) {
    const Config config = o.transform.front() == '{'
                              ? Config::parse(o.transform, "json", "--transform")
                              : Config::from_file(o.transform);
    lo.transform = data::ImageTransform::from_config(config);
  }
  data::BenchmarkOptions bo;
  bo.epochs = o.epochs;
  bo.save_batch = o.save_batch;
  const data::LoaderBenchmark run = data::benchmark_loader(split, lo, bo);
  const data::Batch& first = run.first_batch;
  if (!o.json && run.batches > 0) {
    std::vector<std::string> rows;
    for (std::size_t i = 0; i < first.rows.size() && i < 8; ++i) {
      rows.push_back(std::to_string(first.rows[i]));
    }
    // Batches carry a shape only when they hold images.
    std::string images = first.channels == 0
                             ? std::string("no images")
                             : fmt::format("images {}x{}x{}x{}", first.size(), first.channels,
                                           first.height, first.width);
    std::fprintf(stderr, "first batch: %zu rows, %s, rows [%s%s]\n", first.size(), images.c_str(),
                 join(rows, ",").c_str(), first.size() > 8 ? ",..." : "");
  }
  if (o.json) {
    Json out = Json::object();
    out["split"] = split.selection;
    out["batches"] = run.batches;
    out["samples"] = run.samples;
    out["skipped_bad"] = run.skipped_bad;
    out["seconds"] = run.seconds;
    out["samples_per_second"] = run.samples_per_second;
    out["workers"] = o.workers;
    out["order"] = run.order;
    out["checksum"] = run.checksum;
    std::printf("%s\n", json_text(out, 2).c_str());
  } else {
    std::printf("%zu samples in %zu batches, %.3f s, %.1f samples/s (%d workers)\n", run.samples,
                run.batches, run.seconds, run.samples_per_second, o.workers);
  }
}

void add_common(CLI::App* c, DatasetOptions& o) {
  c->add_option("spec", o.spec,
                "csv:PATH, tsv:PATH, jsonl:PATH, imagefolder:DIR, folder:DIR, zip:PATH_OR_URL, "
                "hub:OWNER/NAME[@REV][:SUBSET[/SPLIT]], or a path")
      ->required();
  c->add_option("--subset", o.subset, "Subset (dataset config name)");
  c->add_option("--split", o.split,
                "One split, optionally sliced: train, train[:10%], test[100:200]");
  // --version is ModelScope's name (MsDataset.load(version=...)); --revision every other command's.
  c->add_option("--version,--revision", o.version, "Hub revision (branch, tag or commit)");
  c->add_flag("--verify", o.verify, "Decode every image now (a bad one is an error naming it)");
  c->add_flag("--skip-bad", o.skip_bad, "Skip and count images that fail to decode");
  c->add_option("--delimiter", o.delimiter,
                "CSV field separator for csv: specs (one character or 'tab')");
  c->add_flag("--no-header", o.no_header, "The CSV has no header row (columns are column_0, ...)");
  c->add_flag("--json", o.json, "Machine-readable output on stdout");
}

}  // namespace

void add_dataset_command(CLI::App& app, const GlobalOptions& /*global*/) {
  CLI::App* dataset = app.add_subcommand("dataset", "Inspect and iterate datasets");
  dataset->footer(
      "Examples:\n"
      "  ms dataset info csv:train.csv\n"
      "  ms dataset head imagefolder:photos -n 3\n"
      "  ms dataset info hub:OWNER/NAME@v1.0:SUBSET/train --json\n"
      "  ms dataset iter imagefolder:photos --batch-size 64 --workers 4\n"
      "Specs: csv:F, jsonl:F, json:F, imagefolder:DIR, zip:F, a folder, hub:OWNER/NAME...;\n"
      "splits take slices (train[:10%]). See docs/datasets.md.\n" +
      std::string(kExitCodesHelp));
  dataset->require_subcommand(1);

  auto info = std::make_shared<DatasetOptions>();
  CLI::App* info_cmd =
      dataset->add_subcommand("info", "Splits, row counts, columns and types, labels");
  add_common(info_cmd, *info);
  info_cmd->callback([info] { run_info(*info); });

  auto head = std::make_shared<DatasetOptions>();
  CLI::App* head_cmd =
      dataset->add_subcommand("head", "Print the first rows of each split as JSON lines");
  add_common(head_cmd, *head);
  head_cmd
      ->add_option("-n,--rows", head->rows,
                   "Rows per split; only these are parsed, so CSV and JSON lines columns are "
                   "typed from them (`info` types all rows)")
      ->check(non_negative_whole_number());
  head_cmd->callback([head] { run_head(*head); });

  auto iter = std::make_shared<DatasetOptions>();
  CLI::App* iter_cmd = dataset->add_subcommand(
      "iter",
      "Run the batch loader over one split (decode, resize, normalise) and report samples/s");
  add_common(iter_cmd, *iter);
  iter_cmd->add_option("--batch-size", iter->batch_size, "Rows per batch")
      ->check(positive_whole_number());
  iter_cmd->add_option("--workers", iter->workers, "Decoding threads (0 = main thread)")
      ->check(CLI::Range(0, 256));
  iter_cmd->add_option("--prefetch", iter->prefetch, "Batches each worker may run ahead")
      ->check(positive_whole_number());
  iter_cmd->add_flag("--shuffle", iter->shuffle, "Shuffle rows (see --seed)");
  iter_cmd->add_option("--seed", iter->seed, "Shuffle seed (same seed, same order)")
      ->check(non_negative_whole_number());
  iter_cmd->add_flag("--drop-last", iter->drop_last, "Drop a last, smaller batch");
  iter_cmd->add_option("--shard", iter->shard, "Only shard I of N (rows I, I+N, ...), as I/N");
  iter_cmd->add_option(
      "--transform", iter->transform,
      "Image transform: a JSON file or inline JSON, e.g. "
      "'{\"resize\":[224,224],\"mean\":[0.485,0.456,0.406],\"std\":[0.229,0.224,0.225]}'");
  iter_cmd->add_option("--epochs", iter->epochs, "Passes over the split")
      ->check(positive_whole_number());
  iter_cmd->add_option("--save-batch", iter->save_batch,
                       "Write the first batch's images (N x C x H x W float32) to this .npy file");
  iter_cmd->callback([iter] { run_iter(*iter); });
}

}  // namespace ms::cli
