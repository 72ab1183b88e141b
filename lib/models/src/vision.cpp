#include "ms/models/vision.h"

#include <ATen/ops/adaptive_avg_pool2d.h>
#include <ATen/ops/relu.h>
#include <c10/core/GradMode.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include <cstring>

#include "ms/core/error.h"

namespace ms::models {
namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return Conv2d(Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}

// torchvision BasicBlock (expansion 1) and Bottleneck (expansion 4), same parameter names.
struct Block : torch::nn::Module {
  Block(int64_t in, int64_t planes, int64_t stride, bool bottleneck) : bottleneck_(bottleneck) {
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
        auto block = std::make_shared<Block>(in, planes[l], (b == 0 && l > 0) ? 2 : 1, bottleneck);
        layer->push_back(block);
        in = planes[l] * (bottleneck ? 4 : 1);
      }
      layers.push_back(register_module("layer" + std::to_string(l + 1), layer));
    }
    fc = register_module("fc", torch::nn::Linear(in, classes));
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
  std::vector<torch::nn::Sequential> layers;
  torch::nn::Linear fc{nullptr};
};

struct SmallCnn : torch::nn::Module {
  SmallCnn(const std::vector<int64_t>& channels, int64_t classes) {
    MS_CHECK(!channels.empty(), ErrorCode::kConfig,
             "small-cnn needs model.channels (e.g. [8, 16])");
    int64_t in = 3;
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
  at::Tensor forward(const at::Tensor& x) {
    return classifier(at::adaptive_avg_pool2d(features->forward(x), {1, 1}).flatten(1));
  }
  torch::nn::Sequential features;
  torch::nn::Linear classifier{nullptr};
};

}  // namespace

struct ImageClassifier::Impl {
  std::shared_ptr<ResNet> resnet;
  std::shared_ptr<SmallCnn> cnn;
  torch::nn::Module& module() { return resnet ? static_cast<torch::nn::Module&>(*resnet) : *cnn; }
};

ImageClassifier::ImageClassifier(const VisionConfig& c) : impl_(std::make_unique<Impl>()) {
  if (c.kind == "resnet") {
    impl_->resnet = std::make_shared<ResNet>(c.depth, c.num_classes);
  } else if (c.kind == "small-cnn") {
    impl_->cnn = std::make_shared<SmallCnn>(c.channels, c.num_classes);
  } else {
    fail(ErrorCode::kConfig, "unknown image model kind '{}' (resnet, small-cnn)", c.kind);
  }
  impl_->module().eval();
}

ImageClassifier::~ImageClassifier() = default;

void ImageClassifier::load(const tensor::WeightMap& weights, const std::string& source) {
  tensor::WeightMap own;
  for (const auto& [name, t] : weights) {
    std::string key = name;
    for (const char* prefix : {"module.", "model.", "backbone."}) {
      if (key.rfind(prefix, 0) == 0) key = key.substr(std::strlen(prefix));
    }
    own.emplace(key, t);
  }
  std::map<std::string, at::Tensor> params;
  for (const auto& p : impl_->module().named_parameters()) params.emplace(p.key(), p.value());
  for (const auto& b : impl_->module().named_buffers()) params.emplace(b.key(), b.value());
  // num_batches_tracked is a training counter that inference never reads.
  std::vector<std::string> optional;
  for (auto it = params.begin(); it != params.end();) {
    if (it->first.size() > 20 &&
        it->first.compare(it->first.size() - 20, 20, ".num_batches_tracked") == 0) {
      optional.push_back(it->first);
      if (own.count(it->first) == 0) {
        it = params.erase(it);
        continue;
      }
    }
    ++it;
  }
  tensor::copy_weights(own, params, optional, source);
}

void ImageClassifier::to(const std::string& device) {
  impl_->module().to(c10::Device(device));
  impl_->module().eval();
}

at::Tensor ImageClassifier::forward(const at::Tensor& images) {
  return impl_->resnet ? impl_->resnet->forward(images) : impl_->cnn->forward(images);
}

}  // namespace ms::models
