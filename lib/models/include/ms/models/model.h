// Trainable task models: one torch::nn module per (task, model type), built from the MODELS
// registry, with Hugging Face parameter names. Pipelines, the trainer and the exporters all work on
// this one face; the header stays torch-light (torch::nn is only forward-declared).
#pragma once

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ms/config/config.h"
#include "ms/config/registry.h"
#include "ms/tensor/weights.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace ms::models {

using tensor::TensorMap;

/// What a model is built from.
struct ModelSpec {
  std::string task;           ///< registry group, e.g. "text-classification"
  std::string type;           ///< registry type, e.g. "bert" (see normalize_model_type)
  std::filesystem::path dir;  ///< model folder: config.json, module folders (may be empty)
  Config config;              ///< configuration.json (model.*, preprocessor.*)
  /// The checkpoint about to be loaded, if any. Builders read shapes from it (label count, which
  /// head a checkpoint carries, whether it has a pooler) so that it loads without surprises.
  const TensorMap* checkpoint = nullptr;
  /// Label count of a freshly initialised head; unset: the checkpoint's head, then config.json's
  /// num_labels / id2label.
  std::optional<int64_t> num_labels;
};

/// A trainable model. Inputs and outputs are named tensors keyed as ModelScope and Hugging Face
/// name them. Inputs: input_ids, attention_mask, token_type_ids (text), pixel_values (images),
/// labels (optional: adds "loss"). Outputs: logits, last_hidden_state, sentence_embedding, loss.
///
/// Inference fast paths (fused CPU kernels, fused QKV weights) run only in eval mode without
/// gradients, and are re-derived whenever the parameters they come from change (an optimizer
/// step, a load, a move to another device), so they never go stale.
class Model {
 public:
  virtual ~Model() = default;

  virtual const std::string& task() const = 0;
  virtual TensorMap forward(const TensorMap& inputs) = 0;
  /// The class count of a classification head (logits' last dimension); nullopt for models
  /// without one.
  virtual std::optional<int64_t> num_labels() const { return std::nullopt; }
  /// The longest input in tokens the model takes (its position embeddings); nullopt for models
  /// without such a limit. Text pipelines truncate to it.
  virtual std::optional<int64_t> max_tokens() const { return std::nullopt; }
  /// The token ids the model's embedding table takes (0 to vocab_size - 1); nullopt for models
  /// without one. Text pipelines check their tokenizer's ids against it when they load.
  virtual std::optional<int64_t> vocab_size() const { return std::nullopt; }
  /// The torch::nn module that owns the parameters (for optimizers, train/eval, devices).
  virtual torch::nn::Module& module() = 0;
  const torch::nn::Module& module() const { return const_cast<Model*>(this)->module(); }

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const;
  /// Moves parameters and buffers to `device` ("cpu", "cuda:0").
  void to(const std::string& device);
  /// Casts floating-point parameters and buffers to `dtype` (half precision for inference).
  void cast(at::ScalarType dtype);

  /// Parameters and persistent buffers under their Hugging Face names.
  TensorMap state_dict() const;

  /// Loads a checkpoint's tensors by name. Checkpoint names are first mapped to this model's
  /// names (checkpoint_name_to_parameter: prefixes such as "model.bert." are accepted, keys that
  /// belong to other heads are dropped). Throws ms::Error(kConfig) naming `source` and every
  /// missing, unexpected and mis-shaped key. Parameters listed by fresh_parameters() may be
  /// missing when `allow_fresh_head` is set (a new head over a pretrained encoder).
  void load_state_dict(const TensorMap& checkpoint, const std::string& source,
                       bool allow_fresh_head = false);

  /// The full checkpoint of a pretrained folder, given the tensors of its main weight file: adds
  /// what the model keeps beside it (sentence-transformers' Dense module folders). Default: as is.
  virtual TensorMap complete_checkpoint(const TensorMap& main) const { return main; }

  /// How forward() computes its outputs, for exporters that rebuild the model in another format
  /// (lib/export): a JSON object naming the "family" ("bert", "resnet", "small-cnn"), its "head"
  /// and the settings the forward pass reads; the weights are state_dict()'s, under their names.
  /// Null (the default) for a model no exporter can rebuild.
  virtual Json structure() const { return nullptr; }

 protected:
  /// Called by load_state_dict before any name is mapped (e.g. to find the checkpoint's prefix);
  /// may reject a checkpoint with a clearer message than a list of keys.
  virtual void begin_load(const TensorMap& checkpoint, const std::string& source,
                          bool allow_fresh_head) {
    (void)checkpoint, (void)source, (void)allow_fresh_head;
  }
  /// This model's name for a checkpoint tensor, or nullopt to skip it. Default: the same name.
  virtual std::optional<std::string> checkpoint_name_to_parameter(const std::string& name) const {
    return name;
  }
  /// Names of checkpoint tensors that may be present without a matching parameter (e.g. the
  /// non-persistent position_ids buffer older checkpoints saved).
  virtual std::vector<std::string> ignorable_checkpoint_names() const { return {}; }
  /// Parameters a checkpoint may lack, in which case they keep their fresh initialisation
  /// (training counters such as BatchNorm's num_batches_tracked; heads when allow_fresh_head).
  virtual bool optional_parameter(const std::string& name, bool allow_fresh_head) const;
};

/// The input tensor called `name`; a missing one is a usage error naming the inputs given.
const at::Tensor& required_input(const TensorMap& inputs, const char* name);
/// The input tensor called `name`, or nullptr when it is absent or undefined.
const at::Tensor* optional_input(const TensorMap& inputs, const char* name);

/// Builds an untrained model for a spec; registered in the MODELS registry by (task, type). Models
/// are torch::nn modules and must be owned by a std::shared_ptr (torch::nn::Module relies on
/// shared_from_this), which is what builders return.
using ModelBuilder = std::function<std::shared_ptr<Model>(const ModelSpec& spec)>;

/// The MODELS registry: builders grouped by task, as ModelScope's MODELS registry is.
const Registry<ModelBuilder>& model_registry();

/// Lower case, '_' read as '-' ("XLM_Roberta" -> "xlm-roberta").
std::string normalize_model_type(std::string type);

/// Builds the model registered for spec.task and spec.type (normalised). Throws ms::Error(kUsage)
/// for a type not registered for that task, naming close matches and the supported types.
std::shared_ptr<Model> build_model(const ModelSpec& spec);

/// Builds a model and loads its weights from spec.dir (see tensor::load_model_weights), in eval
/// mode on `device`. Every parameter must come from the checkpoint.
std::shared_ptr<Model> load_pretrained(ModelSpec spec, const std::string& device);

/// Throws ms::Error(kConfig) naming `source` and `sizes` when a model of `parameters` float32
/// parameters cannot fit in this machine's memory: found from the config before anything is
/// allocated (a typo such as vocab_size 1e12 must not become an allocator error or the OOM killer).
void check_model_fits(double parameters, const std::string& source, const std::string& sizes);

/// model.forward(inputs), with LibTorch's errors (out of memory, a shape LibTorch rejects) turned
/// into ms::Error(kInternal) naming `device`: the one place where c10::Error becomes ms::Error.
TensorMap checked_forward(Model& model, const TensorMap& inputs, const std::string& device);

/// Label names for a head of `count` classes: config.json's id2label where it names them, else
/// LABEL_i (as Hugging Face does).
std::vector<std::string> label_names(const std::filesystem::path& model_dir, int64_t count);

}  // namespace ms::models
