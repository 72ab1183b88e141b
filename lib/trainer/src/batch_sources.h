// Dataset splits -> batches of model inputs with labels: tokenised text rows (text classification,
// sentence pairs) and decoded, transformed images; each epoch in an order that depends only on
// the seed and the epoch.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ms/data/dataset.h"
#include "ms/pipelines/image_transforms.h"
#include "ms/text/bert_tokenizer.h"
#include "ms/text/causal_tokenizer.h"
#include "ms/trainer/trainer.h"

namespace ms::trainer {

/// How rows become batches (train.dataloader / evaluation.dataloader).
struct Batching {
  std::size_t batch_size = 32;
  bool shuffle = false;
  bool drop_last = false;
  std::uint64_t seed = 42;
  /// A data-parallel rank's shard, as PyTorch's DistributedSampler deals it: the epoch's order
  /// padded (by repeating its start) to a multiple of world_size, then every world_size-th row
  /// from `rank`; batches of batch_size are cut from the shard.
  int rank = 0, world_size = 1;
};

/// Class names <-> ids of a classification head.
class LabelMap {
 public:
  LabelMap() = default;
  explicit LabelMap(std::vector<std::string> names);
  const std::vector<std::string>& names() const { return names_; }
  std::size_t size() const { return names_.size(); }
  /// The id of a label cell: a class name, or an integer id in range; where some class is named
  /// by a number (star ratings "1".."5"), an integer is that name, as in ModelScope
  /// (label2id[str(label)]): as an id it would mean another class. kUsage naming `where` and the
  /// classes otherwise.
  std::int64_t id_of(const data::Value& cell, const std::string& where) const;

 private:
  std::vector<std::string> names_;
  bool numbers_are_names_ = false;
};

/// The text columns of a split: preprocessor.first_sequence / second_sequence / label, else
/// "text" / "sentence" / "sentence1" (and "sentence2", "text_pair"), and "label" / "labels".
struct TextColumns {
  std::string first, second, label;
};
TextColumns find_text_columns(const data::Split& split, const Config& config,
                              const std::string& dataset);

/// The label map of a text classification run: the model's id2label where it names classes (not
/// LABEL_i), else the split's class names sorted (string labels), else LABEL_0..max (integers).
LabelMap text_label_map(const data::Split& split, const std::string& column,
                        const std::vector<std::string>& model_labels, const std::string& dataset);

std::unique_ptr<BatchSource> make_text_batches(const data::Split& split, const TextColumns& columns,
                                               const LabelMap& labels,
                                               const text::BertTokenizer& tokenizer,
                                               std::size_t max_length, const Batching& batching,
                                               const std::string& dataset);

/// The columns of a token classification split: the words (preprocessor.first_sequence, else
/// "tokens" / "words") and their tags (preprocessor.label, else "ner_tags" / "labels" / "tags" /
/// "label"): JSON lists, or text split at spaces.
TextColumns find_token_columns(const data::Split& split, const Config& config,
                               const std::string& dataset);

/// The tag map of a token classification run: the model's id2label where it names tags, else
/// the split's tags sorted ("O" first), else LABEL_0..max (integers).
LabelMap token_label_map(const data::Split& split, const std::string& column,
                         const std::vector<std::string>& model_labels, const std::string& dataset);

/// Words -> WordPiece ids; each word's tag on its first piece, -100 (ignored by the loss and the
/// metric) on the others and on [CLS]/[SEP], as Hugging Face's token classification recipe does.
std::unique_ptr<BatchSource> make_token_batches(const data::Split& split,
                                                const TextColumns& columns, const LabelMap& labels,
                                                const text::BertTokenizer& tokenizer,
                                                std::size_t max_length, const Batching& batching,
                                                const std::string& dataset);

/// The text column of a causal language modelling split: preprocessor.first_sequence, else
/// "text" / "content" / "sentence"; a split without one is kUsage, or "" when not `required`.
std::string find_document_column(const data::Split& split, const Config& config,
                                 const std::string& dataset, bool required = true);

/// What text-gen-metric compares (text-generation): each row's prompt, which the model continues,
/// and its target text.
struct PromptsAndTargets {
  std::string prompt_column;
  std::vector<std::string> prompts, targets;
};

/// The prompts and targets of a split, from the columns ModelScope's text-generation
/// preprocessor reads: preprocessor.src_txt and preprocessor.tgt_txt, else "src_txt" and
/// "tgt_txt" (its defaults). A missing column or an empty prompt is kUsage naming it; an empty
/// target is kept (the metric leaves such pairs out of ROUGE, as ModelScope's does).
PromptsAndTargets read_prompts_and_targets(const data::Split& split, const Config& config,
                                           const std::string& dataset);

/// Causal language modelling (text-generation): each row's text as the tokenizer's document ids
/// (cut to `max_length`), right-padded. `labels` are the ids with -100 on the padding; the model
/// shifts them (position i predicts token i + 1, as Hugging Face's GPT2LMHeadModel does).
/// `next_token_labels` are those targets already shifted, for metrics that score the logits
/// position by position (ppl).
/// `embedding_rows`: the model's token embedding rows; a text holding an id past them (a token
/// added to the tokenizer without resizing the model) is kConfig naming its row.
std::unique_ptr<BatchSource> make_causal_lm_batches(
    const data::Split& split, const std::string& column, const text::CausalTokenizer& tokenizer,
    std::int64_t embedding_rows, std::size_t max_length, const Batching& batching,
    const std::string& dataset);

/// An image split (imagefolder: an image column and integer labels) with the model's transforms.
/// `dataset_classes` (an imagefolder's class names by its own ids) are mapped to the model's
/// classes by name, so that a test folder missing a class still labels the others right; without
/// names, ids are taken as they are.
std::unique_ptr<BatchSource> make_image_batches(const data::Split& split,
                                                std::vector<pipelines::Transform> transforms,
                                                const LabelMap& labels,
                                                const std::vector<std::string>& dataset_classes,
                                                const Batching& batching,
                                                const std::string& dataset);

}  // namespace ms::trainer
