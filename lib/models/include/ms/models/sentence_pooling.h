// sentence-transformers' Pooling module as 1_Pooling/config.json describes it: one table of its
// flags, for the model that reads the file (sentence_embedding.cpp) and the export that rewrites
// it (lib/export). Torch-free.
#pragma once

#include <vector>

namespace ms::models {

/// One pooling mode: the name `model.pooling` takes for it and its flag in 1_Pooling/config.json.
struct PoolingFlag {
  const char* mode;
  const char* key;
};

/// The flags in the order sentence-transformers' Pooling concatenates the modes.
const std::vector<PoolingFlag>& sentence_pooling_flags();

}  // namespace ms::models
