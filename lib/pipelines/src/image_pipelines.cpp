// Image classification: decode -> transforms from configuration.json (Resize, CenterCrop,
// Normalize) -> ResNet / small CNN -> softmax top-k scores and labels.
#include <ATen/TensorOperators.h>
#include <ATen/ops/_upsample_bilinear2d_aa.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <c10/core/InferenceMode.h>
#include <fmt/ranges.h>

#include <cmath>
#include <map>

#include "finite_outputs.h"
#include "ms/core/error.h"
#include "ms/core/text.h"
#include "ms/data/image.h"
#include "ms/models/model.h"
#include "ms/models/torchscript.h"
#include "ms/pipelines/image_transforms.h"
#include "ms/pipelines/registry.h"
#include "ms/tensor/collate.h"

namespace ms::pipelines {
namespace {

// A Resize or CenterCrop size as torchvision takes it: N, [N] (the same) or [height, width].
std::pair<int64_t, int64_t> size_of(const Json& v, const std::string& where) {
  auto positive = [](const Json& n) { return n.is_number_integer() && n.get<int64_t>() > 0; };
  if (positive(v)) return {v.get<int64_t>(), 0};
  if (v.is_array() && v.size() == 1 && positive(v[0])) return {v[0].get<int64_t>(), 0};
  if (v.is_array() && v.size() == 2 && positive(v[0]) && positive(v[1])) {
    return {v[0].get<int64_t>(), v[1].get<int64_t>()};
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

// A transform's keys are torchvision's that ms applies; any other (a misspelt one, a resampling
// filter ms does not have) would otherwise change nothing, silently.
void check_transform_keys(const Json& t, const std::string& type, const std::string& where) {
  static const std::map<std::string, std::vector<std::string>> known_keys = {
      {"Resize", {"type", "size", "interpolation", "antialias"}},
      {"CenterCrop", {"type", "size"}},
      {"Normalize", {"type", "mean", "std", "inplace"}},
      {"ToTensor", {"type"}}};
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
             "{} (Resize): 'antialias' must be true, false or null, got {}", where,
             t["antialias"].dump());
  }
  if (t.contains("interpolation")) {
    const Json& mode = t["interpolation"];
    const bool bilinear =
        (mode.is_string() && ascii_lower(mode.get<std::string>()) == "bilinear") ||
        (mode.is_number_integer() && mode.get<int64_t>() == 2);
    MS_CHECK(bilinear, ErrorCode::kConfig,
             "{} (Resize): interpolation {} is not supported (ms resizes bilinear, as PIL with "
             "torchvision's default)",
             where, mode.dump());
  }
}

}  // namespace

std::vector<Transform> parse_transforms(const Config& config) {
  const Json* list = nullptr;
  std::string list_key;
  for (const char* key : {"preprocessor.val", "preprocessor.transforms", "preprocessor"}) {
    if (config.has(key) && config.at(key).is_array()) {
      list = &config.at(key);
      list_key = key;
      break;
    }
  }
  std::vector<Transform> out;
  if (list == nullptr) {
    // torchvision's ImageNet evaluation recipe.
    out.push_back({"Resize", 256, 0, {}, {}, true});
    out.push_back({"CenterCrop", 224, 224, {}, {}, true});
    out.push_back({"ToTensor", 0, 0, {}, {}, true});
    out.push_back({"Normalize", 0, 0, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, true});
    return out;
  }
  // torchvision's Compose hands each transform what the one before it returned: ToTensor turns
  // the PIL image into a tensor once, and Normalize needs that tensor. A list in another order
  // fails in ModelScope (a TypeError in torchvision, or a PIL image given to the model).
  static const std::vector<std::string> known = {"Resize", "CenterCrop", "Normalize", "ToTensor"};
  bool tensor = false;  // whether a ToTensor came before
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Json& t = (*list)[i];
    const std::string where = fmt::format("{}: preprocessor transform {}", config.source(), i);
    MS_CHECK(t.is_object() && t.contains("type") && t["type"].is_string(), ErrorCode::kConfig,
             "{} must be an object with a 'type'", where);
    Transform tr;
    tr.type = t["type"].get<std::string>();
    if (std::find(known.begin(), known.end(), tr.type) == known.end()) {
      throw Error(ErrorCode::kConfig, fmt::format("{}: unknown type '{}'", where, tr.type),
                  choices_hint(tr.type, known, "known"));
    }
    check_transform_keys(t, tr.type, where);
    if (tr.type == "ToTensor") {
      MS_CHECK(!tensor, ErrorCode::kConfig,
               "{}: a second ToTensor (torchvision's ToTensor takes a PIL image; the first one "
               "made a tensor)",
               where);
      tensor = true;
    } else if (tr.type == "Resize" || tr.type == "CenterCrop") {
      MS_CHECK(t.contains("size"), ErrorCode::kConfig, "{} ({}) needs 'size'", where, tr.type);
      std::tie(tr.h, tr.w) = size_of(t["size"], where);
      if (tr.type == "CenterCrop" && tr.w == 0) tr.w = tr.h;
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
  if (h <= w) return {t.h, static_cast<int64_t>(static_cast<double>(t.h) * w / h)};
  return {static_cast<int64_t>(static_cast<double>(t.h) * h / w), t.h};
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
  MS_CHECK(nh > 0 && nw > 0 && nh <= data::kMaxImagePixels / nw, ErrorCode::kUsage,
           "Resize of a {}x{} image to {}x{} is more than the limit of {} pixels", h, w, nh, nw,
           data::kMaxImagePixels);
  return {static_cast<int>(nh), static_cast<int>(nw)};
}

}  // namespace

at::Tensor apply_transforms(const std::vector<Transform>& transforms, const data::Image& image) {
  // Up to ToTensor the image is what torchvision gets from PIL: 8-bit pixels.
  std::size_t i = 0;
  data::Image pixels;
  const data::Image* current = &image;
  for (; i < transforms.size() && transforms[i].type != "ToTensor"; ++i) {
    const Transform& t = transforms[i];
    if (t.type == "Resize") {
      const auto [nh, nw] = checked_resize(t, current->height, current->width);
      pixels = data::resize_bilinear(*current, nh, nw);
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
      x = t.antialias ? at::_upsample_bilinear2d_aa(x.unsqueeze(0), {nh, nw}, false)
                      : at::upsample_bilinear2d(x.unsqueeze(0), {nh, nw}, false);
      x = x.squeeze(0);
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

namespace {

class ImageClassificationPipeline final : public infer::Pipeline {
 public:
  ImageClassificationPipeline(const infer::ModelInfo& model, const std::string& device)
      : device_(device) {
    const std::string type = models::normalize_model_type(model.model_type);
    transforms_ = parse_transforms(model.config);
    top_k_ = model.config.get_or<int64_t>("pipeline.top_k", 5);
    MS_CHECK(top_k_ > 0, ErrorCode::kConfig, "{}: pipeline.top_k must be positive",
             model.config.source());
    softmax_ = model.config.get_or<bool>("pipeline.softmax", true);
    if (model.config.has("model.labels")) {
      labels_ = model.config.get<std::vector<std::string>>("model.labels");
    }
    if (type == "torchscript") {
      // A generic TorchScript classifier: the configured transforms in, scores out.
      script_ = std::make_unique<models::ScriptModule>(
          model.dir / model.config.get_or<std::string>("model.file", "model.pt"), device_);
      return;
    }
    model_ = models::load_pretrained(model_spec(model, task_, type), device_);
    MS_CHECK(labels_.empty() || static_cast<int64_t>(labels_.size()) == model_->num_labels(),
             ErrorCode::kConfig, "{}: model.labels has {} names for {} classes",
             model.config.source(), labels_.size(), model_->num_labels().value_or(0));
  }

  const std::string& task() const override { return task_; }
  std::string device() const override { return device_; }
  std::size_t cost(const infer::PipelineInput&) const override { return 1; }
  infer::RunPhases run_phases() const override { return phases_.totals(); }
  bool concurrent() const override { return per_thread_intra_op_threads(); }
  void prepare_worker(int threads) override { prepare_worker_thread(threads, device_); }
  void set_dtype(const std::string& dtype) override {
    const at::ScalarType type = compute_dtype(dtype, device_);
    MS_CHECK(!script_, ErrorCode::kUsage,
             "--dtype {}: a TorchScript classifier computes in the dtype it was saved in", dtype);
    model_->cast(type);
    dtype_ = type;
  }

  std::vector<infer::PipelineResult> run(
      const std::vector<const infer::PipelineInput*>& batch) override {
    std::vector<infer::PipelineResult> results(batch.size());
    // Images of one shape after the transforms go through the network together.
    std::map<std::vector<int64_t>, std::vector<std::pair<std::size_t, at::Tensor>>> groups;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      try {
        const infer::PipelineInput& in = *batch[i];
        MS_CHECK(!in.path.empty() || !in.content.empty(), ErrorCode::kUsage,
                 "image-classification needs image files (--input-dir, or a path column/field)");
        const at::Tensor x = phases_.time(infer::PhaseTotals::kInputs, [&] {
          return apply_transforms(transforms_,
                                  in.content.empty()
                                      ? data::read_image(in.path.string(), 3)
                                      : data::decode_image(in.content, in.path.string(), 3));
        });
        groups[x.sizes().vec()].emplace_back(i, x);
      } catch (const Error& e) {
        results[i].error = e;
      }
    }
    c10::InferenceMode guard;
    for (auto& [shape, items] : groups) {
      std::vector<at::Tensor> xs;
      for (auto& it : items) xs.push_back(it.second);
      const at::Tensor input = phases_.time(infer::PhaseTotals::kModel, [&] {
        return at::stack(xs).to(c10::Device(device_), dtype_);
      });
      const at::Tensor out = phases_.time(infer::PhaseTotals::kModel, [&] {
        return script_ ? script_->forward(input)
                       : models::checked_forward(*model_, {{"pixel_values", input}}, device_)
                             .at("logits");
      });
      MS_CHECK(out.dim() == 2 && out.size(0) == input.size(0), ErrorCode::kUsage,
               "the model returned shape [{}], expected [batch, classes]",
               fmt::join(out.sizes(), ", "));
      MS_CHECK(labels_.empty() || static_cast<int64_t>(labels_.size()) == out.size(1),
               ErrorCode::kConfig, "model.labels has {} names but the model scores {} classes",
               labels_.size(), out.size(1));
      const at::Tensor probs = phases_.time(infer::PhaseTotals::kDevice, [&] {
        return (softmax_ ? at::softmax(out.to(at::kFloat), -1) : out.to(at::kFloat)).cpu();
      });
      const auto top = probs.topk(std::min<int64_t>(top_k_, probs.size(1)), -1);
      const at::Tensor values = std::get<0>(top).contiguous(),
                       indices = std::get<1>(top).contiguous();
      const int64_t k = values.size(1);
      for (std::size_t j = 0; j < items.size(); ++j) {
        Json scores = Json::array(), labels = Json::array();
        for (int64_t c = 0; c < k; ++c) {
          scores.push_back(values.data_ptr<float>()[j * k + c]);
          const auto index = static_cast<std::size_t>(indices.data_ptr<int64_t>()[j * k + c]);
          labels.push_back(index < labels_.size() ? labels_[index]
                                                  : fmt::format("LABEL_{}", index));
        }
        results[items[j].first].output = {{"scores", scores}, {"labels", labels}};
      }
      std::vector<std::size_t> result_of_row;
      for (const auto& item : items) result_of_row.push_back(item.first);
      reject_nonfinite_rows(out, result_of_row, results, "logits");
    }
    return results;
  }

 private:
  std::string task_ = "image-classification", device_;
  std::shared_ptr<models::Model> model_;
  at::ScalarType dtype_ = at::kFloat;  // the model's compute type (--dtype)
  std::unique_ptr<models::ScriptModule> script_;
  bool softmax_ = true;
  std::vector<Transform> transforms_;
  std::vector<std::string> labels_;
  int64_t top_k_ = 5;
  infer::PhaseTotals phases_;  // where run() spends its time (ms infer -v)
};

}  // namespace

void register_image_pipelines(Registry<PipelineBuilder>& registry) {
  registry.add(
      "image-classification",
      [](const infer::ModelInfo& m, const std::string& d) -> std::unique_ptr<infer::Pipeline> {
        return std::make_unique<ImageClassificationPipeline>(m, d);
      },
      "ResNet family / small CNN with Resize, CenterCrop, Normalize from the config",
      "image-classification");
}

}  // namespace ms::pipelines
