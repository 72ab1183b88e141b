// Rows -> batches for the trainer. Text rows are tokenised once, up front (a bad row is reported
// with its number before training starts); images are decoded per batch. The order of an epoch is
// data::shuffled_indices(rows, seed + epoch), the DataLoader's, so a resumed epoch sees the same
// batches.
#include "batch_sources.h"

#include <ATen/Parallel.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <cmath>
#include <future>
#include <numeric>
#include <set>
#include <thread>

#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/data/image.h"
#include "ms/data/loader.h"
#include "ms/pipelines/registry.h"
#include "ms/tensor/collate.h"

namespace ms::trainer {

LabelMap::LabelMap(std::vector<std::string> names)
    : names_(std::move(names)),
      numbers_are_names_(std::any_of(names_.begin(), names_.end(),
                                     [](const std::string& name) { return is_decimal(name); })) {}

std::int64_t LabelMap::id_of(const data::Value& cell, const std::string& where) const {
  if (const auto* i = std::get_if<std::int64_t>(&cell)) {
    if (numbers_are_names_) {
      const std::string name = std::to_string(*i);
      auto it = std::find(names_.begin(), names_.end(), name);
      if (it != names_.end()) return it - names_.begin();
      throw Error(ErrorCode::kUsage,
                  fmt::format("{}: label {} is not a class of the model, whose classes are named "
                              "by numbers ({}): a number is read as a class name, not an id",
                              where, *i, join(names_, ", ")),
                  "label the rows with the model's class names");
    }
    MS_CHECK(*i >= 0 && static_cast<std::size_t>(*i) < names_.size(), ErrorCode::kUsage,
             "{}: label {} is outside the model's {} classes (0..{})", where, *i, names_.size(),
             names_.size() - 1);
    return *i;
  }
  if (const auto* s = std::get_if<std::string>(&cell)) {
    auto it = std::find(names_.begin(), names_.end(), *s);
    if (it != names_.end()) return it - names_.begin();
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: label '{}' is not a class of the model", where, *s),
                choices_hint(*s, names_, "classes"));
  }
  // NaN is a missing value (pandas' and Parquet's null float), as an empty cell is.
  const auto* number = std::get_if<double>(&cell);
  if (std::holds_alternative<std::monostate>(cell) || (number && std::isnan(*number)))
    fail(ErrorCode::kUsage, "{}: the label is empty", where);
  fail(ErrorCode::kUsage, "{}: a label is a class name or an integer id", where);
}

namespace {

// How an error names row `row` (0-based) of a split: "csv:a.csv (split train) row 3".
std::string row_where(const std::string& dataset, const data::Split& split, std::size_t row) {
  return fmt::format("{} (split {}) row {}", dataset, split.name, row + 1);
}

const data::Value& cell(const data::Split& split, std::size_t row, int column) {
  return split.table.rows[row][static_cast<std::size_t>(column)];
}

// A label cell as its row wrote it. A JSON lines column whose values mix names and ids is typed
// json, each cell holding its value's JSON text ("\"positive\"", "0"): a name or a number is read
// back as one, so that a mixed column means what each row says.
data::Value label_cell(const data::Split& split, std::size_t row, int column) {
  const data::Value& value = cell(split, row, column);
  // A float column (one row wrote 1.5, or 2.0): its whole numbers are ids, so that the error
  // names the row that is not one.
  if (const auto* d = std::get_if<double>(&value);
      d && std::isfinite(*d) && *d == std::floor(*d) && std::fabs(*d) < 9.0e15)
    return static_cast<std::int64_t>(*d);
  return data::cell_value(value, split.table.columns[static_cast<std::size_t>(column)].type);
}

// A label of a Hugging Face ClassLabel column (its names from a Parquet file's metadata) as its
// class name: the ids are positions in that column's own list of names, which a model's head
// orders its own way, so an id taken as the model's id would score a perfect model 0 and name
// tags wrongly. Other cells, and labels of other columns, are returned as they are.
data::Value class_named(const data::Value& label, const data::Column& column,
                        const std::string& where) {
  const auto* id = std::get_if<std::int64_t>(&label);
  if (id == nullptr || column.class_names.empty()) return label;
  if (*id < 0 || static_cast<std::size_t>(*id) >= column.class_names.size()) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{}: label {} is not one of the {} classes of the ClassLabel column "
                            "'{}' ({})",
                            where, *id, column.class_names.size(), column.name,
                            join(column.class_names, ", ")),
                *id == -1 ? "-1 is how Hugging Face's datasets mark an unlabelled row (a test "
                            "split's): evaluate on a labelled split (--eval-split)"
                          : "the file's \"huggingface\" metadata names fewer classes than its "
                            "labels use: rewrite the file with its features");
  }
  return column.class_names[static_cast<std::size_t>(*id)];
}

// A cell as text (a JSON string of a mixed JSON lines column unquoted: data::cell_text). A list
// or an object (a Parquet list<string> column where a text belongs) is refused: its JSON would
// be learnt as the text, brackets and quotes included.
std::string text_of(const std::string& dataset, const data::Split& split, std::size_t row,
                    int column) {
  const data::Column& c = split.table.columns[static_cast<std::size_t>(column)];
  const std::string kind = data::cell_structure(cell(split, row, column), c.type);
  MS_CHECK(kind.empty(), ErrorCode::kUsage, "{}: '{}' is {}, not a text",
           row_where(dataset, split, row), c.name, kind == "list" ? "a list" : "an object");
  return data::cell_text(cell(split, row, column), c.type);
}

// Batches of rows in each epoch's order; the subclass turns rows into tensors.
class OrderedBatches : public BatchSource {
 public:
  OrderedBatches(std::size_t rows, const Batching& b) : rows_(rows), batching_(b) {
    MS_CHECK(b.batch_size > 0, ErrorCode::kConfig, "batch_size_per_gpu must be positive");
    MS_CHECK(b.world_size >= 1 && b.rank >= 0 && b.rank < b.world_size, ErrorCode::kUsage,
             "rank {} is outside a world of {}", b.rank, b.world_size);
    const std::size_t world = static_cast<std::size_t>(b.world_size);
    shard_rows_ = (rows_ + world - 1) / world;
  }
  std::size_t rows() const override { return rows_; }
  std::size_t batch_size() const override { return batching_.batch_size; }
  bool shuffled() const override { return batching_.shuffle; }
  std::size_t num_batches() const override {
    return batching_.drop_last ? shard_rows_ / batching_.batch_size
                               : (shard_rows_ + batching_.batch_size - 1) / batching_.batch_size;
  }
  void start(std::uint64_t epoch, std::size_t skip) override {
    epoch_ = epoch;
    if (batching_.shuffle) {
      order_ = data::shuffled_indices(rows_, batching_.seed + epoch);
    } else {
      order_.resize(rows_);
      std::iota(order_.begin(), order_.end(), 0);
    }
    if (batching_.world_size > 1) {
      const std::size_t world = static_cast<std::size_t>(batching_.world_size);
      std::vector<std::size_t> shard;
      shard.reserve(shard_rows_);
      for (std::size_t i = static_cast<std::size_t>(batching_.rank); i < shard_rows_ * world;
           i += world)
        shard.push_back(order_[i % rows_]);  // past the end: the padding, from the start
      order_ = std::move(shard);
    }
    batch_ = skip;
  }
  std::optional<models::TensorMap> next() override {
    if (batch_ >= num_batches()) return std::nullopt;
    const std::size_t begin = batch_ * batching_.batch_size;
    const std::size_t end = std::min(begin + batching_.batch_size, order_.size());
    ++batch_;
    last_rows_.assign(order_.begin() + static_cast<std::ptrdiff_t>(begin),
                      order_.begin() + static_cast<std::ptrdiff_t>(end));
    return make(last_rows_);
  }
  std::vector<std::size_t> last_rows() const override { return last_rows_; }

 protected:
  virtual models::TensorMap make(const std::vector<std::size_t>& rows) const = 0;
  std::uint64_t epoch() const { return epoch_; }
  const Batching& batching() const { return batching_; }

 private:
  std::size_t rows_;
  std::size_t shard_rows_;  // this rank's rows an epoch (all of them in one process)
  Batching batching_;
  std::vector<std::size_t> order_;
  std::vector<std::size_t> last_rows_;
  std::size_t batch_ = 0;
  std::uint64_t epoch_ = 0;
};

class TextBatches final : public OrderedBatches {
 public:
  TextBatches(std::vector<text::Encoding> encodings, std::vector<std::int64_t> labels,
              std::int64_t pad_id, const Batching& b)
      : OrderedBatches(encodings.size(), b),
        encodings_(std::move(encodings)),
        labels_(std::move(labels)),
        pad_id_(pad_id) {}

 protected:
  models::TensorMap make(const std::vector<std::size_t>& rows) const override {
    std::vector<tensor::TokenRow> token_rows;
    std::vector<std::int64_t> labels;
    for (std::size_t r : rows) {
      token_rows.push_back({&encodings_[r].ids, &encodings_[r].type_ids});
      labels.push_back(labels_[r]);
    }
    models::TensorMap batch = tensor::collate_tokens(token_rows, pad_id_, "cpu");
    batch["labels"] = at::tensor(labels, at::kLong);
    return batch;
  }

 private:
  std::vector<text::Encoding> encodings_;
  std::vector<std::int64_t> labels_;
  std::int64_t pad_id_;
};

class TokenBatches final : public OrderedBatches {
 public:
  TokenBatches(std::vector<std::vector<std::int64_t>> ids,
               std::vector<std::vector<std::int64_t>> labels, std::int64_t pad_id,
               const Batching& b)
      : OrderedBatches(ids.size(), b),
        ids_(std::move(ids)),
        labels_(std::move(labels)),
        pad_id_(pad_id) {}

 protected:
  models::TensorMap make(const std::vector<std::size_t>& rows) const override {
    std::vector<tensor::TokenRow> token_rows;
    std::vector<std::vector<std::int64_t>> type_ids;
    type_ids.reserve(rows.size());
    std::size_t longest = 0;
    for (std::size_t r : rows) {
      type_ids.emplace_back(ids_[r].size(), 0);
      longest = std::max(longest, ids_[r].size());
    }
    std::vector<std::int64_t> labels;
    for (std::size_t k = 0; k < rows.size(); ++k) {
      token_rows.push_back({&ids_[rows[k]], &type_ids[k]});
      const auto& l = labels_[rows[k]];
      labels.insert(labels.end(), l.begin(), l.end());
      labels.insert(labels.end(), longest - l.size(), -100);
    }
    models::TensorMap batch = tensor::collate_tokens(token_rows, pad_id_, "cpu");
    batch["labels"] = at::tensor(labels, at::kLong)
                          .view({static_cast<int64_t>(rows.size()), static_cast<int64_t>(longest)});
    return batch;
  }

 private:
  std::vector<std::vector<std::int64_t>> ids_, labels_;
  std::int64_t pad_id_;
};

// Makes the next batch on another thread while the caller trains on this one: image decoding
// and transforms overlap the forward and backward passes. The order and content are the inner
// source's; an error of the inner source is rethrown by next().
class PrefetchedBatches final : public BatchSource {
 public:
  explicit PrefetchedBatches(std::unique_ptr<BatchSource> inner) : inner_(std::move(inner)) {}
  ~PrefetchedBatches() override { wait(); }
  std::size_t rows() const override { return inner_->rows(); }
  std::size_t num_batches() const override { return inner_->num_batches(); }
  std::size_t batch_size() const override { return inner_->batch_size(); }
  bool shuffled() const override { return inner_->shuffled(); }
  void start(std::uint64_t epoch, std::size_t skip) override {
    wait();
    inner_->start(epoch, skip);
    fetch();
  }
  std::optional<models::TensorMap> next() override {
    if (!ahead_.valid()) return std::nullopt;
    std::optional<models::TensorMap> batch = ahead_.get();
    if (batch) fetch();
    return batch;
  }

 private:
  void fetch() {
    ahead_ = std::async(std::launch::async, [this] {
      // One intra-op thread: the training thread's parallel regions keep the cores.
      pipelines::set_thread_intra_op_threads(1);
      return inner_->next();
    });
  }
  void wait() {
    if (ahead_.valid()) ahead_.wait();
    ahead_ = {};
  }

  std::unique_ptr<BatchSource> inner_;
  std::future<std::optional<models::TensorMap>> ahead_;
};

class ImageBatches final : public OrderedBatches {
 public:
  ImageBatches(std::vector<std::string> paths, std::vector<std::int64_t> labels,
               std::vector<pipelines::Transform> transforms, const Batching& b)
      : OrderedBatches(paths.size(), b),
        paths_(std::move(paths)),
        labels_(std::move(labels)),
        transforms_(std::move(transforms)) {}

 protected:
  models::TensorMap make(const std::vector<std::size_t>& rows) const override {
    std::vector<at::Tensor> images;
    std::vector<std::int64_t> labels;
    for (std::size_t r : rows) {
      const data::Image image = data::read_image(paths_[r], 3);
      // The random augmentations of an image draw from a generator of its own, seeded by the
      // run's seed, the epoch and its row: the same crops whatever the batch, the rank or the
      // point a run resumed from.
      pipelines::TransformRandom random =
          pipelines::TransformRandom::for_item(batching().seed, epoch(), r);
      images.push_back(
          with_context(fmt::format("applying the preprocessor transforms to {}", paths_[r]),
                       [&] { return pipelines::apply_transforms(transforms_, image, &random); }));
      labels.push_back(labels_[r]);
    }
    const auto shape = images.front().sizes();
    for (std::size_t i = 1; i < images.size(); ++i)
      MS_CHECK(images[i].sizes() == shape, ErrorCode::kConfig,
               "{} and {} have different sizes after the preprocessor transforms: end the list "
               "with a Resize to [height, width], a CenterCrop or a RandomResizedCrop "
               "(preprocessor.train for training, preprocessor.val for evaluation)",
               paths_[rows[0]], paths_[rows[i]]);
    return {{"pixel_values", at::stack(images)}, {"labels", at::tensor(labels, at::kLong)}};
  }

 private:
  std::vector<std::string> paths_;
  std::vector<std::int64_t> labels_;
  std::vector<pipelines::Transform> transforms_;
};

int column_named(const data::Split& split, const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    const int i = split.table.column_index(n);
    if (i >= 0) return i;
  }
  return -1;
}

std::vector<std::string> column_names(const data::Split& split) {
  std::vector<std::string> out;
  for (const auto& c : split.table.columns) out.push_back(c.name);
  return out;
}

// Whether a model's class names name something (not Hugging Face's placeholders LABEL_0, ...).
bool names_classes(const std::vector<std::string>& model_labels) {
  for (std::size_t i = 0; i < model_labels.size(); ++i)
    if (model_labels[i] != "LABEL_" + std::to_string(i)) return true;
  return false;
}

// Classes known only by id: LABEL_0..LABEL_n-1 for the larger of the model's head and the data's
// largest id.
LabelMap numbered_labels(std::size_t model_classes, std::int64_t max_id) {
  const std::size_t count = std::max(model_classes, static_cast<std::size_t>(max_id + 1));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back("LABEL_" + std::to_string(i));
  return LabelMap(out);
}

}  // namespace

namespace {

// The column `key` names (preprocessor.first_sequence, ...), else the first of `defaults` the
// split has; "" when none and not `required`, else kUsage listing the columns.
std::string pick_column(const data::Split& split, const Config& config, const char* key,
                        const std::vector<std::string>& defaults, bool required,
                        const std::string& dataset) {
  if (config.has(key)) {
    const std::string name = config.get<std::string>(key);
    if (split.table.column_index(name) < 0) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("{} (split {}) has no column '{}' ({} in {})", dataset, split.name,
                              name, key, config.source()),
                  choices_hint(name, column_names(split), "columns"));
    }
    return name;
  }
  const int i = column_named(split, defaults);
  if (i >= 0) return split.table.columns[static_cast<std::size_t>(i)].name;
  if (required) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} (split {}) has none of the columns {}", dataset, split.name,
                            join(defaults, ", ")),
                fmt::format("columns: {}; name the one to use with --set {}=COLUMN",
                            join(column_names(split), ", "), key));
  }
  return {};
}

}  // namespace

TextColumns find_text_columns(const data::Split& split, const Config& config,
                              const std::string& dataset) {
  TextColumns c;
  c.first = pick_column(split, config, "preprocessor.first_sequence",
                        {"text", "sentence", "sentence1", "text_a"}, true, dataset);
  c.second = pick_column(split, config, "preprocessor.second_sequence",
                         {"sentence2", "text_pair", "text_b"}, false, dataset);
  c.label = pick_column(split, config, "preprocessor.label", {"label", "labels"}, true, dataset);
  return c;
}

LabelMap text_label_map(const data::Split& split, const std::string& column,
                        const std::vector<std::string>& model_labels, const std::string& dataset) {
  if (names_classes(model_labels)) return LabelMap(model_labels);
  const int col = split.table.column_index(column);
  // A ClassLabel column's names, in its order, are the classes (as transformers' run_glue takes
  // them), those no row of this split uses included.
  const auto& class_names = split.table.columns[static_cast<std::size_t>(col)].class_names;
  if (!class_names.empty()) return LabelMap(class_names);
  std::set<std::string> names;
  std::int64_t max_id = -1;
  for (std::size_t r = 0; r < split.table.rows.size(); ++r) {
    const data::Value v = label_cell(split, r, col);
    if (const auto* s = std::get_if<std::string>(&v)) {
      names.insert(*s);
    } else if (const auto* i = std::get_if<std::int64_t>(&v)) {
      MS_CHECK(*i >= 0, ErrorCode::kUsage, "{} row {}: label {} is negative", dataset, r + 1, *i);
      max_id = std::max(max_id, *i);
    } else {
      fail(ErrorCode::kUsage,
           "{} row {}: the label column '{}' needs a class name or an integer id in every row",
           dataset, r + 1, column);
    }
  }
  MS_CHECK(names.empty() || max_id < 0, ErrorCode::kUsage,
           "{}: the label column '{}' mixes class names and integer ids", dataset, column);
  if (!names.empty()) return LabelMap(std::vector<std::string>(names.begin(), names.end()));
  // Integer ids: the model's own head size when it has one, else as many as the data uses.
  return numbered_labels(model_labels.size(), max_id);
}

std::string find_document_column(const data::Split& split, const Config& config,
                                 const std::string& dataset, bool required) {
  return pick_column(split, config, "preprocessor.first_sequence", {"text", "content", "sentence"},
                     required, dataset);
}

PromptsAndTargets read_prompts_and_targets(const data::Split& split, const Config& config,
                                           const std::string& dataset) {
  PromptsAndTargets out;
  out.prompt_column =
      pick_column(split, config, "preprocessor.src_txt", {"src_txt"}, true, dataset);
  const std::string target_column =
      pick_column(split, config, "preprocessor.tgt_txt", {"tgt_txt"}, true, dataset);
  const int prompt = split.table.column_index(out.prompt_column);
  const int target = split.table.column_index(target_column);
  for (std::size_t r = 0; r < split.table.rows.size(); ++r) {
    out.prompts.push_back(text_of(dataset, split, r, prompt));
    // The generation pipeline refuses an empty prompt; here the row can be named.
    MS_CHECK(!out.prompts.back().empty(), ErrorCode::kUsage,
             "{}: the prompt ('{}') is empty: text-gen-metric generates from it",
             row_where(dataset, split, r), out.prompt_column);
    out.targets.push_back(text_of(dataset, split, r, target));
  }
  return out;
}

namespace {

class CausalLmBatches final : public OrderedBatches {
 public:
  CausalLmBatches(std::vector<std::vector<std::int64_t>> ids, std::int64_t pad_id,
                  const Batching& b)
      : OrderedBatches(ids.size(), b), ids_(std::move(ids)), pad_id_(pad_id) {}

 protected:
  models::TensorMap make(const std::vector<std::size_t>& rows) const override {
    std::size_t longest = 0;
    for (std::size_t r : rows) longest = std::max(longest, ids_[r].size());
    const std::size_t n = rows.size() * longest;
    std::vector<std::int64_t> input(n, pad_id_), mask(n, 0), labels(n, -100), next(n, -100);
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const std::vector<std::int64_t>& row = ids_[rows[k]];
      for (std::size_t j = 0; j < row.size(); ++j) {
        input[k * longest + j] = row[j];
        mask[k * longest + j] = 1;
        labels[k * longest + j] = row[j];
        if (j + 1 < row.size()) next[k * longest + j] = row[j + 1];
      }
    }
    const std::vector<int64_t> shape = {static_cast<int64_t>(rows.size()),
                                        static_cast<int64_t>(longest)};
    const auto tensor = [&](const std::vector<std::int64_t>& v) {
      return at::tensor(v, at::kLong).view(shape);
    };
    return {{"input_ids", tensor(input)},
            {"attention_mask", tensor(mask)},
            {"labels", tensor(labels)},
            {"next_token_labels", tensor(next)}};
  }

 private:
  std::vector<std::vector<std::int64_t>> ids_;
  std::int64_t pad_id_;
};

}  // namespace

std::unique_ptr<BatchSource> make_causal_lm_batches(
    const data::Split& split, const std::string& column, const text::CausalTokenizer& tokenizer,
    std::int64_t embedding_rows, std::size_t max_length, const Batching& batching,
    const std::string& dataset) {
  MS_CHECK(max_length >= 2, ErrorCode::kConfig,
           "preprocessor.max_length must be at least 2 to predict a next token, got {}",
           max_length);
  const int col = split.table.column_index(column);
  std::vector<std::vector<std::int64_t>> ids;
  ids.reserve(split.table.rows.size());
  for (std::size_t r = 0; r < split.table.rows.size(); ++r) {
    const std::string where = row_where(dataset, split, r);
    const std::string text = text_of(dataset, split, r, col);
    MS_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, ErrorCode::kUsage,
             "{}: the text ('{}') is empty", where, column);
    try {
      std::vector<std::int64_t> row = tokenizer.document_ids(text, max_length);
      for (const std::int64_t id : row) {
        MS_CHECK(id < embedding_rows, ErrorCode::kConfig,
                 "the text holds token id {}, past the model's embedding table (vocab_size {}): "
                 "tokens were added to the tokenizer without resizing the model",
                 id, embedding_rows);
      }
      ids.push_back(std::move(row));
    } catch (Error& e) {
      e.add_context(where);
      throw;
    }
  }
  return std::make_unique<CausalLmBatches>(std::move(ids), tokenizer.padding_id(embedding_rows),
                                           batching);
}

std::unique_ptr<BatchSource> make_text_batches(const data::Split& split, const TextColumns& columns,
                                               const LabelMap& labels,
                                               const text::BertTokenizer& tokenizer,
                                               std::size_t max_length, const Batching& batching,
                                               const std::string& dataset) {
  const int first = split.table.column_index(columns.first);
  const int second = columns.second.empty() ? -1 : split.table.column_index(columns.second);
  const int label = split.table.column_index(columns.label);
  // The callers find the columns in this split (find_text_columns); a missing one is a bug here.
  MS_CHECK(first >= 0 && label >= 0 && (columns.second.empty() || second >= 0),
           ErrorCode::kInternal, "{} (split {}) lacks the columns {}, {}", dataset, split.name,
           columns.first, columns.label);
  // ClassLabel ids go by their names where the model names its classes (a head with
  // placeholders, LABEL_0.., has only positions to go by).
  const bool by_name = names_classes(labels.names());
  std::vector<text::Encoding> encodings;
  std::vector<std::int64_t> ids;
  encodings.reserve(split.table.rows.size());
  for (std::size_t r = 0; r < split.table.rows.size(); ++r) {
    const std::string where = row_where(dataset, split, r);
    const std::string text = text_of(dataset, split, r, first);
    MS_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, ErrorCode::kUsage,
             "{}: the text ('{}') is empty", where, columns.first);
    std::optional<std::string> pair;
    if (second >= 0) pair = text_of(dataset, split, r, second);
    try {
      encodings.push_back(tokenizer.encode(
          text, pair ? std::optional<std::string_view>(*pair) : std::nullopt, max_length));
    } catch (Error& e) {
      e.add_context(where);
      throw;
    }
    const data::Value value = label_cell(split, r, label);
    ids.push_back(labels.id_of(
        by_name ? class_named(value, split.table.columns[static_cast<std::size_t>(label)], where)
                : value,
        where));
  }
  return std::make_unique<TextBatches>(std::move(encodings), std::move(ids), tokenizer.pad_id(),
                                       batching);
}

namespace {

enum class ListOf { kWords, kTags };

// A cell holding a list: a JSON list (the jsonl / json column), or text split at whitespace. A
// tag written as a number in text ("0 3 4", or a CSV column of one-word rows typed as integers)
// is a class id, as it is in a JSON list; a word so typed is the word as written.
std::vector<data::Value> list_cell(const data::Value& v, const std::string& where,
                                   const std::string& column, ListOf what) {
  if (const auto* number = std::get_if<std::int64_t>(&v)) {
    if (what == ListOf::kTags) return {*number};
    return {std::to_string(*number)};
  }
  const auto* text = std::get_if<std::string>(&v);
  MS_CHECK(text != nullptr, ErrorCode::kUsage, "{}: '{}' must be a list of words or tags", where,
           column);
  std::vector<data::Value> out;
  const std::string trimmed = std::string(*text).erase(0, text->find_first_not_of(" \t"));
  // A JSON object in a JSON lines column (its cell holds the object's text).
  MS_CHECK(what == ListOf::kWords || trimmed.empty() || trimmed.front() != '{', ErrorCode::kUsage,
           "{}: '{}' must be a list of words or tags", where, column);
  if (!trimmed.empty() && trimmed.front() == '[') {
    nlohmann::json list;
    try {
      list = nlohmann::json::parse(trimmed);
    } catch (const nlohmann::json::exception&) {
      fail(ErrorCode::kUsage, "{}: '{}' is not a JSON list", where, column);
    }
    MS_CHECK(list.is_array(), ErrorCode::kUsage, "{}: '{}' is not a JSON list", where, column);
    for (const auto& item : list) {
      if (item.is_string()) {
        out.emplace_back(item.get<std::string>());
      } else if (item.is_number_integer()) {
        out.emplace_back(item.get<std::int64_t>());
      } else {
        fail(ErrorCode::kUsage, "{}: '{}' holds {}, not a word or a tag", where, column,
             item.dump());
      }
    }
    return out;
  }
  for (const std::string& word : split(*text, ' ')) {
    if (word.empty()) continue;
    if (what == ListOf::kTags && is_decimal(word) && word.size() < 19) {
      out.emplace_back(std::stoll(word));
    } else {
      out.emplace_back(word);
    }
  }
  return out;
}

}  // namespace

TextColumns find_token_columns(const data::Split& split, const Config& config,
                               const std::string& dataset) {
  TextColumns c;
  c.first =
      pick_column(split, config, "preprocessor.first_sequence", {"tokens", "words"}, true, dataset);
  c.label = pick_column(split, config, "preprocessor.label",
                        {"ner_tags", "labels", "tags", "label"}, true, dataset);
  return c;
}

LabelMap token_label_map(const data::Split& split, const std::string& column,
                         const std::vector<std::string>& model_labels, const std::string& dataset) {
  if (names_classes(model_labels)) return LabelMap(model_labels);
  const int col = split.table.column_index(column);
  // A Sequence(ClassLabel) column's names, in its order ("O", "B-PER", ...), are the tags.
  const auto& class_names = split.table.columns[static_cast<std::size_t>(col)].class_names;
  if (!class_names.empty()) return LabelMap(class_names);
  std::set<std::string> names;
  std::int64_t max_id = -1;
  for (std::size_t r = 0; r < split.table.rows.size(); ++r) {
    const std::string where = row_where(dataset, split, r);
    for (const data::Value& tag : list_cell(cell(split, r, col), where, column, ListOf::kTags)) {
      if (const auto* s = std::get_if<std::string>(&tag)) names.insert(*s);
      if (const auto* i = std::get_if<std::int64_t>(&tag)) max_id = std::max(max_id, *i);
    }
  }
  std::vector<std::string> out;
  if (!names.empty()) {
    if (names.count("O") != 0) out.push_back("O");
    for (const auto& n : names)
      if (n != "O") out.push_back(n);
    return LabelMap(out);
  }
  return numbered_labels(model_labels.size(), max_id);
}

std::unique_ptr<BatchSource> make_token_batches(const data::Split& split,
                                                const TextColumns& columns, const LabelMap& labels,
                                                const text::BertTokenizer& tokenizer,
                                                std::size_t max_length, const Batching& batching,
                                                const std::string& dataset) {
  const int words_col = split.table.column_index(columns.first);
  const int tags_col = split.table.column_index(columns.label);
  MS_CHECK(words_col >= 0 && tags_col >= 0, ErrorCode::kInternal,
           "{} (split {}) lacks the columns {}, {}", dataset, split.name, columns.first,
           columns.label);
  const std::int64_t cls = tokenizer.token_to_id(tokenizer.options().cls_token);
  const std::int64_t sep = tokenizer.token_to_id(tokenizer.options().sep_token);
  MS_CHECK(cls >= 0 && sep >= 0, ErrorCode::kConfig, "the tokenizer's vocabulary lacks {} or {}",
           tokenizer.options().cls_token, tokenizer.options().sep_token);
  const bool by_name = names_classes(labels.names());  // as make_text_batches
  std::vector<std::vector<std::int64_t>> all_ids, all_labels;
  // Words that give no token (empty, spaces, control characters) lose their tag, as in
  // transformers' word_ids(); said once, as it makes a metric count fewer entities.
  std::size_t tokenless_words = 0;
  std::string first_tokenless;
  for (std::size_t r = 0; r < split.table.rows.size(); ++r) {
    const std::string where = row_where(dataset, split, r);
    const auto words = list_cell(cell(split, r, words_col), where, columns.first, ListOf::kWords);
    const auto tags = list_cell(cell(split, r, tags_col), where, columns.label, ListOf::kTags);
    MS_CHECK(!words.empty(), ErrorCode::kUsage, "{}: '{}' is empty", where, columns.first);
    MS_CHECK(words.size() == tags.size(), ErrorCode::kUsage,
             "{}: {} words but {} tags ('{}' and '{}' must be as long)", where, words.size(),
             tags.size(), columns.first, columns.label);
    std::vector<std::int64_t> ids{cls}, ls{-100};
    for (std::size_t w = 0; w < words.size(); ++w) {
      const std::string word_where = fmt::format("{}, word {}", where, w + 1);
      const std::int64_t tag = labels.id_of(
          by_name ? class_named(tags[w], split.table.columns[static_cast<std::size_t>(tags_col)],
                                word_where)
                  : tags[w],
          word_where);
      std::vector<std::int64_t> pieces;
      try {
        pieces = tokenizer.token_ids(data::cell_text(words[w], data::ColumnType::kString));
      } catch (Error& e) {
        e.add_context(where);
        throw;
      }
      if (pieces.empty() && tokenless_words++ == 0)
        first_tokenless = fmt::format("{}, word {}", where, w + 1);
      // Truncated to max_length with room for [SEP]: words past it are not trained on.
      for (std::size_t k = 0; k < pieces.size() && ids.size() + 1 < max_length; ++k) {
        ids.push_back(pieces[k]);
        ls.push_back(k == 0 ? tag : -100);
      }
    }
    ids.push_back(sep);
    ls.push_back(-100);
    all_ids.push_back(std::move(ids));
    all_labels.push_back(std::move(ls));
  }
  if (tokenless_words > 0) {
    log::warn(
        "{}: {} word(s) give no token (empty, spaces or control characters; the first: {}), "
        "so their tags are left out",
        dataset, tokenless_words, first_tokenless);
  }
  return std::make_unique<TokenBatches>(std::move(all_ids), std::move(all_labels),
                                        tokenizer.pad_id(), batching);
}

std::unique_ptr<BatchSource> make_image_batches(const data::Split& split,
                                                std::vector<pipelines::Transform> transforms,
                                                const LabelMap& label_map,
                                                const std::vector<std::string>& dataset_classes,
                                                const Batching& batching,
                                                const std::string& dataset) {
  const auto num_labels = static_cast<std::int64_t>(label_map.size());
  int image = -1;
  for (std::size_t i = 0; i < split.table.columns.size(); ++i)
    if (split.table.columns[i].type == data::ColumnType::kImage ||
        split.table.columns[i].type == data::ColumnType::kFile) {
      image = static_cast<int>(i);
      break;
    }
  MS_CHECK(image >= 0, ErrorCode::kUsage,
           "{} (split {}) has no image column: image classification trains on an imagefolder "
           "(imagefolder:DIR) or a table with a file column",
           dataset, split.name);
  const int label = column_named(split, {"label", "labels"});
  MS_CHECK(label >= 0, ErrorCode::kUsage, "{} (split {}) has no label column (label)", dataset,
           split.name);
  std::vector<std::string> paths;
  std::vector<std::int64_t> labels;
  for (std::size_t r = 0; r < split.table.rows.size(); ++r) {
    const std::string where = row_where(dataset, split, r);
    paths.push_back(text_of(dataset, split, r, image));
    // label_cell: a float column's whole numbers are ids (a CSV label column with a blank is
    // float, as pandas reads it), so that only a row that holds no id is refused.
    const data::Value value = label_cell(split, r, label);
    const auto* id = std::get_if<std::int64_t>(&value);
    MS_CHECK(!std::holds_alternative<std::monostate>(value), ErrorCode::kUsage,
             "{}: the label is empty", where);
    MS_CHECK(id != nullptr, ErrorCode::kUsage, "{}: the label is not an integer class id", where);
    if (!dataset_classes.empty() && *id >= 0 &&
        static_cast<std::size_t>(*id) < dataset_classes.size()) {
      labels.push_back(label_map.id_of(dataset_classes[static_cast<std::size_t>(*id)], where));
      continue;
    }
    MS_CHECK(*id >= 0 && *id < num_labels, ErrorCode::kUsage,
             "{}: label {} is outside the model's {} classes (0..{})", where, *id, num_labels,
             num_labels - 1);
    labels.push_back(*id);
  }
  auto images = std::make_unique<ImageBatches>(std::move(paths), std::move(labels),
                                               std::move(transforms), batching);
  // Decoding ahead pays only with a core the training step leaves free: with as many intra-op
  // threads as cores, the decoding thread stalls every parallel region of the step (one epoch of
  // the Fashion-MNIST CNN on 2 cores: 683 samples/s with it, 944 without).
  if (at::get_num_threads() < static_cast<int>(std::thread::hardware_concurrency()))
    return std::make_unique<PrefetchedBatches>(std::move(images));
  return images;
}

}  // namespace ms::trainer
