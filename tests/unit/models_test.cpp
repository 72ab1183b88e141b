// Trainable models from the MODELS registry: Hugging Face names, train/eval with dropout, losses
// and gradients, fast paths that follow the parameters, checkpoints under any prefix.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "catch.h"
#include "ms/core/error.h"
#include "ms/models/bert.h"
#include "ms/models/model.h"
#include "ms/models/torchscript.h"
#include "ms/pipelines/cuda_graphs.h"
#include "ms/tensor/collate.h"

namespace {

using ms::models::Model;
using ms::models::ModelSpec;
using ms::models::TensorMap;

// A temporary model folder holding only config.json (what the BERT builders read).
struct TinyBertDir {
  explicit TinyBertDir(const std::string& model_type, double dropout = 0.1) {
    path = std::filesystem::temp_directory_path() /
           ("ms-models-test-" + model_type + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    std::ofstream(path / "config.json")
        << "{\"model_type\": \"" << model_type
        << "\", \"vocab_size\": 50, \"hidden_size\": 32, \"num_hidden_layers\": 2,"
           " \"num_attention_heads\": 2, \"intermediate_size\": 48,"
           " \"max_position_embeddings\": 40, \"hidden_dropout_prob\": "
        << dropout << ", \"attention_probs_dropout_prob\": " << dropout
        << ", \"id2label\": {\"0\": \"neg\", \"1\": \"pos\", \"2\": \"mixed\"}}";
  }
  ~TinyBertDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path path;
};

ModelSpec spec_for(const std::string& task, const std::string& type,
                   const std::filesystem::path& dir) {
  ModelSpec spec;
  spec.task = task;
  spec.type = type;
  spec.dir = dir;
  return spec;
}

TensorMap text_batch() {
  at::manual_seed(3);
  TensorMap batch;
  batch["input_ids"] = at::randint(1, 50, {3, 7}, at::kLong);
  at::Tensor mask = at::ones({3, 7}, at::kLong);
  mask[1].narrow(0, 4, 3).fill_(0);
  batch["attention_mask"] = mask;
  batch["token_type_ids"] = at::zeros({3, 7}, at::kLong);
  return batch;
}

std::set<std::string> names(const Model& model) {
  std::set<std::string> out;
  for (const auto& [name, tensor] : model.state_dict()) out.insert(name);
  return out;
}

}  // namespace

TEST_CASE("the MODELS registry is keyed by task and type", "[models]") {
  const auto& registry = ms::models::model_registry();
  CHECK(registry.contains("bert", "text-classification"));
  CHECK(registry.contains("structbert", "token-classification"));
  CHECK(registry.contains("roberta", "fill-mask"));
  CHECK(registry.contains("resnet50", "image-classification"));
  CHECK_FALSE(registry.contains("resnet50", "text-classification"));
  TinyBertDir dir("bert");
  try {
    ms::models::build_model(spec_for("text-classification", "BRET", dir.path));
    FAIL("an unknown type was built");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kConfig);  // the type comes from the folder's config
    CHECK(std::string(e.what()).find("model type 'bret'") != std::string::npos);
    CHECK(e.hint().find("bert") != std::string::npos);
  }
}

TEST_CASE("BERT task models carry Hugging Face parameter names", "[models]") {
  TinyBertDir bert("bert");
  auto cls = ms::models::build_model(spec_for("text-classification", "bert", bert.path));
  const auto cls_names = names(*cls);
  CHECK(cls_names.count("bert.embeddings.word_embeddings.weight") == 1);
  CHECK(cls_names.count("bert.encoder.layer.1.attention.self.query.weight") == 1);
  CHECK(cls_names.count("bert.pooler.dense.weight") == 1);
  CHECK(cls_names.count("classifier.weight") == 1);
  CHECK(cls->num_labels() == 3);  // config.json's id2label

  TinyBertDir roberta("roberta");
  auto rob = ms::models::build_model(spec_for("text-classification", "roberta", roberta.path));
  const auto rob_names = names(*rob);
  CHECK(rob_names.count("roberta.embeddings.word_embeddings.weight") == 1);
  CHECK(rob_names.count("classifier.dense.weight") == 1);
  CHECK(rob_names.count("classifier.out_proj.weight") == 1);
  CHECK(rob_names.count("roberta.pooler.dense.weight") == 0);

  auto mlm = ms::models::build_model(spec_for("fill-mask", "bert", bert.path));
  const auto mlm_names = names(*mlm);
  CHECK(mlm_names.count("cls.predictions.transform.dense.weight") == 1);
  CHECK(mlm_names.count("cls.predictions.transform.LayerNorm.weight") == 1);
  CHECK(mlm_names.count("cls.predictions.bias") == 1);
  // Tied to the word embeddings, as Hugging Face ties them.
  CHECK(mlm_names.count("cls.predictions.decoder.weight") == 0);
}

TEST_CASE("dropout acts in train mode only; eval is deterministic", "[models]") {
  TinyBertDir dir("bert", 0.5);
  auto model = ms::models::build_model(spec_for("text-classification", "bert", dir.path));
  const TensorMap batch = text_batch();
  CHECK(model->is_training());  // built for training, as torch::nn modules are
  at::Tensor a, b;
  {
    c10::NoGradGuard no_grad;
    a = model->forward(batch).at("logits");
    b = model->forward(batch).at("logits");
  }
  CHECK_FALSE(at::allclose(a, b));
  model->eval();
  CHECK_FALSE(model->is_training());
  c10::InferenceMode guard;
  CHECK(at::equal(model->forward(batch).at("logits"), model->forward(batch).at("logits")));
}

TEST_CASE("a loss and gradients reach every parameter", "[models]") {
  TinyBertDir dir("bert");
  for (const char* task : {"text-classification", "token-classification", "fill-mask"}) {
    INFO(task);
    auto model = ms::models::build_model(spec_for(task, "bert", dir.path));
    TensorMap batch = text_batch();
    if (std::string(task) == "text-classification") {
      batch["labels"] = at::tensor({0, 2, 1}, at::kLong);
    } else {
      batch["labels"] = at::randint(0, 3, {3, 7}, at::kLong);
      batch["labels"][1].narrow(0, 4, 3).fill_(-100);  // padding is ignored
    }
    const at::Tensor loss = model->forward(batch).at("loss");
    REQUIRE(loss.dim() == 0);
    CHECK(std::isfinite(loss.item<double>()));
    loss.backward();
    for (const auto& p : model->module().named_parameters()) {
      INFO(p.key());
      // The pooler feeds only the sequence classifier.
      if (p.key().find("pooler") != std::string::npos &&
          std::string(task) != "text-classification") {
        continue;
      }
      REQUIRE(p.value().grad().defined());
      CHECK(p.value().grad().abs().sum().item<double>() > 0);
    }
  }
}

TEST_CASE("the fused inference path follows the parameters after an update", "[models]") {
  TinyBertDir dir("bert");
  auto model = ms::models::build_model(spec_for("text-classification", "bert", dir.path));
  model->eval();
  const TensorMap batch = text_batch();
  auto fast = [&] {
    c10::InferenceMode guard;  // eval without gradients: fused QKV and the CPU kernels
    return model->forward(batch).at("logits");
  };
  auto reference = [&] {
    // Gradients on: the three Linear modules, LibTorch's ops.
    return model->forward(batch).at("logits").detach();
  };
  const at::Tensor before = fast();
  CHECK(at::allclose(before, reference(), 1e-5, 1e-5));
  // An optimizer step: parameters change in place.
  {
    c10::NoGradGuard no_grad;
    for (const auto& p : model->module().named_parameters()) {
      if (p.key().find("attention.self") != std::string::npos) p.value().mul_(1.5).add_(0.01);
    }
  }
  const at::Tensor after = fast();
  CHECK_FALSE(at::allclose(before, after, 1e-5, 1e-5));
  CHECK(at::allclose(after, reference(), 1e-5, 1e-5));
}

TEST_CASE("checkpoints load under any encoder prefix and round-trip", "[models]") {
  TinyBertDir dir("bert");
  auto source = ms::models::build_model(spec_for("token-classification", "bert", dir.path));
  source->eval();
  // Saved as a wrapper would: "model.bert." instead of "bert.".
  TensorMap checkpoint;
  for (const auto& [name, tensor] : source->state_dict()) {
    const bool encoder = name.rfind("bert.", 0) == 0;
    checkpoint[encoder ? "model." + name : name] = tensor.clone();
  }
  checkpoint["cls.seq_relationship.weight"] = at::zeros({2, 32});  // another head's: dropped
  ModelSpec spec = spec_for("token-classification", "bert", dir.path);
  spec.checkpoint = &checkpoint;
  auto copy = ms::models::build_model(spec);
  copy->load_state_dict(checkpoint, "checkpoint");
  copy->eval();
  c10::InferenceMode guard;
  CHECK(at::equal(source->forward(text_batch()).at("logits"),
                  copy->forward(text_batch()).at("logits")));

  // A head the checkpoint lacks is an error, unless a fresh head is asked for.
  TensorMap encoder_only;
  for (const auto& [name, tensor] : checkpoint)
    if (name.rfind("model.bert.", 0) == 0) encoder_only[name] = tensor;
  auto fresh = ms::models::build_model(spec_for("token-classification", "bert", dir.path));
  try {
    fresh->load_state_dict(encoder_only, "encoder.safetensors");
    FAIL("a checkpoint without the head loaded");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kConfig);
    CHECK(std::string(e.what()).find("classifier.weight") != std::string::npos);
  }
  fresh->load_state_dict(encoder_only, "encoder.safetensors", /*allow_fresh_head=*/true);
}

TEST_CASE("a new label count replaces the checkpoint's head only when asked", "[models]") {
  TinyBertDir dir("bert");
  auto source = ms::models::build_model(spec_for("token-classification", "bert", dir.path));
  const TensorMap checkpoint = source->state_dict();  // a 3-label head (config.json's id2label)
  ModelSpec spec = spec_for("token-classification", "bert", dir.path);
  spec.checkpoint = &checkpoint;
  spec.num_labels = 5;
  auto resized = ms::models::build_model(spec);
  CHECK(resized->num_labels() == 5);
  try {
    resized->load_state_dict(checkpoint, "three-labels.safetensors");
    FAIL("a 3-label head loaded into a 5-label model");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kConfig);
    CHECK(std::string(e.what()).find("classifier.weight") != std::string::npos);
  }
  resized->load_state_dict(checkpoint, "three-labels.safetensors", /*allow_fresh_head=*/true);
  // The encoder came from the checkpoint, the head kept its fresh 5-label initialisation.
  CHECK(at::equal(resized->state_dict().at("bert.embeddings.word_embeddings.weight"),
                  checkpoint.at("bert.embeddings.word_embeddings.weight")));
  CHECK(resized->state_dict().at("classifier.weight").size(0) == 5);
}

TEST_CASE("a RoBERTa classifier checkpoint with a pooler loads", "[models]") {
  TinyBertDir dir("roberta");
  auto source = ms::models::build_model(spec_for("text-classification", "roberta", dir.path));
  TensorMap checkpoint = source->state_dict();
  checkpoint["roberta.pooler.dense.weight"] = at::randn({32, 32});
  checkpoint["roberta.pooler.dense.bias"] = at::randn({32});
  ModelSpec spec = spec_for("text-classification", "roberta", dir.path);
  spec.checkpoint = &checkpoint;
  auto copy = ms::models::build_model(spec);
  copy->load_state_dict(checkpoint, "roberta.safetensors");
  CHECK(names(*copy).count("roberta.pooler.dense.weight") == 1);
  CHECK(names(*copy).count("classifier.out_proj.weight") == 1);
}

TEST_CASE("text models take max_tokens tokens: RoBERTa's positions start after the pad id",
          "[models]") {
  // roberta-base: 514 positions, pad_token_id 1, so 512 tokens (transformers' model_max_length).
  const auto roberta_base = ms::models::BertConfig::from_json(
      {{"model_type", "roberta"}, {"max_position_embeddings", 514}, {"pad_token_id", 1}},
      "config.json");
  CHECK(roberta_base.max_tokens() == 512);
  // Without model_type in config.json, configuration.json's type decides (pad_token_id 1).
  CHECK(ms::models::BertConfig::from_json({{"max_position_embeddings", 514}}, "config.json",
                                          "roberta")
            .max_tokens() == 512);
  // A decoder (causal attention) is refused, not run as an encoder; a RoBERTa without a pad id
  // has no positions.
  CHECK_THROWS_AS(ms::models::BertConfig::from_json({{"is_decoder", true}}, "config.json"),
                  ms::Error);
  CHECK_THROWS_AS(ms::models::BertConfig::from_json(
                      {{"model_type", "roberta"}, {"pad_token_id", nullptr}}, "config.json"),
                  ms::Error);
  for (const std::string type : {"bert", "roberta"}) {
    // 40 positions, no pad_token_id: transformers' defaults, 0 for BERT and 1 for RoBERTa (so
    // 40 - 2 positions there).
    TinyBertDir dir(type);
    const int64_t limit = type == "roberta" ? 38 : 40;
    for (const char* task : {"text-classification", "fill-mask", "sentence-embedding"}) {
      INFO(type << " " << task);
      auto model = ms::models::build_model(spec_for(task, type, dir.path));
      model->eval();
      REQUIRE(model->max_tokens() == limit);
      c10::InferenceMode guard;
      for (const int64_t tokens : {limit, limit + 1}) {
        TensorMap batch;
        batch["input_ids"] = at::randint(1, 50, {2, tokens}, at::kLong);
        batch["attention_mask"] = at::ones({2, tokens}, at::kLong);
        batch["token_type_ids"] = at::zeros({2, tokens}, at::kLong);
        if (tokens == limit) {
          CHECK_NOTHROW(model->forward(batch));
        } else {
          CHECK_THROWS_AS(model->forward(batch), ms::Error);
        }
      }
    }
  }
}

TEST_CASE("the fused inference path follows a checkpoint load", "[models]") {
  TinyBertDir dir("bert");
  auto model = ms::models::build_model(spec_for("text-classification", "bert", dir.path));
  model->eval();
  auto fast = [&] {
    c10::InferenceMode guard;
    return model->forward(text_batch()).at("logits");
  };
  const at::Tensor before = fast();
  TensorMap other =
      ms::models::build_model(spec_for("text-classification", "bert", dir.path))->state_dict();
  model->load_state_dict(other, "other.safetensors");
  const at::Tensor after = fast();
  CHECK_FALSE(at::allclose(before, after, 1e-5, 1e-5));
  CHECK(at::allclose(after, model->forward(text_batch()).at("logits").detach(), 1e-5, 1e-5));
}

TEST_CASE("image classifiers: torchvision names, BatchNorm modes, a loss", "[models]") {
  ModelSpec spec;
  spec.task = "image-classification";
  spec.type = "resnet18";
  spec.num_labels = 4;
  auto model = ms::models::build_model(spec);
  const auto all = names(*model);
  CHECK(all.count("conv1.weight") == 1);
  CHECK(all.count("layer1.0.bn1.running_mean") == 1);
  CHECK(all.count("layer2.0.downsample.0.weight") == 1);
  CHECK(all.count("fc.weight") == 1);
  CHECK(model->num_labels() == 4);
  at::manual_seed(5);
  TensorMap batch{{"pixel_values", at::randn({2, 3, 32, 32})}, {"labels", at::tensor({1, 3})}};
  const at::Tensor loss = model->forward(batch).at("loss");
  loss.backward();
  CHECK(model->module().named_parameters()["fc.weight"].grad().defined());
  model->eval();
  c10::InferenceMode guard;
  CHECK(model->forward(batch).at("logits").sizes() == at::IntArrayRef({2, 4}));
}

TEST_CASE("a TorchScript model failing inside the interpreter is a usage error naming the file",
          "[models][torchscript]") {
  // The interpreter rethrows an operation's c10::Error as std::runtime_error with the TorchScript
  // traceback: it must still become ms::Error (exit 2), not escape as an internal error.
  const std::filesystem::path archive =
      std::filesystem::path(MS_TEST_DATA_DIR) / "infer" / "vision" / "torchscript" / "model.pt";
  ms::models::ScriptModule script(archive, "cpu");
  try {
    script.forward(at::rand({2}));  // not an image batch: the first convolution fails
    FAIL("a 1-D input ran through an image classifier");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kUsage);
    const std::string message = e.what();
    CHECK(message.find(archive.string()) != std::string::npos);
    CHECK(message.find('\n') == std::string::npos);
    CHECK(message.find("Error") != std::string::npos);
  }
  try {
    ms::models::ScriptModule not_an_archive(archive.parent_path() / "configuration.json", "cpu");
    FAIL("a JSON file loaded as a TorchScript archive");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kIntegrity);
  }
}

TEST_CASE("CUDA graph shapes: few of them, never past the model's positions", "[models][graphs]") {
  using ms::pipelines::graph_shape;
  using Shape = std::pair<int64_t, int64_t>;
  CHECK(graph_shape(3, 7, 40) == Shape{4, 8});
  CHECK(graph_shape(1, 1, 512) == Shape{1, 8});
  CHECK(graph_shape(256, 24, 512) == Shape{256, 24});
  CHECK(graph_shape(100, 65, 512) == Shape{128, 80});
  CHECK(graph_shape(5, 130, 512) == Shape{8, 160});
  CHECK(graph_shape(5, 300, 512) == Shape{8, 320});
  CHECK(graph_shape(2, 37, 39) == Shape{2, 39});  // 40 would pass the model's 39 positions
  CHECK(graph_shape(2, 45, 40) == Shape{2, 45});  // too long already: the model refuses it
}

TEST_CASE("collating to a larger shape pads with masked tokens and rows attending one token",
          "[models][graphs]") {
  const std::vector<int64_t> a = {5, 6, 7}, b = {8, 9};
  const std::vector<int64_t> a_types(3, 0), b_types = {0, 1};
  const TensorMap batch = ms::tensor::collate_tokens({{&a, &a_types}, {&b, &b_types}}, 1, "cpu",
                                                     /*padded_rows=*/4, /*padded_tokens=*/5);
  auto row = [&](const char* name, int64_t i) {
    const at::Tensor r = batch.at(name)[i].contiguous();
    return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
  };
  CHECK(row("input_ids", 0) == std::vector<int64_t>{5, 6, 7, 1, 1});
  CHECK(row("input_ids", 1) == std::vector<int64_t>{8, 9, 1, 1, 1});
  CHECK(row("input_ids", 3) == std::vector<int64_t>{1, 1, 1, 1, 1});
  CHECK(row("token_type_ids", 1) == std::vector<int64_t>{0, 1, 0, 0, 0});
  CHECK(row("attention_mask", 0) == std::vector<int64_t>{1, 1, 1, 0, 0});
  CHECK(row("attention_mask", 2) == std::vector<int64_t>{1, 0, 0, 0, 0});
  // Smaller targets change nothing: the batch keeps its own shape.
  CHECK(ms::tensor::collate_tokens({{&a, &a_types}}, 0, "cpu", 0, 2).at("input_ids").sizes() ==
        at::IntArrayRef({1, 3}));
}

TEST_CASE("padding a batch to a CUDA graph's shape changes no real row's output",
          "[models][graphs]") {
  // What MS_CUDA_GRAPHS=1 relies on, checked here on the CPU: every pooling reads the attention
  // mask, the classifier reads the first token, and RoBERTa's positions skip the pad id.
  at::manual_seed(5);
  std::vector<std::vector<int64_t>> ids, types;
  for (const int64_t length : {11, 9, 4}) {
    const at::Tensor r = at::randint(2, 50, {length}, at::kLong);
    ids.emplace_back(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + length);
    types.emplace_back(static_cast<std::size_t>(length), 0);
  }
  std::vector<ms::tensor::TokenRow> rows;
  for (std::size_t i = 0; i < ids.size(); ++i) rows.push_back({&ids[i], &types[i]});
  const auto [padded_rows, padded_tokens] = ms::pipelines::graph_shape(3, 11, 40);
  REQUIRE(padded_rows == 4);
  REQUIRE(padded_tokens == 16);
  const TensorMap natural = ms::tensor::collate_tokens(rows, 1, "cpu");
  const TensorMap padded = ms::tensor::collate_tokens(rows, 1, "cpu", padded_rows, padded_tokens);
  for (const std::string type : {"bert", "roberta"}) {
    TinyBertDir dir(type, 0.0);
    for (const char* pooling :
         {"mean", "cls", "max", "mean_sqrt_len", "weightedmean", "lasttoken"}) {
      std::filesystem::create_directories(dir.path / "1_Pooling");
      std::ofstream(dir.path / "modules.json")
          << R"([{"type": "sentence_transformers.models.Transformer", "path": ""},
                 {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"},
                 {"type": "sentence_transformers.models.Normalize", "path": "2_Normalize"}])";
      std::ofstream(dir.path / "1_Pooling" / "config.json")
          << "{\"pooling_mode\": \"" << pooling << "\"}";
      for (const char* task : {"sentence-embedding", "text-classification"}) {
        if (std::string(task) == "text-classification" && std::string(pooling) != "mean") continue;
        INFO(type << " " << task << " " << pooling);
        auto model = ms::models::build_model(spec_for(task, type, dir.path));
        model->eval();
        c10::InferenceMode guard;
        const char* output =
            std::string(task) == "sentence-embedding" ? "sentence_embedding" : "logits";
        const at::Tensor expected = model->forward(natural).at(output);
        const at::Tensor got = model->forward(padded).at(output);
        REQUIRE(got.size(0) == 4);
        CHECK(at::allclose(got.narrow(0, 0, 3), expected, 1e-5, 1e-6));
      }
    }
  }
}
