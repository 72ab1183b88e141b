// An image classifier as a TorchScript archive: LibTorch's tracer records the C++ module's forward
// pass on an example batch (parameters without gradients, so that they become the graph's
// constants), the graph becomes the `forward` method of a new jit::Module, and that module is
// saved as model.pt, which Python's torch.jit.load and `ms infer`'s TorchScript pipeline run.
// The traced graph keeps the batch and image sizes symbolic where the network reads them
// (aten::size), so other batch sizes run too.
#include "torchscript_export.h"

#include <ATen/ops/rand.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <chrono>

#include "export_files.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/models/model.h"
#include "ms/pipelines/image_transforms.h"

namespace ms::exporter {
namespace {

namespace fs = std::filesystem;

// The example image's height and width: the preprocessing's CenterCrop, else its Resize, as
// `ms infer` reads the transforms (torchvision's 224 crop when there are none).
std::pair<int64_t, int64_t> example_size(const Config& config) {
  std::pair<int64_t, int64_t> size = {0, 0};
  for (const pipelines::Transform& t : pipelines::parse_transforms(config)) {
    const std::pair<int64_t, int64_t> own = {t.h, t.w > 0 ? t.w : t.h};
    if (t.type == "CenterCrop" || (t.type == "Resize" && size.first == 0)) size = own;
  }
  return size.first > 0 ? size : std::pair<int64_t, int64_t>{224, 224};
}

// The class names `ms infer` shows: model.labels, else config.json's id2label.
std::vector<std::string> class_names(const infer::ModelInfo& info, int64_t classes) {
  if (info.config.has("model.labels")) {
    auto names = info.config.get<std::vector<std::string>>("model.labels");
    if (static_cast<int64_t>(names.size()) == classes) return names;
  }
  return models::label_names(info.dir, classes);
}

torch::jit::Module trace_module(models::Model& model, const at::Tensor& example) {
  for (at::Tensor p : model.module().parameters()) p.set_requires_grad(false);
  auto traced = torch::jit::tracer::trace(
      {example},
      [&](torch::jit::Stack inputs) -> torch::jit::Stack {
        const models::TensorMap out = model.forward({{"pixel_values", inputs.at(0).toTensor()}});
        return {out.at("logits")};
      },
      [](const torch::autograd::Variable&) { return std::string(); },
      /*strict=*/false, /*force_outplace=*/false, /*self=*/nullptr, {"pixel_values"});
  std::shared_ptr<torch::jit::Graph> graph = traced.first->graph;
  torch::jit::Module module(c10::QualifiedName("__torch__.ms.ExportedImageClassifier"));
  module.register_attribute("training", c10::BoolType::get(), false);
  graph->insertInput(0, "self")->setType(module._ivalue()->type());
  auto* fn = module._ivalue()->compilation_unit()->create_function("forward", graph);
  module.type()->addMethod(fn);
  return module;
}

}  // namespace

infer::ExportSummary export_torchscript(const infer::ExportRequest& request,
                                        const infer::ModelInfo& info) {
  const auto start = std::chrono::steady_clock::now();
  MS_CHECK(info.task == "image-classification", ErrorCode::kMissingComponent,
           "`ms export --format torchscript` of {} models is not built yet: it is built for "
           "image-classification models only (`ms infer`'s TorchScript pipeline takes images)",
           info.task);
  const std::string type = models::normalize_model_type(model_type_of(info));
  MS_CHECK(type != "torchscript", ErrorCode::kUsage, "{} is already a TorchScript model",
           info.dir.string());
  MS_CHECK(!request.opset, ErrorCode::kUsage,
           "--opset is an ONNX option; --format torchscript writes a TorchScript archive");
  MS_CHECK(request.dtype == "fp32", ErrorCode::kMissingComponent,
           "`ms export --format torchscript --dtype {}` is not built yet", request.dtype);
  const std::shared_ptr<models::Model> model = load_for_export(info, type);
  model->eval();
  // --static: the traced shape; the default trace is at batch 2 so that the batch stays an
  // input-dependent size rather than a 1 folded into the graph.
  const auto [height, width] = example_size(info.config);
  std::vector<int64_t> shape = {2, 3, height, width};
  if (!request.static_shape.empty()) {
    shape[0] = request.static_shape[0];
    if (request.static_shape.size() == 3) {
      shape[2] = request.static_shape[1];
      shape[3] = request.static_shape[2];
    } else {
      MS_CHECK(request.static_shape.size() == 1, ErrorCode::kUsage,
               "--static takes BATCH or BATCH,HEIGHT,WIDTH for an image model");
    }
  }
  at::manual_seed(0);
  const at::Tensor example = at::rand(shape);
  torch::jit::Module module;
  try {
    module = trace_module(*model, example);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kInternal,
                fmt::format("tracing the {} model failed: {}", type, e.what_without_backtrace()),
                "please report it with the model's configuration.json");
  }

  infer::ExportSummary summary;
  summary.output_dir = request.output;
  summary.format = "torchscript";
  summary.family = type;
  summary.head = info.task;
  summary.inputs = {{"pixel_values", "float32", {"batch", "3", "height", "width"}}};
  summary.outputs = {{"logits", "float32", {"batch", std::to_string(*model->num_labels())}}};
  summary.files = write_export_folder(request.output, [&](const fs::path& temp) {
    try {
      module.save((temp / "model.pt").string());
    } catch (const c10::Error& e) {
      throw Error(ErrorCode::kIo, fmt::format("cannot write {}: {}", (temp / "model.pt").string(),
                                              e.what_without_backtrace()));
    }
    std::vector<std::string> files = copy_side_files(info.dir, temp);
    // `ms infer` runs the folder through its TorchScript pipeline, with the same preprocessing
    // and class names as the source model.
    Json ms = info.config.root();
    ms["task"] = info.task;
    ms["model"] = {{"type", "torchscript"},
                   {"file", "model.pt"},
                   {"labels", class_names(info, *model->num_labels())}};
    write_file_atomic(temp / "configuration.json", ms.dump(2) + "\n");
    for (const char* name : {"configuration.json", "model.pt"})
      if (std::find(files.begin(), files.end(), name) == files.end()) files.push_back(name);
    return files;
  });
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace ms::exporter
