// Image classifiers in torch::nn with torchvision parameter names: the ResNet family (18, 34, 50,
// 101, 152) and a small configurable CNN, registered for image-classification.

#include <ATen/ops/adaptive_avg_pool2d.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/relu.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include <cstring>
#include <utility>

#include "ms/core/error.h"
#include "registration.h"

namespace ms::models {
namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return Conv2d(Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}

// torchvision BasicBlock (expansion 1) and Bottleneck (expansion 4), same parameter names.
struct ResNetBlock : torch::nn::Module {
  ResNetBlock(int64_t in, int64_t planes, int64_t stride, bool bottleneck)
      : bottleneck_(bottleneck) {
    const int64_t out = planes * (bottleneck ? 4 : 1);
    if (bottleneck) {
      conv1 = register_module("conv1", conv(in, planes, 1, 1, 0));
      bn1 = register_module("bn1", BatchNorm2d(planes));
      conv2 = register_module("conv2", conv(planes, planes, 3, stride, 1));
      bn2 = register_module("bn2", BatchNorm2d(planes));
      conv3 = register_module("conv3", conv(planes, out, 1, 1, 0));
      bn3 = register_module("bn3", BatchNorm2d(out));
    } else {
      conv1 = register_module("conv1", conv(in, planes, 3, stride, 1));
      bn1 = register_module("bn1", BatchNorm2d(planes));
      conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
      bn2 = register_module("bn2", BatchNorm2d(planes));
    }
    if (stride != 1 || in != out) {
      downsample = register_module(
          "downsample", torch::nn::Sequential(conv(in, out, 1, stride, 0), BatchNorm2d(out)));
    }
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = at::relu(bn1(conv1(x)));
    y = bn2(conv2(y));
    if (bottleneck_) y = bn3(conv3(at::relu(y)));
    return at::relu(y + (downsample ? downsample->forward(x) : x));
  }
  bool bottleneck_;
  Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
};

struct ResNet : torch::nn::Module {
  ResNet(int depth, int64_t classes) {
    std::vector<int> blocks;
    bool bottleneck = depth >= 50;
    switch (depth) {
      case 18:
        blocks = {2, 2, 2, 2};
        break;
      case 34:
        blocks = {3, 4, 6, 3};
        break;
      case 50:
        blocks = {3, 4, 6, 3};
        break;
      case 101:
        blocks = {3, 4, 23, 3};
        break;
      case 152:
        blocks = {3, 8, 36, 3};
        break;
      default:
        fail(ErrorCode::kConfig, "ResNet depth {} is not supported (18, 34, 50, 101, 152)", depth);
    }
    conv1 = register_module("conv1", conv(3, 64, 7, 2, 3));
    bn1 = register_module("bn1", BatchNorm2d(64));
    int64_t in = 64;
    const int64_t planes[] = {64, 128, 256, 512};
    for (int l = 0; l < 4; ++l) {
      torch::nn::Sequential layer;
      for (int b = 0; b < blocks[l]; ++b) {
        auto block =
            std::make_shared<ResNetBlock>(in, planes[l], (b == 0 && l > 0) ? 2 : 1, bottleneck);
        layer->push_back(block);
        in = planes[l] * (bottleneck ? 4 : 1);
      }
      layers.push_back(register_module("layer" + std::to_string(l + 1), layer));
    }
    fc = register_module("fc", torch::nn::Linear(in, classes));
    blocks_ = blocks;
    bottleneck_ = bottleneck;
  }
  // Blocks per stage and their kind; strides and downsampling follow torchvision.
  Json structure() const {
    Json s = Json::object();
    s["family"] = "resnet";
    s["blocks"] = blocks_;
    s["bottleneck"] = bottleneck_;
    return s;
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = at::relu(bn1(conv1(x)));
    y = torch::nn::functional::max_pool2d(
        y, torch::nn::functional::MaxPool2dFuncOptions(3).stride(2).padding(1));
    for (auto& layer : layers) y = layer->forward(y);
    return fc(at::adaptive_avg_pool2d(y, {1, 1}).flatten(1));
  }
  Conv2d conv1{nullptr};
  BatchNorm2d bn1{nullptr};
  std::vector<int> blocks_;
  bool bottleneck_ = false;
  std::vector<torch::nn::Sequential> layers;
  torch::nn::Linear fc{nullptr};
};

struct SmallCnn : torch::nn::Module {
  SmallCnn(const std::vector<int64_t>& channels, int64_t classes) {
    MS_CHECK(!channels.empty(), ErrorCode::kConfig,
             "small-cnn needs model.channels (e.g. [8, 16])");
    double parameters = 0;
    int64_t in = 3;
    for (int64_t c : channels) {
      MS_CHECK(c > 0, ErrorCode::kConfig, "small-cnn: model.channels must be positive, got {}", c);
      parameters += static_cast<double>(in) * static_cast<double>(c) * 9;
      in = c;
    }
    check_model_fits(parameters + static_cast<double>(in) * static_cast<double>(classes),
                     "small-cnn", fmt::format("model.channels and {} classes", classes));
    in = 3;
    for (int64_t c : channels) {
      features->push_back(Conv2d(Conv2dOptions(in, c, 3).padding(1)));
      features->push_back(BatchNorm2d(c));
      features->push_back(torch::nn::ReLU());
      features->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
      in = c;
    }
    register_module("features", features);
    classifier = register_module("classifier", torch::nn::Linear(in, classes));
  }
  Json structure() const {
    Json s = Json::object();
    s["family"] = "small-cnn";
    s["stages"] = features->size() / 4;  // Conv, BatchNorm, ReLU, MaxPool each
    return s;
  }
  at::Tensor forward(const at::Tensor& x) {
    return classifier(at::adaptive_avg_pool2d(features->forward(x), {1, 1}).flatten(1));
  }
  torch::nn::Sequential features;
  torch::nn::Linear classifier{nullptr};
};

// An image classifier: the network's own parameter names at the root ("conv1.weight",
// "fc.weight", as torchvision names them), pixel_values [batch, 3, H, W] -> logits.
template <typename Net>
class ImageClassifier final : public Net, public Model {
 public:
  template <typename... Args>
  ImageClassifier(int64_t classes, Args&&... args)
      : Net(std::forward<Args>(args)..., classes), classes_(classes) {}

  const std::string& task() const override { return task_; }
  std::optional<int64_t> num_labels() const override { return classes_; }
  torch::nn::Module& module() override { return *this; }

  Json structure() const override {
    Json s = Net::structure();
    s["head"] = "image-classification";
    return s;
  }

  TensorMap forward(const TensorMap& inputs) override {
    const at::Tensor logits = Net::forward(required_input(inputs, "pixel_values"));
    TensorMap out{{"logits", logits}};
    if (const at::Tensor* labels = optional_input(inputs, "labels")) {
      out["loss"] = at::cross_entropy_loss(logits.to(at::kFloat), labels->to(at::kLong));
    }
    return out;
  }

 protected:
  // Checkpoints saved from wrappers carry a "module." (DataParallel), "model." or "backbone."
  // prefix.
  std::optional<std::string> checkpoint_name_to_parameter(const std::string& name) const override {
    std::string key = name;
    for (const char* prefix : {"module.", "model.", "backbone."}) {
      if (key.rfind(prefix, 0) == 0) key = key.substr(std::strlen(prefix));
    }
    return key;
  }

  bool optional_parameter(const std::string& name, bool allow_fresh_head) const override {
    return (allow_fresh_head && (name.rfind("fc.", 0) == 0 || name.rfind("classifier.", 0) == 0)) ||
           Model::optional_parameter(name, allow_fresh_head);
  }

 private:
  std::string task_ = "image-classification";
  int64_t classes_;
};

// The class count: the one asked for (a new head), else model.num_classes in the configuration,
// else the checkpoint's head, else ImageNet's 1000.
int64_t class_count(const ModelSpec& spec) {
  int64_t classes = 1000;
  if (spec.checkpoint != nullptr) {
    for (const char* head : {"fc.weight", "classifier.weight"}) {
      auto it = spec.checkpoint->find(head);
      if (it != spec.checkpoint->end() && it->second.dim() == 2) classes = it->second.size(0);
    }
  }
  classes = spec.config.get_or<int64_t>("model.num_classes", classes);
  if (spec.num_labels) classes = *spec.num_labels;
  MS_CHECK(classes > 0, ErrorCode::kConfig, "{}: model.num_classes must be positive",
           spec.config.source());
  // ResNet's widest feature (2048) times the classes: the head is what a typo would blow up.
  check_model_fits(static_cast<double>(classes) * 2048, spec.config.source(),
                   fmt::format("{} classes", classes));
  return classes;
}

}  // namespace

void register_vision_models(Registry<ModelBuilder>& registry) {
  const char* task = "image-classification";
  registry.add(
      "resnet",
      [](const ModelSpec& spec) -> std::shared_ptr<Model> {
        return std::make_shared<ImageClassifier<ResNet>>(
            class_count(spec), spec.config.get_or<int>("model.depth", 18));
      },
      "torchvision ResNet, depth from model.depth (18, 34, 50, 101, 152)", task);
  for (int depth : {18, 34, 50, 101, 152}) {
    registry.add(
        fmt::format("resnet{}", depth),
        [depth](const ModelSpec& spec) -> std::shared_ptr<Model> {
          return std::make_shared<ImageClassifier<ResNet>>(class_count(spec), depth);
        },
        fmt::format("torchvision ResNet-{}", depth), task);
  }
  registry.add(
      "small-cnn",
      [](const ModelSpec& spec) -> std::shared_ptr<Model> {
        return std::make_shared<ImageClassifier<SmallCnn>>(
            class_count(spec), spec.config.get<std::vector<int64_t>>("model.channels"));
      },
      "Conv3x3 + BatchNorm + ReLU + MaxPool per model.channels entry, then a Linear classifier",
      task);
}

}  // namespace ms::models
