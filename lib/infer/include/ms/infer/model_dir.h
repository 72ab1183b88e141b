// Model folders for inference: ModelScope layout (configuration.json) or Hugging Face layout
// (config.json + weights) with an explicit task; hub ids resolve through a pluggable resolver.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ms/config/config.h"

namespace ms::infer {

/// Turns a hub model id into a local folder (download or cache). The hub client installs one.
class ModelResolver {
 public:
  virtual ~ModelResolver() = default;
  /// Returns the local snapshot folder of `model_id` at `revision` (empty: default revision).
  virtual std::filesystem::path resolve(const std::string& model_id,
                                        const std::string& revision) = 0;
};

/// Installs the resolver used for hub ids (nullptr removes it).
void set_model_resolver(std::shared_ptr<ModelResolver> resolver);

/// A model folder and what its configuration says about it.
struct ModelInfo {
  std::filesystem::path dir;
  Config config;              ///< configuration.json, or one synthesised for a HF layout
  std::string task;           ///< canonical task name, e.g. "sentence-embedding"
  std::string model_type;     ///< model.type (ModelScope) or config.json's model_type
  std::string pipeline_type;  ///< pipeline.type, or the task's default pipeline
  bool hf_layout = false;     ///< true when there is no configuration.json
};

/// Tasks `ms infer` knows, in canonical (dash) spelling.
const std::vector<std::string>& known_tasks();

/// Canonical spelling of a task ("sentence_similarity" -> "sentence-similarity"); throws
/// ms::Error(kUsage) listing close matches for an unknown task.
std::string canonical_task(const std::string& task);

/// Opens `model` (a folder, or a hub id when a resolver is installed). `task` overrides the
/// configured one and is required for a HF layout whose task cannot be inferred. `overrides` are
/// --set KEY=VALUE assignments applied to the configuration. Throws kNotFound, kConfig or kUsage
/// naming the folder, file or key.
ModelInfo open_model(const std::string& model, const std::optional<std::string>& task,
                     const std::vector<std::string>& overrides = {});

}  // namespace ms::infer
