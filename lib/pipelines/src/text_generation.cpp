// text-generation: a causal decoder (GPT-2 family) continues each prompt through its key/value
// cache, greedily or by sampling; prompts of a batch are left-padded so that every row's next
// token sits in the last column. Output key `text` (ModelScope's OutputKeys.TEXT): the prompt and
// its continuation.
//
// The generation options are top-level configuration keys, so `--set max_new_tokens=64` sets one;
// a model folder's generation_config.json (Hugging Face) gives their defaults. Every row draws
// from its own random stream seeded by `seed`, so a prompt's sample does not depend on which other
// prompts share its batch.
#include <ATen/TensorOperators.h>
#include <ATen/ops/all.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/tensor.h>
#include <c10/core/InferenceMode.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/models/model.h"
#include "ms/pipelines/registry.h"
#include "ms/text/causal_tokenizer.h"

namespace ms::pipelines {
namespace {

constexpr int64_t kDefaultMaxNewTokens = 50;
// transformers' GenerationConfig samples from the 50 likeliest tokens unless top_k says otherwise
// (null or 0: all of them); ModelScope's pipeline generates with it.
constexpr int64_t kDefaultTopK = 50;

// What a generation does, read from the configuration (with --set applied) over
// generation_config.json. The names are those of Hugging Face's GenerationConfig.
struct GenerationOptions {
  int64_t max_new_tokens = kDefaultMaxNewTokens;
  int64_t min_new_tokens = 0;  // the end-of-text token is barred until this many are generated
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = kDefaultTopK;  // 0: no limit
  double top_p = 1.0;
  double repetition_penalty = 1.0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;  // generation ends at the first token completing one of these
  /// Whether the text keeps the stop string and the rest of the token that completed it
  /// (generation_config.json's stop_strings, as generate() returns them), or ends just before it
  /// (ms's `stop`, as ModelScope's and OpenAI-style APIs cut).
  bool keep_stop = false;
  /// Whether the model folder has a generation_config.json: then its eos_token_id alone says
  /// where a text ends (none: nowhere), as transformers reads it; else config.json's, else the
  /// tokenizer's (the pipeline fills them in).
  bool has_generation_config = false;
  std::vector<int64_t> eos_ids;

  // Whether a step can take the argmax on the device, without the host's logits processing.
  bool plain_greedy() const { return !do_sample && repetition_penalty == 1.0; }
};

const std::vector<std::string>& option_names() {
  static const std::vector<std::string> names = {
      "max_new_tokens", "min_new_tokens",     "do_sample", "temperature", "top_k",
      "top_p",          "repetition_penalty", "seed",      "stop"};
  return names;
}

// A --set key with no section (no dot) that is not a generation option is a misspelling: it would
// otherwise be ignored and the user would get output generated with settings they did not ask for.
void reject_unknown_options(const infer::ModelInfo& model) {
  static const std::set<std::string> sections = {"framework",    "task",  "model",      "pipeline",
                                                 "preprocessor", "train", "evaluation", "dataset"};
  for (const std::string& key : model.override_keys) {
    if (key.find('.') != std::string::npos || sections.count(key) != 0) continue;
    const auto& names = option_names();
    if (std::find(names.begin(), names.end(), key) != names.end()) continue;
    throw Error(ErrorCode::kUsage,
                fmt::format("--set {}: text-generation has no option '{}'", key, key),
                fmt::format("its options are {}", fmt::join(names, ", ")));
  }
}

// A generation option: the configuration's (with --set), else `defaults_file`'s (the model's
// generation_config.json, read into `defaults`; null there is unset), else `fallback`.
template <typename T>
T option(const Config& config, const Json& defaults, const std::filesystem::path& defaults_file,
         const char* key, T fallback) {
  if (config.has(key)) return config.get<T>(key);
  auto it = defaults.find(key);
  if (it != defaults.end() && !it->is_null()) {
    // nlohmann would truncate 2.5 to 2: a count that is not a whole number is a mistake.
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      MS_CHECK(it->is_number_integer(), ErrorCode::kConfig,
               "{}: key '{}' must be a whole number, got {}", defaults_file.string(), key,
               it->dump());
    }
    try {
      return it->get<T>();
    } catch (const std::exception&) {
      throw Error(ErrorCode::kConfig, fmt::format("{}: key '{}' has the wrong type: {}",
                                                  defaults_file.string(), key, it->dump()));
    }
  }
  return fallback;
}

// eos_token_id of a generation_config.json or config.json (`file`): an id or a list of ids
// (absent or null: empty). Anything else is kConfig: ignoring it would run past the end.
std::vector<int64_t> eos_token_ids(const Json& config, const std::filesystem::path& file) {
  std::vector<int64_t> ids;
  const auto it = config.find("eos_token_id");
  if (it == config.end() || it->is_null()) return ids;
  const Json list = it->is_array() ? *it : Json::array({*it});
  for (const Json& id : list) {
    MS_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0, ErrorCode::kConfig,
             "{}: eos_token_id must be a token id or a list of them, got {}", file.string(),
             it->dump());
    ids.push_back(id.get<int64_t>());
  }
  return ids;
}

// generation_config.json settings transformers' generate() applies and ms does not (beam search,
// n-gram bans, forced or suppressed tokens, other samplers): a file that sets one to anything but
// its neutral value would make other text than generate() does, so it is refused by name. Each
// key with the values that leave generation as it is; the samplers' only count when sampling.
void reject_unsupported_defaults(const Json& defaults, const std::filesystem::path& file,
                                 bool sampling) {
  using Neutral = std::vector<std::pair<const char*, std::vector<Json>>>;
  static const Neutral always = {
      {"num_beams", {1}},
      {"num_beam_groups", {1}},
      {"num_return_sequences", {1}},
      {"no_repeat_ngram_size", {0}},
      {"encoder_no_repeat_ngram_size", {0}},
      {"min_length", {0}},
      {"bad_words_ids", {}},
      {"suppress_tokens", {Json::array()}},
      {"begin_suppress_tokens", {Json::array()}},
      {"forced_bos_token_id", {}},
      {"forced_eos_token_id", {}},
      {"sequence_bias", {Json::object()}},
      {"penalty_alpha", {0, 0.0}},
      {"diversity_penalty", {0, 0.0}},
      {"encoder_repetition_penalty", {1, 1.0}},
      {"exponential_decay_length_penalty", {}},
      {"guidance_scale", {1, 1.0}},
      {"max_time", {}},
      {"dola_layers", {}},
      {"token_healing", {false}},
      {"watermarking_config", {}},
      {"force_words_ids", {}},
      {"constraints", {}},
  };
  static const Neutral samplers = {
      {"typical_p", {1, 1.0}},  {"min_p", {0, 0.0}}, {"epsilon_cutoff", {0, 0.0}},
      {"eta_cutoff", {0, 0.0}}, {"top_h", {}},
  };
  for (const Neutral* table : {&always, &samplers}) {
    if (table == &samplers && !sampling) continue;
    for (const auto& [key, values] : *table) {
      const auto it = defaults.find(key);
      if (it == defaults.end() || it->is_null()) continue;
      if (std::find(values.begin(), values.end(), *it) != values.end()) continue;
      throw Error(ErrorCode::kMissingComponent,
                  fmt::format("{}: {} is {}: ms's text generation does not do this (greedy or "
                              "sampled decoding with temperature, top_k, top_p, "
                              "repetition_penalty and stop strings)",
                              file.string(), key, it->dump()),
                  "remove the key from generation_config.json (the text then differs from "
                  "transformers' generate() with it)");
    }
  }
}

GenerationOptions read_options(const infer::ModelInfo& model) {
  reject_unknown_options(model);
  const Config& c = model.config;
  const std::filesystem::path defaults_file = model.dir / "generation_config.json";
  const std::optional<Json> defaults_read = read_json_file(defaults_file);
  const Json defaults = defaults_read.value_or(Json::object());
  // max_length counts the (padded) prompt too, so the new tokens it leaves would depend on the
  // batch; ms counts new tokens only.
  if (const auto it = defaults.find("max_length");
      it != defaults.end() && it->is_number_integer() && !c.has("max_new_tokens") &&
      (!defaults.contains("max_new_tokens") || defaults["max_new_tokens"].is_null())) {
    log::warn(
        "{}: max_length {} (prompt and new tokens together) is not used: ms generates up "
        "to max_new_tokens ({} unless set) new tokens per input",
        defaults_file.string(), it->dump(), kDefaultMaxNewTokens);
  }
  GenerationOptions o;
  const std::string& where = c.source();
  // Where a setting came from, for its error: the configuration (with --set), else the model's
  // generation_config.json.
  auto from = [&](const char* key) { return c.has(key) ? where : defaults_file.string(); };
  o.max_new_tokens =
      option<int64_t>(c, defaults, defaults_file, "max_new_tokens", kDefaultMaxNewTokens);
  MS_CHECK(o.max_new_tokens > 0, ErrorCode::kConfig,
           "{}: max_new_tokens must be a positive integer, got {}", from("max_new_tokens"),
           o.max_new_tokens);
  o.min_new_tokens = option<int64_t>(c, defaults, defaults_file, "min_new_tokens", 0);
  // The model's own files (generation_config.json, configuration.json) may ask for more new
  // tokens than a lowered max_new_tokens allows: transformers warns and bars the end-of-text
  // token to the maximum, so ms does too. Asked for with --set, the contradiction is the user's
  // own: an error.
  const bool min_from_command_line =
      std::find(model.override_keys.begin(), model.override_keys.end(), "min_new_tokens") !=
      model.override_keys.end();
  if (!min_from_command_line && o.min_new_tokens > o.max_new_tokens) {
    log::warn(
        "{}: min_new_tokens {} is above max_new_tokens {}: the end-of-text token is barred "
        "for all {} new tokens",
        from("min_new_tokens"), o.min_new_tokens, o.max_new_tokens, o.max_new_tokens);
    o.min_new_tokens = o.max_new_tokens;
  }
  MS_CHECK(o.min_new_tokens >= 0 && o.min_new_tokens <= o.max_new_tokens, ErrorCode::kConfig,
           "{}: min_new_tokens must be between 0 and max_new_tokens ({}), got {}",
           from("min_new_tokens"), o.max_new_tokens, o.min_new_tokens);
  o.repetition_penalty = option<double>(c, defaults, defaults_file, "repetition_penalty", 1.0);
  MS_CHECK(std::isfinite(o.repetition_penalty) && o.repetition_penalty > 0, ErrorCode::kConfig,
           "{}: repetition_penalty must be a positive number (1: none), got {}",
           from("repetition_penalty"), o.repetition_penalty);
  // Asking for a sampling setting means sampling, unless do_sample says otherwise (here or in
  // generation_config.json): then the setting would be ignored, which is worth an error rather
  // than a surprise.
  const bool sampling_setting = c.has("temperature") || c.has("top_k") || c.has("top_p");
  o.do_sample = option<bool>(c, defaults, defaults_file, "do_sample", sampling_setting);
  MS_CHECK(o.do_sample || !sampling_setting, ErrorCode::kConfig,
           "{}: do_sample is false, so temperature, top_k and top_p would be ignored",
           from("do_sample"));
  // generation_config.json's sampling values count only when sampling: greedy decoding ignores
  // them, as generate() does (with a warning).
  if (o.do_sample) {
    o.temperature = option<double>(c, defaults, defaults_file, "temperature", 1.0);
    MS_CHECK(std::isfinite(o.temperature) && o.temperature > 0, ErrorCode::kConfig,
             "{}: temperature must be a positive number, got {}", from("temperature"),
             o.temperature);
    const bool top_k_null = c.has("top_k")
                                ? c.at("top_k").is_null()
                                : defaults.contains("top_k") && defaults["top_k"].is_null();
    o.top_k = top_k_null ? 0 : option<int64_t>(c, defaults, defaults_file, "top_k", kDefaultTopK);
    MS_CHECK(o.top_k >= 0, ErrorCode::kConfig,
             "{}: top_k must be 0 (no limit) or a positive integer, got {}", from("top_k"),
             o.top_k);
    o.top_p = option<double>(c, defaults, defaults_file, "top_p", 1.0);
    MS_CHECK(o.top_p > 0 && o.top_p <= 1, ErrorCode::kConfig, "{}: top_p must be in (0, 1], got {}",
             from("top_p"), o.top_p);
  } else {
    for (const char* key : {"temperature", "top_k", "top_p"}) {
      if (defaults.contains(key) && !defaults[key].is_null())
        log::debug("{}: {} is not used: do_sample is false (greedy decoding)",
                   defaults_file.string(), key);
    }
  }
  reject_unsupported_defaults(defaults, defaults_file, o.do_sample);
  if (c.has("seed")) {
    const int64_t seed = c.get<int64_t>("seed");
    MS_CHECK(seed >= 0, ErrorCode::kConfig, "{}: seed must be a non-negative integer, got {}",
             where, seed);
    o.seed = static_cast<uint64_t>(seed);
  }
  o.has_generation_config = defaults_read.has_value();
  o.eos_ids = eos_token_ids(defaults, defaults_file);
  // generation_config.json's stop_strings (transformers' name) when no stop is set; its text
  // keeps the stop string, as generate() returns it.
  const bool stop_from_defaults =
      !c.has("stop") && defaults.contains("stop_strings") && !defaults["stop_strings"].is_null();
  o.keep_stop = stop_from_defaults;
  if (c.has("stop") || stop_from_defaults) {
    const std::string stop_where = stop_from_defaults ? defaults_file.string() : where;
    const char* stop_key = stop_from_defaults ? "stop_strings" : "stop";
    const Json stop = stop_from_defaults ? defaults["stop_strings"] : c.get<Json>("stop");
    const Json list = stop.is_array() ? stop : Json::array({stop});
    for (const Json& one : list) {
      MS_CHECK(one.is_string(), ErrorCode::kConfig,
               "{}: {} must be a string or a list of strings, got {}", stop_where, stop_key,
               stop.dump());
      MS_CHECK(!one.get<std::string>().empty(), ErrorCode::kConfig, "{}: a {} string is empty",
               stop_where, stop_key);
      o.stop.push_back(one.get<std::string>());
    }
  }
  return o;
}

// A row's logits hold NaN or infinity: the model's outputs are broken, as ms infer reports a
// non-finite output of any task (integrity, exit 7 once every line is written).
Error non_finite_logits() {
  return Error(ErrorCode::kIntegrity,
               fmt::format("the model's logits for this input hold {}: its weights are damaged "
                           "or overflow",
                           infer::kNonfiniteOutputWords),
               "check the model's weights (a finetune that diverged, a file of another dtype)");
}

// 64 random bits from the system (std::random_device gives 32 at a time).
uint64_t fresh_seed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

// One row's random stream: a 53-bit uniform in [0, 1) from a 64-bit Mersenne twister, written out
// here so that a seed gives the same sample with every standard library.
class RowRandom {
 public:
  explicit RowRandom(uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

 private:
  std::mt19937_64 engine_;
};

// The next token of one row from its logits: repetition penalty (CTRL's, as transformers applies
// it), the end-of-text bar, then argmax, or temperature, top-k, top-p and a draw.
int64_t choose_token(std::vector<float>& logits, const std::vector<int64_t>& seen, bool bar_eos,
                     const std::vector<int64_t>& eos_ids, const GenerationOptions& o,
                     RowRandom& random) {
  const auto vocab = static_cast<int64_t>(logits.size());
  if (o.repetition_penalty != 1.0) {
    const auto penalty = static_cast<float>(o.repetition_penalty);
    for (const int64_t id : std::set<int64_t>(seen.begin(), seen.end())) {
      if (id < 0 || id >= vocab) continue;
      float& l = logits[static_cast<std::size_t>(id)];
      l = l < 0 ? l * penalty : l / penalty;
    }
  }
  if (bar_eos) {
    for (const int64_t eos_id : eos_ids)
      if (eos_id >= 0 && eos_id < vocab)
        logits[static_cast<std::size_t>(eos_id)] = -std::numeric_limits<float>::infinity();
  }
  if (!o.do_sample) return std::max_element(logits.begin(), logits.end()) - logits.begin();

  // Candidates by descending logit (ties by id, so the order is deterministic).
  std::vector<int64_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const auto higher = [&](int64_t a, int64_t b) {
    const float la = logits[static_cast<std::size_t>(a)], lb = logits[static_cast<std::size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::size_t keep = order.size();
  if (o.top_k > 0 && static_cast<std::size_t>(o.top_k) < keep) {
    keep = static_cast<std::size_t>(o.top_k);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(),
                      higher);
    // Tokens tied with the k-th stay candidates, as transformers' top-k keeps every logit not
    // below the k-th largest (in id order, after the k).
    const float kth = logits[static_cast<std::size_t>(order[keep - 1])];
    const auto tied = std::stable_partition(
        order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(),
        [&](int64_t id) { return logits[static_cast<std::size_t>(id)] == kth; });
    std::sort(order.begin() + static_cast<std::ptrdiff_t>(keep), tied);
    keep = static_cast<std::size_t>(tied - order.begin());
  } else {
    std::sort(order.begin(), order.end(), higher);
  }
  // Softmax of logit / temperature over the candidates, in double.
  const double top = logits[static_cast<std::size_t>(order[0])] / o.temperature;
  std::vector<double> probs(keep);
  double total = 0;
  for (std::size_t i = 0; i < keep; ++i) {
    const double l = logits[static_cast<std::size_t>(order[i])];
    probs[i] = std::isinf(l) ? 0.0 : std::exp(l / o.temperature - top);
    total += probs[i];
  }
  // Nucleus: the fewest most likely tokens whose probability reaches top_p (at least one).
  if (o.top_p < 1.0) {
    double cumulative = 0;
    for (std::size_t i = 0; i < keep; ++i) {
      cumulative += probs[i] / total;
      if (cumulative >= o.top_p) {
        keep = i + 1;
        break;
      }
    }
    total = std::accumulate(probs.begin(), probs.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
  }
  double target = random.uniform() * total;
  for (std::size_t i = 0; i < keep; ++i) {
    target -= probs[i];
    if (target < 0 && probs[i] > 0) return order[i];
  }
  // Rounding left the draw past the end: the last candidate with any probability.
  for (std::size_t i = keep; i-- > 0;)
    if (probs[i] > 0) return order[i];
  return order[0];
}

class TextGenerationPipeline final : public infer::Pipeline {
 public:
  // `built`: a model already on `device` (a trainer's, evaluated at its current weights); null
  // loads the folder's.
  TextGenerationPipeline(const infer::ModelInfo& model, const std::string& device,
                         std::shared_ptr<models::Model> built = nullptr)
      : task_("text-generation"), device_(device), options_(read_options(model)) {
    const std::filesystem::path config_path = model.dir / "config.json";
    const auto hf = read_json_file(config_path);
    MS_CHECK(hf.has_value(), ErrorCode::kNotFound,
             "{} does not exist: a text-generation model needs its config.json",
             config_path.string());
    std::string type = model.model_type;
    if (type.empty() && hf->contains("model_type") && (*hf)["model_type"].is_string())
      type = (*hf)["model_type"].get<std::string>();
    model_ = built ? std::move(built)
                   : load_text_model(model, task_, type.empty() ? "gpt2" : type, device_);
    tokenizer_ =
        std::make_unique<text::CausalTokenizer>(text::CausalTokenizer::from_dir(model.dir));
    // Tokens added to the tokenizer without resizing the model's embeddings (tokenizer.add_tokens
    // and no resize_token_embeddings) run as they do with transformers until a prompt holds one:
    // that prompt fails (transformers raises an IndexError), the others run.
    // The tokenizer's own vocabulary past the embedding table is a folder of mismatched files.
    check_token_ids(tokenizer_->base_vocab_size(), model_->vocab_size(), model.dir);
    model_vocab_ = model_->vocab_size().value_or(static_cast<int64_t>(tokenizer_->vocab_size()));
    if (static_cast<int64_t>(tokenizer_->vocab_size()) > model_vocab_) {
      log::warn(
          "{}: the tokenizer gives token ids up to {}, past the model's embedding table "
          "(config.json's vocab_size {}): a prompt holding one fails (were tokens added "
          "without resizing the model?)",
          model.dir.string(), tokenizer_->vocab_size() - 1, model_vocab_);
    }
    // As the model read config.json (its checks, GPT2Config's alias names): one reading, not a
    // second one here that could differ from it.
    positions_ = model_->max_tokens().value_or(positions_);
    const Json structure = model_->structure();
    if (structure.is_object() && structure.contains("n_layer"))
      layers_ = structure["n_layer"].get<int64_t>();
    // The end-of-text ids, as transformers' generate() takes them: a generation_config.json's
    // alone (one without eos_token_id ends no text early), else config.json's, else the
    // tokenizer's (GPT2Config's default is its <|endoftext|>).
    if (options_.has_generation_config) {
      eos_ids_ = options_.eos_ids;
    } else {
      eos_ids_ = eos_token_ids(*hf, config_path);
      if (eos_ids_.empty() && tokenizer_->eos_id() >= 0) eos_ids_.push_back(tokenizer_->eos_id());
    }
    pad_id_ = tokenizer_->padding_id(model_vocab_);
    if (options_.do_sample && !options_.seed) {
      log::info(
          "text-generation samples without a seed: every input draws anew (--set seed=N "
          "makes the texts repeatable)");
    }
  }

  const std::string& task() const override { return task_; }
  std::string device() const override { return device_; }
  std::size_t cost(const infer::PipelineInput& in) const override { return in.text.size(); }

  std::vector<infer::PipelineResult> run(
      const std::vector<const infer::PipelineInput*>& batch) override {
    std::vector<infer::PipelineResult> results(batch.size());
    std::vector<std::vector<int64_t>> prompts;
    std::vector<std::string> given;  // each prompt as the input wrote it
    std::vector<std::size_t> ok;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      try {
        const infer::PipelineInput& in = *batch[i];
        const std::string text =
            in.text.empty() && !in.path.empty() ? read_regular_file(in.path) : in.text;
        // White space is a prompt like any other (generate() continues " " from its token).
        MS_CHECK(!text.empty(), ErrorCode::kUsage,
                 "input text is empty: text-generation needs a prompt");
        // A second text would be dropped without a word: the prompt is one text.
        MS_CHECK(!in.text_pair, ErrorCode::kUsage,
                 "text-generation takes one prompt per input, not a text pair");
        std::vector<int64_t> ids = tokenizer_->prompt_ids(text);
        for (const int64_t id : ids) {
          MS_CHECK(id < model_vocab_, ErrorCode::kUsage,
                   "the prompt holds token id {}, past the model's embedding table "
                   "(config.json's vocab_size {})",
                   id, model_vocab_);
        }
        // A prompt that fills the context still gets one token: the last one is never fed back.
        MS_CHECK(static_cast<int64_t>(ids.size()) <= positions_, ErrorCode::kUsage,
                 "the prompt is {} tokens long; the model's context holds {}", ids.size(),
                 positions_);
        prompts.push_back(std::move(ids));
        given.push_back(text);
        ok.push_back(i);
      } catch (const Error& e) {
        results[i].error = e;
      }
    }
    if (ok.empty()) return results;
    // Each prompt's text, decoded once: the stop-string check compares against it every step.
    std::vector<std::string> prompt_texts;
    for (const auto& p : prompts) prompt_texts.push_back(tokenizer_->decode(p));
    std::vector<std::optional<Error>> failed(prompts.size());
    const std::vector<std::vector<int64_t>> generated = generate(prompts, prompt_texts, failed);
    for (std::size_t k = 0; k < ok.size(); ++k) {
      if (failed[k]) {
        results[ok[k]].error = *failed[k];
        results[ok[k]].nonfinite_output = true;  // the job then ends with exit 7
        continue;
      }
      const std::string& prompt = prompt_texts[k];
      std::string continuation = decoded_continuation(prompts[k], generated[k], prompt);
      if (!options_.keep_stop) cut_at_stop(continuation);
      // The prompt as given, as transformers' pipeline returns it: its decoded ids would drop
      // what decoding skips (a "<|endoftext|>" written in it).
      results[ok[k]].output = {{"text", given[k] + continuation}};
    }
    return results;
  }

 private:
  // The text the new tokens add to the prompt's: decoded together with the prompt, so that a
  // character split across the boundary (byte-level BPE) or the spacing between the two comes out
  // as it does in one piece.
  std::string decoded_continuation(const std::vector<int64_t>& prompt,
                                   const std::vector<int64_t>& generated,
                                   const std::string& prompt_text) const {
    std::vector<int64_t> all = prompt;
    all.insert(all.end(), generated.begin(), generated.end());
    std::string text = tokenizer_->decode(all);
    if (text.compare(0, prompt_text.size(), prompt_text) == 0)
      return text.substr(prompt_text.size());
    return tokenizer_->decode(generated);
  }

  // Cuts `continuation` before the first stop string; returns whether there was one. (The
  // decoded text leaves special tokens out, as the pipeline of transformers decodes.)
  bool cut_at_stop(std::string& continuation) const {
    std::size_t first = std::string::npos;
    for (const std::string& s : options_.stop) first = std::min(first, continuation.find(s));
    if (first == std::string::npos) return false;
    continuation.erase(first);
    return true;
  }

  // Generates for every prompt at once: left padding, then one token per step through the cache,
  // until each row has produced an end-of-text token, a stop string or max_new_tokens, or the
  // context is full. Returns each row's new tokens (an end-of-text token included, as generate()
  // returns it: decoding leaves it out when it is special). A row whose logits are not numbers
  // gets its error in `failed` and stops; the others go on.
  std::vector<std::vector<int64_t>> generate(const std::vector<std::vector<int64_t>>& prompts,
                                             const std::vector<std::string>& prompt_texts,
                                             std::vector<std::optional<Error>>& failed) {
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
    // Each row may fill the model's positions with its own tokens; the batch's left padding
    // takes none, so a row's length does not depend on the prompts beside it. The last new token
    // is never fed back, so a row ends with one token more than the positions left, as
    // generate()'s do.
    std::vector<int64_t> room(prompts.size());
    int64_t steps = 0;
    for (std::size_t r = 0; r < prompts.size(); ++r) {
      room[r] = std::min<int64_t>(options_.max_new_tokens,
                                  positions_ - static_cast<int64_t>(prompts[r].size()) + 1);
      steps = std::max(steps, room[r]);
    }
    std::vector<std::vector<int64_t>> out(prompts.size());
    std::vector<bool> done(prompts.size(), false);
    std::vector<RowRandom> random;
    // With a seed every row draws the same stream (a prompt's text then depends neither on the
    // batch nor on the run); without one each row of each call draws anew (a seed drawn once
    // made a server give one fixed text per prompt).
    for (std::size_t r = 0; r < out.size(); ++r)
      random.emplace_back(options_.seed ? *options_.seed : fresh_seed());
    // Ids past the tokenizer's vocabulary (a model's padded embedding) cannot be written out.
    const int64_t choosable = static_cast<int64_t>(tokenizer_->vocab_size());
    models::TensorMap inputs = {{"input_ids", input}, {"attention_mask", attention}};
    for (int64_t step = 0; step < steps; ++step) {
      const models::TensorMap result = models::checked_forward(*model_, inputs, device_);
      at::Tensor last = result.at("logits").select(1, -1);
      if (last.size(-1) > choosable) last = last.narrow(-1, 0, choosable);
      const std::vector<int64_t> picked =
          next_tokens(last, prompts, out, done, random, step, failed);
      bool all_done = true;
      for (std::size_t r = 0; r < out.size(); ++r) {
        if (done[r]) continue;
        if (failed[r]) {
          done[r] = true;
          continue;
        }
        out[r].push_back(picked[r]);
        if (std::find(eos_ids_.begin(), eos_ids_.end(), picked[r]) != eos_ids_.end()) {
          done[r] = true;
          continue;
        }
        if (static_cast<int64_t>(out[r].size()) == room[r] ||
            (!options_.stop.empty() && reached_stop(prompts[r], out[r], prompt_texts[r]))) {
          done[r] = true;
          continue;
        }
        all_done = false;
      }
      if (all_done || step + 1 == steps) break;
      // Finished rows keep running (a batch moves together) on padding nobody reads.
      // Their padding is not attended, so it takes no position.
      std::vector<int64_t> feed(out.size()), attend(out.size());
      for (std::size_t r = 0; r < out.size(); ++r) {
        feed[r] = done[r] ? pad_id_ : picked[r];
        attend[r] = done[r] ? 0 : 1;
      }
      attention =
          at::cat({attention, at::tensor(attend, long_opts).view({rows, 1}).to(device_)}, 1);
      const at::Tensor fed = at::tensor(feed, long_opts).view({rows, 1}).to(device_);
      if (result.count("present.0.key") == 0) {
        // A model without a cache (a TorchScript export) reads the whole sequence every step.
        input = at::cat({input, fed}, 1);
        inputs = {{"input_ids", input}, {"attention_mask", attention}};
        continue;
      }
      inputs = {{"input_ids", fed}, {"attention_mask", attention}};
      for (int64_t l = 0; l < layers_; ++l) {
        const std::string n = std::to_string(l);
        inputs["past_key_values." + n + ".key"] = result.at("present." + n + ".key");
        inputs["past_key_values." + n + ".value"] = result.at("present." + n + ".value");
      }
    }
    return out;
  }

  // Each row's next token from the last position's logits [rows, vocab]. A row whose logits
  // hold NaN or infinity (argmax would pick an arbitrary token: the model is broken) gets its
  // error in `failed`.
  std::vector<int64_t> next_tokens(const at::Tensor& logits,
                                   const std::vector<std::vector<int64_t>>& prompts,
                                   const std::vector<std::vector<int64_t>>& generated,
                                   const std::vector<bool>& done, std::vector<RowRandom>& random,
                                   int64_t step, std::vector<std::optional<Error>>& failed) const {
    const std::size_t rows = generated.size();
    std::vector<int64_t> picked(rows, pad_id_);
    const bool bar_eos = step < options_.min_new_tokens;
    if (options_.plain_greedy() && !bar_eos) {
      const at::Tensor finite = logits.isfinite().all(-1).cpu().contiguous();
      const at::Tensor next = at::argmax(logits, -1).cpu().contiguous();
      std::copy_n(next.data_ptr<int64_t>(), rows, picked.begin());
      for (std::size_t r = 0; r < rows; ++r)
        if (!done[r] && !finite.data_ptr<bool>()[r]) failed[r] = non_finite_logits();
      return picked;
    }
    const at::Tensor host = logits.to(at::kCPU, at::kFloat).contiguous();
    const auto vocab = static_cast<std::size_t>(host.size(1));
    const float* data = host.data_ptr<float>();
    std::vector<float> row(vocab);
    std::vector<int64_t> seen;
    for (std::size_t r = 0; r < rows; ++r) {
      if (done[r]) continue;
      std::copy_n(data + r * vocab, vocab, row.begin());
      if (!std::all_of(row.begin(), row.end(), [](float l) { return std::isfinite(l); })) {
        failed[r] = non_finite_logits();
        continue;
      }
      seen = prompts[r];
      seen.insert(seen.end(), generated[r].begin(), generated[r].end());
      picked[r] = choose_token(row, seen, bar_eos, eos_ids_, options_, random[r]);
    }
    return picked;
  }

  // Whether the row's continuation so far holds a stop string. generation_config.json's
  // stop_strings also match one that begins in the prompt and ends in the new text, as
  // transformers' criterion scans the whole sequence.
  bool reached_stop(const std::vector<int64_t>& prompt, const std::vector<int64_t>& generated,
                    const std::string& prompt_text) const {
    std::string continuation = decoded_continuation(prompt, generated, prompt_text);
    if (!options_.keep_stop) return cut_at_stop(continuation);
    for (const std::string& s : options_.stop) {
      const std::size_t reach = std::min(prompt_text.size(), s.size() - 1);
      if ((prompt_text.substr(prompt_text.size() - reach) + continuation).find(s) !=
          std::string::npos)
        return true;
    }
    return false;
  }

  std::string task_, device_;
  GenerationOptions options_;
  std::shared_ptr<models::Model> model_;
  std::unique_ptr<text::CausalTokenizer> tokenizer_;
  int64_t positions_ = 1024, layers_ = 12;
  int64_t model_vocab_ = 0;  // the model's embedding rows: a prompt's ids must be below
  std::vector<int64_t> eos_ids_;
  int64_t pad_id_ = 0;
};

}  // namespace

std::unique_ptr<infer::Pipeline> make_text_generation_pipeline(const infer::ModelInfo& info,
                                                               std::shared_ptr<models::Model> model,
                                                               const std::string& device) {
  return std::make_unique<TextGenerationPipeline>(info, device, std::move(model));
}

void register_generation_pipelines(Registry<PipelineBuilder>& registry) {
  registry.add(
      "text-generation",
      [](const infer::ModelInfo& m, const std::string& d) -> std::unique_ptr<infer::Pipeline> {
        return std::make_unique<TextGenerationPipeline>(m, d);
      },
      "GPT-2-family causal decoder with the key/value cache: greedy or sampled continuation "
      "(max_new_tokens, min_new_tokens, do_sample, temperature, top_k, top_p, "
      "repetition_penalty, seed, stop)",
      "text-generation");
}

}  // namespace ms::pipelines
