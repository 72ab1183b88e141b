#include <ATen/Parallel.h>
#ifdef MS_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif
#include <dlfcn.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/infer/torch_layer.h"
#include "ms/models/model.h"
#include "ms/models/torchscript.h"
#include "ms/pipelines/registry.h"

namespace ms::pipelines {
namespace {

// ModelScope names many pipelines after one model or one use of a task
// ("vit-base_image-classification_ImageNet-labels", "sentiment-classification", "nli"); ms runs
// those with the task's own pipeline. Such names carry one of these words; a name with none of
// them ("nope", another task's pipeline) is a mistake in the config and fails loudly.
const std::vector<std::string>& pipeline_words(const std::string& task) {
  static const std::vector<std::string> kTokens = {
      "token-classification", "named-entity-recognition", "word-segmentation", "part-of-speech"};
  static const std::map<std::string, std::vector<std::string>> kWords = {
      {"text-classification", {"classification", "nli", "sentiment", "similarity"}},
      {"sentence-similarity", {"similarity", "classification", "nli"}},
      {"sentence-embedding", {"embedding", "feature-extraction"}},
      {"token-classification", kTokens},
      {"named-entity-recognition", kTokens},
      {"word-segmentation", kTokens},
      {"fill-mask", {"fill-mask"}},
      {"text-generation", {"generation", "gpt"}},
      {"image-classification", {"classification"}},
  };
  static const std::vector<std::string> kNone;
  auto it = kWords.find(task);
  return it == kWords.end() ? kNone : it->second;
}

bool names_a_pipeline_for(const std::string& pipeline_type, const std::string& task) {
  // Lower case, '_' as '-': the spelling rule model types follow too.
  const std::string name = models::normalize_model_type(pipeline_type);
  const auto& words = pipeline_words(task);
  return std::any_of(words.begin(), words.end(),
                     [&name](const std::string& w) { return name.find(w) != std::string::npos; });
}

class Factory final : public infer::PipelineFactory {
 public:
  Factory() : registry_("pipelines") {
    register_text_pipelines(registry_);
    register_generation_pipelines(registry_);
    register_image_pipelines(registry_);
  }

  std::unique_ptr<infer::Pipeline> create(const infer::ModelInfo& model,
                                          const infer::PipelineOptions& options) override {
    const std::vector<std::string> types = registry_.types(model.task);
    MS_CHECK(!types.empty(), ErrorCode::kMissingComponent,
             "no pipeline is registered for task '{}' in this build (registered tasks: {})",
             model.task, join(registry_.groups(), ", "));
    // pipeline.type picks a registered pipeline; ModelScope's many task-specific names that are
    // not registered here fall back to the task's own pipeline.
    std::string type = registry_.contains(model.task, model.task) ? model.task : types.front();
    if (!model.pipeline_type.empty()) {
      if (registry_.contains(model.pipeline_type, model.task)) {
        type = model.pipeline_type;
      } else if (names_a_pipeline_for(model.pipeline_type, model.task)) {
        log::info("pipeline.type '{}' is not registered for task '{}'; using '{}'",
                  model.pipeline_type, model.task, type);
      } else {
        throw Error(
            ErrorCode::kConfig,
            fmt::format("{}: pipeline.type '{}' is not a pipeline for task '{}'",
                        model.config.source(), model.pipeline_type, model.task),
            fmt::format("registered for the task: {}; ModelScope pipeline names for it "
                        "contain one of: {}; or pass --set pipeline.type={}",
                        join(types, ", "), join(pipeline_words(model.task), ", "), model.task));
      }
    }
    const std::string device = infer::load_torch_layer().runtime->resolve_device(options.device);
    auto pipeline = registry_.get(type, model.task)(model, device);
    if (options.dtype != "fp32") pipeline->set_dtype(options.dtype);
    return pipeline;
  }

  const Registry<PipelineBuilder>& registry() const { return registry_; }

 private:
  Registry<PipelineBuilder> registry_;
};

}  // namespace

namespace {

using SetThreads = void (*)(int);

// omp_set_num_threads of the OpenMP runtime LibTorch itself uses (pip wheels bundle their own
// libgomp, so linking one here could bind to a different runtime): looked up through libtorch's
// own handle. nullptr when LibTorch was built without OpenMP.
SetThreads torch_omp_set_num_threads() {
  static const SetThreads fn = []() -> SetThreads {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&at::get_num_threads), &info) == 0 ||
        info.dli_fname == nullptr) {
      return nullptr;
    }
    void* handle = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) return nullptr;
    return reinterpret_cast<SetThreads>(dlsym(handle, "omp_set_num_threads"));
  }();
  return fn;
}

}  // namespace

models::ModelSpec model_spec(const infer::ModelInfo& model, const std::string& task,
                             const std::string& type) {
  models::ModelSpec spec;
  spec.task = task;
  spec.type = type;
  spec.dir = model.dir;
  spec.config = model.config;
  return spec;
}

std::shared_ptr<models::Model> load_text_model(const infer::ModelInfo& model,
                                               const std::string& task, const std::string& type,
                                               const std::string& device) {
  if (models::normalize_model_type(type) != "torchscript") {
    return models::load_pretrained(model_spec(model, task, type), device);
  }
  // The traced graph replaces the model; tokenizer, labels and limits stay the source's.
  models::ScriptTextSpec script;
  script.file = model.dir / model.config.get_or<std::string>("model.file", "model.pt");
  script.task = task;
  script.inputs = model.config.get_or<std::vector<std::string>>("model.inputs", {});
  script.outputs = model.config.get_or<std::vector<std::string>>("model.outputs", {});
  if (model.config.has("model.num_labels"))
    script.num_labels = model.config.get<int64_t>("model.num_labels");
  if (model.config.has("model.max_tokens"))
    script.max_tokens = model.config.get<int64_t>("model.max_tokens");
  return models::load_script_text_model(script, device);
}

void check_token_ids(std::size_t tokenizer_ids, std::optional<int64_t> model_vocab,
                     const std::filesystem::path& vocabulary) {
  if (!model_vocab || static_cast<int64_t>(tokenizer_ids) <= *model_vocab) return;
  throw Error(ErrorCode::kConfig,
              fmt::format("{}: the tokenizer gives token ids up to {}, past the model's "
                          "embedding table (config.json's vocab_size {})",
                          vocabulary.string(), tokenizer_ids - 1, *model_vocab),
              "the tokenizer files and config.json come from different models, or vocab_size "
              "is wrong");
}

at::ScalarType compute_dtype(const std::string& dtype, const std::string& device,
                             at::ScalarType current) {
  at::ScalarType type = at::kHalf;
  if (dtype == "fp32") {
    type = at::kFloat;
  } else if (dtype == "bf16") {
    type = at::kBFloat16;
  } else {
    MS_CHECK(dtype == "fp16", ErrorCode::kUsage, "--dtype {}: expected fp32, fp16 or bf16", dtype);
    // Debian's LibTorch 1.13 has no half-precision kernels for the CPU (matrix products among
    // them).
    if (!c10::Device(device).is_cuda()) {
      throw Error(
          ErrorCode::kUsage,
          "--dtype fp16 needs a GPU (--device gpu): LibTorch has no half-precision CPU kernels",
          "on the CPU use --dtype bf16, or leave out --dtype");
    }
  }
  // Cast weights keep their rounding: casting them back would not give fp32's results.
  MS_CHECK(type == current || current == at::kFloat, ErrorCode::kUsage,
           "--dtype {}: the weights were cast to {} already, and casting them back would not "
           "give {}'s results: open the model again",
           dtype, c10::toString(current), dtype);
  return type;
}

bool per_thread_intra_op_threads() { return torch_omp_set_num_threads() != nullptr; }

void set_thread_intra_op_threads(int threads) {
  // ATen initialises each thread's count from the global setting on first use; do that first so
  // that it cannot overwrite ours later.
  (void)at::get_num_threads();
  if (SetThreads fn = torch_omp_set_num_threads()) fn(threads);
}

void prepare_worker_thread(int threads, const std::string& device) {
  set_thread_intra_op_threads(threads);
#ifdef MS_TORCH_CUDA
  const c10::Device d(device);
  if (!d.is_cuda()) return;
  const c10::DeviceIndex index = d.has_index() ? d.index() : 0;
  // The weights were uploaded, and cast for --dtype, on the default stream; the pool's streams
  // do not wait for it by themselves.
  c10::cuda::getDefaultCUDAStream(index).synchronize();
  c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index));
#else
  (void)device;  // LibTorch without CUDA: no GPU, no streams
#endif
}

namespace {

Factory& factory() {
  static Factory instance;
  return instance;
}

}  // namespace

infer::PipelineFactory& pipeline_factory() { return factory(); }

const Registry<PipelineBuilder>& pipeline_registry() { return factory().registry(); }

}  // namespace ms::pipelines
