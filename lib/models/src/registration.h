// The model families' registration functions, called once by model_registry().
#pragma once

#include "ms/models/model.h"

namespace ms::models {

/// BERT-family task models: sentence-embedding, text-classification, sentence-similarity,
/// token-classification, named-entity-recognition, word-segmentation, fill-mask.
void register_bert_models(Registry<ModelBuilder>& registry);

/// GPT-2-family causal decoders: text-generation.
void register_gpt_models(Registry<ModelBuilder>& registry);

/// Image classifiers: the ResNet family and the small CNN.
void register_vision_models(Registry<ModelBuilder>& registry);

}  // namespace ms::models
