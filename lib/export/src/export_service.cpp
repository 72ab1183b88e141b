// ExporterService: loads the model as `ms infer` does (models::load_pretrained), rebuilds its
// forward pass as an ONNX graph from Model::structure() and state_dict(), runs onnx::checker, and
// writes model.onnx with the model folder's configuration and tokenizer files into a temp folder
// that is renamed to --output at the end (an error leaves nothing behind).
#include "ms/export/export_service.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <set>
#include <system_error>

#include "ms/config/json_file.h"
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
};

std::string supported_list() {
  std::vector<std::string> items;
  for (const auto& e : kExportable) items.push_back(fmt::format("{}: {}", e.task, e.families));
  return "ms export --format onnx supports " + join(items, "; ") +
         fmt::format(" (BERT family: {})", join(models::bert_family_types(), ", "));
}

// configuration.json's model.type, else config.json's model_type, else BERT: the choice the
// pipelines make (text_pipelines.cpp, image_pipelines.cpp).
std::string model_type_of(const infer::ModelInfo& info) {
  if (!info.model_type.empty()) return info.model_type;
  if (const auto hf = read_json_file(info.dir / "config.json")) {
    if (hf->contains("model_type") && (*hf)["model_type"].is_string())
      return (*hf)["model_type"].get<std::string>();
  }
  return "bert";
}

// Weight files stay behind: the weights are in model.onnx.
bool weight_file(const std::string& name) {
  static const char* const kSuffixes[] = {
      ".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".h5", ".onnx", ".msgpack", ".index.json"};
  for (const char* suffix : kSuffixes) {
    const std::size_t n = std::strlen(suffix);
    if (name.size() >= n && name.compare(name.size() - n, n, suffix) == 0) return true;
  }
  return false;
}

void copy_into(const fs::path& from, const fs::path& to) { write_file_atomic(to, read_file(from)); }

// The files that make the exported folder self-describing: configuration.json, config.json,
// tokenizer and preprocessor files at the top of the model folder, and the config.json of each
// sentence-transformers module folder that modules.json names.
std::vector<std::string> copy_side_files(const fs::path& model_dir, const fs::path& out) {
  std::vector<std::string> copied;
  for (const auto& entry : fs::directory_iterator(model_dir)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.empty() || name[0] == '.' || weight_file(name)) continue;
    copy_into(entry.path(), out / name);
    copied.push_back(name);
  }
  if (const auto modules = read_json_file(model_dir / "modules.json");
      modules && modules->is_array()) {
    for (const Json& m : *modules) {
      const std::string rel = m.is_object() ? m.value("path", "") : "";
      // The model built from modules.json has already refused paths outside the folder.
      if (rel.empty() || rel == ".") continue;
      const fs::path config = model_dir / rel / "config.json";
      std::error_code ec;
      if (!fs::is_regular_file(config, ec)) continue;
      copy_into(config, out / rel / "config.json");
      copied.push_back((fs::path(rel) / "config.json").string());
    }
  }
  return copied;
}

// A new folder next to `output`, so that the final rename stays within one file system.
fs::path make_temp_folder(const fs::path& output) {
  fs::path parent = output.parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    throw Error(
        ErrorCode::kIo,
        fmt::format("cannot create the folder {} for --output: {}", parent.string(), ec.message()),
        "choose an --output in a folder you can write");
  }
  std::string pattern =
      (parent / ("." + output.filename().string() + ".ms-export-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw Error(ErrorCode::kIo,
                fmt::format("cannot write in {} (for --output {}): {}", parent.string(),
                            output.string(), std::strerror(errno)),
                "choose an --output in a folder you can write");
  }
  return pattern;
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

    models::ModelSpec spec;
    spec.task = info.task;
    spec.type = type;
    spec.dir = info.dir;
    spec.config = info.config;
    const std::shared_ptr<models::Model> model = models::load_pretrained(spec, "cpu");
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
    graph.set_doc_string(fmt::format("{} ({}, {}) exported by ms {}", info.dir.filename().string(),
                                     info.task, type, MS_VERSION_STRING));
    GraphBuilder builder(graph, opset, weights);
    if (family == "bert") {
      build_bert_graph(builder, structure, request.static_shape);
    } else {
      build_vision_graph(builder, structure, request.static_shape);
    }
    check(proto, request.check);

    MS_CHECK(proto.ByteSizeLong() <= static_cast<std::size_t>(INT_MAX), ErrorCode::kUsage,
             "the model is {:.1f} GiB, more than the 2 GiB one ONNX protobuf file holds",
             static_cast<double>(proto.ByteSizeLong()) / (1u << 30));
    std::string bytes;
    MS_CHECK(proto.SerializeToString(&bytes), ErrorCode::kInternal,
             "protobuf could not serialise the ONNX model");

    infer::ExportSummary summary;
    summary.output_dir = request.output;
    summary.format = "onnx";
    summary.family = family;
    summary.head = head;
    summary.opset = opset;
    summary.inputs = builder.inputs();
    summary.outputs = builder.outputs();
    summary.checked = request.check;

    const fs::path temp = make_temp_folder(request.output);
    try {
      write_file_atomic(temp / "model.onnx", bytes);
      summary.files = copy_side_files(info.dir, temp);
      summary.files.push_back("model.onnx");
      std::sort(summary.files.begin(), summary.files.end());
      // rename(2) replaces an empty folder (run_export refused a non-empty one).
      std::error_code ec;
      fs::rename(temp, request.output, ec);
      if (ec) {
        throw Error(ErrorCode::kIo,
                    fmt::format("cannot move the export into {}: {}", request.output.string(),
                                ec.message()),
                    "choose an --output that does not exist or is an empty folder");
      }
    } catch (...) {
      std::error_code ignored;
      fs::remove_all(temp, ignored);
      throw;
    }
    summary.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary;
  }

 private:
  static std::string onnx_library_version() { return "ONNX " MS_ONNX_VERSION; }

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

infer::ExporterService& export_service() {
  static OnnxExporter service;
  return service;
}

}  // namespace ms::exporter
