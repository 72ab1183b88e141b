// Batches from a dataset split: shuffling with a seed, sharding, drop_last, worker threads that
// decode and transform images ahead of the consumer (bounded prefetch); a timed pass over a split
// (`ms dataset iter`) and the one `--shard i/n` parser.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
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

/// What benchmark_loader() does besides iterating.
struct BenchmarkOptions {
  int epochs = 1;          ///< passes over the split
  std::string save_batch;  ///< when set: write the first batch's images here (.npy, N x C x H x W)
};

/// What a timed pass of the loader over a split saw (`ms dataset iter`).
struct LoaderBenchmark {
  std::size_t batches = 0;
  std::size_t samples = 0;
  std::size_t skipped_bad = 0;  ///< undecodable images dropped from their batch (skip_bad)
  double seconds = 0;           ///< wall time of all epochs, decoding included
  double samples_per_second = 0;
  /// Sum of every 4099th image value of every batch: equal for any worker count, so that runs
  /// can be compared for equal content without comparing all pixels.
  double checksum = 0;
  std::vector<std::size_t> order;  ///< the first 16 rows of epoch 0's order
  Batch first_batch;  ///< the first batch without its image data (rows, labels and shape stay)
};

/// Iterates `split` with a DataLoader of `loader_options` for `options.epochs` epochs, timing it.
/// Loader errors (a corrupt image without skip_bad) propagate; --save-batch on a split without an
/// image column is ms::Error(kUsage).
MS_API LoaderBenchmark benchmark_loader(const Split& split, const LoaderOptions& loader_options,
                                        const BenchmarkOptions& options = {});

/// Parses a shard "i/n" (0 <= i < n), as `--shard` takes it: rows (or inputs) i, i + n, ... Throws
/// ms::Error(kUsage) otherwise.
MS_API std::pair<std::size_t, std::size_t> parse_shard(const std::string& text);

/// The header of a NumPy .npy file (format 1.0) of little-endian float32 data in C order of
/// `shape`: the data's bytes follow it.
MS_API std::string npy_float32_header(const std::vector<std::size_t>& shape);

/// Writes float32 data of `shape` as a NumPy .npy file (atomically), for checks against Python.
MS_API void write_npy(const std::string& path, const std::vector<std::size_t>& shape,
                      const std::vector<float>& data);

/// Deterministic Fisher-Yates permutation of 0..n-1 from a seed (SplitMix64 generator).
MS_API std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed);

}  // namespace ms::data
