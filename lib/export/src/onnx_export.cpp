// `ms export --format onnx`: loads the model as `ms infer` does (models::load_pretrained),
// rebuilds its forward pass as an ONNX graph from Model::structure() and state_dict(), runs
// onnx::checker, and writes model.onnx with the model folder's configuration and tokenizer files
// (write_export_folder: a temp folder renamed to --output at the end). Built with MS_WITH_ONNX.
#include "onnx_export.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <string>
#include <vector>

#include "export_files.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/core/version.h"
#include "ms/models/bert.h"
#include "ms/models/model.h"
#include "onnx/checker.h"
#include "onnx/defs/schema.h"
#include "onnx/shape_inference/implementation.h"
#include "onnx_graph.h"

namespace ms::exporter {
namespace {

namespace fs = std::filesystem;

// Where the weights go with --external-data (the name optimum and transformers.js use).
constexpr const char* kExternalDataFile = "model.onnx_data";

// The tasks whose model families describe their structure, and the families each takes.
struct Exportable {
  const char* task;
  const char* families;
};
const Exportable kExportable[] = {
    {"text-classification", "BERT family (sequence classifier: BERT pooler or RoBERTa head)"},
    {"sentence-similarity", "BERT family (sequence classifier)"},
    {"token-classification", "BERT family (token classifier)"},
    {"named-entity-recognition", "BERT family (token classifier)"},
    {"word-segmentation", "BERT family (token classifier)"},
    {"fill-mask", "BERT family (masked-LM head)"},
    {"sentence-embedding", "BERT family (sentence-transformers Pooling, Dense, Normalize)"},
    {"image-classification", "resnet, resnet18/34/50/101/152, small-cnn"},
    {"text-generation", "GPT-2 (logits at every position, without a key/value cache)"},
};

std::string supported_list() {
  std::vector<std::string> items;
  for (const auto& e : kExportable) items.push_back(fmt::format("{}: {}", e.task, e.families));
  return "ms export --format onnx supports " + join(items, "; ") +
         fmt::format(" (BERT family: {})", join(models::bert_family_types(), ", "));
}

class OnnxExporter final : public infer::ExporterService {
 public:
  infer::ExportSummary export_model(const infer::ExportRequest& request,
                                    const infer::ModelInfo& info) override {
    const auto start = std::chrono::steady_clock::now();
    const int opset = request.opset.value_or(infer::kDefaultOnnxOpset);
    if (opset < oldest_opset() || opset > newest_opset()) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("ONNX opset {} cannot be written: ms writes opsets {} to {} (the "
                              "newest this build's ONNX library, {}, defines)",
                              opset, oldest_opset(), newest_opset(), onnx_library_version()),
                  fmt::format("use --opset {} .. {}; the default is {}", oldest_opset(),
                              newest_opset(), infer::kDefaultOnnxOpset));
    }
    const bool exportable = std::any_of(std::begin(kExportable), std::end(kExportable),
                                        [&](const Exportable& e) { return info.task == e.task; });
    const std::string type = models::normalize_model_type(model_type_of(info));
    if (!exportable || type == "torchscript") {
      throw Error(ErrorCode::kUsage,
                  fmt::format("{}: no ONNX exporter for task '{}' with model type '{}'",
                              info.dir.string(), info.task, type),
                  supported_list());
    }

    const std::shared_ptr<models::Model> model = load_for_export(info, type);
    const Json structure = model->structure();
    if (!structure.is_object()) {
      throw Error(ErrorCode::kUsage,
                  fmt::format("{}: the {} model of type '{}' has no ONNX exporter",
                              info.dir.string(), info.task, type),
                  supported_list());
    }
    const tensor::TensorMap weights = model->state_dict();

    onnx::ModelProto proto;
    proto.set_ir_version(onnx::IR_VERSION);
    proto.set_producer_name("ms");
    proto.set_producer_version(MS_VERSION_STRING);
    proto.set_model_version(1);
    auto* op = proto.add_opset_import();
    op->set_domain(onnx::ONNX_DOMAIN);
    op->set_version(opset);
    onnx::GraphProto& graph = *proto.mutable_graph();
    const std::string family = structure.at("family").get<std::string>();
    const std::string head = structure.at("head").get<std::string>();
    graph.set_name(fmt::format("{}_{}", family, head));
    // "model/" has no last component: its folder's name is the parent's of the empty one.
    const std::filesystem::path dir = info.dir.lexically_normal();
    const std::string name = (dir.has_filename() ? dir : dir.parent_path()).filename().string();
    graph.set_doc_string(
        fmt::format("{} ({}, {}) exported by ms {}", name, info.task, type, MS_VERSION_STRING));
    GraphBuilder builder(graph, opset, weights, request.dtype == "fp16");
    if (family == "bert") {
      build_bert_graph(builder, structure, request.static_shape);
    } else if (family == "gpt2") {
      build_gpt2_graph(builder, structure, request.static_shape);
    } else {
      build_vision_graph(builder, structure, request.static_shape);
    }
    remove_unused_initializers(graph);
    check(proto, request.check);
    // Protobuf cannot write a message of 2 GiB or more: such a model keeps its weights outside.
    const bool external =
        request.external_data || proto.ByteSizeLong() > static_cast<std::size_t>(INT_MAX);

    infer::ExportSummary summary;
    summary.output_dir = request.output;
    summary.format = "onnx";
    summary.family = family;
    summary.head = head;
    summary.opset = opset;
    summary.inputs = builder.inputs();
    summary.outputs = builder.outputs();
    summary.checked = request.check;

    summary.files = write_export_folder(request.output, [&](const fs::path& temp) {
      std::vector<std::string> files = copy_side_files(info, temp);
      if (external) {
        move_weights_out(graph, temp / kExternalDataFile);
        files.push_back(kExternalDataFile);
      }
      std::string bytes;
      MS_CHECK(proto.ByteSizeLong() <= static_cast<std::size_t>(INT_MAX) &&
                   proto.SerializeToString(&bytes),
               ErrorCode::kInternal, "protobuf could not serialise the ONNX model ({} bytes)",
               proto.ByteSizeLong());
      write_file_atomic(temp / "model.onnx", bytes);
      files.push_back("model.onnx");
      // The checker again, from the files: every external reference must resolve beside it.
      if (external) check_file(temp / "model.onnx");
      return files;
    });
    summary.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary;
  }

 private:
  static std::string onnx_library_version() { return "ONNX " MS_ONNX_VERSION; }

  // Moves every initializer of 1 KiB or more (onnx.save_model's default threshold) into `path`,
  // leaving ONNX's external-data reference in its place: the file name relative to model.onnx,
  // the offset and the length. Offsets are page-aligned, so that a runtime may map each tensor
  // straight from the file.
  static void move_weights_out(onnx::GraphProto& graph, const fs::path& path) {
    constexpr std::size_t kThreshold = 1024, kAlignment = 4096;
    write_file_atomic(path, [&](const FileSink& sink) {
      std::size_t offset = 0;
      const std::string padding(kAlignment, '\0');
      for (onnx::TensorProto& tensor : *graph.mutable_initializer()) {
        const std::size_t size = tensor.raw_data().size();
        if (size < kThreshold) continue;
        const std::size_t start = (offset + kAlignment - 1) / kAlignment * kAlignment;
        sink(padding.data(), start - offset);
        sink(tensor.raw_data().data(), size);
        offset = start + size;
        tensor.clear_raw_data();
        tensor.set_data_location(onnx::TensorProto::EXTERNAL);
        for (const auto& [key, value] :
             {std::pair<std::string, std::string>{"location", path.filename().string()},
              {"offset", std::to_string(start)},
              {"length", std::to_string(size)}}) {
          onnx::StringStringEntryProto* entry = tensor.add_external_data();
          entry->set_key(key);
          entry->set_value(value);
        }
      }
    });
  }

  static void check_file(const fs::path& model) {
    try {
      onnx::checker::check_model(model.string());
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kInternal,
                  fmt::format("the exported ONNX model with external data fails onnx::checker: {}",
                              e.what()),
                  "please report it with the model's config.json");
    }
  }

  // onnx::checker on every export; with --check also strict shape inference, which must agree
  // with every declared input and output shape.
  static void check(const onnx::ModelProto& proto, bool strict_shapes) {
    try {
      onnx::checker::check_model(proto);
      if (strict_shapes) {
        onnx::ModelProto copy = proto;
        onnx::shape_inference::InferShapes(
            copy, onnx::OpSchemaRegistry::Instance(),
            onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict_mode=*/1,
                                        /*data_prop=*/true));
      }
    } catch (const std::exception& e) {
      // ms built the graph; a graph the checker refuses is ms's bug.
      throw Error(ErrorCode::kInternal,
                  fmt::format("the exported ONNX graph fails {}: {}",
                              strict_shapes ? "onnx::checker / shape inference" : "onnx::checker",
                              e.what()),
                  "please report it with the model's config.json");
    }
  }
};

}  // namespace

infer::ExportSummary export_onnx(const infer::ExportRequest& request,
                                 const infer::ModelInfo& info) {
  static OnnxExporter exporter;
  return exporter.export_model(request, info);
}

}  // namespace ms::exporter
