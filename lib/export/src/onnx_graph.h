// A thin layer over ONNX's GraphProto for the exporters: nodes with generated output names,
// initializers from LibTorch tensors, and the few ops whose form changes with the opset.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ms/config/config.h"
#include "ms/infer/export.h"
#include "ms/tensor/weights.h"
#include "onnx/onnx_pb.h"

namespace ms::exporter {

/// The opsets this build writes: from the oldest whose Unsqueeze / ReduceSum / Softmax forms the
/// exporters use (13) to the newest this ONNX library defines.
int oldest_opset();
int newest_opset();

/// What one family's exporter needs: the graph to fill, the model's weights and structure, the
/// requested input sizes, and the inputs/outputs it declares (for the summary).
class GraphBuilder {
 public:
  /// `half`: weights, constants and every floating-point computation in float16 (--dtype fp16);
  /// graph inputs and outputs keep their float32 / int64 types, with casts at the edges.
  GraphBuilder(onnx::GraphProto& graph, int opset, const tensor::TensorMap& weights,
               bool half = false);

  int opset() const { return opset_; }
  /// The element type of the graph's floating-point computation: FLOAT, or FLOAT16.
  onnx::TensorProto_DataType float_type() const {
    return half_ ? onnx::TensorProto::FLOAT16 : onnx::TensorProto::FLOAT;
  }
  /// A float32 graph input in the computation's type (a Cast in a float16 graph).
  std::string compute_type(const std::string& float32_value);

  /// Declares a graph input or output. `shape` holds a dim_param name or a number per axis.
  void input(const std::string& name, onnx::TensorProto_DataType type,
             const std::vector<std::string>& shape);
  void output(const std::string& value, const std::string& name, onnx::TensorProto_DataType type,
              const std::vector<std::string>& shape);

  /// The state_dict() tensor `name` as an initializer of the same name (once), in float_type().
  std::string weight(const std::string& name);
  /// A 2-D weight transposed ([out, in] -> [in, out], for MatMul), named `name` + "_transposed".
  std::string weight_transposed(const std::string& name);
  bool has_weight(const std::string& name) const { return weights_.count(name) != 0; }
  const at::Tensor& tensor(const std::string& name) const;

  std::string constant_ints(const std::vector<int64_t>& values, bool scalar = false);
  /// A scalar in float_type(). In float16, magnitudes beyond its range saturate to +-65504 and
  /// nonzero ones below its smallest normal (6.1e-5, e.g. an epsilon) become that normal, so that
  /// a guard against division by zero stays one.
  std::string constant_float(float value);

  /// A node of `op` with one output (named after the op); returns the output's name.
  std::string node(const std::string& op, const std::vector<std::string>& inputs,
                   const std::vector<onnx::AttributeProto>& attributes = {});

  // Common pieces.
  std::string linear(const std::string& x, const std::string& prefix, bool bias = true);
  std::string layer_norm(const std::string& x, const std::string& prefix, double eps);
  std::string unsqueeze(const std::string& x, const std::vector<int64_t>& axes);
  std::string reduce_sum(const std::string& x, const std::vector<int64_t>& axes, bool keepdims);
  std::string reduce(const std::string& op, const std::string& x, const std::vector<int64_t>& axes,
                     bool keepdims);
  /// gelu (erf), gelu_new / gelu_pytorch_tanh, relu, tanh, sigmoid, identity.
  std::string activation(const std::string& name, const std::string& x);

  const std::vector<infer::ExportTensor>& inputs() const { return inputs_; }
  const std::vector<infer::ExportTensor>& outputs() const { return outputs_; }

 private:
  void add_value_info(onnx::ValueInfoProto* info, const std::string& name,
                      onnx::TensorProto_DataType type, const std::vector<std::string>& shape,
                      std::vector<infer::ExportTensor>& record);
  std::string fresh(const std::string& stem);

  onnx::GraphProto& graph_;
  int opset_;
  const tensor::TensorMap& weights_;
  bool half_;
  std::vector<std::string> added_;
  int counter_ = 0;
  std::vector<infer::ExportTensor> inputs_, outputs_;
};

onnx::AttributeProto attr_int(const std::string& name, int64_t value);
onnx::AttributeProto attr_ints(const std::string& name, const std::vector<int64_t>& values);
onnx::AttributeProto attr_float(const std::string& name, float value);

/// Removes the initializers no node reads (a constant made for a branch the model's options
/// left out): onnxruntime warns of each one at every session start.
void remove_unused_initializers(onnx::GraphProto& graph);

/// Fills `graph` for a BERT-family model (Model::structure() family "bert"). `static_shape`:
/// {batch, sequence} or empty for dynamic axes.
void build_bert_graph(GraphBuilder& g, const Json& structure,
                      const std::vector<int64_t>& static_shape);
/// Fills `graph` for a GPT-2 decoder (family "gpt2"): input_ids and attention_mask -> logits at
/// every position, without a key/value cache. `static_shape`: {batch, sequence} or empty.
void build_gpt2_graph(GraphBuilder& g, const Json& structure,
                      const std::vector<int64_t>& static_shape);
/// Fills `graph` for an image classifier (family "resnet" or "small-cnn"). `static_shape`:
/// {batch}, {batch, height, width} or empty.
void build_vision_graph(GraphBuilder& g, const Json& structure,
                        const std::vector<int64_t>& static_shape);

}  // namespace ms::exporter
