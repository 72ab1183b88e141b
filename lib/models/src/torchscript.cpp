#include "ms/models/torchscript.h"

#include <torch/csrc/jit/passes/shape_analysis.h>
#include <torch/nn/module.h>
#include <torch/script.h>
#include <torch/version.h>

#include "ms/core/error.h"
#include "ms/core/text.h"
#include "ms/models/model.h"

namespace ms::models {

namespace {

// Returns how many constants it cast.
int cast_constants_in(torch::jit::Block& block, at::ScalarType from, at::ScalarType to) {
  int cast = 0;
  for (torch::jit::Node* node : block.nodes()) {
    for (torch::jit::Block* inner : node->blocks()) cast += cast_constants_in(*inner, from, to);
    if (node->kind() != c10::prim::Constant || !node->hasAttribute(c10::attr::value) ||
        node->kindOf(c10::attr::value) != torch::jit::AttributeKind::t) {
      continue;
    }
    const at::Tensor value = node->t(c10::attr::value);
    if (value.scalar_type() != from) continue;
    const at::Tensor converted = value.to(to);
    node->t_(c10::attr::value, converted);
    node->output()->inferTypeFrom(converted);
    ++cast;
  }
  return cast;
}

torch::jit::Module load_archive(const std::filesystem::path& path, const std::string& device) {
  std::error_code ec;
  MS_CHECK(std::filesystem::is_regular_file(path, ec), ErrorCode::kNotFound,
           "TorchScript model {} does not exist", path.string());
  try {
    torch::jit::Module module = torch::jit::load(path.string(), c10::Device(device));
    module.eval();
    // LibTorch has no half-precision matrix products on the CPU (1.13): an archive whose weights
    // are float16 constants (`ms export --dtype fp16`) runs in float32 there, from those weights.
    if (c10::Device(device).is_cpu() && module.find_method("forward"))
      cast_floating_constants(module, at::kHalf, at::kFloat);
    return module;
  } catch (const c10::Error& e) {
    throw Error(
        ErrorCode::kIntegrity,
        fmt::format("{} is not a TorchScript archive: {}", path.string(),
                    first_line(e.what_without_backtrace())),
        "save it with torch.jit.script(model).save(path) or torch.jit.trace(...).save(path)");
  } catch (const std::exception& e) {
    // The archive's code does not compile here: most often an operation that the PyTorch which
    // saved it has and this LibTorch lacks.
    throw Error(ErrorCode::kIntegrity,
                fmt::format("{} cannot be loaded: {}", path.string(), first_line(e.what())),
                fmt::format("save it with a PyTorch no newer than this LibTorch ({}), or export "
                            "it with ms export",
                            TORCH_VERSION));
  }
}

}  // namespace

std::string script_failure(const std::runtime_error& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e))
    return c10_error->what_without_backtrace();
  std::string text = e.what();
  if (text.find("TorchScript interpreter") == std::string::npos) return text;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const std::size_t line = text.rfind('\n');
  return line == std::string::npos ? text : text.substr(line + 1);
}

int cast_floating_constants(torch::jit::Module& module, at::ScalarType from, at::ScalarType to) {
  const std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph();
  const int cast = cast_constants_in(*graph->block(), from, to);
  // The graph's recorded tensor types no longer hold; the executor infers them afresh.
  if (cast > 0) torch::jit::EraseShapeInformation(graph);
  return cast;
}

namespace {

// See load_script_text_model.
class ScriptTextModel final : public Model {
 public:
  ScriptTextModel(const ScriptTextSpec& spec, const std::string& device)
      : spec_(spec), script_(load_archive(spec.file, device)) {
    MS_CHECK(!spec_.inputs.empty() && !spec_.outputs.empty(), ErrorCode::kConfig,
             "{}: a TorchScript text model needs model.inputs and model.outputs",
             spec_.file.string());
  }

  const std::string& task() const override { return spec_.task; }
  std::optional<int64_t> num_labels() const override { return spec_.num_labels; }
  std::optional<int64_t> max_tokens() const override { return spec_.max_tokens; }
  torch::nn::Module& module() override { return no_parameters_; }

  TensorMap forward(const TensorMap& inputs) override {
    std::vector<c10::IValue> args;
    for (const std::string& name : spec_.inputs) {
      const at::Tensor* given = optional_input(inputs, name.c_str());
      // The pipelines always give the ids and the mask; a model without segments gets zeros.
      args.emplace_back(given ? *given : at::zeros_like(required_input(inputs, "input_ids")));
    }
    c10::IValue out;
    try {
      out = script_.forward(args);
    } catch (const std::runtime_error& e) {  // c10::Error, and the interpreter's errors
      throw Error(ErrorCode::kUsage,
                  fmt::format("running {} failed: {}", spec_.file.string(), script_failure(e)));
    }
    std::vector<c10::IValue> values;
    if (out.isTuple()) {
      values = out.toTupleRef().elements().vec();
    } else {
      values.push_back(out);
    }
    MS_CHECK(values.size() == spec_.outputs.size(), ErrorCode::kConfig,
             "{} returned {} outputs; its configuration.json names {}", spec_.file.string(),
             values.size(), spec_.outputs.size());
    TensorMap result;
    for (std::size_t i = 0; i < values.size(); ++i) {
      MS_CHECK(values[i].isTensor(), ErrorCode::kConfig, "{} output {} is a {}, not a tensor",
               spec_.file.string(), spec_.outputs[i], values[i].tagKind());
      result[spec_.outputs[i]] = values[i].toTensor();
    }
    // Fill-mask asks the C++ head for the rows of its masks only (logits_positions, flat indices
    // into batch x tokens); the archive scores every token, so the rows are picked here.
    auto logits = result.find("logits");
    if (const at::Tensor* positions = optional_input(inputs, "logits_positions");
        positions && logits != result.end() && logits->second.dim() == 3) {
      const at::Tensor& all = logits->second;
      logits->second = all.reshape({-1, all.size(-1)}).index_select(0, positions->to(all.device()));
    }
    return result;
  }

 private:
  ScriptTextSpec spec_;
  torch::jit::Module script_;
  torch::nn::Module no_parameters_;
};

}  // namespace

std::shared_ptr<Model> load_script_text_model(const ScriptTextSpec& spec,
                                              const std::string& device) {
  return std::make_shared<ScriptTextModel>(spec, device);
}

struct ScriptModule::Impl {
  torch::jit::Module module;
  std::filesystem::path path;
};

ScriptModule::ScriptModule(const std::filesystem::path& path, const std::string& device)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->module = load_archive(path, device);
}

ScriptModule::~ScriptModule() = default;

at::Tensor ScriptModule::forward(const at::Tensor& input) {
  try {
    c10::IValue out = impl_->module.forward({input});
    if (out.isTuple()) out = out.toTupleRef().elements().at(0);
    if (out.isList()) out = out.toListRef().at(0);
    MS_CHECK(out.isTensor(), ErrorCode::kUsage, "{} returned a {}, not a tensor",
             impl_->path.string(), out.tagKind());
    return out.toTensor();
  } catch (const Error&) {
    throw;
  } catch (const std::runtime_error& e) {  // c10::Error, and the interpreter's errors
    throw Error(ErrorCode::kUsage,
                fmt::format("running {} failed: {}", impl_->path.string(), script_failure(e)));
  }
}

}  // namespace ms::models
