// Pipelines registered per task (the torch layer's side of ms::infer::PipelineFactory).
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ms/config/registry.h"
#include "ms/infer/pipeline.h"
#include "ms/models/model.h"

namespace ms::pipelines {

/// Builds a pipeline for a model folder on a resolved torch device ("cpu", "cuda:0").
using PipelineBuilder = std::function<std::unique_ptr<infer::Pipeline>(
    const infer::ModelInfo& model, const std::string& device)>;

/// Adds the text pipelines (sentence-embedding, ...) to `registry`, grouped by task.
void register_text_pipelines(Registry<PipelineBuilder>& registry);

/// Adds text-generation (GPT-2-family causal decoders).
void register_generation_pipelines(Registry<PipelineBuilder>& registry);
/// The text-generation pipeline over `model`, a model already built on `device` (the one a trainer
/// evaluates, at its current weights), with the tokenizer and generation options of `info` (its
/// configuration, --set applied, over generation_config.json): what text-gen-metric's evaluation
/// generates with, exactly as `ms infer` would.
std::unique_ptr<infer::Pipeline> make_text_generation_pipeline(const infer::ModelInfo& info,
                                                               std::shared_ptr<models::Model> model,
                                                               const std::string& device);

/// Adds image-classification (ResNet family, small CNN).
void register_image_pipelines(Registry<PipelineBuilder>& registry);

/// The spec of the model a pipeline wraps: the model folder and its configuration, for `task` and
/// model `type` (configuration.json's model.type, or the one config.json names).
models::ModelSpec model_spec(const infer::ModelInfo& model, const std::string& task,
                             const std::string& type);

/// The model a text pipeline runs: for model `type` torchscript, the archive `ms export --format
/// torchscript` wrote (configuration.json's model.file, .inputs, .outputs, .num_labels,
/// and .max_tokens say how to run it); else the model family `type` names, with its
/// weights.
std::shared_ptr<models::Model> load_text_model(const infer::ModelInfo& model,
                                               const std::string& task, const std::string& type,
                                               const std::string& device);

/// Checks that a tokenizer whose ids run from 0 to `tokenizer_ids` - 1 (its vocabulary file
/// `vocabulary`) fits the model's embedding table of `model_vocab` rows (nullopt: no table to
/// check); ms::Error(kConfig) naming both, where LibTorch would fail on the first such token.
void check_token_ids(std::size_t tokenizer_ids, std::optional<int64_t> model_vocab,
                     const std::filesystem::path& vocabulary);

/// The compute type of `ms infer --dtype` ("fp32", "fp16", "bf16") on `device`, for weights now
/// of type `current`; ms::Error(kUsage) for an unknown name, fp16 off a GPU, or weights cast
/// already to another type (casting them back would not give that type's results).
at::ScalarType compute_dtype(const std::string& dtype, const std::string& device,
                             at::ScalarType current);

/// Sets the calling thread's intra-op thread count (OpenMP's per-thread setting) without touching
/// other threads.
void set_thread_intra_op_threads(int threads);

/// What Pipeline::prepare_worker does for a thread that runs batches beside others on `device`:
/// its intra-op thread count, and on a GPU a CUDA stream of its own, so that one worker's copy
/// back to the host waits for its own kernels only, and the workers' kernels may overlap.
void prepare_worker_thread(int threads, const std::string& device);

/// Whether set_thread_intra_op_threads works here (LibTorch uses OpenMP).
bool per_thread_intra_op_threads();

/// The factory the torch layer hands out (TorchLayer::pipelines).
infer::PipelineFactory& pipeline_factory();

/// The registered pipelines, grouped by task (`ms list pipelines`).
const Registry<PipelineBuilder>& pipeline_registry();

}  // namespace ms::pipelines
