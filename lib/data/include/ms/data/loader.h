// Batches from a dataset split: shuffling with a seed, sharding, drop_last, worker threads that
// decode and transform images ahead of the consumer (bounded prefetch).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ms/core/export.h"
#include "ms/data/dataset.h"
#include "ms/data/image.h"

namespace ms::data {

/// How to batch a split.
struct LoaderOptions {
  std::size_t batch_size = 32;
  bool shuffle = false;
  std::uint64_t seed = 0;  ///< same seed, same order (on every machine: the shuffle is our own)
  bool drop_last = false;  ///< drop a last batch smaller than batch_size
  int workers = 0;         ///< decoding threads; 0 = decode in the calling thread
  int prefetch = 2;        ///< batches each worker may run ahead of the consumer
  std::size_t shard_index = 0;  ///< this machine's shard ...
  std::size_t num_shards = 1;   ///< ... of this many: rows i, i + n, ... of the (shuffled) order
  bool skip_bad = false;  ///< drop undecodable images from their batch (counted) instead of failing
  std::string image_column;  ///< default: "image", else the first image column
  ImageTransform transform;  ///< resize + normalise for images
};

/// One batch. Images (when the split has an image column) are float, batch x C x H x W; labels
/// come from a "label" int column (-1 for a missing label).
struct Batch {
  std::vector<std::size_t> rows;  ///< row indices into the split
  std::vector<float> images;
  int channels = 0, height = 0, width = 0;
  std::vector<std::int64_t> labels;
  std::size_t skipped_bad = 0;

  std::size_t size() const { return rows.size(); }
};

/// Iterates batches of one split, which must outlive the loader. Not copyable; start(epoch)
/// begins a pass (the constructor starts epoch 0) and next() walks it in order.
class MS_API DataLoader {
 public:
  DataLoader(const Split& split, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Number of batches one epoch yields.
  std::size_t num_batches() const;

  /// The row order of epoch `epoch` for this shard (shuffled with seed + epoch when shuffling).
  std::vector<std::size_t> order(std::uint64_t epoch = 0) const;

  /// Starts epoch `epoch` (stops any epoch in flight).
  void start(std::uint64_t epoch = 0);

  /// The next batch in order, or nullopt at the end of the epoch. A worker's error (a corrupt
  /// image without skip_bad) is rethrown here.
  std::optional<Batch> next();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Writes float32 data of `shape` as a NumPy .npy file (atomically), for checks against Python.
MS_API void write_npy(const std::string& path, const std::vector<std::size_t>& shape,
                      const std::vector<float>& data);

/// Deterministic Fisher-Yates permutation of 0..n-1 from a seed (SplitMix64 generator).
MS_API std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed);

}  // namespace ms::data
