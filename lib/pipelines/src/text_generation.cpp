// text-generation: a causal decoder (GPT-2 family) continues each prompt, greedily, with its
// key/value cache; prompts of a batch are left-padded so that every row's next token sits in the
// last column. Output key `text` (ModelScope's OutputKeys.TEXT): the prompt and its continuation.
#include <ATen/TensorOperators.h>
#include <ATen/ops/all.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/tensor.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <limits>

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/models/model.h"
#include "ms/pipelines/registry.h"
#include "ms/text/gpt2_tokenizer.h"

namespace ms::pipelines {
namespace {

constexpr int64_t kDefaultMaxNewTokens = 50;

class TextGenerationPipeline final : public infer::Pipeline {
 public:
  TextGenerationPipeline(const infer::ModelInfo& model, const std::string& device)
      : task_("text-generation"), device_(device) {
    const std::filesystem::path config_path = model.dir / "config.json";
    const auto hf = read_json_file(config_path);
    MS_CHECK(hf.has_value(), ErrorCode::kNotFound,
             "{} does not exist: a text-generation model needs its config.json",
             config_path.string());
    std::string type = model.model_type;
    if (type.empty() && hf->contains("model_type") && (*hf)["model_type"].is_string())
      type = (*hf)["model_type"].get<std::string>();
    model_ =
        models::load_pretrained(model_spec(model, task_, type.empty() ? "gpt2" : type), device_);
    MS_CHECK(text::Gpt2Tokenizer::in_dir(model.dir), ErrorCode::kNotFound,
             "{} has no byte-level BPE tokenizer (vocab.json + merges.txt or tokenizer.json)",
             model.dir.string());
    tokenizer_ = std::make_unique<text::Gpt2Tokenizer>(text::Gpt2Tokenizer::from_dir(model.dir));
    // config.json has been checked by the model: n_positions, if present, is a positive integer.
    positions_ = hf->value("n_positions", int64_t{1024});
    layers_ = hf->value("n_layer", int64_t{12});
    max_new_tokens_ = model.config.get_or<int64_t>("max_new_tokens", kDefaultMaxNewTokens);
    MS_CHECK(max_new_tokens_ > 0, ErrorCode::kConfig,
             "{}: max_new_tokens must be a positive integer, got {}", model.config.source(),
             max_new_tokens_);
    eos_id_ = tokenizer_->eos_id();
    if (hf->contains("eos_token_id") && (*hf)["eos_token_id"].is_number_integer())
      eos_id_ = (*hf)["eos_token_id"].get<int64_t>();
    // Padding is never attended; any id in the vocabulary will do where the model has none.
    pad_id_ = tokenizer_->pad_id() >= 0 ? tokenizer_->pad_id() : std::max<int64_t>(eos_id_, 0);
  }

  const std::string& task() const override { return task_; }
  std::string device() const override { return device_; }
  std::size_t cost(const infer::PipelineInput& in) const override { return in.text.size(); }

  std::vector<infer::PipelineResult> run(
      const std::vector<const infer::PipelineInput*>& batch) override {
    std::vector<infer::PipelineResult> results(batch.size());
    std::vector<std::vector<int64_t>> prompts;
    std::vector<std::size_t> ok;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      try {
        const infer::PipelineInput& in = *batch[i];
        const std::string text = in.text.empty() && !in.path.empty() ? read_file(in.path) : in.text;
        MS_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, ErrorCode::kUsage,
                 "input text is empty: text-generation needs a prompt");
        std::vector<int64_t> ids = tokenizer_->encode(text);
        MS_CHECK(static_cast<int64_t>(ids.size()) < positions_, ErrorCode::kUsage,
                 "the prompt is {} tokens long; the model's context holds {} with the tokens it "
                 "generates",
                 ids.size(), positions_);
        prompts.push_back(std::move(ids));
        ok.push_back(i);
      } catch (const Error& e) {
        results[i].error = e;
      }
    }
    if (ok.empty()) return results;
    const std::vector<std::vector<int64_t>> generated = generate(prompts);
    for (std::size_t k = 0; k < ok.size(); ++k) {
      std::vector<int64_t> all = prompts[k];
      all.insert(all.end(), generated[k].begin(), generated[k].end());
      results[ok[k]].output = {{"text", tokenizer_->decode(all, /*skip_special_tokens=*/true)}};
    }
    return results;
  }

 private:
  // Greedy decoding of every prompt at once: left padding, then one token per step through the
  // cache, until each row has produced the end-of-text token or max_new_tokens, or the context
  // is full. Returns each row's new tokens (without the end-of-text token).
  std::vector<std::vector<int64_t>> generate(const std::vector<std::vector<int64_t>>& prompts) {
    const int64_t rows = static_cast<int64_t>(prompts.size());
    std::size_t longest = 0;
    for (const auto& p : prompts) longest = std::max(longest, p.size());
    const int64_t width = static_cast<int64_t>(longest);
    std::vector<int64_t> ids(static_cast<std::size_t>(rows * width), pad_id_);
    std::vector<int64_t> mask(ids.size(), 0);
    for (int64_t r = 0; r < rows; ++r) {
      const auto& p = prompts[static_cast<std::size_t>(r)];
      const int64_t offset = width - static_cast<int64_t>(p.size());
      for (std::size_t j = 0; j < p.size(); ++j) {
        ids[static_cast<std::size_t>(r * width + offset) + j] = p[j];
        mask[static_cast<std::size_t>(r * width + offset) + j] = 1;
      }
    }
    const auto long_opts = at::TensorOptions().dtype(at::kLong);
    c10::InferenceMode guard;
    at::Tensor input = at::tensor(ids, long_opts).view({rows, width}).to(device_);
    at::Tensor attention = at::tensor(mask, long_opts).view({rows, width}).to(device_);
    const int64_t steps = std::min<int64_t>(max_new_tokens_, positions_ - width);
    std::vector<std::vector<int64_t>> out(prompts.size());
    std::vector<bool> done(prompts.size(), false);
    models::TensorMap inputs = {{"input_ids", input}, {"attention_mask", attention}};
    for (int64_t step = 0; step < steps; ++step) {
      const models::TensorMap result = models::checked_forward(*model_, inputs, device_);
      const at::Tensor last = result.at("logits").select(1, -1);
      reject_nonfinite(last);
      const at::Tensor next = at::argmax(last, -1).cpu().contiguous();
      const int64_t* picked = next.data_ptr<int64_t>();
      bool all_done = true;
      for (std::size_t r = 0; r < out.size(); ++r) {
        if (done[r]) continue;
        if (picked[r] == eos_id_) {
          done[r] = true;
        } else {
          out[r].push_back(picked[r]);
          all_done = false;
        }
      }
      if (all_done || step + 1 == steps) break;
      // Finished rows keep running (a batch moves together) on padding nobody reads.
      std::vector<int64_t> feed(out.size());
      for (std::size_t r = 0; r < out.size(); ++r) feed[r] = done[r] ? pad_id_ : picked[r];
      attention = at::cat({attention, at::ones({rows, 1}, attention.options())}, 1);
      inputs = {{"input_ids", at::tensor(feed, long_opts).view({rows, 1}).to(device_)},
                {"attention_mask", attention}};
      for (int64_t l = 0; l < layers_; ++l) {
        const std::string n = std::to_string(l);
        inputs["past_key_values." + n + ".key"] = result.at("present." + n + ".key");
        inputs["past_key_values." + n + ".value"] = result.at("present." + n + ".value");
      }
    }
    return out;
  }

  // NaN or infinite logits would make argmax pick an arbitrary token: the model is broken.
  static void reject_nonfinite(const at::Tensor& logits) {
    MS_CHECK(logits.isfinite().all().item<bool>(), ErrorCode::kInternal,
             "the model's logits hold NaN or infinity: its weights are damaged or overflow");
  }

  std::string task_, device_;
  std::shared_ptr<models::Model> model_;
  std::unique_ptr<text::Gpt2Tokenizer> tokenizer_;
  int64_t positions_ = 1024, layers_ = 12, max_new_tokens_ = kDefaultMaxNewTokens;
  int64_t eos_id_ = -1, pad_id_ = 0;
};

}  // namespace

void register_generation_pipelines(Registry<PipelineBuilder>& registry) {
  registry.add(
      "text-generation",
      [](const infer::ModelInfo& m, const std::string& d) -> std::unique_ptr<infer::Pipeline> {
        return std::make_unique<TextGenerationPipeline>(m, d);
      },
      "GPT-2-family causal decoder: greedy continuation with the key/value cache "
      "(max_new_tokens)",
      "text-generation");
}

}  // namespace ms::pipelines
