// A model as a TorchScript archive: LibTorch's tracer records the C++ module's forward pass on an
// example batch (parameters without gradients, so that they become the graph's constants), the
// graph becomes the `forward` method of a new jit::Module, and that module is saved as model.pt,
// which Python's torch.jit.load and `ms infer` run. Image classifiers take pixel_values;
// BERT-family models take input_ids, attention_mask and token_type_ids and return their head's
// output (logits, or sentence_embedding); GPT-2 takes input_ids and attention_mask and returns
// logits at every position, without a key/value cache. The families build shapes and dtypes from
// the tensors while tracing (see BertEncoder), and every export is rerun at another batch size and
// length against the C++ model before it is written, so a graph that froze a size is refused
// rather than shipped.
//
// --dtype fp16: LibTorch 1.13 has no half-precision kernels on the CPU, so the trace is recorded
// in float32 and its weights (the graph's constants) are cast to float16 afterwards; float inputs
// are cast to the weights' dtype inside the graph and outputs are float32, as the fp16 ONNX export
// has them. That the graph follows its weights' dtype everywhere is checked before writing, by
// running the written archive with bfloat16 weights, which the CPU computes.
#include "torchscript_export.h"

#include <ATen/ops/isfinite.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/zeros.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <sstream>

#include "export_files.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/models/model.h"
#include "ms/models/torchscript.h"
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

// Tasks whose BERT-family models export: the heads `ms infer` runs, each with its output.
const std::map<std::string, std::string>& text_outputs() {
  static const std::map<std::string, std::string> outputs = {
      {"text-classification", "logits"},
      {"sentence-similarity", "logits"},
      {"token-classification", "logits"},
      {"named-entity-recognition", "logits"},
      {"word-segmentation", "logits"},
      {"fill-mask", "logits"},
      {"sentence-embedding", "sentence_embedding"},
      {"text-generation", "logits"}};
  return outputs;
}

// What the traced forward takes and returns.
struct Signature {
  std::vector<std::string> inputs;
  std::string output;
};

models::TensorMap named(const Signature& sig, const std::vector<at::Tensor>& values) {
  models::TensorMap map;
  for (std::size_t i = 0; i < sig.inputs.size(); ++i) map[sig.inputs[i]] = values[i];
  return map;
}

torch::jit::Module trace_module(models::Model& model, const Signature& sig,
                                const std::vector<at::Tensor>& example) {
  // The smallest floating weight stands for the weights' dtype: float inputs are cast to it
  // (type_as records the cast against the constant, so it follows --dtype).
  at::Tensor weights_dtype;
  for (at::Tensor p : model.module().parameters()) {
    p.set_requires_grad(false);
    if (p.is_floating_point() && (!weights_dtype.defined() || p.numel() < weights_dtype.numel()))
      weights_dtype = p;
  }
  torch::jit::Stack stack(example.begin(), example.end());
  auto traced = torch::jit::tracer::trace(
      stack,
      [&](torch::jit::Stack inputs) -> torch::jit::Stack {
        std::vector<at::Tensor> values;
        for (const c10::IValue& v : inputs) {
          at::Tensor value = v.toTensor();
          if (value.is_floating_point() && weights_dtype.defined())
            value = value.type_as(weights_dtype);
          values.push_back(value);
        }
        // Outputs are float32 whatever the weights are (a no-op for fp32 archives).
        return {model.forward(named(sig, values)).at(sig.output).to(at::kFloat)};
      },
      [](const torch::autograd::Variable&) { return std::string(); },
      /*strict=*/false, /*force_outplace=*/false, /*self=*/nullptr, sig.inputs);
  std::shared_ptr<torch::jit::Graph> graph = traced.first->graph;
  torch::jit::Module module(c10::QualifiedName("__torch__.ms.ExportedModel"));
  module.register_attribute("training", c10::BoolType::get(), false);
  graph->insertInput(0, "self")->setType(module._ivalue()->type());
  auto* fn = module._ivalue()->compilation_unit()->create_function("forward", graph);
  module.type()->addMethod(fn);
  return module;
}

// The traced module's output on `example`; a graph that cannot run it is refused, naming `what`
// and with `hint`.
at::Tensor run_traced(torch::jit::Module& module, const std::vector<at::Tensor>& example,
                      const std::string& what, const std::string& hint) {
  try {
    return module.forward(std::vector<c10::IValue>(example.begin(), example.end())).toTensor();
  } catch (const std::runtime_error& e) {  // c10::Error, and the interpreter's errors
    throw Error(ErrorCode::kMissingComponent,
                fmt::format("the traced {} does not run at shape {}: {}", what,
                            fmt::join(example[0].sizes(), "x"), models::script_failure(e)),
                hint);
  }
}

// Runs the traced module and the C++ model on `example` (another shape than the trace's) and
// refuses the export when they differ: a size frozen into the graph would give wrong outputs.
void check_traced(torch::jit::Module& module, models::Model& model, const Signature& sig,
                  const std::vector<at::Tensor>& example, const std::string& type) {
  const at::Tensor want = model.forward(named(sig, example)).at(sig.output);
  // NaN in the model's own outputs would make every comparison below fail, and blame tracing.
  MS_CHECK(want.isfinite().all().item<bool>(), ErrorCode::kIntegrity,
           "the {} model's own outputs hold NaN or infinity (at shape {}): its weights or "
           "config.json are broken, so there is nothing faithful to export",
           type, fmt::join(example[0].sizes(), "x"));
  const at::Tensor got = run_traced(module, example, type + " model",
                                    "export it at the shape you will run with (--static)");
  const double diff = got.sizes() == want.sizes() ? (got - want).abs().max().item<double>() : 1e9;
  MS_CHECK(diff <= 1e-4, ErrorCode::kMissingComponent,
           "the traced {} model gives other outputs at shape {} than at the traced one (max "
           "difference {:.3g}): its forward pass fixes a size that tracing cannot see",
           type, fmt::join(example[0].sizes(), "x"), diff);
}

// The archive bytes with float16 weights (see the top of this file). The trace's constants are
// cast, the archive is saved and loaded again, and that copy, cast to bfloat16, must run on
// `example` with finite outputs that point where the C++ model's do (cosine >= 0.99; bfloat16
// keeps 8 bits of mantissa): a float32 constant or cast left in the graph fails here, not on the
// user's GPU.
std::string half_archive(torch::jit::Module& module, models::Model& model, const Signature& sig,
                         const std::vector<at::Tensor>& example, const std::string& type) {
  models::cast_floating_constants(module, at::kFloat, at::kHalf);
  std::ostringstream bytes;
  module.save(bytes);
  std::istringstream in(bytes.str());
  torch::jit::Module copy = torch::jit::load(in, c10::Device("cpu"));
  models::cast_floating_constants(copy, at::kHalf, at::kBFloat16);
  const at::Tensor got = run_traced(copy, example, type + " model in half precision",
                                    "export it in fp32, and please report it");
  const at::Tensor want = model.forward(named(sig, example)).at(sig.output).to(at::kFloat);
  MS_CHECK(got.scalar_type() == at::kFloat && got.sizes() == want.sizes(), ErrorCode::kInternal,
           "the half-precision {} archive returns {} [{}] where the model returns float [{}]", type,
           c10::toString(got.scalar_type()), fmt::join(got.sizes(), "x"),
           fmt::join(want.sizes(), "x"));
  const bool finite = got.isfinite().all().item<bool>();
  const double cosine = (got * want).sum().item<double>() /
                        std::max(1e-30, got.norm().item<double>() * want.norm().item<double>());
  MS_CHECK(finite && cosine >= 0.99, ErrorCode::kMissingComponent,
           "the {} model does not survive half precision: run with 16-bit weights its outputs "
           "are {} (cosine {:.4f} to fp32)",
           type, finite ? "far from fp32's" : "not finite", cosine);
  return bytes.str();
}

// An example batch: random pixels, or random token ids with the second row half padded (and
// token types when the signature takes them).
std::vector<at::Tensor> example_inputs(const Signature& sig, bool text,
                                       const std::vector<int64_t>& shape, int64_t vocab) {
  if (!text) return {at::rand(shape)};
  const at::Tensor ids = at::randint(0, vocab, shape, at::TensorOptions().dtype(at::kLong));
  at::Tensor mask = at::ones(shape, at::TensorOptions().dtype(at::kLong));
  if (shape[0] > 1 && shape[1] > 2) mask[1].slice(0, shape[1] / 2).fill_(0);
  std::vector<at::Tensor> example = {ids, mask};
  if (sig.inputs.size() == 3) example.push_back(at::zeros(shape, ids.options()));
  return example;
}

// A TorchScript model folder passes through: checked to load, then copied as it is.
infer::ExportSummary pass_through(const infer::ExportRequest& request, const infer::ModelInfo& info,
                                  std::chrono::steady_clock::time_point start) {
  MS_CHECK(request.static_shape.empty(), ErrorCode::kUsage,
           "{} is already a TorchScript model: it is copied as it is, so --static does not apply",
           info.dir.string());
  const fs::path archive = info.dir / info.config.get_or<std::string>("model.file", "model.pt");
  models::ScriptModule check(archive, "cpu");  // kNotFound / kIntegrity naming the file
  infer::ExportSummary summary;
  summary.output_dir = request.output;
  summary.format = "torchscript";
  summary.family = "torchscript";
  summary.head = info.task;
  summary.files = write_export_folder(request.output, [&](const fs::path& temp) {
    std::vector<std::string> files;
    for (const auto& entry : fs::recursive_directory_iterator(info.dir)) {
      const fs::path rel = fs::relative(entry.path(), info.dir);
      if (!entry.is_regular_file() || rel.filename().string().rfind('.', 0) == 0) continue;
      fs::create_directories((temp / rel).parent_path());
      fs::copy_file(entry.path(), temp / rel);
      files.push_back(rel.string());
    }
    std::sort(files.begin(), files.end());
    return files;
  });
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace

infer::ExportSummary export_torchscript(const infer::ExportRequest& request,
                                        const infer::ModelInfo& info) {
  const auto start = std::chrono::steady_clock::now();
  const bool text = info.task != "image-classification";
  if (text && text_outputs().count(info.task) == 0) {
    std::vector<std::string> tasks;
    for (const auto& [task, output] : text_outputs()) tasks.push_back(task);
    fail(ErrorCode::kUsage,
         "{}: no TorchScript exporter for task '{}' (it exports image-classification, {})",
         info.dir.string(), info.task, join(tasks, ", "));
  }
  const std::string type = models::normalize_model_type(model_type_of(info));
  MS_CHECK(!request.opset, ErrorCode::kUsage,
           "--opset is an ONNX option; --format torchscript writes a TorchScript archive");
  MS_CHECK(request.dtype == "fp32" || request.dtype == "fp16", ErrorCode::kUsage,
           "--format torchscript writes fp32 or fp16 archives, not {}", request.dtype);
  if (type == "torchscript") {
    MS_CHECK(request.dtype == "fp32", ErrorCode::kUsage,
             "{} is already a TorchScript model: it is copied as it is, so --dtype does not apply",
             info.dir.string());
    return pass_through(request, info, start);
  }
  const bool half = request.dtype == "fp16";
  const std::shared_ptr<models::Model> model = load_for_export(info, type);
  model->eval();
  Signature sig;
  std::vector<int64_t> shape, other;
  int64_t vocab = 0;
  if (text) {
    sig.output = text_outputs().at(info.task);
    sig.inputs = {"input_ids", "attention_mask"};
    if (info.task != "text-generation") sig.inputs.push_back("token_type_ids");
    const auto hf = read_json_file(info.dir / "config.json");
    vocab = hf ? hf->value("vocab_size", int64_t{0}) : 0;
    MS_CHECK(vocab > 0, ErrorCode::kConfig, "{}: no vocab_size in config.json",
             (info.dir / "config.json").string());
    // The default trace is at batch 2 and 16 tokens, so that neither is a 1 folded into the graph.
    shape = {2, std::min<int64_t>(16, model->max_tokens().value_or(16))};
    if (!request.static_shape.empty()) {
      MS_CHECK(request.static_shape.size() == 2, ErrorCode::kUsage,
               "--static takes BATCH,SEQUENCE for a text model");
      shape = request.static_shape;
    }
    other = {shape[0] + 1, std::max<int64_t>(2, shape[1] - 3)};
  } else {
    sig = {{"pixel_values"}, "logits"};
    const auto [height, width] = example_size(info.config);
    shape = {2, 3, height, width};
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
    other = shape;
    other[0] += 1;
  }
  at::manual_seed(0);
  torch::jit::Module module;
  try {
    module = trace_module(*model, sig, example_inputs(sig, text, shape, vocab));
  } catch (const c10::Error& e) {
    // At a shape the user chose, the shape is the likelier culprit; at ms's own, ms is.
    if (!request.static_shape.empty()) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("the {} model cannot be traced at --static {}: {}", type,
                              fmt::join(request.static_shape, ","), e.what_without_backtrace()),
                  "choose sizes the model takes (its positions, the image size it expects)");
    }
    throw Error(ErrorCode::kInternal,
                fmt::format("tracing the {} model failed: {}", type, e.what_without_backtrace()),
                "please report it with the model's configuration.json");
  }
  // A --static export promises only its own shape, and is checked at it.
  const bool dynamic = request.static_shape.empty();
  const std::vector<at::Tensor> check = example_inputs(sig, text, dynamic ? other : shape, vocab);
  if (dynamic) check_traced(module, *model, sig, check, type);
  std::string archive;
  if (half) {
    archive = half_archive(module, *model, sig, check, type);
  } else {
    std::ostringstream bytes;
    module.save(bytes);
    archive = bytes.str();
  }

  infer::ExportSummary summary;
  summary.output_dir = request.output;
  summary.format = "torchscript";
  summary.family = type;
  summary.head = info.task;
  const std::string batch = request.static_shape.empty() ? "batch" : std::to_string(shape[0]);
  if (text) {
    const std::string seq = request.static_shape.empty() ? "sequence" : std::to_string(shape[1]);
    for (const std::string& name : sig.inputs)
      summary.inputs.push_back({name, "int64", {batch, seq}});
    if (info.task == "text-generation") {
      summary.outputs = {{"logits", "float32", {batch, seq, "vocab"}}};
    } else if (sig.output == "logits" && info.task != "text-classification" &&
               info.task != "sentence-similarity") {
      summary.outputs = {{"logits", "float32", {batch, seq, "labels"}}};
    } else {
      summary.outputs = {{sig.output, "float32", {batch, "features"}}};
    }
  } else {
    summary.inputs = {{"pixel_values", "float32", {batch, "3", "height", "width"}}};
    summary.outputs = {{"logits", "float32", {batch, std::to_string(*model->num_labels())}}};
  }
  summary.files = write_export_folder(request.output, [&](const fs::path& temp) {
    write_file_atomic(temp / "model.pt", archive);
    std::vector<std::string> files = copy_side_files(info, temp);
    // `ms infer` runs the folder through its TorchScript pipeline, with the same preprocessing
    // and class names as the source model.
    Json ms = info.config.root();
    ms["task"] = info.task;
    ms["model"] = {{"type", "torchscript"}, {"file", "model.pt"}, {"dtype", request.dtype}};
    if (text) {
      // What the text pipelines read from the source model, which the archive no longer says.
      ms["model"]["inputs"] = sig.inputs;
      ms["model"]["outputs"] = {sig.output};
      if (auto n = model->num_labels()) ms["model"]["num_labels"] = *n;
      if (auto n = model->max_tokens()) ms["model"]["max_tokens"] = *n;
      // The source's pipeline, where it names one; otherwise the task's own pipeline runs it
      // (an empty type would be no pipeline name to ModelScope's readers).
      if (!info.pipeline_type.empty()) ms["pipeline"] = {{"type", info.pipeline_type}};
    } else {
      ms["model"]["labels"] = class_names(info, *model->num_labels());
    }
    write_file_atomic(temp / "configuration.json", ms.dump(2) + "\n");
    for (const char* name : {"configuration.json", "model.pt"})
      if (std::find(files.begin(), files.end(), name) == files.end()) files.push_back(name);
    return files;
  });
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace ms::exporter
