// sentence-embedding: the BERT-family encoder at the root (a bare BertModel checkpoint's names)
// followed by the sentence-transformers modules that modules.json lists: Pooling (modes
// concatenated in sentence-transformers' order), Dense (linear + activation), Normalize.
#pragma once

#include <memory>

#include "ms/models/model.h"

namespace ms::models {

/// Reads `spec.dir`/modules.json and the module folders it names (1_Pooling/config.json,
/// 2_Dense/config.json; Dense weights load through complete_checkpoint). Without modules.json:
/// mean pooling, L2-normalised (as ModelScope's sentence-embedding does). `model.pooling` (one
/// mode) and `model.normalize` in spec.config override the files. Throws ms::Error(kConfig)
/// naming the file and key for unknown module types, pooling modes or activations, and for sizes
/// that do not chain. Dense modules are named after their folder ("2_Dense.linear.weight").
std::shared_ptr<Model> make_sentence_embedding(const ModelSpec& spec);

}  // namespace ms::models
