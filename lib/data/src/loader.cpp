// The threaded batch loader: ordered delivery, bounded prefetch, deterministic shuffling.
#include "ms/data/loader.h"

#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"

namespace ms::data {

std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed) {
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = i;
  std::uint64_t state = seed;
  auto next = [&state]() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  for (std::size_t i = n; i > 1; --i) {
    // Unbiased draw from [0, i): reject the top sliver of the 64-bit range.
    const std::uint64_t bound = i;
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    std::uint64_t r;
    do r = next();
    while (r >= limit);
    std::swap(idx[i - 1], idx[r % bound]);
  }
  return idx;
}

std::string npy_float32_header(const std::vector<std::size_t>& shape) {
  std::string dims;
  for (std::size_t d : shape) dims += std::to_string(d) + ",";
  if (shape.size() > 1) dims.pop_back();  // a 1-D shape keeps its comma: (n,)
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Magic + version + length + header padded with spaces to a multiple of 64, ending in '\n'.
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  MS_CHECK(header.size() <= 0xFFFF, ErrorCode::kInternal, "npy header of {} bytes", header.size());
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xFF));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header;
}

void write_npy(const std::string& path, const std::vector<std::size_t>& shape,
               const std::vector<float>& data) {
  std::size_t count = 1;
  for (std::size_t d : shape) count *= d;
  MS_CHECK(count == data.size(), ErrorCode::kInternal, "npy shape has {} values, data {}", count,
           data.size());
  std::string out = npy_float32_header(shape);
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  write_file_atomic(path, out);
}

struct DataLoader::State {
  const Split& split;
  LoaderOptions options;
  int image_col = -1;
  int label_col = -1;
  std::vector<std::size_t> order;
  std::size_t num_batches = 0;

  std::mutex mutex;
  std::condition_variable cv;
  std::map<std::size_t, std::pair<std::optional<Batch>, std::exception_ptr>> ready;
  std::size_t next_claim = 0;
  std::size_t next_deliver = 0;
  bool stop = false;
  std::vector<std::thread> threads;

  State(const Split& s, LoaderOptions o) : split(s), options(std::move(o)) {}

  Batch build(std::size_t b) const {
    Batch batch;
    const std::size_t begin = b * options.batch_size;
    const std::size_t end = std::min(begin + options.batch_size, order.size());
    std::vector<float> one;
    for (std::size_t k = begin; k < end; ++k) {
      const std::size_t row = order[k];
      const auto& cells = split.table.rows[row];
      if (image_col >= 0) {
        const auto* path = std::get_if<std::string>(&cells[image_col]);
        MS_CHECK(path != nullptr, ErrorCode::kIntegrity, "split '{}' row {}: image path is empty",
                 split.name, row + 1);
        Image image;
        try {
          image = read_image(*path, options.transform.channels);
        } catch (const Error& e) {
          if (!options.skip_bad ||
              (e.code() != ErrorCode::kIntegrity && e.code() != ErrorCode::kMissingComponent)) {
            throw;
          }
          log::warn("skipping bad image: {}", e.what());
          ++batch.skipped_bad;
          continue;
        }
        one.clear();
        options.transform.apply(image, one);
        const int h = options.transform.height > 0 ? options.transform.height : image.height;
        const int w = options.transform.width > 0 ? options.transform.width : image.width;
        if (batch.images.empty()) {
          batch.channels = options.transform.channels;
          batch.height = h;
          batch.width = w;
        } else if (h != batch.height || w != batch.width) {
          throw Error(ErrorCode::kUsage,
                      fmt::format("{}: image is {}x{} but the batch is {}x{}", *path, h, w,
                                  batch.height, batch.width),
                      "set a resize in the transform config, e.g. {\"resize\": [224, 224]}");
        }
        batch.images.insert(batch.images.end(), one.begin(), one.end());
      }
      if (label_col >= 0) {
        const auto* id = std::get_if<std::int64_t>(&cells[label_col]);
        batch.labels.push_back(id ? *id : -1);
      }
      batch.rows.push_back(row);
    }
    return batch;
  }

  void worker() {
    const std::size_t window = static_cast<std::size_t>(options.workers) * options.prefetch;
    while (true) {
      std::size_t b;
      {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [&] {
          return stop || next_claim >= num_batches || next_claim < next_deliver + window;
        });
        if (stop || next_claim >= num_batches) return;
        b = next_claim++;
      }
      std::pair<std::optional<Batch>, std::exception_ptr> result;
      try {
        result.first = build(b);
      } catch (...) {
        result.second = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mutex);
        ready[b] = std::move(result);
      }
      cv.notify_all();
    }
  }

  void halt() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
    threads.clear();
    ready.clear();
  }
};

DataLoader::DataLoader(const Split& split, LoaderOptions options)
    : state_(std::make_unique<State>(split, std::move(options))) {
  const LoaderOptions& o = state_->options;
  MS_CHECK(o.batch_size > 0, ErrorCode::kUsage, "batch size must be at least 1");
  MS_CHECK(o.num_shards > 0, ErrorCode::kUsage, "the number of shards must be at least 1");
  MS_CHECK(o.shard_index < o.num_shards, ErrorCode::kUsage,
           "shard {} of {} is out of range (shards are 0..{})", o.shard_index, o.num_shards,
           o.num_shards - 1);
  MS_CHECK(o.workers >= 0 && o.workers <= 256, ErrorCode::kUsage, "workers must be 0..256, got {}",
           o.workers);
  MS_CHECK(o.prefetch >= 1, ErrorCode::kUsage, "prefetch must be at least 1, got {}", o.prefetch);
  const Table& t = split.table;
  if (!o.image_column.empty()) {
    state_->image_col = t.column_index(o.image_column);
    MS_CHECK(state_->image_col >= 0, ErrorCode::kNotFound, "split '{}' has no column '{}'",
             split.name, o.image_column);
  } else {
    state_->image_col = t.column_index("image");
    if (state_->image_col < 0 || t.columns[state_->image_col].type != ColumnType::kImage) {
      state_->image_col = -1;
      for (std::size_t c = 0; c < t.columns.size() && state_->image_col < 0; ++c) {
        if (t.columns[c].type == ColumnType::kImage) state_->image_col = static_cast<int>(c);
      }
    }
  }
  state_->label_col = t.column_index("label");
  if (state_->label_col >= 0 && t.columns[state_->label_col].type != ColumnType::kInt) {
    state_->label_col = -1;
  }
  start(0);
}

DataLoader::~DataLoader() { state_->halt(); }

std::vector<std::size_t> DataLoader::order(std::uint64_t epoch) const {
  const LoaderOptions& o = state_->options;
  const std::size_t n = state_->split.table.rows.size();
  std::vector<std::size_t> all;
  if (o.shuffle) {
    all = shuffled_indices(n, o.seed + epoch);
  } else {
    all.resize(n);
    for (std::size_t i = 0; i < n; ++i) all[i] = i;
  }
  if (o.num_shards == 1) return all;
  std::vector<std::size_t> mine;
  for (std::size_t i = o.shard_index; i < n; i += o.num_shards) mine.push_back(all[i]);
  return mine;
}

std::size_t DataLoader::num_batches() const { return state_->num_batches; }

void DataLoader::start(std::uint64_t epoch) {
  State& s = *state_;
  s.halt();
  s.order = order(epoch);
  const std::size_t bs = s.options.batch_size;
  // Not (size + bs - 1) / bs, which wraps for a batch size near SIZE_MAX (no batches at all).
  s.num_batches = s.order.size() / bs + (!s.options.drop_last && s.order.size() % bs != 0 ? 1 : 0);
  s.next_claim = 0;
  s.next_deliver = 0;
  s.stop = false;
  for (int i = 0; i < s.options.workers; ++i) s.threads.emplace_back([&s] { s.worker(); });
}

std::optional<Batch> DataLoader::next() {
  State& s = *state_;
  if (s.next_deliver >= s.num_batches) return std::nullopt;
  if (s.options.workers == 0) return s.build(s.next_deliver++);
  std::pair<std::optional<Batch>, std::exception_ptr> result;
  {
    std::unique_lock<std::mutex> lock(s.mutex);
    s.cv.wait(lock, [&] { return s.ready.count(s.next_deliver) > 0; });
    auto node = s.ready.extract(s.next_deliver);
    result = std::move(node.mapped());
    ++s.next_deliver;
  }
  s.cv.notify_all();
  if (result.second) std::rethrow_exception(result.second);
  return std::move(result.first);
}

LoaderBenchmark benchmark_loader(const Split& split, const LoaderOptions& loader_options,
                                 const BenchmarkOptions& options) {
  DataLoader loader(split, loader_options);
  LoaderBenchmark out;
  const auto t0 = std::chrono::steady_clock::now();
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    if (epoch > 0) loader.start(static_cast<std::uint64_t>(epoch));  // the constructor began 0
    while (auto batch = loader.next()) {
      ++out.batches;
      out.samples += batch->size();
      out.skipped_bad += batch->skipped_bad;
      for (std::size_t i = 0; i < batch->images.size(); i += 4099) out.checksum += batch->images[i];
      if (out.batches > 1) continue;
      if (!options.save_batch.empty()) {
        MS_CHECK(!batch->images.empty(), ErrorCode::kUsage,
                 "--save-batch: split '{}' has no image column", split.name);
        write_npy(options.save_batch,
                  {batch->size(), static_cast<std::size_t>(batch->channels),
                   static_cast<std::size_t>(batch->height), static_cast<std::size_t>(batch->width)},
                  batch->images);
      }
      out.first_batch = std::move(*batch);
      out.first_batch.images = {};
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.samples_per_second = out.seconds > 0 ? out.samples / out.seconds : 0.0;
  out.order = loader.order(0);
  if (out.order.size() > 16) out.order.resize(16);
  return out;
}

std::pair<std::size_t, std::size_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  std::size_t i = 0, n = 0;
  bool ok = slash != std::string::npos;
  if (ok) {
    try {
      std::size_t used1 = 0, used2 = 0;
      const std::string a = text.substr(0, slash), b = text.substr(slash + 1);
      ok = !a.empty() && !b.empty() && a[0] != '-' && b[0] != '-';
      if (ok) {
        i = std::stoul(a, &used1);
        n = std::stoul(b, &used2);
        ok = used1 == a.size() && used2 == b.size() && n > 0 && i < n;
      }
    } catch (const std::exception&) {
      ok = false;
    }
  }
  MS_CHECK(ok, ErrorCode::kUsage, "--shard '{}' must be i/n with 0 <= i < n (e.g. 0/4)", text);
  return {i, n};
}

}  // namespace ms::data
