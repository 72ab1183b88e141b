// `ms train` and `ms eval` over the Trainer: which model (a folder's weights, a fresh head with the
// dataset's classes, or a model from scratch), which batches, and the inference-ready output/
// folder that `ms infer`, `ms eval` and Python transformers read back.
#include "ms/trainer/training_service.h"

#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>
#include <fcntl.h>
#include <sys/file.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <limits>
#include <map>
#include <set>

#include "batch_sources.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/core/utf8.h"
#include "ms/infer/torch_layer.h"
#include "ms/metrics/metric.h"
#include "ms/pipelines/registry.h"
#include "ms/tensor/weights.h"
#include "run_log.h"

namespace ms::trainer {
namespace {

bool text_task(const std::string& task) {
  // nli and sentiment-classification arrive as these (ms::infer::canonical_task).
  static const std::set<std::string> kTasks = {"text-classification", "sentence-similarity"};
  return kTasks.count(task) != 0;
}

bool token_task(const std::string& task) {
  static const std::set<std::string> kTasks = {"token-classification", "named-entity-recognition",
                                               "word-segmentation"};
  return kTasks.count(task) != 0;
}

bool image_task(const std::string& task) { return task == "image-classification"; }

// Causal language modelling: a decoder learns to continue texts.
bool generation_task(const std::string& task) { return task == "text-generation"; }

void check_task(const std::string& task) {
  MS_CHECK(text_task(task) || token_task(task) || image_task(task) || generation_task(task),
           ErrorCode::kUsage,
           "ms train and ms eval handle text-classification, sentence-similarity, nli, "
           "sentiment-classification, token-classification, named-entity-recognition, "
           "word-segmentation, image-classification and text-generation; not {} (yet)",
           task);
}

// The weights a folder holds, or nullopt (a configuration-only folder trains from scratch).
std::optional<tensor::WeightMap> folder_weights(const std::filesystem::path& dir) {
  for (const char* name : {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                           "pytorch_model.bin.index.json"})
    if (std::filesystem::exists(dir / name)) return tensor::load_model_weights(dir);
  return std::nullopt;
}

// The model type: configuration.json's model.type, else config.json's model_type.
std::string model_type_of(const infer::ModelInfo& m) {
  if (!m.model_type.empty()) return m.model_type;
  if (auto hf = read_json_file(m.dir / "config.json"))
    if (hf->contains("model_type") && (*hf)["model_type"].is_string())
      return (*hf)["model_type"].get<std::string>();
  if (generation_task(m.task)) return "gpt2";
  return text_task(m.task) || token_task(m.task) ? "bert" : "";
}

// The class names of an id -> name map in id order. The ids run 0 to n-1, each once: a map with
// a gap or a repeated id was ignored (the classes then came from the data, and the model's head
// was made anew for them).
// `key` names the map in errors ("model.label2id", "config.json's id2label").
std::vector<std::string> names_in_id_order(const std::map<std::int64_t, std::string>& by_id,
                                           std::size_t entries, const std::string& key) {
  const std::string hint = "number the classes 0, 1, ... with one name each";
  if (by_id.size() != entries) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{} gives {} entries but only {} distinct class ids", key, entries,
                            by_id.size()),
                hint);
  }
  std::vector<std::string> out;
  std::map<std::string, std::int64_t> id_of_name;
  for (const auto& [id, name] : by_id) {
    if (id != static_cast<std::int64_t>(out.size())) {
      throw Error(ErrorCode::kConfig,
                  fmt::format("{} names no class {}, though it names {} classes (ids must run "
                              "0 to {})",
                              key, out.size(), entries, entries - 1),
                  hint);
    }
    // Two classes of one name (ImageNet's "crane", ids 134 and 517) are a model's to have: rows
    // labelled by that name can only train the first, which is said rather than refused.
    const auto [other, fresh] = id_of_name.emplace(name, id);
    if (!fresh) {
      log::warn("{} names classes {} and {} both '{}': rows labelled '{}' train class {} only", key,
                other->second, id, name, name, other->second);
    }
    out.push_back(name);
  }
  return out;
}

// An id -> name object (`model.id2label`, config.json's `id2label`) as names in id order.
std::vector<std::string> id2label_names(const Json& id2label, const std::string& key) {
  MS_CHECK(id2label.is_object(), ErrorCode::kConfig,
           "{} must be an object of \"id\": \"name\" pairs, got {}", key, id2label.dump());
  std::map<std::int64_t, std::string> by_id;
  for (const auto& [id, name] : id2label.items()) {
    MS_CHECK(is_decimal(id) && id.size() < 10 && name.is_string(), ErrorCode::kConfig,
             "{}: entry \"{}\": {} must map a class id (0, 1, ...) to a name", key, id,
             name.dump());
    by_id[std::stoll(id)] = name.get<std::string>();
  }
  return names_in_id_order(by_id, id2label.size(), key);
}

// Class names the configuration gives (in id order); empty when it names none. A map given but
// malformed is an error naming its key.
std::vector<std::string> configured_labels(const infer::ModelInfo& m, const Config& config) {
  auto names_list = [&](const char* key) {
    const Json& list = config.at(key);
    MS_CHECK(list.is_array(), ErrorCode::kConfig, "{} must be a list of class names, got {}", key,
             list.dump());
    std::map<std::int64_t, std::string> by_id;
    for (const auto& name : list) {
      MS_CHECK(name.is_string(), ErrorCode::kConfig,
               "{} must be a list of class names; {} is no name", key, name.dump());
      by_id[static_cast<std::int64_t>(by_id.size())] = name.get<std::string>();
    }
    return names_in_id_order(by_id, list.size(), key);
  };
  if (config.has("model.labels") && !config.at("model.labels").is_null())
    return names_list("model.labels");
  // As ModelScope: model.label2id (which its label readers take first) or model.id2label, else
  // the NLP trainer's dataset.train.labels (class ids in list order), else config.json's.
  if (config.has("model.label2id") && !config.at("model.label2id").is_null()) {
    const Json& label2id = config.at("model.label2id");
    MS_CHECK(label2id.is_object(), ErrorCode::kConfig,
             "model.label2id must be an object of \"name\": id pairs, got {}", label2id.dump());
    std::map<std::int64_t, std::string> by_id;
    for (const auto& [name, id] : label2id.items()) {
      MS_CHECK(id.is_number_integer() && id.get<std::int64_t>() >= 0, ErrorCode::kConfig,
               "model.label2id: entry \"{}\": {} is no class id (0, 1, ...)", name, id.dump());
      const auto [other, fresh] = by_id.emplace(id.get<std::int64_t>(), name);
      if (!fresh) {
        throw Error(ErrorCode::kConfig,
                    fmt::format("model.label2id gives class id {} to both '{}' and '{}'",
                                id.get<std::int64_t>(), other->second, name),
                    "give each class its own id, 0 to N-1");
      }
    }
    return names_in_id_order(by_id, label2id.size(), "model.label2id");
  }
  if (config.has("model.id2label") && !config.at("model.id2label").is_null())
    return id2label_names(config.at("model.id2label"), "model.id2label");
  if (config.has("dataset.train.labels") && !config.at("dataset.train.labels").is_null())
    return names_list("dataset.train.labels");
  if (auto hf = read_json_file(m.dir / "config.json")) {
    if (hf->contains("id2label") && !(*hf)["id2label"].is_null())
      return id2label_names((*hf)["id2label"], (m.dir / "config.json").string() + ": id2label");
  }
  return {};
}

// Hugging Face's _init_weights for BERT-family models: Linear and Embedding weights from
// N(0, initializer_range), biases 0, LayerNorm 1 and 0. Applied before the pretrained weights are
// loaded, so only a fresh head (and pooler) keeps these values; seeded by --seed.
void init_like_transformers(models::Model& model, double range) {
  at::NoGradGuard no_grad;
  for (const auto& item : model.module().named_modules()) {
    torch::nn::Module& m = *item.value();
    if (auto* linear = dynamic_cast<torch::nn::LinearImpl*>(&m)) {
      linear->weight.normal_(0, range);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* embedding = dynamic_cast<torch::nn::EmbeddingImpl*>(&m)) {
      embedding->weight.normal_(0, range);
    } else if (auto* norm = dynamic_cast<torch::nn::LayerNormImpl*>(&m)) {
      if (norm->weight.defined()) norm->weight.fill_(1);
      if (norm->bias.defined()) norm->bias.zero_();
    }
  }
}

Batching read_batching(const Config& config, const char* section, bool shuffle_default,
                       std::uint64_t seed, std::size_t batch_override = 0) {
  Batching b;
  const std::string key = std::string(section) + ".dataloader";
  // `train.dataloader=5` trained with the default batch of 32 without a word.
  if (config.has(key) && !config.at(key).is_object() && !config.at(key).is_null()) {
    throw Error(
        ErrorCode::kConfig,
        fmt::format("{}: {} is {}, not an object of dataloader options", config.source(), key,
                    config.at(key).dump()),
        fmt::format("set its keys: {0}.batch_size_per_gpu, {0}.shuffle, {0}.drop_last", key));
  }
  // Read signed, so that -3 and 0 get one message ("must be a positive integer").
  const std::int64_t size = batch_override > 0
                                ? static_cast<std::int64_t>(batch_override)
                                : config.get_or<std::int64_t>(key + ".batch_size_per_gpu", 32);
  MS_CHECK(size > 0, ErrorCode::kConfig,
           "{}: {}.batch_size_per_gpu must be a positive integer, got {}", config.source(), key,
           size);
  b.batch_size = static_cast<std::size_t>(size);
  b.shuffle = config.get_or<bool>(key + ".shuffle", shuffle_default);
  b.drop_last = config.get_or<bool>(key + ".drop_last", false);
  b.seed = seed;
  return b;
}

// Keys of train.* and evaluation.* that ms does not read are left alone, as ModelScope leaves
// them (configurations carry keys for other tools). One a typo away from a key it reads
// ("train.max_epoch") is named, with the key meant; in a dataloader section, where ModelScope
// passes other keys to torch's DataLoader, every key ms does not read is named.
void warn_unread_keys(const Config& config, const std::string& task) {
  const std::vector<std::string> loader = {"batch_size_per_gpu", "workers_per_gpu", "shuffle",
                                           "drop_last"};
  const std::vector<std::pair<std::string, std::vector<std::string>>> sections = {
      {"train",
       {"max_epochs", "work_dir", "dataloader", "optimizer", "lr_scheduler", "hooks",
        "optimizer_hook", "lr_scheduler_hook", "checkpoint", "logging", "train_iters_per_epoch",
        "use_fp16"}},
      {"train.dataloader", loader},
      {"evaluation", {"dataloader", "metrics", "period", "val_iters_per_epoch"}},
      {"evaluation.dataloader", loader}};
  for (const auto& [section, known] : sections) {
    if (!config.has(section) || !config.at(section).is_object()) continue;
    const bool loader_section = ends_with(section, ".dataloader");
    for (auto it = config.at(section).begin(); it != config.at(section).end(); ++it) {
      const std::string& key = it.key();
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string meant;
      for (const std::string& k : known)
        if (key.size() > 3 && edit_distance(key, k) <= 2) meant = k;
      if (!meant.empty()) {
        log::warn("{}: {}.{} is not read: did you mean {}.{}?", config.source(), section, key,
                  section, meant);
      } else if (loader_section) {
        log::warn("{}: {}.{} is not read (ms reads {})", config.source(), section, key,
                  join(known, ", "));
      }
    }
  }
  // ModelScope reads preprocessor.train (training) and preprocessor.val (evaluation) when the
  // preprocessor section has no type of its own; ms's text and token tasks read preprocessor.*.
  if ((text_task(task) || token_task(task) || generation_task(task)) &&
      config.has("preprocessor") && config.at("preprocessor").is_object() &&
      !config.at("preprocessor").contains("type")) {
    for (const char* sub : {"train", "val"}) {
      if (config.at("preprocessor").contains(sub) && config.at("preprocessor")[sub].is_object()) {
        log::warn(
            "{}: preprocessor.{} is not read by ms train for this task (it reads the keys "
            "of preprocessor itself: move first_sequence, label, max_length... up)",
            config.source(), sub);
      }
    }
  }
}

// The split to evaluate on when none was asked for: validation, else test, else nullptr.
const data::Split* eval_split_of(const data::Dataset& d) {
  for (const char* name : {"validation", "test"})
    for (const auto& s : d.splits)
      if (s.name == name) return &s;
  return nullptr;
}

const data::Split& train_split_of(const data::Dataset& d) {
  for (const auto& s : d.splits)
    if (s.name == "train") return s;
  return d.only_split();
}

// Whether evaluation.metrics names text-gen-metric (as a name or a {"type": ...} entry).
bool wants_generated_text(const Config& config) {
  const Json metrics = config.get_or<Json>("evaluation.metrics", Json());
  for (const Json& m : metrics.is_array() ? metrics : Json::array({metrics})) {
    if ((m.is_string() && m == metrics::kTextGenMetric) ||
        (m.is_object() && m.value("type", Json()) == metrics::kTextGenMetric))
      return true;
  }
  return false;
}

// A model ready to train or evaluate, with its label map and what its batches need.
struct Prepared {
  std::shared_ptr<models::Model> model;
  std::string type;
  LabelMap labels;
  std::unique_ptr<text::BertTokenizer> tokenizer;
  std::unique_ptr<text::CausalTokenizer> causal;  // text-generation
  std::string document_column;                    // text-generation: the texts to learn
  // text-generation evaluated by text-gen-metric: the evaluation split's prompts and targets
  std::optional<PromptsAndTargets> generation;
  bool per_token = false;  // token classification: a tag per word
  std::size_t max_length = 128;
  std::vector<pipelines::Transform> transforms;        // images: evaluation's
  std::vector<pipelines::Transform> train_transforms;  // images: training's (augmentations)
  Json hf_config;  // config.json of the source folder (text models)
};

// Texts longer than the model's positions take (RoBERTa's start after its padding id) are cut
// there, as `ms infer` cuts them, instead of failing in the forward pass.
void cap_to_positions(Prepared& p) {
  if (const std::optional<std::int64_t> most = p.model->max_tokens())
    p.max_length = std::min(p.max_length, static_cast<std::size_t>(*most));
}

// The texts a causal language model's batches hold: the split's document column; an evaluation
// split of prompts and targets alone (text-gen-metric) has its batches made of the prompts, which
// carry the rows (text-gen-metric runs no forward pass; a ppl beside it scores the prompts).
std::string document_column(const Prepared& p, const data::Split& split, const Config& config,
                            const data::Dataset& ds) {
  if (p.generation) {
    // The document column the configuration names (that of the training data, which a trained
    // model's configuration.json keeps) only where this split has it: a split of prompts and
    // targets alone is not refused for lacking it.
    constexpr const char* kKey = "preprocessor.first_sequence";
    const bool named_elsewhere =
        config.has(kKey) && split.table.column_index(config.get<std::string>(kKey)) < 0;
    std::string column =
        named_elsewhere ? std::string() : find_document_column(split, config, ds.spec, false);
    return column.empty() ? p.generation->prompt_column : column;
  }
  return find_document_column(split, config, ds.spec);
}

// text-gen-metric's prompts and targets of an evaluation split of a text-generation model, when
// evaluation.metrics names the metric.
std::optional<PromptsAndTargets> generation_rows(const infer::ModelInfo& m, const Config& config,
                                                 const data::Split& split,
                                                 const data::Dataset& ds) {
  if (!generation_task(m.task) || !wants_generated_text(config)) return std::nullopt;
  try {
    return read_prompts_and_targets(split, config, ds.spec);
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("text-gen-metric: {}", e.what()), e.hint());
  }
}

// text-gen-metric's side of the evaluation: the rows' prompts and targets, and the model
// continuing prompts through the text-generation pipeline, so with `ms infer`'s decoding and
// options (greedy unless the configuration or generation_config.json says otherwise; at most
// max_new_tokens new tokens, 50 unless set).
std::optional<GenerationEval> generation_eval(const infer::ModelInfo& m, const Config& config,
                                              const Prepared& p, const std::string& device) {
  if (!p.generation) return std::nullopt;
  infer::ModelInfo info = m;
  info.config = config;
  std::shared_ptr<infer::Pipeline> pipeline =
      pipelines::make_text_generation_pipeline(info, p.model, device);
  GenerationEval g;
  g.prompts = p.generation->prompts;
  g.targets = p.generation->targets;
  g.continue_texts = [pipeline](const std::vector<std::string>& prompts) {
    std::vector<infer::PipelineInput> inputs(prompts.size());
    std::vector<const infer::PipelineInput*> batch;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      inputs[i].text = prompts[i];
      batch.push_back(&inputs[i]);
    }
    std::vector<infer::PipelineResult> results = pipeline->run(batch);
    std::vector<std::string> continuations;
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (results[i].error) throw *results[i].error;
      // The pipeline answers with the prompt and its continuation (as transformers' does); the
      // target is what should follow the prompt, so the new text alone is scored.
      const std::string text = results[i].output.at("text").get<std::string>();
      MS_ASSERT(text.compare(0, prompts[i].size(), prompts[i]) == 0);
      continuations.push_back(text.substr(prompts[i].size()));
    }
    return continuations;
  };
  return g;
}

// A causal language model's tokenizer, text column and text length (preprocessor.max_length,
// else the model's positions).
void prepare_causal(Prepared& p, const infer::ModelInfo& m, const Config& config,
                    const data::Split& split, const data::Dataset& ds) {
  p.causal = std::make_unique<text::CausalTokenizer>(text::CausalTokenizer::from_dir(m.dir));
  p.hf_config = read_json_file(m.dir / "config.json").value_or(Json::object());
  p.document_column = document_column(p, split, config, ds);
  p.max_length = infer::preprocessor_max_length(config, m.task)
                     .value_or(std::numeric_limits<std::size_t>::max());
}

// Builds the model for training: the folder's weights with a head sized to the labels.
Prepared prepare_for_training(const infer::ModelInfo& m, Config& config, const data::Dataset& ds,
                              const data::Split& split, const std::string& device) {
  Prepared p;
  p.type = model_type_of(m);
  MS_CHECK(!p.type.empty(), ErrorCode::kConfig, "{}: model.type is missing", config.source());
  const std::optional<tensor::WeightMap> weights = folder_weights(m.dir);
  models::ModelSpec spec;
  spec.task = m.task;
  spec.type = p.type;
  spec.dir = m.dir;
  spec.config = config;
  spec.checkpoint = weights ? &*weights : nullptr;
  if (generation_task(m.task)) {
    prepare_causal(p, m, config, split, ds);
  } else if (text_task(m.task) || token_task(m.task)) {
    p.tokenizer = std::make_unique<text::BertTokenizer>(text::BertTokenizer::from_dir(m.dir));
    p.hf_config = read_json_file(m.dir / "config.json").value_or(Json::object());
    p.max_length = infer::preprocessor_max_length(config, m.task).value_or(128);
    p.per_token = token_task(m.task);
    if (p.per_token) {
      const TextColumns columns = find_token_columns(split, config, ds.spec);
      p.labels = token_label_map(split, columns.label, configured_labels(m, config), ds.spec);
    } else {
      const TextColumns columns = find_text_columns(split, config, ds.spec);
      p.labels = text_label_map(split, columns.label, configured_labels(m, config), ds.spec);
    }
  } else {
    p.transforms = pipelines::parse_transforms(config);
    p.train_transforms = pipelines::parse_transforms(config, pipelines::TransformStage::kTrain);
    std::vector<std::string> names = ds.labels;
    if (names.empty()) names = configured_labels(m, config);
    MS_CHECK(!names.empty(), ErrorCode::kUsage,
             "{}: the dataset names no classes (an imagefolder's class folders) and the model "
             "no id2label",
             ds.spec);
    p.labels = LabelMap(names);
  }
  if (!p.causal) spec.num_labels = static_cast<std::int64_t>(p.labels.size());
  p.model = models::build_model(spec);
  cap_to_positions(p);
  if (!weights)
    log::info("{} holds no weights: the model starts from a random initialisation", m.dir.string());
  if (p.tokenizer) init_like_transformers(*p.model, p.hf_config.value("initializer_range", 0.02));
  if (weights) p.model->load_state_dict(*weights, m.dir.string(), /*allow_fresh_head=*/true);
  p.model->to(device);
  return p;
}

// Builds the model for evaluation: the folder's trained weights (or a checkpoint's).
Prepared prepare_for_eval(const infer::ModelInfo& m, const Config& config,
                          const std::optional<std::filesystem::path>& checkpoint,
                          const data::Dataset& ds, const data::Split& split,
                          const std::string& device) {
  Prepared p;
  p.type = model_type_of(m);
  std::optional<tensor::WeightMap> weights;
  if (checkpoint) {
    // A .pth name (or a prefix) means the model file of that checkpoint, even when the trainer
    // state's name is given; any other file is read as it is.
    const bool named_pth =
        checkpoint->extension() == ".pth" || !std::filesystem::is_regular_file(*checkpoint);
    const std::filesystem::path file =
        named_pth ? model_file(checkpoint_prefix(*checkpoint)) : *checkpoint;
    if (file.extension() == ".safetensors") {
      weights = tensor::load_safetensors(file);
    } else {
      const tensor::CheckpointValue value = tensor::load_checkpoint(file);
      try {
        weights = value.as_state_dict();
      } catch (const Error& e) {
        // A readable pickle of something else (a trainer state): name the file.
        throw Error(e.code(), fmt::format("--checkpoint {}: {}", file.string(), e.what()),
                    "give a model checkpoint (<prefix>.pth of ms train, a torch.save'd state "
                    "dict, or model.safetensors), not a trainer state");
      }
    }
  } else {
    weights = folder_weights(m.dir);
    MS_CHECK(weights.has_value(), ErrorCode::kNotFound,
             "{} holds no weights (model.safetensors or pytorch_model.bin): evaluate a trained "
             "model folder (<work_dir>/output), or pass --checkpoint",
             m.dir.string());
  }
  models::ModelSpec spec;
  spec.task = m.task;
  spec.type = p.type;
  spec.dir = m.dir;
  spec.config = config;
  spec.checkpoint = &*weights;
  p.model = models::build_model(spec);
  p.model->load_state_dict(*weights, checkpoint ? checkpoint->string() : m.dir.string());
  p.model->to(device);
  p.model->eval();
  const std::int64_t classes = p.model->num_labels().value_or(0);
  if (generation_task(m.task)) {
    p.generation = generation_rows(m, config, split, ds);
    prepare_causal(p, m, config, split, ds);
    cap_to_positions(p);
  } else if (text_task(m.task) || token_task(m.task)) {
    p.tokenizer = std::make_unique<text::BertTokenizer>(text::BertTokenizer::from_dir(m.dir));
    p.max_length = infer::preprocessor_max_length(config, m.task).value_or(128);
    cap_to_positions(p);
    p.per_token = token_task(m.task);
    std::vector<std::string> names = configured_labels(m, config);
    if (names.size() != static_cast<std::size_t>(classes))
      names = models::label_names(m.dir, classes);
    p.labels = LabelMap(names);
  } else {
    p.transforms = pipelines::parse_transforms(config);
    std::vector<std::string> names = configured_labels(m, config);
    if (names.size() != static_cast<std::size_t>(classes))
      names = models::label_names(m.dir, classes);
    p.labels = LabelMap(names);
  }
  return p;
}

std::unique_ptr<BatchSource> batches(const Prepared& p, const Config& config,
                                     const data::Dataset& ds, const data::Split& split,
                                     const Batching& b, bool training = false) {
  if (p.causal) {
    // An evaluation split may name its text column differently from the training split.
    const std::string column = split.table.column_index(p.document_column) >= 0
                                   ? p.document_column
                                   : document_column(p, split, Config(), ds);
    const auto rows =
        p.model->vocab_size().value_or(static_cast<std::int64_t>(p.causal->vocab_size()));
    return make_causal_lm_batches(split, column, *p.causal, rows, p.max_length, b, ds.spec);
  }
  // The columns of this split: an evaluation split may lack the training split's (a hub
  // dataset's unlabelled test split) or name them differently (`sentence` where training read
  // `text`), and each split's own are found, or refused by name, as the training split's were.
  if (p.per_token) {
    const TextColumns columns = find_token_columns(split, config, ds.spec);
    return make_token_batches(split, columns, p.labels, *p.tokenizer, p.max_length, b, ds.spec);
  }
  if (p.tokenizer) {
    const TextColumns columns = find_text_columns(split, config, ds.spec);
    return make_text_batches(split, columns, p.labels, *p.tokenizer, p.max_length, b, ds.spec);
  }
  return make_image_batches(split, training ? p.train_transforms : p.transforms, p.labels,
                            ds.labels, b, ds.spec);
}

// The files of a model folder that decide how its tokenizer turns a text into ids: the
// vocabularies and merges (WordPiece's, byte-level BPE's, in either layout), tokenizer.json,
// and the added and special tokens and the tokenizer's options. (The preprocessor section of
// configuration.json is compared with the rest of the configuration.)
constexpr const char* kTokenizerFiles[] = {"vocab.txt",
                                           "vocab.json",
                                           "merges.txt",
                                           "encoder.json",
                                           "vocab.bpe",
                                           "tokenizer.json",
                                           "tokenizer_config.json",
                                           "special_tokens_map.json",
                                           "added_tokens.json"};

// The rest of a causal language model's output folder: its config.json as it came, the task in
// configuration.json, and the tokenizer and generation files.
void write_causal_output(const std::filesystem::path& dir, const infer::ModelInfo& m,
                         const Config& config, const Prepared& p) {
  Json hf = p.hf_config;
  if (!hf.contains("model_type")) hf["model_type"] = p.type;
  write_file_atomic(dir / "config.json", hf.dump(2) + "\n");
  Json ms = config.root();
  ms["task"] = m.task;
  ms["framework"] = "pytorch";
  ms["model"]["type"] = p.type;
  ms["pipeline"]["type"] = m.task;
  write_file_atomic(dir / "configuration.json", ms.dump(2) + "\n");
  std::vector<const char*> files(std::begin(kTokenizerFiles), std::end(kTokenizerFiles));
  files.push_back("generation_config.json");
  for (const char* name : files) {
    if (std::filesystem::exists(m.dir / name))
      write_file_atomic(dir / name, read_file(m.dir / name));
  }
}

// A hash of a model file's bytes (FNV-1a, as data::Table::content_hash()); a JSON options file
// (config.json, tokenizer_config.json, special_tokens_map.json) is hashed as its values, keys
// sorted (save_pretrained sorts them, a hub's original may not), without what save_pretrained
// or `ms export` write about where, with what and in which type they saved (name_or_path,
// *_file, *_path, *dir, transformers_version, _commit_hash, dtype, torch_dtype, architectures:
// the tensors' names and types are compared on their own): copies saved on two machines differ
// only there, which decides nothing, as the configuration's comparison leaves out paths.
std::uint64_t model_file_hash(const std::filesystem::path& file, bool json_options) {
  std::string bytes = read_file(file);
  nlohmann::json options;  // not ms::Json: its objects keep the file's key order
  JsonParseError ignored;
  if (json_options && try_parse_json(bytes, options, ignored) && options.is_object()) {
    for (auto it = options.begin(); it != options.end();) {
      const std::string key = it.key();
      const auto ends_with = [&](std::string_view end) {
        return key.size() >= end.size() &&
               key.compare(key.size() - end.size(), end.size(), end.data(), end.size()) == 0;
      };
      if (key == "name_or_path" || key == "_name_or_path" || key == "transformers_version" ||
          key == "_commit_hash" || key == "dtype" || key == "torch_dtype" ||
          key == "architectures" || ends_with("_file") || ends_with("_path") || ends_with("dir"))
        it = options.erase(it);
      else
        ++it;
    }
    bytes = options.dump();
  }
  std::uint64_t hash = 14695981039346656037ULL;
  for (const unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

// One line per file of `dir` that decides what the model computes from a row: its config.json
// (the architecture: heads, activation, dropout; the tensors' shapes do not tell them apart) and
// its tokenizer files, with a hash of each, for TrainerSetup's model_file_facts: data-parallel
// ranks whose copies of the model differ there are refused.
std::vector<std::string> model_file_facts(const std::filesystem::path& dir) {
  std::vector<std::string> facts;
  std::error_code ec;
  facts.push_back(std::filesystem::exists(dir / "config.json", ec)
                      ? fmt::format("the model's config.json (content hash {:016x})",
                                    model_file_hash(dir / "config.json", true))
                      : std::string("no config.json in the model's folder"));
  for (const char* name : kTokenizerFiles) {
    if (!std::filesystem::exists(dir / name, ec)) {
      facts.push_back(fmt::format("no tokenizer file {}", name));
      continue;
    }
    const bool json_options = std::string_view(name) == "tokenizer_config.json" ||
                              std::string_view(name) == "special_tokens_map.json";
    facts.push_back(fmt::format("the tokenizer file {} (content hash {:016x})", name,
                                model_file_hash(dir / name, json_options)));
  }
  return facts;
}

// Writes the inference-ready folder: weights, config.json with the label map, configuration.json,
// and the tokenizer files. Each file is replaced atomically.
void write_output(const std::filesystem::path& dir, const infer::ModelInfo& m, const Config& config,
                  const Prepared& p, const models::TensorMap& state) {
  make_directories(dir, "the output folder");
  tensor::save_safetensors(dir / "model.safetensors", state);
  Json id2label = Json::object(), label2id = Json::object();
  for (std::size_t i = 0; i < p.labels.size(); ++i) {
    id2label[std::to_string(i)] = p.labels.names()[i];
    label2id[p.labels.names()[i]] = i;
  }
  if (p.causal) {
    write_causal_output(dir, m, config, p);
    return;
  }
  Json hf = p.tokenizer ? p.hf_config : Json::object();
  if (p.tokenizer) {
    const bool roberta = models::normalize_model_type(p.type).find("roberta") != std::string::npos;
    const char* head = p.per_token ? "ForTokenClassification" : "ForSequenceClassification";
    hf["architectures"] = Json::array({std::string(roberta ? "Roberta" : "Bert") + head});
  } else {
    hf["model_type"] = p.type;
  }
  hf["id2label"] = id2label;
  hf["label2id"] = label2id;
  // The base's num_labels and problem_type describe its head, not the one trained here: a stale
  // num_labels makes transformers (and ms) refuse the output, a stale problem_type scores it with
  // a sigmoid or raw where ms trained a softmax (cross entropy).
  hf.erase("_num_labels");
  if (hf.contains("num_labels")) hf["num_labels"] = p.labels.size();
  if (hf.contains("problem_type")) hf["problem_type"] = "single_label_classification";
  write_file_atomic(dir / "config.json", hf.dump(2) + "\n");
  Json ms = config.root();
  ms["task"] = m.task;
  ms["framework"] = "pytorch";
  ms["model"]["type"] = p.type;
  ms["model"]["id2label"] = id2label;
  // ModelScope's readers take label2id first: a stale one would name other classes.
  if (ms["model"].contains("label2id")) ms["model"]["label2id"] = label2id;
  if (!p.tokenizer) {
    ms["model"]["num_classes"] = p.labels.size();
    ms["model"]["labels"] = p.labels.names();
  }
  ms["pipeline"]["type"] = m.task;
  write_file_atomic(dir / "configuration.json", ms.dump(2) + "\n");
  if (p.tokenizer) {
    for (const char* name :
         {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
      if (std::filesystem::exists(m.dir / name))
        write_file_atomic(dir / name, read_file(m.dir / name));
    }
  }
}

// --resume auto: the work dir's latest checkpoint when it has saved one, else a fresh start. One
// command line then serves the first run and every rerun after a kill (a CI step run again,
// torchrun --max_restarts, a preempted batch job).
constexpr const char* kResumeIfAny = "auto";

// The checkpoint --resume names: "" for the work dir's latest; else a prefix or .pth file, as
// given or inside the work dir ("epoch_2"), or a work dir (its latest); none for "auto" in a
// work dir that has saved no checkpoint yet. Without --resume, none: a fresh start, which a
// work dir holding a run's checkpoints refuses unless `overwrite` (its output/ and checkpoint
// pointer would be replaced without a word; a forgotten --resume after a kill would train the
// whole run again over them).
std::optional<std::filesystem::path> resume_point(const std::optional<std::string>& resume,
                                                  bool overwrite,
                                                  const std::filesystem::path& work_dir) {
  if (!resume) {
    if (!overwrite && std::filesystem::exists(work_dir / kLatestCheckpointFile)) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("the work dir {} holds a run ({} names its latest checkpoint): a "
                              "fresh start would replace its output/",
                              work_dir.string(), kLatestCheckpointFile),
                  "go on from it with --resume (or --resume auto), start over there with "
                  "--overwrite, or give another --work-dir");
    }
    return std::nullopt;
  }
  MS_CHECK(!overwrite, ErrorCode::kUsage,
           "--overwrite starts over, --resume goes on: give one of them");
  const std::string& asked = *resume;
  auto latest_of = [](const std::filesystem::path& dir) {
    const auto latest = latest_checkpoint(dir);
    const std::filesystem::path pointer = dir / kLatestCheckpointFile;
    if (!latest && std::filesystem::exists(pointer)) {
      // The pointer is there, the checkpoint it names is not (deleted, or cut short).
      std::string named = "its checkpoint";
      try {
        if (const auto json = read_json_file(pointer);
            json && json->is_object() && json->contains("prefix") && (*json)["prefix"].is_string())
          named = (*json)["prefix"].get<std::string>();
      } catch (const Error&) {
      }
      throw Error(ErrorCode::kNotFound,
                  fmt::format("--resume: {} names {}, which {} does not hold whole",
                              pointer.string(), named, dir.string()),
                  "pass a checkpoint file that is there (epoch_N.pth, iter_N.pth), or start "
                  "over with --overwrite");
    }
    if (!latest) {
      throw Error(
          ErrorCode::kNotFound,
          fmt::format("--resume: {} has no complete checkpoint to resume from", dir.string()),
          fmt::format("{} names the newest one once a checkpoint is saved; pass a "
                      "checkpoint file (epoch_N.pth) to resume from another",
                      kLatestCheckpointFile));
    }
    return *latest;
  };
  if (asked == kResumeIfAny) {
    // A work dir whose pointer names a checkpoint that is gone is not a fresh one: starting over
    // there would train again what was lost, so that is the error a plain --resume gives.
    if (!std::filesystem::exists(work_dir / kLatestCheckpointFile)) {
      log::info("--resume auto: {} has no checkpoint yet, so the run starts from the beginning",
                work_dir.string());
      return std::nullopt;
    }
    return latest_of(work_dir);
  }
  if (asked.empty()) return latest_of(work_dir);
  if (std::filesystem::is_directory(asked)) return latest_of(asked);
  for (const std::filesystem::path& candidate : {std::filesystem::path(asked), work_dir / asked}) {
    const std::filesystem::path prefix = checkpoint_prefix(candidate);
    if (std::filesystem::exists(model_file(prefix))) {
      MS_CHECK(std::filesystem::exists(trainer_state_file(prefix)), ErrorCode::kNotFound,
               "--resume: {} has no trainer state ({} is missing)", model_file(prefix).string(),
               trainer_state_file(prefix).string());
      return prefix;
    }
  }
  if (std::filesystem::is_regular_file(asked)) {
    throw Error(ErrorCode::kUsage,
                fmt::format("--resume: {} is not a checkpoint of ms train (<prefix>.pth beside "
                            "<prefix>_trainer_state.pth)",
                            asked),
                "give epoch_N.pth or iter_N.pth of a work dir, or the work dir itself");
  }
  fail(ErrorCode::kNotFound, "--resume: checkpoint {} does not exist (nor in {})", asked,
       work_dir.string());
}

// resume_point() as rank 0 answers it (with rank 0's --resume), on every rank: rank 0 owns the
// work dir, and ranks that looked for themselves could decide differently (--resume auto with
// node-local work dirs, or a network file system showing one rank an older listing), and then
// train apart. Every rank takes part, whatever its own --resume says, so that the exchange
// cannot get out of step; rank 0's error is every rank's.
std::optional<std::filesystem::path> resume_point_of_main(Distributed& dist,
                                                          const std::optional<std::string>& asked,
                                                          bool overwrite,
                                                          const std::filesystem::path& work_dir) {
  Json answer = Json::object();
  if (dist.is_main()) {
    auto send_error = [&answer](ErrorCode code, const std::string& message,
                                const std::string& hint) {
      answer["error"] = {{"code", static_cast<int>(code)}, {"message", message}, {"hint", hint}};
    };
    try {
      // An absolute path: the other ranks may run in other folders (torchrun or srun started
      // from elsewhere on a shared file system).
      if (const auto point = resume_point(asked, overwrite, work_dir))
        answer["path"] = std::filesystem::absolute(*point).lexically_normal().string();
    } catch (const Error& e) {
      send_error(e.code(), e.what(), e.hint());
    } catch (const std::exception& e) {  // a file system error looking for checkpoints
      send_error(ErrorCode::kIo, fmt::format("--resume: {}", e.what()), "");
    }
  }
  // CBOR, not JSON text: a path need not be UTF-8, and must arrive byte for byte.
  const std::vector<std::uint8_t> cbor = Json::to_cbor(answer);
  const std::string shared =
      dist.from_main(std::string(cbor.begin(), cbor.end()), "sharing rank 0's --resume");
  answer = Json::from_cbor(shared.begin(), shared.end());
  if (answer.contains("error")) {
    const Json& e = answer["error"];
    throw Error(static_cast<ErrorCode>(e["code"].get<int>()), e["message"].get<std::string>(),
                e["hint"].get<std::string>());
  }
  if (!answer.contains("path")) return std::nullopt;
  return std::filesystem::path(answer["path"].get<std::string>());
}

// One `ms train` per work dir at a time: an flock held for the whole run (released by the kernel
// when the process dies, so a killed run never leaves a stale lock).
class WorkDirLock {
 public:
  explicit WorkDirLock(const std::filesystem::path& work_dir) {
    make_directories(work_dir, "--work-dir");
    const std::filesystem::path path = work_dir / ".ms-train.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    MS_CHECK(fd_ >= 0, ErrorCode::kIo, "cannot open {}: {}", path.string(), std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      std::string holder = read_file(path);
      ::close(fd_);
      throw Error(ErrorCode::kUsage,
                  fmt::format("another ms train (pid {}) is running in {}",
                              holder.empty() ? "?" : holder, work_dir.string()),
                  "wait for it to finish, or use another --work-dir");
    }
    const std::string pid = std::to_string(::getpid());
    (void)::ftruncate(fd_, 0);
    (void)::pwrite(fd_, pid.data(), pid.size(), 0);
    // With the lock held no other ms writes here: half-written files of a killed run (a
    // checkpoint can be hundreds of MB) are its leftovers.
    for (const char* sub : {"", "output", "output_best"}) remove_unfinished_writes(work_dir / sub);
  }
  ~WorkDirLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_ = -1;
};

// A data-parallel worker's device. On GPUs each worker of a machine takes the card of its local
// rank (as torchrun's scripts do with torch.cuda.set_device(LOCAL_RANK)): --device gpu, cuda or
// auto (finding a GPU) means cuda:LOCAL_RANK. A card named by number would be every local
// worker's, which NCCL refuses: with several workers per machine that is a usage error.
std::string rank_device(const DeviceSpec& requested, const infer::DistributedEnv& env) {
  if (requested.index >= 0 && env.local_world_size > 1)
    throw Error(ErrorCode::kUsage,
                fmt::format("--device {} under data parallelism: all {} workers of this machine "
                            "would share one GPU",
                            requested.to_string(), env.local_world_size),
                "pass --device gpu: each worker takes the GPU of its LOCAL_RANK");
  const infer::TorchRuntime& runtime = *infer::load_torch_layer().runtime;
  const std::string resolved = runtime.resolve_device(requested);
  if (resolved == "cpu" || requested.index >= 0) return resolved;
  try {
    return runtime.resolve_device(DeviceSpec{DeviceSpec::Kind::kCuda, env.local_rank});
  } catch (const Error& e) {
    throw Error(
        e.code(),
        fmt::format("worker of local rank {} has no GPU of its own: {}", env.local_rank, e.what()),
        "start at most as many workers per machine as it has GPUs (torchrun "
        "--nproc_per_node, ms train --nproc)");
  }
}

class TrainingService final : public infer::TrainerService {
 public:
  infer::TrainSummary train(const infer::TrainRequest& r, const infer::ModelInfo& m) override {
    check_task(m.task);
    Config config = m.config;
    // Said as the user's key: the sets below (ms's own) would fail naming train.work_dir.
    if (config.has("train") && !config.at("train").is_object() && !config.at("train").is_null()) {
      throw Error(ErrorCode::kConfig,
                  fmt::format("{}: train is {}, not an object of training options", config.source(),
                              config.at("train").dump()),
                  "set its keys: train.max_epochs, train.optimizer, train.dataloader, ...");
    }
    if (r.max_epochs) config.set("train.max_epochs", *r.max_epochs);
    if (!r.distributed || r.distributed->rank == 0) warn_unread_keys(config, m.task);
    const std::filesystem::path work_dir =
        r.work_dir.value_or(config.get_or<std::string>("train.work_dir", "./work_dir"));
    if (r.work_dir) {
      // As ModelScope's trainer given a work_dir: the key chains' own folders give way to it, so
      // that what the run writes lands there (and --resume finds it).
      config.set("train.work_dir", work_dir.string());
      for (const char* chain : {"train.checkpoint.period", "train.checkpoint.best"}) {
        if (config.has(chain) && config.at(chain).is_object())
          config.set(std::string(chain) + ".save_dir", work_dir.string());
      }
      if (config.has("train.logging") && config.at("train.logging").is_object())
        config.set("train.logging.out_dir", work_dir.string());
      // ModelScope first moves these hooks of train.hooks into those key chains (update_cfg), so
      // their folders give way too: a CheckpointHook with its own save_dir wrote elsewhere, with
      // no latest_checkpoint.json for --resume, and a rerun overwrote its checkpoints.
      if (config.has("train.hooks") && config.at("train.hooks").is_array()) {
        Json hooks = config.at("train.hooks");
        for (Json& hook : hooks) {
          if (!hook.is_object() || !hook.contains("type")) continue;
          const Json& type = hook["type"];
          const char* folder_key = type == "CheckpointHook" || type == "BestCkptSaverHook"
                                       ? "save_dir"
                                   : type == "TextLoggerHook" ? "out_dir"
                                                              : nullptr;
          if (folder_key != nullptr && hook.contains(folder_key))
            hook[folder_key] = work_dir.string();
        }
        config.set("train.hooks", std::move(hooks));
      }
    }
    // The work dir is written into the run's JSON files (logs, latest_checkpoint.json), which
    // hold UTF-8 only: refused now rather than at the first checkpoint, with a run half saved.
    if (!is_valid_utf8(work_dir.string())) {
      throw Error(
          ErrorCode::kUsage,
          fmt::format("the work dir {} is not UTF-8 text", escape_invalid_utf8(work_dir.string())),
          "name a work dir whose path is UTF-8 (--work-dir)");
    }
    const std::string device = r.distributed
                                   ? rank_device(r.device, *r.distributed)
                                   : infer::load_torch_layer().runtime->resolve_device(r.device);
    // Data-parallel workers meet first, so that a bad address or a missing worker is the first
    // error, before any data is read. Rank 0 owns the work dir (lock, checkpoints, logs).
    std::shared_ptr<Distributed> dist;
    if (r.distributed) dist = Distributed::join(*r.distributed, device);
    std::optional<WorkDirLock> lock;
    if (!dist || dist->is_main()) lock.emplace(work_dir);
    // From here on what the run says is kept in <work_dir>/<timestamp>.log too (rank 0's).
    const std::string timestamp = run_timestamp();
    std::optional<RunLog> run_log;
    if (lock) run_log.emplace(work_dir / (timestamp + ".log"));
    // A resumed run: every rank loads the checkpoint rank 0 names (it wrote it).
    const std::optional<std::filesystem::path> resume =
        dist ? resume_point_of_main(*dist, r.resume, r.overwrite, work_dir)
             : resume_point(r.resume, r.overwrite, work_dir);
    if (r.overwrite && lock) {
      // The old run's pointer goes first: a start-over killed before its first checkpoint must
      // not leave --resume pointing at the run it replaced.
      std::error_code ignored;
      std::filesystem::remove(work_dir / kLatestCheckpointFile, ignored);
    }
    at::manual_seed(r.seed);

    data::LoadOptions train_options;
    train_options.subset = r.subset;
    train_options.split = r.split;
    const data::Dataset ds = data::load_dataset(r.dataset, train_options);
    const data::Split& train_split = r.split ? ds.only_split() : train_split_of(ds);
    // The evaluation split: --eval-split (of --eval-dataset, else of --dataset), else the
    // evaluation dataset's validation / test / only split, else the dataset's validation / test.
    std::optional<data::Dataset> eval_ds;
    if (r.eval_dataset || r.eval_split) {
      data::LoadOptions eval_options;
      eval_options.subset = r.subset;
      eval_options.split = r.eval_split;
      eval_ds = data::load_dataset(r.eval_dataset.value_or(r.dataset), eval_options);
    }
    const data::Dataset& eval_source = eval_ds ? *eval_ds : ds;
    const data::Split* eval_split = r.split && !eval_ds ? nullptr : eval_split_of(eval_source);
    if (eval_ds && eval_split == nullptr) eval_split = &eval_ds->only_split("--eval-split");

    // A dataset whose only split is validation (or test) trains on it and would evaluate on the
    // very rows it trained on: the metrics would say how well the model fits them.
    if (eval_split == &train_split) {
      log::warn(
          "{}: training and evaluating on the same rows (split '{}', the dataset's only one): "
          "the metrics say how well the model fits them, not how it does on others; hold rows "
          "out with slices (--split '{}[:80%]' --eval-split '{}[80%:]') or give --eval-dataset",
          ds.spec, train_split.selection, train_split.name, train_split.name);
    }
    MS_CHECK(!train_split.table.rows.empty(), ErrorCode::kUsage,
             "{}: the training split '{}' has no rows", ds.spec, train_split.selection);
    MS_CHECK(eval_split == nullptr || !eval_split->table.rows.empty(), ErrorCode::kUsage,
             "{}: the evaluation split '{}' has no rows", eval_source.spec,
             eval_split ? eval_split->selection : "");
    Prepared p = prepare_for_training(m, config, ds, train_split, device);
    // Class names go into the saved config.json (id2label), which is UTF-8 JSON.
    for (const std::string& name : p.labels.names()) {
      if (!is_valid_utf8(name)) {
        throw Error(ErrorCode::kUsage,
                    fmt::format("{}: the class name {} is not UTF-8 text", ds.spec,
                                escape_invalid_utf8(name)),
                    "rename it (an imagefolder's class is its folder's name) to UTF-8");
      }
    }
    log::info("training {} ({}) on {} rows of {} with {} classes, on {}", m.dir.string(), p.type,
              train_split.table.rows.size(), ds.spec, p.labels.size(), device);

    TrainerSetup setup;
    setup.config = config;
    setup.model = p.model;
    setup.label_names = p.labels.names();
    setup.train_data_hash = train_split.table.content_hash();
    if (dist) setup.model_file_facts = model_file_facts(m.dir);
    Batching train_batching = read_batching(config, "train", true, r.seed);
    if (dist) {
      train_batching.rank = dist->rank();
      train_batching.world_size = dist->world_size();
    }
    setup.train_data = batches(p, config, ds, train_split, train_batching, /*training=*/true);
    setup.distributed = dist;
    if (eval_split) {
      p.generation = generation_rows(m, config, *eval_split, eval_source);
      setup.generation = generation_eval(m, config, p, device);
      setup.eval_data = batches(p, config, eval_source, *eval_split,
                                read_batching(config, "evaluation", false, r.seed));
      setup.eval_data_hash = eval_split->table.content_hash();
      MS_CHECK(setup.eval_data->num_batches() > 0, ErrorCode::kConfig,
               "{}: evaluation.dataloader gives no batch of the {} evaluation rows (drop_last "
               "with fewer rows than the batch size)",
               config.source(), setup.eval_data->rows());
    }
    setup.work_dir = work_dir;
    setup.device = device;
    setup.seed = r.seed;
    setup.timestamp = timestamp;
    setup.console = [&run_log](const std::string& line) {
      std::cerr << line << '\n';
      if (run_log) run_log->write(log::Level::kInfo, line);
    };
    setup.save_output = [&](const std::filesystem::path& dir, const models::TensorMap& state,
                            const Json&) { write_output(dir, m, config, p, state); };
    Trainer trainer(std::move(setup));

    if (resume) log::info("resuming from {}", resume->string());
    const auto start = std::chrono::steady_clock::now();
    trainer.train(resume);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    infer::TrainSummary s;
    s.work_dir = work_dir;
    // output/ (or the CheckpointHook's output_sub_dir / output_dir) is written with each
    // checkpoint; a run that saved none has none.
    const std::filesystem::path output =
        trainer.output_dir().empty() ? work_dir / "output" : trainer.output_dir();
    if (std::filesystem::exists(output / "model.safetensors")) {
      s.output_dir = output;
    } else if (!dist || dist->is_main()) {
      log::warn("no checkpoint was saved, so {} was not written (CheckpointHook save_last)",
                output.string());
    }
    const int world = dist ? dist->world_size() : 1;
    // The rows this run trained on (a resumed run's start is the checkpoint's; a ragged last
    // batch counts its rows, not the batch size), on every rank alike (the sampler pads).
    s.samples_per_second =
        seconds > 0 ? static_cast<double>(trainer.rows_trained()) * world / seconds : 0;
    s.rank = dist ? dist->rank() : 0;
    s.world_size = world;
    s.epochs = trainer.epochs_reached();
    s.iters = trainer.iter();
    s.train_rows = static_cast<std::int64_t>(train_split.table.rows.size());
    s.eval_rows = eval_split ? static_cast<std::int64_t>(eval_split->table.rows.size()) : 0;
    s.metric_values = trainer.metric_values();
    s.resumed_from = resume;
    s.seconds = seconds;
    return s;
  }

  Json evaluate(const infer::EvalRequest& r, const infer::ModelInfo& m) override {
    check_task(m.task);
    Config config = m.config;
    if (!r.metrics.empty()) {
      Json list = Json::array();
      for (const auto& name : r.metrics) {
        // Named on the command line: a usage error there, not one of the model's configuration.
        if (!metrics::metric_registry().contains(name)) {
          throw Error(ErrorCode::kUsage, fmt::format("--metrics: '{}' is not a metric", name),
                      choices_hint(name, metrics::metric_registry().types(), "metrics"));
        }
        if (name == metrics::kTextGenMetric && !generation_task(m.task)) {
          throw Error(ErrorCode::kUsage,
                      fmt::format("--metrics: text-gen-metric scores generated text, which only a "
                                  "text-generation model writes (this model's task is {})",
                                  m.task),
                      "pick a metric for the task: 'ms list metrics'");
        }
        list.push_back(name);
      }
      config.set("evaluation.metrics", list);
    }
    const std::string device = r.distributed
                                   ? rank_device(r.device, *r.distributed)
                                   : infer::load_torch_layer().runtime->resolve_device(r.device);
    // Data-parallel workers meet first, as ms train's: a bad address is the first error.
    std::shared_ptr<Distributed> dist;
    if (r.distributed) dist = Distributed::join(*r.distributed, device);
    // --split as ms train's --split: a name or a slice ("test[:50%]"), loaded alone.
    data::LoadOptions options;
    options.subset = r.subset;
    options.split = r.split;
    const data::Dataset ds = data::load_dataset(r.dataset, options);
    const data::Split* split = r.split ? &ds.only_split() : eval_split_of(ds);
    if (split == nullptr) split = &ds.only_split();
    MS_CHECK(!split->table.rows.empty(), ErrorCode::kUsage, "{}: the split '{}' has no rows",
             ds.spec, split->selection);
    Prepared p = prepare_for_eval(m, config, r.checkpoint, ds, *split, device);
    TrainerSetup setup;
    setup.config = config;
    setup.model = p.model;
    setup.label_names = p.labels.names();
    setup.generation = generation_eval(m, config, p, device);
    setup.eval_data =
        batches(p, config, ds, *split, read_batching(config, "evaluation", false, 0, r.batch_size));
    MS_CHECK(setup.eval_data->num_batches() > 0, ErrorCode::kConfig,
             "{}: evaluation.dataloader gives no batch of the {} rows (drop_last with fewer rows "
             "than the batch size)",
             config.source(), setup.eval_data->rows());
    setup.eval_data_hash = split->table.content_hash();
    if (dist) setup.model_file_facts = model_file_facts(m.dir);
    setup.device = device;
    setup.distributed = dist;
    Trainer trainer(std::move(setup));
    if (dist) {
      // Shares of other data or another model would merge into a figure of neither; rank 0's
      // weights are everyone's (as training's broadcast makes them).
      dist->check_alike(trainer.evaluation_facts());
      dist->broadcast_module(p.model->module());
    }
    return trainer.evaluate();
  }
};

}  // namespace

infer::TrainerService& training_service() {
  static TrainingService service;
  return service;
}

}  // namespace ms::trainer
