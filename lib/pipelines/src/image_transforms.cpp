// The image preprocessing of configuration.json (see image_transforms.h): torchvision's
// transforms on the PIL image (8-bit pixels) up to ToTensor, on the tensor after it.
#include "ms/pipelines/image_transforms.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/_upsample_bilinear2d_aa.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/flip.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/upsample_bilinear2d.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/tensor/collate.h"

namespace ms::pipelines {
namespace {

// A Resize or CenterCrop size as torchvision takes it: N, [N] (the same) or [height, width]. A
// whole number written as a float (224.0, as Python's json writes a numpy float) is that number:
// torchvision's crops take int(size); a fraction is refused rather than truncated.
std::pair<int64_t, int64_t> size_of(const Json& v, const std::string& where) {
  auto positive = [](const Json& n) {
    if (n.is_number_integer()) return n.get<int64_t>() > 0;
    if (!n.is_number_float()) return false;
    const double d = n.get<double>();
    return d >= 1 && d <= 1e9 && d == std::floor(d);
  };
  auto side = [](const Json& n) {
    return n.is_number_integer() ? n.get<int64_t>() : static_cast<int64_t>(n.get<double>());
  };
  if (positive(v)) return {side(v), 0};
  if (v.is_array() && v.size() == 1 && positive(v[0])) return {side(v[0]), 0};
  if (v.is_array() && v.size() == 2 && positive(v[0]) && positive(v[1])) {
    return {side(v[0]), side(v[1])};
  }
  fail(ErrorCode::kConfig, "{}: 'size' must be a positive integer, [N] or [height, width], got {}",
       where, v.dump());
}

// A Normalize's mean or std as torchvision's normalize broadcasts it over the 3 channels: a number,
// or a list of 1 or 3 numbers. Each is a float32 there: a std that is 0 as a float32 is refused,
// as torchvision refuses it ("std evaluated to zero"), rather than giving every pixel NaN or inf.
std::vector<double> channel_values(const Json& t, const char* key, const std::string& where) {
  MS_CHECK(t.contains(key), ErrorCode::kConfig, "{} (Normalize) needs '{}'", where, key);
  const Json& v = t[key];
  std::vector<double> values;
  if (v.is_number()) {
    values.assign(3, v.get<double>());
  } else if (v.is_array() && (v.size() == 1 || v.size() == 3) &&
             std::all_of(v.begin(), v.end(), [](const Json& n) { return n.is_number(); })) {
    for (const Json& n : v) values.push_back(n.get<double>());
    if (values.size() == 1) values.assign(3, values[0]);
  } else {
    fail(ErrorCode::kConfig,
         "{} (Normalize): '{}' must be a number or a list of 1 or 3 numbers (one per channel), "
         "got {}",
         where, key, v.dump());
  }
  for (double x : values) {
    const auto as_float = static_cast<float>(x);
    MS_CHECK(std::isfinite(as_float), ErrorCode::kConfig,
             "{} (Normalize): '{}' value {} is not a finite float32", where, key, x);
    MS_CHECK(std::string_view(key) != "std" || as_float != 0.0f, ErrorCode::kConfig,
             "{} (Normalize): 'std' is zero in {}: every pixel would be divided by zero", where,
             v.dump());
  }
  return values;
}

// RandomResizedCrop's `scale` (fractions of the area: 0 <= min, as torchvision takes [0, 1]) or
// `ratio` (aspect ratios, sampled log-uniform: 0 < min): [min, max] with min <= max (torchvision
// only warns about a reversed range and samples nothing sensible from it), else `fallback`.
std::pair<double, double> range_of(const Json& t, const char* key,
                                   std::pair<double, double> fallback, const std::string& where) {
  if (!t.contains(key)) return fallback;
  const Json& v = t[key];
  const bool zero_allowed = std::string_view(key) == "scale";
  const bool ok = v.is_array() && v.size() == 2 && v[0].is_number() && v[1].is_number() &&
                  std::isfinite(v[0].get<double>()) && std::isfinite(v[1].get<double>()) &&
                  (zero_allowed ? v[0].get<double>() >= 0 : v[0].get<double>() > 0) &&
                  v[0].get<double>() <= v[1].get<double>();
  MS_CHECK(ok, ErrorCode::kConfig,
           "{} (RandomResizedCrop): '{}' must be [min, max] with {} min <= max, got {}", where, key,
           zero_allowed ? "0 <=" : "0 <", v.dump());
  return {v[0].get<double>(), v[1].get<double>()};
}

// Steps of OpenMMLab's data pipelines (mmcv, mmdet, mmcls), which ModelScope's detection and
// segmentation configurations use: told apart from a misspelt torchvision name so the error can
// say what they are.
bool is_openmmlab_step(const std::string& type) {
  static const std::vector<std::string> steps = {
      "LoadImageFromFile", "LoadAnnotations", "Collect",           "DefaultFormatBundle",
      "ImageToTensor",     "RandomFlip",      "MultiScaleFlipAug", "PhotoMetricDistortion",
      "ToDataContainer",   "Transpose",       "PackInputs",        "PackDetInputs",
      "PackClsInputs"};
  return std::find(steps.begin(), steps.end(), type) != steps.end();
}

bool is_random(const std::string& type) {
  return type == "RandomResizedCrop" || type == "RandomHorizontalFlip";
}

// A transform's keys are torchvision's that ms applies; any other (a misspelt one, a resampling
// filter ms does not have) would otherwise change nothing, silently.
void check_transform_keys(const Json& t, const std::string& type, const std::string& where) {
  static const std::map<std::string, std::vector<std::string>> known_keys = {
      {"Resize", {"type", "size", "max_size", "interpolation", "antialias"}},
      {"CenterCrop", {"type", "size"}},
      {"Normalize", {"type", "mean", "std", "inplace"}},
      {"ToTensor", {"type"}},
      {"RandomResizedCrop", {"type", "size", "scale", "ratio", "interpolation", "antialias"}},
      {"RandomHorizontalFlip", {"type", "p"}}};
  const std::vector<std::string>& known = known_keys.at(type);
  for (const auto& [key, value] : t.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      throw Error(ErrorCode::kConfig, fmt::format("{} ({}): unknown key '{}'", where, type, key),
                  choices_hint(key, known, "its keys"));
    }
  }
  // PIL images are always resized with antialiasing (torchvision ignores `antialias` for them);
  // the filter is bilinear, torchvision's default (2 is PIL's number for it).
  if (t.contains("antialias")) {
    MS_CHECK(t["antialias"].is_boolean() || t["antialias"].is_null(), ErrorCode::kConfig,
             "{} ({}): 'antialias' must be true, false or null, got {}", where, type,
             t["antialias"].dump());
  }
  if (t.contains("interpolation")) {
    const Json& mode = t["interpolation"];
    const bool bilinear =
        (mode.is_string() && ascii_lower(mode.get<std::string>()) == "bilinear") ||
        (mode.is_number_integer() && mode.get<int64_t>() == 2);
    MS_CHECK(bilinear, ErrorCode::kConfig,
             "{} ({}): interpolation {} is not supported (ms resizes bilinear, as PIL with "
             "torchvision's default)",
             where, type, mode.dump());
  }
}

}  // namespace

std::vector<Transform> parse_transforms(const Config& config, TransformStage stage) {
  const Json* list = nullptr;
  std::string list_key;
  // Training reads preprocessor.train first, as ModelScope builds its training preprocessor;
  // evaluation and inference the others.
  std::vector<const char*> keys = {"preprocessor.val", "preprocessor.transforms", "preprocessor"};
  if (stage == TransformStage::kTrain) keys.insert(keys.begin(), "preprocessor.train");
  for (const char* key : keys) {
    if (config.has(key) && config.at(key).is_array()) {
      list = &config.at(key);
      list_key = key;
      break;
    }
  }
  std::vector<Transform> out;
  if (list == nullptr) {
    // torchvision's ImageNet evaluation recipe. A configuration with only a training list says
    // nothing of evaluation (ModelScope logs "No preprocessor key val found" there).
    if (stage == TransformStage::kEvaluate && config.has("preprocessor.train")) {
      log::warn(
          "{}: preprocessor.train but no preprocessor.val: evaluation and inference apply the "
          "ImageNet recipe (Resize 256, CenterCrop 224, ToTensor, ImageNet Normalize); add "
          "preprocessor.val to say otherwise",
          config.source());
    }
    out.push_back({"Resize", 256, 0, {}, {}, true});
    out.push_back({"CenterCrop", 224, 224, {}, {}, true});
    out.push_back({"ToTensor", 0, 0, {}, {}, true});
    out.push_back({"Normalize", 0, 0, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, true});
    return out;
  }
  // torchvision's Compose hands each transform what the one before it returned: ToTensor turns
  // the PIL image into a tensor once, and Normalize needs that tensor. A list in another order
  // fails in ModelScope (a TypeError in torchvision, or a PIL image given to the model).
  static const std::vector<std::string> known = {
      "Resize", "CenterCrop", "Normalize", "ToTensor", "RandomResizedCrop", "RandomHorizontalFlip"};
  bool tensor = false;  // whether a ToTensor came before
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Json& t = (*list)[i];
    const std::string where = fmt::format("{}: {} transform {}", config.source(), list_key, i);
    MS_CHECK(t.is_object() && t.contains("type") && t["type"].is_string(), ErrorCode::kConfig,
             "{} must be an object with a 'type'", where);
    Transform tr;
    tr.type = t["type"].get<std::string>();
    if (std::find(known.begin(), known.end(), tr.type) == known.end()) {
      if (is_openmmlab_step(tr.type)) {
        throw Error(ErrorCode::kConfig,
                    fmt::format("{}: '{}' is a step of an OpenMMLab (mmcv / mmdet) data "
                                "pipeline, which ms does not run",
                                where, tr.type),
                    fmt::format("ms applies torchvision-style lists of {}; write the preprocessing "
                                "as one (Collect, LoadImageFromFile and formatting steps have no "
                                "counterpart: leave them out)",
                                join(known, ", ")));
      }
      throw Error(ErrorCode::kConfig, fmt::format("{}: unknown type '{}'", where, tr.type),
                  choices_hint(tr.type, known, "known"));
    }
    check_transform_keys(t, tr.type, where);
    if (is_random(tr.type) && stage != TransformStage::kTrain) {
      throw Error(ErrorCode::kConfig,
                  fmt::format("{}: {} is a random augmentation, and {} is what evaluation and "
                              "inference apply",
                              where, tr.type, list_key),
                  "put training augmentations in preprocessor.train and keep preprocessor.val "
                  "deterministic (Resize, CenterCrop, ToTensor, Normalize)");
    }
    if (tr.type == "ToTensor") {
      MS_CHECK(!tensor, ErrorCode::kConfig,
               "{}: a second ToTensor (torchvision's ToTensor takes a PIL image; the first one "
               "made a tensor)",
               where);
      tensor = true;
    } else if (tr.type == "RandomHorizontalFlip") {
      if (t.contains("p")) {
        MS_CHECK(t["p"].is_number() && t["p"].get<double>() >= 0 && t["p"].get<double>() <= 1,
                 ErrorCode::kConfig,
                 "{} (RandomHorizontalFlip): 'p' must be a number in [0, 1], got {}", where,
                 t["p"].dump());
        tr.p = t["p"].get<double>();
      }
    } else if (tr.type == "Resize" || tr.type == "CenterCrop" || tr.type == "RandomResizedCrop") {
      MS_CHECK(t.contains("size"), ErrorCode::kConfig, "{} ({}) needs 'size'", where, tr.type);
      std::tie(tr.h, tr.w) = size_of(t["size"], where);
      if (tr.type != "Resize" && tr.w == 0) tr.w = tr.h;  // a crop's N is N x N
      if (tr.type == "RandomResizedCrop") {
        tr.scale = range_of(t, "scale", tr.scale, where);
        tr.ratio = range_of(t, "ratio", tr.ratio, where);
      }
      // torchvision's max_size caps the longer side of a shorter-side Resize.
      if (tr.type == "Resize" && t.contains("max_size") && !t["max_size"].is_null()) {
        const Json& m = t["max_size"];
        MS_CHECK(tr.w == 0, ErrorCode::kConfig,
                 "{} (Resize): 'max_size' only goes with a size of the shorter side (N), not "
                 "[height, width]",
                 where);
        MS_CHECK(m.is_number_integer() && m.get<int64_t>() > tr.h, ErrorCode::kConfig,
                 "{} (Resize): 'max_size' must be an integer above the size {}, got {}", where,
                 tr.h, m.dump());
        tr.max_size = m.get<int64_t>();
      }
      // An output no image may be (a crop pads what the image lacks: a size of 100000 would be
      // 30 GB of zeros per image). A Resize of the shorter side is checked per image.
      const int64_t area_w = tr.w == 0 ? 1 : tr.w;
      MS_CHECK(tr.h <= data::kMaxImagePixels / area_w, ErrorCode::kConfig,
               "{} ({}): size {} is more than the limit of {} pixels", where, tr.type,
               t["size"].dump(), data::kMaxImagePixels);
      // On a tensor (after ToTensor) torchvision 0.17 and later antialias unless told not to (a
      // null was the older default: none on tensors); PIL images are always antialiased.
      if (t.contains("antialias"))
        tr.antialias = t["antialias"].is_boolean() && t["antialias"].get<bool>();
    } else {
      if (!tensor) {
        throw Error(ErrorCode::kConfig,
                    fmt::format("{}: Normalize before ToTensor (torchvision's Normalize takes a "
                                "tensor, not the PIL image)",
                                where),
                    "put {\"type\": \"ToTensor\"} before the Normalize in " + list_key);
      }
      // The values as given, on pixels in [0, 1] as torchvision computes: no guess at 0-255
      // statistics (mmcv's Normalize, which takes them, has other keys and is not read here).
      tr.mean = channel_values(t, "mean", where);
      tr.std = channel_values(t, "std", where);
    }
    out.push_back(std::move(tr));
  }
  if (!tensor) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: {} has no ToTensor: torchvision would give the model a PIL image",
                            config.source(), list_key),
                "add {\"type\": \"ToTensor\"} (before any Normalize) to " + list_key);
  }
  return out;
}

namespace {

// The output size of a Resize: [h, w] as given, or (w == 0) the shorter side to h and the longer
// one int(h * long / short), truncated as torchvision computes it.
std::pair<int64_t, int64_t> resized_size(const Transform& t, int64_t h, int64_t w) {
  if (t.w != 0) return {t.h, t.w};
  int64_t short_side = t.h;
  auto long_side = static_cast<int64_t>(static_cast<double>(t.h) * std::max(h, w) / std::min(h, w));
  // max_size: the longer side to it, the shorter int(max_size * short / long).
  if (t.max_size > 0 && long_side > t.max_size) {
    short_side = static_cast<int64_t>(static_cast<double>(t.max_size) * short_side / long_side);
    long_side = t.max_size;
  }
  return h <= w ? std::pair{short_side, long_side} : std::pair{long_side, short_side};
}

// torchvision's crop offset int(round(d / 2.0)): Python rounds halves to the even neighbour, so
// a surplus of 5 pixels starts the crop at 2, not 3.
int64_t crop_offset(int64_t surplus) {
  const int64_t half = surplus / 2;
  return surplus % 2 != 0 && half % 2 != 0 ? half + 1 : half;
}

// torchvision's center_crop of an image smaller than the crop pads it first with zeros, the
// larger half of the surplus after (right, bottom): the crop's offset on that axis is then
// negative, -(surplus // 2).
int64_t crop_or_pad_offset(int64_t size, int64_t crop) {
  return crop > size ? -((crop - size) / 2) : crop_offset(size - crop);
}

data::Image center_crop(const data::Image& in, const Transform& t) {
  const int64_t top = crop_or_pad_offset(in.height, t.h);
  const int64_t left = crop_or_pad_offset(in.width, t.w);
  data::Image out;
  out.height = static_cast<int>(t.h);
  out.width = static_cast<int>(t.w);
  out.channels = in.channels;
  const std::size_t channels = static_cast<std::size_t>(in.channels);
  out.pixels.assign(static_cast<std::size_t>(out.width) * out.height * channels, 0);
  // The columns of the input a row of the output shows (the rest is padding).
  const int64_t first = std::max<int64_t>(0, -left);
  const int64_t last = std::min<int64_t>(out.width, in.width - left);
  for (int64_t y = 0; y < out.height; ++y) {
    const int64_t sy = top + y;
    if (sy < 0 || sy >= in.height || first >= last) continue;
    const std::uint8_t* src =
        &in.pixels[(static_cast<std::size_t>(sy) * in.width + (left + first)) * channels];
    std::copy(src, src + (last - first) * channels,
              &out.pixels[(static_cast<std::size_t>(y) * out.width + first) * channels]);
  }
  return out;
}

// A Resize's output size, refused when it is more pixels than any image ms decodes may have (a
// size from a configuration times a very wide image's aspect ratio can run past int).
std::pair<int, int> checked_resize(const Transform& t, int64_t h, int64_t w) {
  const auto [nh, nw] = resized_size(t, h, w);
  // max_size over so long an image leaves its shorter side 0 (torchvision fails there too).
  MS_CHECK(nh > 0 && nw > 0, ErrorCode::kUsage,
           "Resize of a {}x{} image to {}x{}: a side of 0 pixels (max_size {} caps the longer "
           "side of so long an image)",
           h, w, nh, nw, t.max_size);
  MS_CHECK(nh <= data::kMaxImagePixels / nw, ErrorCode::kUsage,
           "Resize of a {}x{} image to {}x{} is more than the limit of {} pixels", h, w, nh, nw,
           data::kMaxImagePixels);
  return {static_cast<int>(nh), static_cast<int>(nw)};
}

// A crop of an image: rows [top, top + height), columns [left, left + width), inside it.
struct CropBox {
  int64_t top, left, height, width;
};

// torchvision's RandomResizedCrop.get_params: up to 10 tries of an area (a fraction of the image,
// uniform in `scale`) and an aspect ratio (log-uniform in `ratio`), rounded half to even as
// Python's round(); the first that fits is placed uniformly; else the central crop of the
// ratio's nearest bound.
CropBox random_resized_crop_box(const Transform& t, int64_t height, int64_t width,
                                TransformRandom& random) {
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const double log_min = std::log(t.ratio.first), log_max = std::log(t.ratio.second);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * random.uniform(t.scale.first, t.scale.second);
    const double aspect = std::exp(random.uniform(log_min, log_max));
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int64_t top = random.integer(0, height - h);
      const int64_t left = random.integer(0, width - w);
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < t.ratio.first) {
    h = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / t.ratio.first));
  } else if (in_ratio > t.ratio.second) {
    w = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * t.ratio.second));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

data::Image crop_pixels(const data::Image& in, const CropBox& box) {
  data::Image out;
  out.height = static_cast<int>(box.height);
  out.width = static_cast<int>(box.width);
  out.channels = in.channels;
  const auto row_bytes = static_cast<std::size_t>(box.width) * in.channels;
  out.pixels.resize(row_bytes * out.height);
  for (int64_t y = 0; y < box.height; ++y) {
    const std::uint8_t* src =
        &in.pixels[(static_cast<std::size_t>(box.top + y) * in.width + box.left) * in.channels];
    std::copy(src, src + row_bytes, &out.pixels[static_cast<std::size_t>(y) * row_bytes]);
  }
  return out;
}

data::Image mirror_pixels(const data::Image& in) {
  data::Image out = in;
  const auto channels = static_cast<std::size_t>(in.channels);
  for (int y = 0; y < in.height; ++y)
    for (int x = 0; x < in.width; ++x)
      std::copy_n(
          &in.pixels[(static_cast<std::size_t>(y) * in.width + x) * channels], channels,
          &out.pixels[(static_cast<std::size_t>(y) * in.width + (in.width - 1 - x)) * channels]);
  return out;
}

// A [C, H, W] tensor resized bilinear, with antialiasing as torchvision's resize of a tensor.
at::Tensor resize_tensor(const at::Tensor& x, int64_t height, int64_t width, bool antialias) {
  const at::Tensor batch = x.unsqueeze(0);
  return (antialias ? at::_upsample_bilinear2d_aa(batch, {height, width}, false)
                    : at::upsample_bilinear2d(batch, {height, width}, false))
      .squeeze(0);
}

}  // namespace

namespace {

// splitmix64's output function: a bijection of 64-bit values that spreads every input bit.
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

TransformRandom::TransformRandom(std::uint64_t seed) : state_(seed) {}

TransformRandom TransformRandom::for_item(std::uint64_t seed, std::uint64_t epoch,
                                          std::uint64_t row) {
  // Each part through the mixer before the next joins: a plain sum or xor of the parts would give
  // some (epoch, row) pairs streams that are shifts of each other's (the state advances by a
  // constant each draw).
  return TransformRandom(mix64(mix64(mix64(seed) ^ epoch) ^ row));
}

std::uint64_t TransformRandom::next() {
  // splitmix64: the same stream on every platform and standard library.
  return mix64(state_ += 0x9E3779B97F4A7C15ull);
}

double TransformRandom::uniform(double low, double high) {
  return low + (high - low) * (static_cast<double>(next() >> 11) * 0x1.0p-53);
}

int64_t TransformRandom::integer(int64_t low, int64_t high) {
  return low + static_cast<int64_t>(next() % static_cast<std::uint64_t>(high - low + 1));
}

at::Tensor apply_transforms(const std::vector<Transform>& transforms, const data::Image& image,
                            TransformRandom* random) {
  for (const Transform& t : transforms)
    MS_CHECK(!is_random(t.type) || random != nullptr, ErrorCode::kInternal,
             "{} needs a random generator", t.type);
  // Up to ToTensor the image is what torchvision gets from PIL: 8-bit pixels.
  std::size_t i = 0;
  data::Image pixels;
  const data::Image* current = &image;
  for (; i < transforms.size() && transforms[i].type != "ToTensor"; ++i) {
    const Transform& t = transforms[i];
    if (t.type == "Resize") {
      const auto [nh, nw] = checked_resize(t, current->height, current->width);
      pixels = data::resize_bilinear(*current, nh, nw);
    } else if (t.type == "RandomResizedCrop") {
      const CropBox box = random_resized_crop_box(t, current->height, current->width, *random);
      pixels = data::resize_bilinear(crop_pixels(*current, box), static_cast<int>(t.h),
                                     static_cast<int>(t.w));
    } else if (t.type == "RandomHorizontalFlip") {
      if (random->uniform() >= t.p) continue;
      pixels = mirror_pixels(*current);
    } else {
      pixels = center_crop(*current, t);
    }
    current = &pixels;
  }
  at::Tensor x =
      tensor::image_to_tensor(current->pixels.data(), current->height, current->width, 3);
  for (++i; i < transforms.size(); ++i) {
    const Transform& t = transforms[i];
    const int64_t h = x.size(1), w = x.size(2);
    if (t.type == "Resize") {
      const auto [nh, nw] = checked_resize(t, h, w);
      x = resize_tensor(x, nh, nw, t.antialias);
    } else if (t.type == "RandomResizedCrop") {
      const CropBox box = random_resized_crop_box(t, h, w, *random);
      x = resize_tensor(x.narrow(1, box.top, box.height).narrow(2, box.left, box.width), t.h, t.w,
                        t.antialias);
    } else if (t.type == "RandomHorizontalFlip") {
      if (random->uniform() < t.p) x = x.flip({2});
    } else if (t.type == "CenterCrop") {
      const int64_t top = crop_or_pad_offset(h, t.h), left = crop_or_pad_offset(w, t.w);
      // Padding is zeros of the tensor (after a Normalize, not the pixel 0), as torchvision's.
      if (top < 0 || left < 0) {
        const int64_t pad_top = std::max<int64_t>(0, -top), pad_left = std::max<int64_t>(0, -left);
        x = at::constant_pad_nd(x, {pad_left, std::max<int64_t>(0, t.w - w - pad_left), pad_top,
                                    std::max<int64_t>(0, t.h - h - pad_top)});
      }
      x = x.narrow(1, std::max<int64_t>(0, top), t.h).narrow(2, std::max<int64_t>(0, left), t.w);
    } else if (t.type == "Normalize") {
      const at::Tensor mean =
          at::tensor(std::vector<float>(t.mean.begin(), t.mean.end())).view({3, 1, 1});
      const at::Tensor std =
          at::tensor(std::vector<float>(t.std.begin(), t.std.end())).view({3, 1, 1});
      x = (x - mean) / std;
    }
  }
  return x.contiguous();
}

}  // namespace ms::pipelines
