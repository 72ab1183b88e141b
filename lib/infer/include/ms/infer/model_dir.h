// Model folders for inference: ModelScope layout (configuration.json) or Hugging Face layout
// (config.json + weights) with an explicit task; hub ids are downloaded into the cache first.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ms/config/config.h"
#include "ms/core/export.h"

namespace ms::infer {

/// Where a hub model id is fetched from (a local folder ignores all of this).
struct HubModelOptions {
  std::string revision;                 ///< branch or tag; empty: master
  bool offline = false;                 ///< only the cache; no network (also MODELSCOPE_OFFLINE=1)
  std::optional<std::string> endpoint;  ///< default: MODELSCOPE_ENDPOINT / MODELSCOPE_DOMAIN
  std::optional<std::string> token;     ///< default: MODELSCOPE_API_TOKEN / stored login
};

/// A model folder and what its configuration says about it.
struct ModelInfo {
  std::filesystem::path dir;
  Config config;              ///< configuration.json, or one synthesised for a HF layout
  std::string task;           ///< canonical task name, e.g. "sentence-embedding"
  std::string model_type;     ///< model.type (ModelScope) or config.json's model_type
  std::string pipeline_type;  ///< pipeline.type, or the task's default pipeline
  bool hf_layout = false;     ///< true when there is no configuration.json
  /// The keys --set assigned, in order: a pipeline that reads options from the top level of the
  /// configuration (text-generation's max_new_tokens, top_k, ...) can reject a misspelt one.
  std::vector<std::string> override_keys;
};

/// Tasks `ms infer` knows, in canonical (dash) spelling.
MS_API const std::vector<std::string>& known_tasks();

/// Canonical spelling of a task ("sentence_similarity" -> "sentence-similarity"; ModelScope's
/// "nli" -> "sentence-similarity", "sentiment-classification" -> "text-classification"); throws
/// ms::Error(kUsage) listing close matches for an unknown task.
MS_API std::string canonical_task(const std::string& task);

/// The text length a configuration asks for, as ModelScope's text preprocessors read it:
/// preprocessor.max_length, or its other name preprocessor.sequence_length (which text generation
/// takes first, the other tasks second); nullopt when neither is set. One rule for ms infer,
/// train and eval: ms::Error(kConfig) for a length that cannot hold [CLS] text [SEP] (under 4),
/// or, for text generation, a prompt token and the next (under 2).
MS_API std::optional<std::size_t> preprocessor_max_length(const Config& config,
                                                          const std::string& task);

/// Checks that `model` names a local model folder: ms::Error(kUsage) when it is a file,
/// kNotFound when nothing is there (the errors of `ms infer -m`, and of the commands that take
/// only a folder: `hub_ids`, whether the command takes a hub id too, which the hint then names).
MS_API void require_model_folder(const std::string& model, bool hub_ids);

/// Opens `model`: a folder, or a hub id (OWNER/NAME) that is not a local path, downloaded through
/// the hub client into the modelscope cache (a cached copy is used offline). `task` overrides the
/// configured one and is required for a HF layout whose task cannot be inferred. `overrides` are
/// --set KEY=VALUE assignments applied to the configuration. Throws kNotFound, kConfig or kUsage
/// naming the folder, file or key, and the hub client's errors for hub ids.
MS_API ModelInfo open_model(const std::string& model, const std::optional<std::string>& task,
                            const std::vector<std::string>& overrides = {},
                            const HubModelOptions& hub = {});

}  // namespace ms::infer
