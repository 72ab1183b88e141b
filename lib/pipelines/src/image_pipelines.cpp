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
    const at::ScalarType type = compute_dtype(dtype, device_, dtype_);
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
