#include "ms/models/model.h"

#include <c10/util/Exception.h>
#include <torch/nn/module.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/text.h"
#include "registration.h"

namespace ms::models {

void Model::train(bool on) { module().train(on); }

bool Model::is_training() const { return module().is_training(); }

void Model::to(const std::string& device) { module().to(c10::Device(device)); }

void Model::cast(at::ScalarType dtype) { module().to(dtype); }

TensorMap Model::state_dict() const {
  TensorMap out;
  for (const auto& p : module().named_parameters()) out.emplace(p.key(), p.value());
  for (const auto& b : module().named_buffers()) out.emplace(b.key(), b.value());
  return out;
}

bool Model::optional_parameter(const std::string& name, bool /*allow_fresh_head*/) const {
  // BatchNorm's training counter: inference never reads it, and torchvision checkpoints made
  // before it existed lack it.
  static const std::string kCounter = ".num_batches_tracked";
  return name.size() > kCounter.size() &&
         name.compare(name.size() - kCounter.size(), kCounter.size(), kCounter) == 0;
}

void Model::load_state_dict(const TensorMap& checkpoint, const std::string& source,
                            bool allow_fresh_head) {
  begin_load(checkpoint, source, allow_fresh_head);
  TensorMap mapped;
  for (const auto& [name, tensor] : checkpoint) {
    if (auto own = checkpoint_name_to_parameter(name)) mapped.emplace(*own, tensor);
  }
  // Parameters the checkpoint may lack keep their initialisation; every other one must be there.
  // A fresh head also replaces a checkpoint head of another size (a new label count).
  std::map<std::string, at::Tensor> targets = state_dict();
  for (auto it = targets.begin(); it != targets.end();) {
    auto given = mapped.find(it->first);
    const bool absent = given == mapped.end();
    const bool resized = !absent && allow_fresh_head && given->second.sizes() != it->second.sizes();
    if ((absent || resized) && optional_parameter(it->first, allow_fresh_head)) {
      if (resized) mapped.erase(given);
      it = targets.erase(it);
    } else {
      ++it;
    }
  }
  tensor::copy_weights(mapped, targets, ignorable_checkpoint_names(), source);
}

const Registry<ModelBuilder>& model_registry() {
  // Built on first use, explicitly (see Registries for why there is no static self-registration).
  static const Registry<ModelBuilder> registry = [] {
    Registry<ModelBuilder> r("models");
    register_bert_models(r);
    register_gpt_models(r);
    register_vision_models(r);
    return r;
  }();
  return registry;
}

std::string normalize_model_type(std::string type) {
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::replace(type.begin(), type.end(), '_', '-');
  return type;
}

namespace {

// The builder registered for spec.task and spec.type (normalised); a type not registered for that
// task is a usage error naming the close matches.
const ModelBuilder& builder_for(const ModelSpec& spec) {
  const std::string& type = spec.type;
  const Registry<ModelBuilder>& registry = model_registry();
  const std::vector<std::string> known = registry.types(spec.task);
  MS_CHECK(!known.empty(), ErrorCode::kMissingComponent,
           "no model is registered for task '{}' in this build (tasks with models: {})", spec.task,
           join(registry.groups(), ", "));
  if (!registry.contains(type, spec.task)) {
    const std::string hint = did_you_mean(type, known);
    // The type comes from the model folder's config, so this is a config error (exit 3).
    throw Error(ErrorCode::kConfig,
                fmt::format("model type '{}' ({}) is not supported for task '{}'", type,
                            spec.config.source(), spec.task),
                (hint.empty() ? std::string() : hint + "; ") + "supported: " + join(known, ", "));
  }
  return registry.get(type, spec.task);
}

}  // namespace

std::shared_ptr<Model> build_model(const ModelSpec& spec) {
  ModelSpec normalized = spec;
  normalized.type = normalize_model_type(spec.type);
  return builder_for(normalized)(normalized);
}

std::shared_ptr<Model> load_pretrained(ModelSpec spec, const std::string& device) {
  spec.type = normalize_model_type(spec.type);
  // The type is checked before a checkpoint of any size is read.
  const ModelBuilder& build = builder_for(spec);
  const TensorMap checkpoint = tensor::load_model_weights(spec.dir);
  spec.checkpoint = &checkpoint;
  try {
    std::shared_ptr<Model> model = build(spec);
    model->load_state_dict(model->complete_checkpoint(checkpoint), spec.dir.string());
    model->eval();
    model->to(device);
    return model;
  } catch (const c10::Error& e) {
    // The families check their configs first; what LibTorch still rejects comes from them too.
    throw Error(ErrorCode::kConfig,
                fmt::format("cannot build the {} model of {} on {}: {}", spec.type,
                            spec.dir.string(), device, e.what_without_backtrace()),
                "check the sizes in config.json / configuration.json");
  }
}

void check_model_fits(double parameters, const std::string& source, const std::string& sizes) {
  const double bytes = parameters * 4;  // float32
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGE_SIZE);
  const double memory = pages > 0 && page_size > 0 ? static_cast<double>(pages) * page_size : 0;
  if (memory > 0 && bytes > memory) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: {} describe a model of {:.3g} parameters ({:.1f} GiB), more than "
                            "this machine's {:.1f} GiB of memory",
                            source, sizes, parameters, bytes / (1u << 30), memory / (1u << 30)),
                "a size in the config is probably wrong (a typo, or another model's config)");
  }
}

const at::Tensor& required_input(const TensorMap& inputs, const char* name) {
  const at::Tensor* found = optional_input(inputs, name);
  if (found == nullptr) {
    std::vector<std::string> given;
    for (const auto& [key, tensor] : inputs) given.push_back(key);
    fail(ErrorCode::kUsage, "the model needs input '{}' (given: {})", name,
         given.empty() ? std::string("nothing") : join(given, ", "));
  }
  return *found;
}

const at::Tensor* optional_input(const TensorMap& inputs, const char* name) {
  auto it = inputs.find(name);
  return it == inputs.end() || !it->second.defined() ? nullptr : &it->second;
}

TensorMap checked_forward(Model& model, const TensorMap& inputs, const std::string& device) {
  try {
    return model.forward(inputs);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kInternal,
                fmt::format("forward pass on {} failed: {}", device, e.what_without_backtrace()));
  }
}

std::vector<std::string> label_names(const std::filesystem::path& model_dir, int64_t count) {
  const auto config = read_json_file(model_dir / "config.json");
  const Json* id2label = config && config->contains("id2label") && !(*config)["id2label"].is_null()
                             ? &(*config)["id2label"]
                             : nullptr;
  if (id2label != nullptr) {
    // A malformed map would silently turn every label into LABEL_n.
    const std::string source = (model_dir / "config.json").string();
    MS_CHECK(id2label->is_object(), ErrorCode::kConfig,
             "{}: id2label must be an object of \"id\": \"name\" pairs, got {}", source,
             id2label->dump());
    for (const auto& [id, name] : id2label->items()) {
      MS_CHECK(is_decimal(id) && id.size() < 10 && name.is_string(), ErrorCode::kConfig,
               "{}: id2label entry \"{}\": {} must map a class id (0, 1, ...) to a name", source,
               id, name.dump());
    }
  }
  // By the keys' numbers, as transformers reads them (int(key)): "01" is class 1.
  std::map<int64_t, std::string> by_id;
  if (id2label != nullptr) {
    for (const auto& [id, name] : id2label->items())
      by_id[std::stoll(id)] = name.get<std::string>();
  }
  // A map that names some classes names them all: a gap would show a made-up LABEL_n for one
  // class (transformers' pipeline fails on it with a KeyError) and the name given to another id
  // would never show.
  for (int64_t i = 0; i < count && !by_id.empty(); ++i) {
    if (by_id.count(i) != 0) continue;
    std::vector<std::string> ids;
    for (const auto& [id, name] : by_id) ids.push_back(std::to_string(id));
    throw Error(
        ErrorCode::kConfig,
        fmt::format("{}: id2label names no class {}, and the model scores {} classes "
                    "(ids 0 to {}); the ids it names: {}",
                    (model_dir / "config.json").string(), i, count, count - 1, join(ids, ", ")),
        fmt::format("number the classes 0 to {} in id2label", count - 1));
  }
  std::vector<std::string> out;
  for (int64_t i = 0; i < count; ++i) {
    const auto it = by_id.find(i);
    out.push_back(it != by_id.end() ? it->second : fmt::format("LABEL_{}", i));
  }
  return out;
}

}  // namespace ms::models
