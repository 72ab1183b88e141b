#include "onnx_graph.h"

#include <ATen/ops/cat.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "ms/core/error.h"
#include "onnx/defs/schema.h"

namespace ms::exporter {

int oldest_opset() { return 13; }

int newest_opset() {
  const auto& map = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  auto it = map.find(onnx::ONNX_DOMAIN);
  MS_ASSERT(it != map.end());
  return it->second.second;
}

onnx::AttributeProto attr_int(const std::string& name, int64_t value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(value);
  return a;
}

onnx::AttributeProto attr_ints(const std::string& name, const std::vector<int64_t>& values) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a.add_ints(v);
  return a;
}

onnx::AttributeProto attr_float(const std::string& name, float value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(value);
  return a;
}

void remove_unused_initializers(onnx::GraphProto& graph) {
  std::unordered_set<std::string> read;
  for (const onnx::NodeProto& node : graph.node())
    for (const std::string& input : node.input()) read.insert(input);
  for (const onnx::ValueInfoProto& output : graph.output()) read.insert(output.name());
  auto* initializers = graph.mutable_initializer();
  for (int i = initializers->size() - 1; i >= 0; --i) {
    if (read.count(initializers->Get(i).name()) == 0) initializers->DeleteSubrange(i, 1);
  }
}

GraphBuilder::GraphBuilder(onnx::GraphProto& graph, int opset, const tensor::TensorMap& weights,
                           bool half)
    : graph_(graph), opset_(opset), weights_(weights), half_(half) {}

std::string GraphBuilder::compute_type(const std::string& float32_value) {
  if (!half_) return float32_value;
  return node("Cast", {float32_value}, {attr_int("to", onnx::TensorProto::FLOAT16)});
}

void GraphBuilder::add_value_info(onnx::ValueInfoProto* info, const std::string& name,
                                  onnx::TensorProto_DataType type,
                                  const std::vector<std::string>& shape,
                                  std::vector<infer::ExportTensor>& record) {
  info->set_name(name);
  auto* tensor_type = info->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(type);
  auto* dims = tensor_type->mutable_shape();
  for (const std::string& d : shape) {
    auto* dim = dims->add_dim();
    const bool number = !d.empty() && std::all_of(d.begin(), d.end(), ::isdigit);
    if (number) {
      dim->set_dim_value(std::stoll(d));
    } else {
      dim->set_dim_param(d);
    }
  }
  record.push_back({name, type == onnx::TensorProto::INT64 ? "int64" : "float32", shape});
}

void GraphBuilder::input(const std::string& name, onnx::TensorProto_DataType type,
                         const std::vector<std::string>& shape) {
  add_value_info(graph_.add_input(), name, type, shape, inputs_);
}

void GraphBuilder::output(const std::string& computed, const std::string& name,
                          onnx::TensorProto_DataType type, const std::vector<std::string>& shape) {
  // A float16 graph answers in float32, as its float32 twin does (optimum's keep_io_types).
  const std::string value =
      half_ && type == onnx::TensorProto::FLOAT
          ? node("Cast", {computed}, {attr_int("to", onnx::TensorProto::FLOAT)})
          : computed;
  // Graph outputs carry the names users look up; an Identity renames the computed value.
  graph_.add_node()->CopyFrom([&] {
    onnx::NodeProto n;
    n.set_op_type("Identity");
    n.set_name(name + "_output");
    n.add_input(value);
    n.add_output(name);
    return n;
  }());
  add_value_info(graph_.add_output(), name, type, shape, outputs_);
}

const at::Tensor& GraphBuilder::tensor(const std::string& name) const {
  auto it = weights_.find(name);
  MS_CHECK(it != weights_.end(), ErrorCode::kInternal,
           "the exporter needs the weight '{}', which the model does not have", name);
  return it->second;
}

namespace {

void set_float_data(onnx::TensorProto* t, const at::Tensor& source, bool half) {
  const at::Tensor data =
      source.detach().to(at::kCPU).to(half ? at::kHalf : at::kFloat).contiguous();
  t->set_data_type(half ? onnx::TensorProto::FLOAT16 : onnx::TensorProto::FLOAT);
  for (int64_t d : data.sizes()) t->add_dims(d);
  // raw_data is little-endian, as x86-64 and aarch64 store floats (and IEEE halves).
  t->set_raw_data(std::string(static_cast<const char*>(data.data_ptr()),
                              static_cast<std::size_t>(data.numel()) * data.element_size()));
}

}  // namespace

std::string GraphBuilder::weight(const std::string& name) {
  if (std::find(added_.begin(), added_.end(), name) == added_.end()) {
    onnx::TensorProto* t = graph_.add_initializer();
    t->set_name(name);
    set_float_data(t, tensor(name), half_);
    added_.push_back(name);
  }
  return name;
}

std::string GraphBuilder::weight_transposed(const std::string& name) {
  const std::string out = name + "_transposed";
  if (std::find(added_.begin(), added_.end(), out) == added_.end()) {
    const at::Tensor& w = tensor(name);
    MS_ASSERT(w.dim() == 2);
    onnx::TensorProto* t = graph_.add_initializer();
    t->set_name(out);
    set_float_data(t, w.t(), half_);
    added_.push_back(out);
  }
  return out;
}

std::string GraphBuilder::fresh(const std::string& stem) {
  return fmt::format("{}_{}", stem, counter_++);
}

std::string GraphBuilder::constant_ints(const std::vector<int64_t>& values, bool scalar) {
  onnx::TensorProto* t = graph_.add_initializer();
  const std::string name = fresh("const_ints");
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  if (!scalar) t->add_dims(static_cast<int64_t>(values.size()));
  MS_ASSERT(!scalar || values.size() == 1);
  t->set_raw_data(
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t)));
  return name;
}

std::string GraphBuilder::constant_float(float value) {
  onnx::TensorProto* t = graph_.add_initializer();
  const std::string name = fresh("const_float");
  t->set_name(name);
  if (!half_) {
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(&value), sizeof(float)));
    return name;
  }
  constexpr float kHalfMax = 65504.0f, kHalfMinNormal = 6.103515625e-05f;
  float v = std::clamp(value, -kHalfMax, kHalfMax);
  if (v != 0.0f && std::fabs(v) < kHalfMinNormal) v = std::copysign(kHalfMinNormal, v);
  const c10::Half h(v);
  t->set_data_type(onnx::TensorProto::FLOAT16);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(&h), sizeof(h)));
  return name;
}

std::string GraphBuilder::node(const std::string& op, const std::vector<std::string>& inputs,
                               const std::vector<onnx::AttributeProto>& attributes) {
  onnx::NodeProto* n = graph_.add_node();
  const std::string out = fresh(op);
  n->set_op_type(op);
  n->set_name(out);
  for (const std::string& in : inputs) n->add_input(in);
  n->add_output(out);
  for (const auto& a : attributes) *n->add_attribute() = a;
  return out;
}

std::string GraphBuilder::linear(const std::string& x, const std::string& prefix, bool bias) {
  const std::string y = node("MatMul", {x, weight_transposed(prefix + "weight")});
  return bias ? node("Add", {y, weight(prefix + "bias")}) : y;
}

std::string GraphBuilder::layer_norm(const std::string& x, const std::string& prefix, double eps) {
  // LayerNormalization is an opset-17 op; its definition spelled out works in every opset.
  const std::string mean = reduce("ReduceMean", x, {-1}, true);
  const std::string centred = node("Sub", {x, mean});
  const std::string var = reduce("ReduceMean", node("Mul", {centred, centred}), {-1}, true);
  const std::string std_dev =
      node("Sqrt", {node("Add", {var, constant_float(static_cast<float>(eps))})});
  const std::string normed = node("Div", {centred, std_dev});
  return node("Add", {node("Mul", {normed, weight(prefix + "weight")}), weight(prefix + "bias")});
}

std::string GraphBuilder::unsqueeze(const std::string& x, const std::vector<int64_t>& axes) {
  return node("Unsqueeze", {x, constant_ints(axes)});  // axes an input since opset 13
}

std::string GraphBuilder::reduce_sum(const std::string& x, const std::vector<int64_t>& axes,
                                     bool keepdims) {
  return node("ReduceSum", {x, constant_ints(axes)}, {attr_int("keepdims", keepdims ? 1 : 0)});
}

std::string GraphBuilder::reduce(const std::string& op, const std::string& x,
                                 const std::vector<int64_t>& axes, bool keepdims) {
  // ReduceMean / ReduceMax / ReduceL2 take axes as an attribute up to opset 17 (the newest that
  // ONNX 1.12 defines; newest_opset() keeps requests within it).
  return node(op, {x}, {attr_ints("axes", axes), attr_int("keepdims", keepdims ? 1 : 0)});
}

std::string GraphBuilder::activation(const std::string& name, const std::string& x) {
  if (name == "gelu") {
    // 0.5 x (1 + erf(x / sqrt 2)), as at::gelu computes it.
    const std::string e = node("Erf", {node("Div", {x, constant_float(std::sqrt(2.0f))})});
    return node("Mul",
                {node("Mul", {x, constant_float(0.5f)}), node("Add", {e, constant_float(1.0f)})});
  }
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") {
    // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    const std::string cube = node("Mul", {node("Mul", {x, x}), x});
    const std::string inner = node("Add", {x, node("Mul", {cube, constant_float(0.044715f)})});
    const std::string t = node(
        "Tanh", {node("Mul", {inner, constant_float(static_cast<float>(std::sqrt(2.0 / M_PI)))})});
    return node("Mul",
                {node("Mul", {x, constant_float(0.5f)}), node("Add", {t, constant_float(1.0f)})});
  }
  if (name == "relu") return node("Relu", {x});
  if (name == "tanh") return node("Tanh", {x});
  if (name == "sigmoid") return node("Sigmoid", {x});
  if (name == "identity") return x;
  fail(ErrorCode::kInternal, "no ONNX form for the activation '{}'", name);
}

}  // namespace ms::exporter
