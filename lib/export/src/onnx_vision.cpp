// Image classifiers as ONNX graphs, op for op what vision.cpp's torchvision-named ResNet and
// small CNN compute in eval mode (BatchNorm with its running statistics).
#include "ms/core/error.h"
#include "onnx_graph.h"

namespace ms::exporter {
namespace {

using onnx::TensorProto;

// torch::nn::BatchNorm2d's default epsilon (vision.cpp keeps it).
constexpr float kBatchNormEps = 1e-5f;

std::string conv(GraphBuilder& g, const std::string& x, const std::string& prefix, int64_t stride,
                 int64_t pad) {
  const at::Tensor& w = g.tensor(prefix + "weight");
  std::vector<std::string> inputs = {x, g.weight(prefix + "weight")};
  if (g.has_weight(prefix + "bias")) inputs.push_back(g.weight(prefix + "bias"));
  return g.node("Conv", inputs,
                {attr_ints("kernel_shape", {w.size(2), w.size(3)}),
                 attr_ints("strides", {stride, stride}), attr_ints("pads", {pad, pad, pad, pad})});
}

std::string batch_norm(GraphBuilder& g, const std::string& x, const std::string& prefix) {
  return g.node("BatchNormalization",
                {x, g.weight(prefix + "weight"), g.weight(prefix + "bias"),
                 g.weight(prefix + "running_mean"), g.weight(prefix + "running_var")},
                {attr_float("epsilon", kBatchNormEps)});
}

std::string max_pool(GraphBuilder& g, const std::string& x, int64_t kernel, int64_t stride,
                     int64_t pad) {
  return g.node("MaxPool", {x},
                {attr_ints("kernel_shape", {kernel, kernel}),
                 attr_ints("strides", {stride, stride}), attr_ints("pads", {pad, pad, pad, pad})});
}

// torchvision's BasicBlock / Bottleneck (vision.cpp Block).
std::string block(GraphBuilder& g, const std::string& x, const std::string& p, int64_t stride,
                  bool bottleneck) {
  std::string y;
  if (bottleneck) {
    y = g.node("Relu", {batch_norm(g, conv(g, x, p + "conv1.", 1, 0), p + "bn1.")});
    y = g.node("Relu", {batch_norm(g, conv(g, y, p + "conv2.", stride, 1), p + "bn2.")});
    y = batch_norm(g, conv(g, y, p + "conv3.", 1, 0), p + "bn3.");
  } else {
    y = g.node("Relu", {batch_norm(g, conv(g, x, p + "conv1.", stride, 1), p + "bn1.")});
    y = batch_norm(g, conv(g, y, p + "conv2.", 1, 1), p + "bn2.");
  }
  std::string shortcut = x;
  if (g.has_weight(p + "downsample.0.weight"))
    shortcut = batch_norm(g, conv(g, x, p + "downsample.0.", stride, 0), p + "downsample.1.");
  return g.node("Relu", {g.node("Add", {y, shortcut})});
}

}  // namespace

void build_vision_graph(GraphBuilder& g, const Json& s, const std::vector<int64_t>& static_shape) {
  std::vector<std::string> shape = {"batch", "3", "height", "width"};
  if (!static_shape.empty()) {
    MS_CHECK(static_shape.size() == 1 || static_shape.size() == 3, ErrorCode::kUsage,
             "--static for an image model is BATCH or BATCH,HEIGHT,WIDTH (e.g. 1,224,224), got {} "
             "sizes",
             static_shape.size());
    shape[0] = std::to_string(static_shape[0]);
    if (static_shape.size() == 3) {
      shape[2] = std::to_string(static_shape[1]);
      shape[3] = std::to_string(static_shape[2]);
    }
  }
  g.input("pixel_values", TensorProto::FLOAT, shape);
  const std::string family = s.at("family").get<std::string>();
  std::string x = g.compute_type("pixel_values");
  std::string head;
  if (family == "resnet") {
    x = g.node("Relu", {batch_norm(g, conv(g, x, "conv1.", 2, 3), "bn1.")});
    x = max_pool(g, x, 3, 2, 1);
    const bool bottleneck = s.at("bottleneck").get<bool>();
    const Json& blocks = s.at("blocks");
    for (std::size_t l = 0; l < blocks.size(); ++l) {
      for (int b = 0; b < blocks[l].get<int>(); ++b) {
        const int64_t stride = (b == 0 && l > 0) ? 2 : 1;
        x = block(g, x, fmt::format("layer{}.{}.", l + 1, b), stride, bottleneck);
      }
    }
    head = "fc.";
  } else if (family == "small-cnn") {
    const int64_t stages = s.at("stages").get<int64_t>();
    for (int64_t i = 0; i < stages; ++i) {
      // features: Conv (3x3, padding 1) at 4i, BatchNorm at 4i + 1, ReLU, MaxPool(2).
      x = conv(g, x, fmt::format("features.{}.", 4 * i), 1, 1);
      x = g.node("Relu", {batch_norm(g, x, fmt::format("features.{}.", 4 * i + 1))});
      x = max_pool(g, x, 2, 2, 0);
    }
    head = "classifier.";
  } else {
    fail(ErrorCode::kInternal, "no ONNX form for the image family '{}'", family);
  }
  x = g.node("Flatten", {g.node("GlobalAveragePool", {x})}, {attr_int("axis", 1)});
  const std::string logits = g.node("Gemm", {x, g.weight(head + "weight"), g.weight(head + "bias")},
                                    {attr_int("transB", 1)});
  g.output(logits, "logits", TensorProto::FLOAT,
           {shape[0], std::to_string(g.tensor(head + "weight").size(0))});
}

}  // namespace ms::exporter
