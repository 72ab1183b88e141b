// A model folder as a repository that Hugging Face transformers and ModelScope load: the weights
// of the model `ms infer` loads (from pytorch_model.bin, sharded files, an `ms train` output/ or a
// hub id), written as one model.safetensors under their Hugging Face names, beside the folder's
// configuration and tokenizer files and a model card; ready for `ms upload`.
#include "safetensors_repo.h"

#include <ATen/ops/_to_copy.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/max.h>

#include <algorithm>
#include <chrono>

#include "export_files.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/version.h"
#include "ms/tensor/weights.h"

namespace ms::exporter {
namespace {

namespace fs = std::filesystem;

// The transformers class that loads each task's folder, for config.json's `architectures` when
// the source folder names none.
std::string architecture_for(const std::string& type, const std::string& task) {
  if (type == "gpt2") return "GPT2LMHeadModel";
  std::string base = type == "roberta" || type == "xlm-roberta" ? "Roberta" : "Bert";
  if (task == "text-classification" || task == "sentence-similarity" || task == "nli" ||
      task == "sentiment-classification")
    return base + "ForSequenceClassification";
  if (task == "token-classification" || task == "named-entity-recognition" ||
      task == "word-segmentation")
    return base + "ForTokenClassification";
  if (task == "fill-mask") return base + "ForMaskedLM";
  return base + "Model";
}

// The module folders modules.json names (sentence-transformers), besides the top one.
std::vector<std::string> module_folders(const fs::path& dir) {
  std::vector<std::string> out;
  const auto modules = read_json_file(dir / "modules.json");
  if (!modules || !modules->is_array()) return out;
  for (const Json& m : *modules) {
    const std::string rel = m.is_object() ? m.value("path", "") : "";
    if (!rel.empty() && rel != ".") out.push_back(rel);
  }
  return out;
}

// How Python loads the repository: transformers for the text families; torchvision for a
// ResNet (whose weights carry torchvision's names); nothing for the small CNN, which only ms runs.
std::string python_loading(const Json& structure, const tensor::TensorMap& weights,
                           const std::string& architecture) {
  const std::string family = structure.value("family", "");
  if (family == "small-cnn") return "";
  if (family == "resnet") {
    int64_t blocks = 0;
    for (const Json& n : structure.at("blocks")) blocks += n.get<int64_t>();
    const int64_t depth = blocks * (structure.at("bottleneck").get<bool>() ? 3 : 2) + 2;
    return fmt::format(
        "```python\nimport torchvision\nfrom safetensors.torch import load_file\n"
        "model = torchvision.models.resnet{}(num_classes={})\n"
        "model.load_state_dict(load_file(\"PATH/model.safetensors\"))\n```\n\n",
        depth, weights.at("fc.weight").size(0));
  }
  return fmt::format(
      "```python\nfrom transformers import {0}, AutoTokenizer\n"
      "model = {0}.from_pretrained(\"PATH\")\ntokenizer = AutoTokenizer.from_pretrained(\"PATH\")\n"
      "```\n\n",
      architecture);
}

// `transformers_class`: the class that loads the repository, empty for an image model.
std::string model_card(const infer::ExportRequest& request, const infer::ModelInfo& info,
                       const std::string& type, const std::string& transformers_class,
                       const std::string& python, const std::vector<std::string>& files) {
  std::string card = "---\ntasks:\n- " + info.task + "\n";
  if (!transformers_class.empty()) card += "library_name: transformers\n";
  card += "tags:\n- ms-export\n- " + type + "\n---\n\n";
  // Titled by the repository's folder (as `ms upload` names the repo after it, mostly), not the
  // source's: an `ms train` result is always "output", and "model/" has no last component.
  card += "# " + request.output.filename().string() + "\n\n";
  const bool vowel =
      !info.task.empty() && std::string("aeiou").find(info.task[0]) != std::string::npos;
  card += fmt::format(
      "{} {} model (type `{}`) exported by `ms export --format safetensors` (ms {}) from `{}`, "
      "weights in {}.\n\n",
      vowel ? "An" : "A", info.task, type, MS_VERSION_STRING, request.model, request.dtype);
  // An image classifier reads image files (a folder of them, or a dataset's path column).
  card += transformers_class.empty()
              ? "## Use\n\n```sh\nms infer --model OWNER/NAME --input-dir IMAGES/\n```\n\n"
              : "## Use\n\n```sh\nms infer --model OWNER/NAME --input \"...\"\n```\n\n";
  card += python;
  card += "## Files\n\n";
  for (const std::string& f : files) card += "- `" + f + "`\n";
  return card;
}

}  // namespace

infer::ExportSummary export_safetensors_repo(const infer::ExportRequest& request,
                                             const infer::ModelInfo& info) {
  const auto start = std::chrono::steady_clock::now();
  const std::string type = models::normalize_model_type(model_type_of(info));
  MS_CHECK(type != "torchscript", ErrorCode::kUsage,
           "{}: a TorchScript model has no weights by name to write as safetensors",
           info.dir.string());
  MS_CHECK(request.static_shape.empty() && !request.opset, ErrorCode::kUsage,
           "--static and --opset are ONNX options; --format safetensors writes weights only");
  const std::shared_ptr<models::Model> model = load_for_export(info, type);
  const Json structure = model->structure();
  const bool image_model =
      structure.is_object() && structure.value("head", "") == "image-classification";
  tensor::TensorMap weights = model->state_dict();
  // A masked-LM head's bias under both names: transformers 4 reads cls.predictions.bias (the
  // decoder's is the same tensor), transformers 5 the decoder's own when the head is untied.
  if (weights.count("cls.predictions.bias") != 0 &&
      weights.count("cls.predictions.decoder.bias") == 0)
    weights["cls.predictions.decoder.bias"] = weights.at("cls.predictions.bias");
  for (auto& [name, t] : weights) {
    if (!t.is_floating_point()) continue;
    // The other formats check the model's outputs; this one writes weights only, so it checks
    // them: a NaN weight is a broken model, not one to publish.
    MS_CHECK(t.isfinite().all().item<bool>(), ErrorCode::kIntegrity,
             "{}: weight {} holds NaN or infinity: the model is broken, so there is nothing "
             "faithful to export",
             info.dir.string(), name);
    if (request.dtype != "fp16") continue;
    at::Tensor half = t.to(at::kHalf);
    // A weight beyond float16's range (65504) would be stored as infinity: the model would give
    // NaN wherever it is used.
    MS_CHECK(half.isfinite().all().item<bool>(), ErrorCode::kMissingComponent,
             "the model does not survive half precision: weight {} holds values beyond float16's "
             "range (largest magnitude {:.4g}, float16's is 65504)",
             name, t.abs().max().item<double>());
    t = std::move(half);
  }

  infer::ExportSummary summary;
  summary.output_dir = request.output;
  summary.format = "safetensors";
  summary.family = type;
  summary.head = info.task;
  summary.files = write_export_folder(request.output, [&](const fs::path& temp) {
    std::vector<std::string> files = copy_side_files(info, temp);
    // A sentence-transformers module's weights (2_Dense.linear.weight) go to its own folder
    // (2_Dense/model.safetensors), where sentence-transformers and `ms infer` look for them.
    for (const std::string& module : module_folders(info.dir)) {
      tensor::TensorMap own;
      const std::string prefix = module + ".";
      for (auto it = weights.begin(); it != weights.end();) {
        if (it->first.rfind(prefix, 0) == 0) {
          own.emplace(it->first.substr(prefix.size()), it->second);
          it = weights.erase(it);
        } else {
          ++it;
        }
      }
      if (own.empty()) continue;
      fs::create_directories(temp / module);
      tensor::save_safetensors(temp / module / "model.safetensors", own);
      files.push_back(module + "/model.safetensors");
    }
    tensor::save_safetensors(temp / "model.safetensors", weights);
    files.push_back("model.safetensors");
    // config.json says which transformers class loads the weights and in which precision
    // ("dtype", transformers 5's key; "torch_dtype", the older one, kept in step where the source
    // has it). An image model has no transformers class: its config stays the source's.
    std::string architecture;
    if (!image_model) {
      Json hf = read_json_file(temp / "config.json").value_or(Json::object());
      if (!hf.contains("model_type") && (type == "bert" || type == "roberta" || type == "gpt2"))
        hf["model_type"] = type;
      const Json& named = hf.contains("architectures") ? hf["architectures"] : Json();
      if (!named.is_array() || named.empty() || !named[0].is_string())
        hf["architectures"] = Json::array({architecture_for(type, info.task)});
      architecture = hf["architectures"][0].get<std::string>();
      const char* dtype = request.dtype == "fp16" ? "float16" : "float32";
      hf["dtype"] = dtype;
      if (hf.contains("torch_dtype")) hf["torch_dtype"] = dtype;
      write_file_atomic(temp / "config.json", hf.dump(2) + "\n");
      if (std::find(files.begin(), files.end(), "config.json") == files.end())
        files.push_back("config.json");
    }
    // The source's own model card stays (copy_side_files leaves out one an earlier export
    // wrote); else one is written.
    if (std::find(files.begin(), files.end(), "README.md") == files.end()) {
      files.push_back("README.md");
      std::sort(files.begin(), files.end());
      write_file_atomic(temp / "README.md",
                        model_card(request, info, type, architecture,
                                   python_loading(structure, weights, architecture), files));
    }
    return files;
  });
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace ms::exporter
