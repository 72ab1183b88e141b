// `ms export`: write a model folder (an `ms train` output/ too) in a format a deployment stack
// runs: ONNX with ModelScope's input and output names, dynamic batch and sequence axes.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "ms/core/error.h"
#include "ms/core/text.h"
#include "ms/infer/export.h"

namespace ms::cli {
namespace {

struct ExportOptions {
  infer::ExportRequest request;
  std::string output;
  std::optional<std::string> static_shape;
  bool dynamic_axes = false;
  bool json = false;
};

// "1,128" -> {1, 128}.
std::vector<int64_t> parse_static(const std::string& text) {
  std::vector<int64_t> sizes;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string part = text.substr(start, comma - start);
    std::size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    MS_CHECK(!part.empty() && used == part.size() && value > 0, ErrorCode::kUsage,
             "--static takes positive sizes separated by commas (BATCH,SEQUENCE for text, "
             "BATCH[,HEIGHT,WIDTH] for images), got '{}'",
             text);
    sizes.push_back(value);
    start = comma + 1;
  }
  return sizes;
}

Json tensors_json(const std::vector<infer::ExportTensor>& tensors) {
  Json out = Json::array();
  for (const auto& t : tensors) {
    Json shape = Json::array();
    for (const std::string& d : t.shape) {
      const bool number = !d.empty() && d.find_first_not_of("0123456789") == std::string::npos;
      shape.push_back(number ? Json(std::stoll(d)) : Json(d));
    }
    out.push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", shape}});
  }
  return out;
}

std::string tensors_line(const std::vector<infer::ExportTensor>& tensors) {
  std::vector<std::string> items;
  for (const auto& t : tensors) items.push_back(t.name + " [" + join(t.shape, ", ") + "]");
  return join(items, ", ");
}

void run_export(ExportOptions& o) {
  if (o.json) report_errors_as_json(true, /*one_line=*/true);
  infer::ExportRequest& r = o.request;
  MS_CHECK(!(o.dynamic_axes && o.static_shape), ErrorCode::kUsage,
           "--dynamic-axes and --static exclude each other");
  r.output = o.output;
  if (o.static_shape) r.static_shape = parse_static(*o.static_shape);
  const infer::ExportSummary s = infer::run_export(r);
  if (o.json) {
    Json out = Json::object();
    out["output_dir"] = s.output_dir.string();
    out["format"] = s.format;
    out["family"] = s.family;
    out["head"] = s.head;
    out["opset"] = s.opset;
    out["inputs"] = tensors_json(s.inputs);
    out["outputs"] = tensors_json(s.outputs);
    out["files"] = s.files;
    out["checked"] = s.checked;
    out["seconds"] = s.seconds;
    std::cout << json_text(out) << std::endl;
    return;
  }
  if (s.format != "onnx") {
    std::fprintf(stderr, "ms export: %s (%s, %s) -> %s in %.1f s: %s\n", r.model.c_str(),
                 s.family.c_str(), s.head.c_str(), s.output_dir.c_str(), s.seconds,
                 join(s.files, ", ").c_str());
    return;
  }
  const bool external =
      std::find(s.files.begin(), s.files.end(), "model.onnx_data") != s.files.end();
  std::fprintf(stderr, "ms export: %s (%s, %s) -> %s in %.1f s (opset %d%s%s)\n", r.model.c_str(),
               s.family.c_str(), s.head.c_str(), (s.output_dir / "model.onnx").c_str(), s.seconds,
               s.opset, s.checked ? ", shapes checked" : "",
               external ? ", weights in model.onnx_data" : "");
  std::fprintf(stderr, "  inputs:  %s\n  outputs: %s\n", tensors_line(s.inputs).c_str(),
               tensors_line(s.outputs).c_str());
}

}  // namespace

void add_export_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto opts = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Write a model in a format a deployment stack runs: ONNX (checked by ONNX's checker), "
      "TorchScript, or a safetensors repository transformers loads");
  cmd->footer(
      "Examples:\n"
      "  ms export -m runs/spam/output --format onnx -o spam-onnx\n"
      "  ms export -m sentence-transformers/all-MiniLM-L6-v2 -o minilm-onnx --opset 17 --check\n"
      "  ms export -m resnet-folder -o resnet-onnx --static 1,224,224\n"
      "  ms export -m runs/spam/output --format safetensors -o spam-repo && \\\n"
      "    ms upload me/spam spam-repo --create --tag v1\n"
      "Writes OUTPUT/model.onnx (weights inside; in OUTPUT/model.onnx_data with\n"
      "--external-data or over 2 GiB) beside the model's configuration.json,\n"
      "config.json and tokenizer / preprocessor files. Text models take input_ids,\n"
      "attention_mask and token_type_ids (int64 [batch, sequence]) and give logits\n"
      "(classifiers, fill-mask) or last_hidden_state and sentence_embedding (sentence-embedding);\n"
      "image classifiers take pixel_values (float32 [batch, 3, height, width], preprocessed) and\n"
      "give logits. Load it with onnxruntime.InferenceSession('OUTPUT/model.onnx').\n"
      "Supported: the BERT family (bert, structbert, roberta, xlm-roberta, camembert, minilm)\n"
      "for text-classification, sentence-similarity, token-classification,\n"
      "named-entity-recognition, word-segmentation, fill-mask and sentence-embedding; resnet*\n"
      "and small-cnn for image-classification; GPT-2 for text-generation (input_ids and\n"
      "attention_mask -> logits at every position, no key/value cache). OUTPUT must not exist\n"
      "or be empty; it appears whole or not at all.\n"
      "--format torchscript writes OUTPUT/model.pt (LibTorch's tracer) for image classifiers\n"
      "(pixel_values -> logits), the BERT-family heads above (input_ids, attention_mask,\n"
      "token_type_ids -> logits or sentence_embedding) and GPT-2 (input_ids, attention_mask ->\n"
      "logits, no cache); Python's torch.jit.load and `ms infer` run it. With --dtype fp16 its\n"
      "weights and arithmetic are float16 (for CUDA; outputs stay float32, and `ms infer` runs it\n"
      "in float32 on the CPU). A TorchScript folder passes through as it is.\n"
      "--format safetensors writes OUTPUT/model.safetensors (the weights under their Hugging\n"
      "Face names; --dtype fp16 halves them), config.json (with architectures and dtype),\n"
      "configuration.json, the tokenizer files and a README.md model card: a repository\n"
      "transformers' from_pretrained and `ms infer` load, ready for `ms upload`.\n" +
      std::string(kExitCodesHelp));
  cmd->add_option("--model,-m", opts->request.model,
                  "Model folder (an `ms train` output/ too) or a hub id OWNER/NAME")
      ->required();
  cmd->add_option("--format,-f", opts->request.format, "onnx, safetensors, or torchscript")
      ->default_str("onnx");
  cmd->add_option("--output,-o", opts->output, "Folder to write (must not exist, or be empty)")
      ->required();
  cmd->add_option("--task,-t", opts->request.task, "Task (default: the model's configuration)");
  cmd->add_option("--opset", opts->request.opset,
                  "ONNX opset (default 14; this build writes 13 to the newest its ONNX library "
                  "defines)")
      ->check(non_empty("an opset number, or leave out --opset for the default"));
  cmd->add_flag("--dynamic-axes", opts->dynamic_axes,
                "Dynamic batch and sequence (images: height, width) axes (the default)");
  cmd->add_option("--static", opts->static_shape,
                  "Fixed input sizes instead: BATCH,SEQUENCE for text (e.g. 1,128), BATCH or "
                  "BATCH,HEIGHT,WIDTH for images");
  cmd->add_option("--dtype", opts->request.dtype,
                  "fp32, or fp16: half-precision safetensors weights, or an ONNX graph or "
                  "TorchScript archive computing in float16 (inputs and outputs stay "
                  "int64/float32)")
      ->default_str("fp32");
  cmd->add_flag("--external-data", opts->request.external_data,
                "ONNX: write the weights to model.onnx_data beside model.onnx (ONNX's external "
                "data; automatic for models over 2 GiB, which one ONNX file cannot hold)");
  cmd->add_flag("--check", opts->request.check,
                "Also run ONNX's strict shape inference over the whole graph (onnx::checker "
                "always runs)");
  cmd->add_option("--set,--cfg-options", opts->request.overrides,
                  "Override a configuration key: KEY=VALUE");
  add_hub_options(*cmd, opts->request.hub);
  cmd->add_flag("--json", opts->json, "Print a JSON summary on stdout");
  cmd->callback([opts] { run_export(*opts); });
}

}  // namespace ms::cli
