#include "ms/infer/job.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/progress.h"
#include "ms/core/text.h"
#include "ms/data/csv.h"
#include "ms/data/loader.h"
#include "ms/infer/torch_layer.h"

namespace ms::infer {
namespace {

// Output sink: a file opened for append (fsync after each window) or stdout.
class Sink {
 public:
  /// Opens `path` (none: standard output) for appending, or emptied when `append` is false. A
  /// file is locked for the job's whole run first: a second job writing the same file would
  /// interleave its lines with this one's, or empty the file under it, and --resume would then
  /// trust a mixture. The lock comes before --resume reads the file and before it is emptied. It
  /// is an open file description lock (F_OFD_SETLK), which a wrapper's flock(1) on the same file
  /// (`flock -n out.jsonl ms infer ... -o out.jsonl`) does not conflict with.
  Sink(const std::optional<std::filesystem::path>& path, bool append) {
    if (!path) return;
    path_ = *path;
    if (path_.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(path_.parent_path(), ec);
    }
    // 0666 less the umask, as every other file ms writes (and `> out.jsonl`) gets.
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_APPEND, 0666);
    MS_CHECK(fd_ >= 0, ErrorCode::kIo, "cannot open output {}: {}", path_.string(),
             std::strerror(errno));
    // A device or a pipe (`-o /dev/null`, a FIFO) has nothing to make durable, and fsync on it
    // fails; several jobs may write one (/dev/null) at once.
    struct stat st {};
    durable_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
    if (!durable_) return;
    struct flock whole_file {};
    whole_file.l_type = F_WRLCK;
    whole_file.l_whence = SEEK_SET;  // from offset 0, length 0: the whole file
    int locked;
    while ((locked = ::fcntl(fd_, F_OFD_SETLK, &whole_file)) != 0 && errno == EINTR) {
    }
    if (locked != 0 && (errno == EAGAIN || errno == EACCES)) {
      close_and_throw(Error(ErrorCode::kUsage,
                            fmt::format("{} is locked by another process: another ms infer is "
                                        "writing it",
                                        path_.string()),
                            "wait for it to finish (then --resume goes on from its results), or "
                            "write to another --output file"));
    }
    // Elsewhere (a file system without locks) the job writes unlocked, as before.
    if (!append && ::ftruncate(fd_, 0) != 0) {
      close_and_throw(Error(ErrorCode::kIo, fmt::format("cannot empty {}: {}", path_.string(),
                                                        std::strerror(errno))));
    }
  }
  ~Sink() {
    if (fd_ >= 0) ::close(fd_);
  }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  /// Cuts the file to its first `size` bytes (through the locked descriptor: appends go on from
  /// there).
  void cut_to(std::uintmax_t size) {
    MS_CHECK(fd_ >= 0 && ::ftruncate(fd_, static_cast<off_t>(size)) == 0, ErrorCode::kIo,
             "cannot truncate {}: {}", path_.string(), std::strerror(errno));
  }

  /// Writes lines[0, count) in order, straight from the strings (writev: no copy into one
  /// buffer, which for embeddings was most of the writer's time), then fsyncs a file.
  void write_lines(const std::vector<std::string>& lines, std::size_t count) {
    std::vector<iovec> pending;
    pending.reserve(count);
    for (std::size_t k = 0; k < count; ++k) {
      if (!lines[k].empty())
        pending.push_back({const_cast<char*>(lines[k].data()), lines[k].size()});
    }
    if (pending.empty()) return;
    // Standard output may hold what stdio buffered before (nothing, today): that goes first.
    if (fd_ < 0) std::fflush(stdout);
    const int fd = fd_ >= 0 ? fd_ : STDOUT_FILENO;
    std::size_t next = 0;
    while (next < pending.size()) {
      const int chunk = static_cast<int>(std::min<std::size_t>(pending.size() - next, IOV_MAX));
      const ssize_t n = ::writev(fd, &pending[next], chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // A reader that went away (`| head`), a full disk or a closed descriptor: the lines are
        // lost, so the run stops here rather than computing results no one receives.
        const int err = n < 0 ? errno : 0;
        const char* reason = err != 0 ? std::strerror(err) : "write failed";
        if (fd_ < 0) {
          throw Error(ErrorCode::kIo,
                      fmt::format("cannot write the results to standard output: {}", reason),
                      err == EPIPE ? "the program reading them stopped early (`| head`), so "
                                     "the rest were not computed"
                                   : "");
        }
        throw Error(ErrorCode::kIo, fmt::format("cannot write {}: {}", path_.string(), reason));
      }
      // Skip what was written; a short write leaves the rest of a line for the next call.
      auto left = static_cast<std::size_t>(n);
      while (left > 0 && left >= pending[next].iov_len) left -= pending[next++].iov_len;
      if (left > 0) {
        pending[next].iov_base = static_cast<char*>(pending[next].iov_base) + left;
        pending[next].iov_len -= left;
      }
    }
    // A finished window must survive a crash: --resume trusts every complete line it finds.
    MS_CHECK(!durable_ || ::fsync(fd_) == 0, ErrorCode::kIo, "cannot fsync {}: {}", path_.string(),
             std::strerror(errno));
  }

 private:
  // For the constructor, whose failures the destructor does not see: the file (and its lock)
  // must not stay open.
  [[noreturn]] void close_and_throw(const Error& error) {
    ::close(fd_);
    fd_ = -1;
    throw error;
  }

  std::filesystem::path path_;
  int fd_ = -1;
  bool durable_ = false;
};

// Whether `path` (/dev/stdout, /proc/self/fd/1) opens standard output and ms was started with it
// closed: main() holds a closed one with a path-only descriptor, which no write goes through.
bool names_closed_standard_output(const std::filesystem::path& path) {
  struct stat named {
  }, held{};
  const int flags = ::fcntl(STDOUT_FILENO, F_GETFL);
  return flags != -1 && (flags & O_PATH) != 0 && ::stat(path.c_str(), &named) == 0 &&
         ::fstat(STDOUT_FILENO, &held) == 0 && named.st_dev == held.st_dev &&
         named.st_ino == held.st_ino;
}

void check_job_options(const JobOptions& options) {
  MS_CHECK(options.batch_size > 0, ErrorCode::kUsage, "--batch-size must be positive");
  MS_CHECK(!options.resume || options.output, ErrorCode::kUsage, "--resume needs --output FILE");
  MS_CHECK(!options.output || !options.output->empty(), ErrorCode::kUsage,
           "--output is empty: give the path of a file to write");
  std::error_code ec;
  if (options.resume && std::filesystem::exists(*options.output, ec) &&
      !std::filesystem::is_regular_file(*options.output, ec) &&
      !std::filesystem::is_directory(*options.output, ec)) {
    throw Error(ErrorCode::kUsage,
                fmt::format("--resume cannot read back {}: it is not a regular file (a device, "
                            "pipe or socket)",
                            options.output->string()),
                "resume into a file (-o FILE.jsonl), or leave out --resume");
  }
  if (options.output && names_closed_standard_output(*options.output)) {
    throw Error(
        ErrorCode::kIo,
        fmt::format("--output {} is standard output, which is closed", options.output->string()),
        "give ms a standard output to write to, or name a file");
  }
  if (options.output && std::filesystem::is_directory(*options.output, ec)) {
    throw Error(ErrorCode::kUsage, fmt::format("--output {} is a folder", options.output->string()),
                "give the path of a file to write, such as out.jsonl in that folder");
  }
  // "out.jsonl/" names a folder that does not exist yet: it was made, and the write into it then
  // failed as if the disk were full (exit 74), leaving the empty folder behind.
  if (options.output && !options.output->has_filename()) {
    throw Error(ErrorCode::kUsage,
                fmt::format("--output {} ends in '/': it names a folder, not a file",
                            options.output->string()),
                "give the path of a file to write, such as out.jsonl");
  }
  if (options.resume && writes_npy(options)) {
    throw Error(ErrorCode::kUsage,
                fmt::format("--resume cannot continue {}: a .npy file holds no input ids to check "
                            "the finished rows against",
                            options.output->string()),
                "write JSON lines (-o FILE.jsonl) to resume, or split a long job with --shard");
  }
  MS_CHECK(options.shard_count > 0 && options.shard_index < options.shard_count, ErrorCode::kUsage,
           "bad shard {}/{}", options.shard_index, options.shard_count);
}

PipelineResult error_result(ErrorCode code, std::string message, std::string hint = {}) {
  PipelineResult r;
  r.error = Error(code, std::move(message), std::move(hint));
  return r;
}

}  // namespace

std::vector<PipelineResult> run_batch_isolated(Pipeline& pipeline,
                                               const std::vector<const PipelineInput*>& batch) {
  try {
    auto results = pipeline.run(batch);
    MS_ASSERT(results.size() == batch.size());
    return results;
  } catch (const Error& e) {
    if (batch.size() == 1) {
      PipelineResult r;
      r.error = e;
      return {r};
    }
    log::debug("a batch of {} inputs failed ({}): running them one at a time", batch.size(),
               e.what());
  } catch (const std::exception& e) {
    if (batch.size() == 1) return {error_result(ErrorCode::kInternal, e.what())};
    log::debug("a batch of {} inputs failed ({}): running them one at a time", batch.size(),
               e.what());
  }
  std::vector<PipelineResult> results;
  for (const PipelineInput* in : batch) {
    auto one = run_batch_isolated(pipeline, {in});
    results.push_back(std::move(one[0]));
  }
  return results;
}

// On the CPU, one single-threaded batch per intra-op thread: small GEMMs and element-wise kernels
// scale poorly inside one batch. On a GPU, a few host threads: a small model's batch is mostly
// host work (collating, launching kernels, formatting the outputs), which they do side by side
// while the card runs the batches one after another.
std::size_t default_workers(const Pipeline& pipeline) {
  constexpr std::size_t kGpuWorkers = 4;
  if (!pipeline.concurrent()) return 1;
  if (pipeline.device() != "cpu") return kGpuWorkers;
  return static_cast<std::size_t>(std::max(1, load_torch_layer().runtime->info().num_threads));
}

std::size_t worker_count(const Pipeline& pipeline, std::optional<std::size_t> requested) {
  if (!requested) return default_workers(pipeline);
  if (*requested > 1 && !pipeline.concurrent()) {
    // Said, rather than a silent 1: the user asked for side-by-side batches and would measure
    // (or provision for) them.
    log::warn(
        "--workers {}: the {} pipeline cannot run batches side by side, so they run one at a time "
        "(1 worker, each batch over every --threads thread)",
        *requested, pipeline.task());
    return 1;
  }
  return *requested;
}

std::string format_line(const PipelineInput& input, const PipelineResult& result) {
  Json line = Json::object();
  line["id"] = input.id;
  std::string text;
  if (result.error) {
    Json err = Json::object();
    err["code"] = error_code_name(result.error->code());
    err["message"] = result.error->what();
    if (!result.error->hint().empty()) err["hint"] = result.error->hint();
    line["error"] = std::move(err);
    text = line.dump(-1, ' ', false, Json::error_handler_t::replace);
  } else {
    if (result.output.is_object()) {
      for (auto it = result.output.begin(); it != result.output.end(); ++it)
        line[it.key()] = it.value();
    }
    text = result_object_text(line, result.float_arrays);
  }
  escape_unicode_line_breaks(text);
  text.push_back('\n');
  return text;
}

bool writes_npy(const JobOptions& options) {
  if (!options.output) return false;
  // The name's end, not extension(): that of ".npy" alone is empty.
  return ends_with(ascii_lower(options.output->filename().string()), ".npy");
}

DoneIds read_done_ids(const std::filesystem::path& output) {
  DoneIds done;
  std::unordered_map<std::string, std::size_t> line_of_id;  // id's JSON text -> its line
  std::error_code ec;
  if (!std::filesystem::exists(output, ec)) return done;
  const std::string text = read_file(output);
  const std::size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  done.complete_bytes = complete;
  done.torn_bytes = text.size() - complete;
  for (const data::JsonLine& line :
       data::parse_json_lines(std::string_view(text).substr(0, complete))) {
    if (!line.error.empty()) {
      throw Error(ErrorCode::kIntegrity,
                  fmt::format("{} line {} is not JSON, so --resume cannot trust this file",
                              output.string(), line.line),
                  "write to a new --output file, or remove the damaged line");
    }
    MS_CHECK(line.value.is_object() && line.value.contains("id"), ErrorCode::kIntegrity,
             "{} line {} has no \"id\": it was not written by ms infer", output.string(),
             line.line);
    // One job writes each id once: a repeated id means two jobs wrote the file, or lines were
    // copied in, and resuming would keep both.
    const auto [first, fresh] = line_of_id.emplace(line.value["id"].dump(), line.line);
    if (!fresh) {
      throw Error(ErrorCode::kIntegrity,
                  fmt::format("{} holds id {} twice (lines {} and {}), so --resume cannot trust "
                              "this file",
                              output.string(), first->first, first->second, line.line),
                  "write to a new --output file, or remove the repeated lines");
    }
    done.ids.push_back(line.value["id"]);
    const Json& error = line.value.contains("error") ? line.value["error"] : Json();
    if (error.is_object()) {
      // Fields of another type (a hand-edited line) are read as none: the line still counts.
      const auto text_of = [&error](const char* key) {
        const auto it = error.find(key);
        return it != error.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      const std::string message = text_of("message");
      const std::string code = text_of("code");
      if (++done.error_lines == 1) {
        done.first_error =
            Error(error_code_named(code).value_or(ErrorCode::kInternal), message, text_of("hint"));
        done.first_error_id = line.value["id"];
      }
      if (code == error_code_name(ErrorCode::kIntegrity) &&
          message.find(kNonfiniteOutputWords) != std::string::npos) {
        ++done.nonfinite_lines;
      }
    }
  }
  return done;
}

namespace {

// Inputs are taken a window at a time, sorted by length inside the window so that batches pad
// little, and written back in input order once the whole window is done. Windows are capped so
// that a long job has several: the next one is prepared, and the last one written, while the
// current one runs.
constexpr std::size_t kWindowBatches = 64, kWindowCap = 16384;

std::size_t window_size(std::size_t batch_size) {
  return std::max(batch_size, std::min(batch_size * kWindowBatches, kWindowCap));
}

// One window of pending inputs, from costing to its results.
struct Window {
  std::size_t begin = 0, size = 0;
  std::vector<std::vector<std::size_t>> batches;  ///< offsets into the window, sorted by cost
  /// Per offset: the outcome (its output dropped once formatted) and its output line.
  std::vector<PipelineResult> results;
  std::vector<std::string> lines;
  double prepare_seconds = 0, run_seconds = 0;
  /// Inside run_seconds, summed over the worker threads: in the pipeline, formatting lines,
  /// starting the threads (prepare_worker: thread counts, CUDA streams), and the threads' whole
  /// time (threads x run_seconds).
  double pipeline_seconds = 0, format_seconds = 0, startup_seconds = 0, worker_seconds = 0;
  std::size_t threads = 1;
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Runs body(t) for t in [0, count) on as many threads and waits for them. What a thread throws
// is rethrown here (the first of them): escaping a std::thread it would end the process. A thread
// that cannot start stops the others' start-up the same way.
template <class Body>
void run_on_threads(std::size_t count, const Body& body) {
  std::exception_ptr first_error;
  std::mutex error_mutex;
  std::vector<std::thread> pool;
  pool.reserve(count);
  try {
    for (std::size_t t = 0; t < count; ++t) {
      pool.emplace_back([&, t] {
        try {
          body(t);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!first_error) first_error = std::current_exception();
        }
      });
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!first_error) first_error = std::current_exception();
  }
  for (auto& th : pool) th.join();
  if (first_error) std::rethrow_exception(first_error);
}

// Costs (text pipelines tokenise here, and keep the tokens for run()), sorts and cuts a window
// into batches. Costing is spread over the cores: cost() is const and thread-safe, and on a GPU it
// is the main host work besides formatting.
Window prepare_window(const Pipeline& pipeline, const std::vector<const PipelineInput*>& pending,
                      std::size_t begin, std::size_t size, std::size_t batch_size) {
  const auto t0 = Clock::now();
  Window win;
  win.begin = begin;
  win.size = size;
  win.results.resize(size);
  win.lines.resize(size);
  std::vector<std::size_t> cost(size);
  auto cost_range = [&](std::size_t from, std::size_t to) {
    for (std::size_t k = from; k < to; ++k) {
      const PipelineInput* in = pending[begin + k];
      cost[k] = in->invalid.empty() ? pipeline.cost(*in) : 0;
    }
  };
  // A few hundred inputs per thread at least: below that, starting threads costs more.
  constexpr std::size_t kMinPerThread = 256;
  const std::size_t threads = std::clamp<std::size_t>(size / kMinPerThread, 1, usable_cores());
  if (threads == 1) {
    cost_range(0, size);
  } else {
    const std::size_t chunk = (size + threads - 1) / threads;
    run_on_threads((size + chunk - 1) / chunk,
                   [&](std::size_t t) { cost_range(t * chunk, std::min(size, (t + 1) * chunk)); });
  }
  std::vector<std::size_t> order(size);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&cost](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
  for (std::size_t k : order) {
    const PipelineInput* in = pending[begin + k];
    if (!in->invalid.empty()) {
      win.results[k] = error_result(ErrorCode::kUsage, in->invalid);
      win.lines[k] = format_line(*in, win.results[k]);
      continue;
    }
    if (win.batches.empty() || win.batches.back().size() == batch_size) win.batches.emplace_back();
    win.batches.back().push_back(k);
  }
  win.prepare_seconds = seconds_since(t0);
  return win;
}

// Runs a window's batches, `workers` at once when the pipeline allows it. For JSON output each
// worker formats its batch's lines too: for an embedding model that is most of the host's work
// per input (hundreds of floats to decimal), so it is spread over the workers, not left to the
// one writer.
void run_window(Pipeline& pipeline, const std::vector<const PipelineInput*>& pending, Window& win,
                std::size_t workers, bool format_lines) {
  const auto t0 = Clock::now();
  std::atomic<std::size_t> next{0};
  std::mutex totals_mutex;
  auto work = [&] {
    double in_pipeline = 0, formatting = 0;
    for (std::size_t b = next++; b < win.batches.size(); b = next++) {
      std::vector<const PipelineInput*> batch;
      for (std::size_t k : win.batches[b]) batch.push_back(pending[win.begin + k]);
      const auto t_run = Clock::now();
      auto out = run_batch_isolated(pipeline, batch);
      const auto t_format = Clock::now();
      in_pipeline += std::chrono::duration<double>(t_format - t_run).count();
      for (std::size_t i = 0; i < out.size(); ++i) {
        const std::size_t k = win.batches[b][i];
        if (format_lines) {
          win.lines[k] = format_line(*batch[i], out[i]);
          // Formatted: only the error and the non-finite flag are read later.
          out[i].output = Json();
          out[i].float_arrays.clear();
        }
        win.results[k] = std::move(out[i]);
      }
      formatting += seconds_since(t_format);
    }
    std::lock_guard<std::mutex> lock(totals_mutex);
    win.pipeline_seconds += in_pipeline;
    win.format_seconds += formatting;
  };
  std::size_t threads = 1;
  if (workers <= 1 || win.batches.size() <= 1) {
    work();
  } else {
    threads = std::min(workers, win.batches.size());
    run_on_threads(threads, [&](std::size_t) {
      pipeline.prepare_worker(1);
      const double startup = seconds_since(t0);
      {
        std::lock_guard<std::mutex> lock(totals_mutex);
        win.startup_seconds += startup;
      }
      work();
    });
  }
  win.run_seconds = seconds_since(t0);
  win.threads = threads;
  win.worker_seconds = static_cast<double>(threads) * win.run_seconds;
}

// Where a job's results go. write() gets each window once it has run, in input order, on a
// writer thread (one window at a time).
class JobOutput {
 public:
  virtual ~JobOutput() = default;
  /// Whether the workers format each result as its JSON line (else results keep their floats).
  virtual bool wants_lines() const = 0;
  virtual void write(const std::vector<const PipelineInput*>& pending, const Window& win,
                     JobStats& stats) = 0;
};

// JSON lines, appended to a file (fsynced per window, so --resume can trust them) or stdout.
class JsonLinesOutput final : public JobOutput {
 public:
  JsonLinesOutput(const JobOptions& options, Sink& sink) : options_(options), sink_(sink) {}
  bool wants_lines() const override { return true; }

  // With fail_fast, writes the lines before the first error, then throws it.
  void write(const std::vector<const PipelineInput*>& pending, const Window& win,
             JobStats& stats) override {
    const auto t0 = Clock::now();
    for (std::size_t k = 0; k < win.size; ++k) {
      const PipelineResult& result = win.results[k];
      if (result.error && options_.fail_fast) {
        sink_.write_lines(win.lines, k);
        Error e(
            result.error->code(),
            fmt::format("input {}: {}", pending[win.begin + k]->id.dump(), result.error->what()),
            result.error->hint());
        e.add_context("--fail-fast stops at the first bad input");
        throw e;
      }
      if (result.error && ++stats.errors == 1 && !stats.first_error) {
        stats.first_error = *result.error;
        stats.first_error_id = pending[win.begin + k]->id;
      }
      if (result.nonfinite_output) ++stats.nonfinite_outputs;
      ++stats.done;
    }
    sink_.write_lines(win.lines, win.size);
    stats.write_seconds += seconds_since(t0);
  }

 private:
  const JobOptions& options_;
  Sink& sink_;
};

// One float32 matrix, a row per input in input order (the embeddings), streamed into the temp
// file of an atomic write: the .npy appears whole when the job succeeds, and never in part. The
// header, written with the first rows, needs every row: an input that fails stops the job.
class NpyOutput final : public JobOutput {
 public:
  NpyOutput(const FileSink& sink, std::size_t rows, std::filesystem::path path)
      : sink_(sink), rows_(rows), path_(std::move(path)) {}
  bool wants_lines() const override { return false; }

  void write(const std::vector<const PipelineInput*>& pending, const Window& win,
             JobStats& stats) override {
    const auto t0 = Clock::now();
    std::vector<float> block;
    for (std::size_t k = 0; k < win.size; ++k) {
      const PipelineResult& result = win.results[k];
      const PipelineInput& input = *pending[win.begin + k];
      if (result.error) {
        throw Error(result.error->code(),
                    fmt::format("input {}: {}", input.id.dump(), result.error->what()),
                    fmt::format("{} needs a row for every input, so the job stopped here and "
                                "wrote nothing: fix or drop this input, or write JSON lines "
                                "(-o FILE.jsonl), which go on past it with an error line",
                                path_.string()));
      }
      check_row(input, result);
      const std::vector<float>& row = result.float_arrays[0].values;
      if (!columns_) {
        columns_ = row.size();
        const std::string header = data::npy_float32_header({rows_, *columns_});
        sink_(header.data(), header.size());
      }
      MS_CHECK(row.size() == *columns_, ErrorCode::kInternal,
               "input {}: an embedding of {} values after rows of {}", input.id.dump(), row.size(),
               *columns_);
      if (block.empty()) block.reserve(win.size * row.size());
      block.insert(block.end(), row.begin(), row.end());
      ++stats.done;
    }
    written_ += win.size;
    sink_(block.data(), block.size() * sizeof(float));
    stats.write_seconds += seconds_since(t0);
  }

  /// After the last window: every row is there. A job without inputs (an empty shard) writes a
  /// 0 x `empty_width` matrix, which stacks with the other shards' files.
  void finish(const std::function<std::size_t()>& empty_width) {
    MS_ASSERT(written_ == rows_);
    if (columns_) return;
    const std::string header = data::npy_float32_header({0, empty_width()});
    sink_(header.data(), header.size());
  }

 private:
  // A row holds one embedding and nothing else: members a matrix cannot hold (a sentence pair's
  // "scores") would be lost without a word.
  void check_row(const PipelineInput& input, const PipelineResult& result) const {
    const bool other_members = result.output.is_object() && !result.output.empty();
    if (result.float_arrays.size() == 1 && !other_members) return;
    throw Error(
        ErrorCode::kUsage,
        fmt::format("input {}: {} holds one embedding per input, and this result has {}",
                    input.id.dump(), path_.string(),
                    result.float_arrays.empty() ? std::string("none")
                                                : "more: " + result_object_text(result.output, {})),
        "write JSON lines (-o FILE.jsonl) for results other than one embedding (a "
        "sentence pair's scores, other tasks)");
  }

  const FileSink& sink_;
  std::size_t rows_;
  std::filesystem::path path_;
  std::optional<std::size_t> columns_;
  std::size_t written_ = 0;
};

// The width of `pipeline`'s embeddings, from one probe sentence: the pipeline's own answer,
// whatever modules (sentence-transformers Dense layers) come after the encoder.
std::size_t embedding_width(Pipeline& pipeline) {
  PipelineInput probe;
  probe.id = 0;
  probe.text = "width";
  const std::vector<PipelineResult> results = run_batch_isolated(pipeline, {&probe});
  pipeline.forget(probe);
  if (results[0].error) throw *results[0].error;
  MS_CHECK(results[0].float_arrays.size() == 1, ErrorCode::kInternal,
           "the {} pipeline gave no embedding for a probe sentence", pipeline.task());
  return results[0].float_arrays[0].values.size();
}

// Runs the pending inputs a window at a time. Three stages overlap: window w + 1 is costed
// (tokenised) and window w - 1 written on their own threads while window w runs. Writes stay in
// input order: a window's write starts only after the one before it has finished (and has not
// failed).
void run_windows(Pipeline& pipeline, const std::vector<const PipelineInput*>& pending,
                 const JobOptions& options, std::size_t workers, JobOutput& output,
                 JobStats& stats) {
  Progress progress("infer", pending.size());
  const auto t0 = Clock::now();
  const std::size_t window = window_size(options.batch_size);
  auto prepare = [&](std::size_t begin) {
    return prepare_window(pipeline, pending, begin, std::min(window, pending.size() - begin),
                          options.batch_size);
  };
  std::future<Window> next;
  if (!pending.empty()) next = std::async(std::launch::async, prepare, 0);
  std::future<void> writing;
  std::size_t writing_size = 0;
  auto finish_write = [&] {
    if (!writing.valid()) return;
    const auto t_wait = Clock::now();
    writing.get();  // rethrows the writer's error (I/O, a failed input) here
    stats.write_wait_seconds += seconds_since(t_wait);
    progress.advance(writing_size);
  };
  for (std::size_t w = 0; w < pending.size(); w += window) {
    const auto t_wait = Clock::now();
    auto current = std::make_shared<Window>(next.get());
    stats.prepare_wait_seconds += seconds_since(t_wait);
    stats.prepare_seconds += current->prepare_seconds;
    if (w + window < pending.size()) next = std::async(std::launch::async, prepare, w + window);
    run_window(pipeline, pending, *current, workers, output.wants_lines());
    stats.run_seconds += current->run_seconds;
    stats.pipeline_seconds += current->pipeline_seconds;
    stats.format_seconds += current->format_seconds;
    stats.startup_seconds += current->startup_seconds;
    stats.worker_seconds += current->worker_seconds;
    stats.threads = std::max(stats.threads, current->threads);
    finish_write();
    writing_size = current->size;
    writing = std::async(std::launch::async, [&pending, &output, &stats, current] {
      output.write(pending, *current, stats);
    });
  }
  finish_write();
  progress.finish();
  stats.seconds = seconds_since(t0);
}

}  // namespace

JobStats run_job(Pipeline& pipeline, const std::vector<PipelineInput>& inputs,
                 const JobOptions& options) {
  check_job_options(options);
  // A file's lines are found again by id (--resume): a library caller's duplicate ids were
  // written, and the resume then refused the file. read_inputs() says so first for the CLI.
  if (options.output && !writes_npy(options)) {  // a .npy file holds no ids (and no resume)
    std::unordered_set<std::string> ids;
    for (const PipelineInput& in : inputs) {
      MS_CHECK(ids.insert(in.id.dump()).second, ErrorCode::kUsage,
               "duplicate input id {}: ids must be unique so that a resumed job can tell inputs "
               "apart",
               in.id.dump());
    }
  }
  JobStats stats;
  // JSON lines: the output is opened, and locked, before --resume reads it.
  std::optional<Sink> lines_sink;
  if (!writes_npy(options)) lines_sink.emplace(options.output, options.resume);
  std::unordered_set<std::string> done;
  DoneIds found;
  if (options.resume) {
    found = read_done_ids(*options.output);
    for (const Json& id : found.ids) done.insert(id.dump());
  }
  std::vector<const PipelineInput*> pending;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (i % options.shard_count != options.shard_index) continue;
    ++stats.total;
    if (!done.empty() && done.count(inputs[i].id.dump()) != 0) {
      ++stats.skipped;
      continue;
    }
    pending.push_back(&inputs[i]);
  }
  if (stats.skipped < done.size()) {
    // Results for ids this job does not have: the file is another job's (other inputs, another
    // shard), and resuming into it would mix the two.
    std::unordered_set<std::string> mine;
    for (std::size_t i = options.shard_index; i < inputs.size(); i += options.shard_count)
      mine.insert(inputs[i].id.dump());
    const auto foreign = std::find_if(done.begin(), done.end(),
                                      [&](const std::string& id) { return mine.count(id) == 0; });
    throw Error(ErrorCode::kUsage,
                fmt::format("--resume: {} holds results for {} id(s) that are not among this "
                            "job's inputs (such as {})",
                            options.output->string(), done.size() - stats.skipped, *foreign),
                "it is the output of another job (other inputs or another --shard): resume "
                "with that job's inputs, or write to a new --output file");
  }
  if (found.torn_bytes > 0) {
    // The last line was torn by a kill: cut off only now that the file is accepted as this
    // job's (a refused file stays as it was), and recomputed.
    log::warn("{}: dropping an incomplete last line ({} bytes)", options.output->string(),
              found.torn_bytes);
    lines_sink->cut_to(found.complete_bytes);
  }
  if (options.resume) {
    log::info("resume: {} of {} inputs already done{}", stats.skipped, stats.total,
              found.error_lines > 0 ? fmt::format(" ({} with error lines)", found.error_lines)
                                    : std::string());
    stats.kept_errors = found.error_lines;
    stats.kept_nonfinite_outputs = found.nonfinite_lines;
    stats.first_error = found.first_error;
    stats.first_error_id = found.first_error_id;
  }

  const std::size_t workers = pipeline.concurrent() ? std::max<std::size_t>(1, options.workers) : 1;
  if (writes_npy(options)) {
    // What a killed run to the same file left behind (it writes nothing until it is done).
    if (const std::size_t removed = remove_abandoned_writes(*options.output)) {
      log::info("{}: removed {} unfinished temp file(s) of a stopped run", options.output->string(),
                removed);
    }
    write_file_atomic(*options.output, [&](const FileSink& sink) {
      NpyOutput output(sink, pending.size(), *options.output);
      run_windows(pipeline, pending, options, workers, output, stats);
      output.finish([&pipeline] { return embedding_width(pipeline); });
    });
  } else {
    JsonLinesOutput output(options, *lines_sink);
    run_windows(pipeline, pending, options, workers, output, stats);
  }
  return stats;
}

namespace {

// The batches stage taken apart, in worker-seconds (each worker thread's time summed): in the
// pipeline (split by its run_phases), formatting JSON lines, starting the threads, and the rest
// (a window's last batches leave threads without work; more threads than cores wait for one). On
// a GPU this says whether the host threads or the card hold the job up.
void log_inside_the_batches(const JobStats& stats, const RunPhases& phases) {
  if (stats.worker_seconds <= 0) return;
  std::string pipeline_part;
  const double measured = phases.inputs + phases.model + phases.device;
  if (measured > 0) {
    pipeline_part = fmt::format(
        " (inputs {:.3f} s, model as the host sees it {:.3f} s, waiting for the device and "
        "copying back {:.3f} s, building the results {:.3f} s)",
        phases.inputs, phases.model, phases.device,
        std::max(0.0, stats.pipeline_seconds - measured));
  }
  log::info(
      "inside the batches, summed over {} worker thread(s): {:.3f} s, of which in the pipeline "
      "{:.3f} s{}, formatting lines {:.3f} s, starting the threads {:.3f} s, and the rest "
      "{:.3f} s (no batch left in the window, or waiting for a core)",
      stats.threads, stats.worker_seconds, stats.pipeline_seconds, pipeline_part,
      stats.format_seconds, stats.startup_seconds,
      std::max(0.0, stats.worker_seconds - stats.pipeline_seconds - stats.format_seconds -
                        stats.startup_seconds));
}

// The field name a configuration sets at `key`; "" when absent or null (ModelScope's configurations
// write null for "none").
std::string named_field(const Config& config, const char* key) {
  if (!config.has(key) || config.at(key).is_null()) return {};
  return config.get<std::string>(key);
}

}  // namespace

JobStats run_infer(const InferRequest& request) {
  // Everything that can be checked without LibTorch is checked before it loads.
  check_job_options(request.job);
  // The model's configuration first: it may name the inputs' text fields, as ModelScope's
  // preprocessors read a dict input (a dataset whose text column is `review`).
  const ModelInfo model = open_model(request.model, request.task, request.overrides, request.hub);
  // Inside the model folder the output would overwrite one of its files (-o model.safetensors
  // destroyed the weights) or be published with the model by the next upload.
  if (request.job.output && is_inside_folder(*request.job.output, model.dir)) {
    throw Error(ErrorCode::kUsage,
                fmt::format("--output {} is inside the model folder {}",
                            request.job.output->string(), model.dir.string()),
                "write the results outside the model's folder: a file there is one of the "
                "model's, or is uploaded with it");
  }
  InputSpec input_spec = request.inputs;
  input_spec.output = request.job.output;
  input_spec.text_field = named_field(model.config, "preprocessor.first_sequence");
  input_spec.pair_field = named_field(model.config, "preprocessor.second_sequence");
  input_spec.fields_source = model.config.source();
  const std::vector<PipelineInput> inputs = read_inputs(input_spec);

  PipelineOptions popts;
  popts.device = request.device;
  popts.dtype = request.dtype;
  auto pipeline = pipeline_factory(request.threads).create(model, popts);
  if (writes_npy(request.job) && pipeline->task() != "sentence-embedding") {
    throw Error(ErrorCode::kUsage,
                fmt::format("--output {}: a .npy file holds sentence embeddings, and the {} task "
                            "gives other results",
                            request.job.output->string(), pipeline->task()),
                "write JSON lines: -o FILE.jsonl");
  }
  JobOptions job = request.job;
  job.workers = worker_count(*pipeline, request.workers);
  log::info("{}: task {} on {}, {} worker(s)", model.dir.string(), pipeline->task(),
            pipeline->device(), job.workers);
  const JobStats stats = run_job(*pipeline, inputs, job);
  log::info("{} inputs: {} written ({} errors), {} skipped, {:.3f} s", stats.total, stats.done,
            stats.errors, stats.skipped, stats.seconds);
  // Where the time went. Preparing (costing: text tasks tokenise) and writing run beside the
  // batches; the main thread's waits for them show when one of them, not the model, is the limit.
  log::info(
      "stages: batches {:.3f} s; preparing {:.3f} s and formatting + writing {:.3f} s beside them; "
      "waited {:.3f} s for preparing, {:.3f} s for writing",
      stats.run_seconds, stats.prepare_seconds, stats.write_seconds, stats.prepare_wait_seconds,
      stats.write_wait_seconds);
  log_inside_the_batches(stats, pipeline->run_phases());
  return stats;
}

}  // namespace ms::infer
