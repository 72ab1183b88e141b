// The configuration.json image transforms (ms/pipelines/image_transforms.h): the training
// augmentations RandomResizedCrop and RandomHorizontalFlip against the deterministic transforms
// they reduce to, their seeded draws, and which list each stage reads.
#include "ms/pipelines/image_transforms.h"

#include <ATen/ops/equal.h>

#include <optional>
#include <set>
#include <string>

#include "catch.h"
#include "ms/core/error.h"

using ms::Config;
using ms::ErrorCode;
using ms::pipelines::apply_transforms;
using ms::pipelines::parse_transforms;
using ms::pipelines::TransformRandom;
using ms::pipelines::TransformStage;

namespace {

// A width x height RGB image whose every pixel differs from its mirror image.
ms::data::Image test_image(int width, int height) {
  ms::data::Image image;
  image.width = width;
  image.height = height;
  image.channels = 3;
  for (int i = 0; i < width * height * 3; ++i)
    image.pixels.push_back(static_cast<std::uint8_t>((i * 37 + i / 7) % 251));
  return image;
}

std::vector<ms::pipelines::Transform> transforms(const std::string& list,
                                                 TransformStage stage = TransformStage::kTrain) {
  return parse_transforms(
      Config::parse(R"({"preprocessor": {"train": )" + list + "}}", "json", "configuration.json"),
      stage);
}

// The error parsing `config_text` gives, or nullopt.
std::optional<ErrorCode> code_of(const std::string& config_text, TransformStage stage) {
  try {
    parse_transforms(Config::parse(config_text, "json", "configuration.json"), stage);
  } catch (const ms::Error& e) {
    return e.code();
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("RandomResizedCrop of the whole image at its own ratio is a Resize", "[transforms]") {
  // scale [1, 1] and the image's aspect ratio leave one crop: the whole image.
  const auto image = test_image(30, 20);
  TransformRandom random(7);
  const at::Tensor cropped = apply_transforms(
      transforms(R"([{"type": "RandomResizedCrop", "size": [8, 12], "scale": [1, 1],
                     "ratio": [1.5, 1.5]}, {"type": "ToTensor"}])"),
      image, &random);
  const at::Tensor resized = apply_transforms(
      transforms(R"([{"type": "Resize", "size": [8, 12]}, {"type": "ToTensor"}])"), image);
  CHECK(cropped.sizes() == at::IntArrayRef({3, 8, 12}));
  CHECK(at::equal(cropped, resized));
}

TEST_CASE("RandomHorizontalFlip mirrors with probability p, on pixels and on tensors",
          "[transforms]") {
  const auto image = test_image(9, 4);
  const at::Tensor plain = apply_transforms(transforms(R"([{"type": "ToTensor"}])"), image);
  TransformRandom random(1);
  for (const char* list : {R"([{"type": "RandomHorizontalFlip", "p": 1}, {"type": "ToTensor"}])",
                           R"([{"type": "ToTensor"}, {"type": "RandomHorizontalFlip", "p": 1}])"})
    CHECK(at::equal(apply_transforms(transforms(list), image, &random), plain.flip({2})));
  const auto never =
      transforms(R"([{"type": "RandomHorizontalFlip", "p": 0}, {"type": "ToTensor"}])");
  CHECK(at::equal(apply_transforms(never, image, &random), plain));
  // p = 0.5 flips about half of the draws.
  const auto half = transforms(R"([{"type": "RandomHorizontalFlip"}, {"type": "ToTensor"}])");
  int flipped = 0;
  for (int i = 0; i < 200; ++i)
    flipped += at::equal(apply_transforms(half, image, &random), plain) ? 0 : 1;
  CHECK(flipped > 60);
  CHECK(flipped < 140);
}

TEST_CASE("random crops are seeded, in bounds and of the asked size, also where none fits",
          "[transforms]") {
  const auto list = transforms(
      R"([{"type": "RandomResizedCrop", "size": 6}, {"type": "RandomHorizontalFlip"},
          {"type": "ToTensor"}])");
  // A 1 x 100 strip: no crop of the default ratios fits, so the central one of the nearest
  // ratio bound is taken (torchvision's fallback).
  for (const auto& image : {test_image(17, 11), test_image(100, 1), test_image(1, 100)}) {
    for (std::uint64_t seed = 0; seed < 50; ++seed) {
      TransformRandom a(seed), b(seed);
      const at::Tensor x = apply_transforms(list, image, &a);
      CHECK(x.sizes() == at::IntArrayRef({3, 6, 6}));
      CHECK(at::equal(x, apply_transforms(list, image, &b)));
    }
  }
  TransformRandom a(1), b(2);
  const auto image = test_image(40, 30);
  CHECK_FALSE(at::equal(apply_transforms(list, image, &a), apply_transforms(list, image, &b)));
}

TEST_CASE("training reads preprocessor.train; evaluation refuses random transforms",
          "[transforms]") {
  const std::string both = R"({"preprocessor": {
      "train": [{"type": "RandomResizedCrop", "size": 8}, {"type": "ToTensor"}],
      "val": [{"type": "Resize", "size": 8}, {"type": "ToTensor"}]}})";
  const Config config = Config::parse(both, "json", "configuration.json");
  CHECK(parse_transforms(config, TransformStage::kTrain).front().type == "RandomResizedCrop");
  CHECK(parse_transforms(config).front().type == "Resize");
  const std::string random_val = R"({"preprocessor": {"val": [
      {"type": "RandomHorizontalFlip"}, {"type": "ToTensor"}]}})";
  CHECK(code_of(random_val, TransformStage::kEvaluate) == ErrorCode::kConfig);
  CHECK_FALSE(code_of(random_val, TransformStage::kTrain).has_value());
  for (
      const char* bad :
      {R"({"preprocessor": {"train": [{"type": "RandomHorizontalFlip", "p": 2}, {"type": "ToTensor"}]}})",
       R"({"preprocessor": {"train": [{"type": "RandomResizedCrop", "size": 8, "scale": [1, 0.5]}, {"type": "ToTensor"}]}})",
       R"({"preprocessor": {"train": [{"type": "RandomResizedCrop", "size": 8, "ratio": [0, 1]}, {"type": "ToTensor"}]}})",
       R"({"preprocessor": {"train": [{"type": "RandomResizedCrop"}, {"type": "ToTensor"}]}})"})
    CHECK(code_of(bad, TransformStage::kTrain) == ErrorCode::kConfig);
}

TEST_CASE("errors name the list and say what is wrong with a Resize", "[transforms]") {
  try {
    transforms(R"([{"type": "CenterCrop", "size": 8, "foo": 1}, {"type": "ToTensor"}])");
    FAIL("no error");
  } catch (const ms::Error& e) {
    CHECK(std::string(e.what()).find("preprocessor.train transform 0 (CenterCrop): unknown key "
                                     "'foo'") != std::string::npos);
  }
  // max_size 30 over a 300 x 9 image: the shorter side comes out 0 (torchvision fails too).
  try {
    apply_transforms(
        transforms(R"([{"type": "Resize", "size": [24], "max_size": 30}, {"type": "ToTensor"}])"),
        test_image(300, 9));
    FAIL("no error");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kUsage);
    CHECK(std::string(e.what()).find("a side of 0 pixels") != std::string::npos);
  }
}

TEST_CASE("each item's generator is its own stream", "[transforms]") {
  // No item's first draws are another's shifted by a few: the parts of a seed are mixed, not
  // added (the state advances by a constant each draw).
  std::set<std::uint64_t> seen;
  std::size_t repeated = 0;
  for (int epoch = 0; epoch < 20; ++epoch) {
    for (int row = 0; row < 200; ++row) {
      TransformRandom random = TransformRandom::for_item(42, epoch, row);
      for (int draw = 0; draw < 32; ++draw)
        repeated +=
            seen.insert(static_cast<std::uint64_t>(random.uniform() * 0x1.0p53)).second ? 0 : 1;
    }
  }
  CHECK(repeated == 0);
  TransformRandom a = TransformRandom::for_item(42, 3, 7), b = TransformRandom::for_item(42, 3, 7);
  for (int draw = 0; draw < 8; ++draw) CHECK(a.uniform() == b.uniform());
}

TEST_CASE("sizes written as whole floats and a scale from 0 are taken as torchvision takes them",
          "[transforms]") {
  const auto image = test_image(40, 30);
  // 8.0 is 8 (Python's json writes a numpy float so); 8.5 is refused, not truncated.
  CHECK(at::equal(
      apply_transforms(
          transforms(R"([{"type": "CenterCrop", "size": [8.0, 6.0]}, {"type": "ToTensor"}])"),
          image),
      apply_transforms(
          transforms(R"([{"type": "CenterCrop", "size": [8, 6]}, {"type": "ToTensor"}])"), image)));
  CHECK(code_of(
            R"({"preprocessor": {"val": [{"type": "Resize", "size": 8.5}, {"type": "ToTensor"}]}})",
            TransformStage::kEvaluate) == ErrorCode::kConfig);
  // scale [0, 1]: a draw whose crop rounds to 0 pixels is one of the 10 tries, then the fallback.
  const auto list = transforms(
      R"([{"type": "RandomResizedCrop", "size": 6, "scale": [0, 1]}, {"type": "ToTensor"}])");
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    TransformRandom random(seed);
    CHECK(apply_transforms(list, image, &random).sizes() == at::IntArrayRef({3, 6, 6}));
  }
  // scale [0, 0]: every try is 0 pixels, so the central crop.
  TransformRandom random(1);
  CHECK(at::equal(
      apply_transforms(
          transforms(
              R"([{"type": "RandomResizedCrop", "size": 6, "scale": [0, 0]}, {"type": "ToTensor"}])"),
          image, &random),
      apply_transforms(
          transforms(
              R"([{"type": "CenterCrop", "size": [30, 40]}, {"type": "Resize", "size": [6, 6]}, {"type": "ToTensor"}])"),
          image)));
}

TEST_CASE("an OpenMMLab pipeline step is named as one", "[transforms]") {
  try {
    transforms(R"([{"type": "LoadImageFromFile"}, {"type": "Collect", "keys": ["img"]}])");
    FAIL("no error");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kConfig);
    CHECK(std::string(e.what()).find("'LoadImageFromFile' is a step of an OpenMMLab") !=
          std::string::npos);
    CHECK(e.hint().find("leave them out") != std::string::npos);
  }
}
