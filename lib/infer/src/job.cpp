#include "ms/infer/job.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <thread>
#include <unordered_set>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/core/progress.h"
#include "ms/data/csv.h"
#include "ms/infer/torch_layer.h"

namespace ms::infer {
namespace {

// Output sink: a file opened for append (fsync after each window) or stdout.
class Sink {
 public:
  Sink(const std::optional<std::filesystem::path>& path, bool append) {
    if (!path) return;
    path_ = *path;
    if (path_.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(path_.parent_path(), ec);
    }
    fd_ =
        ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
    MS_CHECK(fd_ >= 0, ErrorCode::kIo, "cannot open output {}: {}", path_.string(),
             std::strerror(errno));
  }
  ~Sink() {
    if (fd_ >= 0) ::close(fd_);
  }
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  void write(const std::string& data) {
    if (data.empty()) return;
    if (fd_ < 0) {
      std::fwrite(data.data(), 1, data.size(), stdout);
      std::fflush(stdout);
      return;
    }
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::write(fd_, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      MS_CHECK(n > 0, ErrorCode::kIo, "cannot write {}: {}", path_.string(), std::strerror(errno));
      off += static_cast<std::size_t>(n);
    }
    // A finished window must survive a crash: --resume trusts every complete line it finds.
    MS_CHECK(::fsync(fd_) == 0, ErrorCode::kIo, "cannot fsync {}: {}", path_.string(),
             std::strerror(errno));
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

void check_job_options(const JobOptions& options) {
  MS_CHECK(options.batch_size > 0, ErrorCode::kUsage, "--batch-size must be positive");
  MS_CHECK(!options.resume || options.output, ErrorCode::kUsage, "--resume needs --output FILE");
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
  } catch (const std::exception& e) {
    if (batch.size() == 1) return {error_result(ErrorCode::kInternal, e.what())};
  }
  std::vector<PipelineResult> results;
  for (const PipelineInput* in : batch) {
    auto one = run_batch_isolated(pipeline, {in});
    results.push_back(std::move(one[0]));
  }
  return results;
}

// On the CPU, one single-threaded batch per intra-op thread: small GEMMs and element-wise kernels
// scale poorly inside one batch. On a GPU, one stream of batches.
std::size_t default_workers(const Pipeline& pipeline) {
  if (pipeline.device() != "cpu" || !pipeline.concurrent()) return 1;
  return static_cast<std::size_t>(std::max(1, load_torch_layer().runtime->info().num_threads));
}

std::string format_line(const PipelineInput& input, const PipelineResult& result) {
  Json line = Json::object();
  line["id"] = input.id;
  if (result.error) {
    Json err = Json::object();
    err["code"] = error_code_name(result.error->code());
    err["message"] = result.error->what();
    if (!result.error->hint().empty()) err["hint"] = result.error->hint();
    line["error"] = std::move(err);
  } else if (result.output.is_object()) {
    for (auto it = result.output.begin(); it != result.output.end(); ++it)
      line[it.key()] = it.value();
  }
  std::string text = line.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (!result.error && !result.raw_members.empty()) {
    text.pop_back();  // the closing brace
    text += ',';
    text += result.raw_members;
    text += '}';
  }
  text.push_back('\n');
  return text;
}

std::vector<Json> read_done_ids(const std::filesystem::path& output, bool truncate_partial) {
  std::vector<Json> ids;
  std::error_code ec;
  if (!std::filesystem::exists(output, ec)) return ids;
  const std::string text = read_file(output);
  const std::size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (complete < text.size()) {
    // The last line was torn by a kill: drop it, it will be recomputed.
    log::warn("{}: dropping an incomplete last line ({} bytes)", output.string(),
              text.size() - complete);
    if (truncate_partial) {
      MS_CHECK(::truncate(output.c_str(), static_cast<off_t>(complete)) == 0, ErrorCode::kIo,
               "cannot truncate {}: {}", output.string(), std::strerror(errno));
    }
  }
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
    ids.push_back(line.value["id"]);
  }
  return ids;
}

JobStats run_job(Pipeline& pipeline, const std::vector<PipelineInput>& inputs,
                 const JobOptions& options) {
  check_job_options(options);
  JobStats stats;
  std::unordered_set<std::string> done;
  if (options.resume) {
    for (const Json& id : read_done_ids(*options.output, true)) done.insert(id.dump());
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
  if (options.resume) log::info("resume: {} of {} inputs already done", stats.skipped, stats.total);

  const std::size_t workers = pipeline.concurrent() ? std::max<std::size_t>(1, options.workers) : 1;
  Sink sink(options.output, options.resume);
  Progress progress("infer", pending.size());
  const auto t0 = std::chrono::steady_clock::now();
  // Inputs are taken a window at a time, sorted by length inside the window so that batches pad
  // little, and written back in input order once the whole window is done.
  const std::size_t window = options.batch_size * 64;
  for (std::size_t w = 0; w < pending.size(); w += window) {
    const auto t_prepare = std::chrono::steady_clock::now();
    const std::size_t n = std::min(window, pending.size() - w);
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::vector<std::size_t> cost(n);
    for (std::size_t k = 0; k < n; ++k)
      cost[k] = pending[w + k]->invalid.empty() ? pipeline.cost(*pending[w + k]) : 0;
    std::stable_sort(order.begin(), order.end(),
                     [&cost](std::size_t a, std::size_t b) { return cost[a] > cost[b]; });
    std::vector<PipelineResult> results(n);
    // Cut the sorted window into batches first, then run them (in parallel when allowed).
    std::vector<std::vector<std::size_t>> batches;
    for (std::size_t k : order) {
      const PipelineInput* in = pending[w + k];
      if (!in->invalid.empty()) {
        results[k] = error_result(ErrorCode::kUsage, in->invalid);
        continue;
      }
      if (batches.empty() || batches.back().size() == options.batch_size) batches.emplace_back();
      batches.back().push_back(k);
    }
    const auto t_run = std::chrono::steady_clock::now();
    stats.prepare_seconds += std::chrono::duration<double>(t_run - t_prepare).count();
    std::atomic<std::size_t> next{0};
    auto work = [&] {
      for (std::size_t b = next++; b < batches.size(); b = next++) {
        std::vector<const PipelineInput*> batch;
        for (std::size_t k : batches[b]) batch.push_back(pending[w + k]);
        auto out = run_batch_isolated(pipeline, batch);
        for (std::size_t i = 0; i < out.size(); ++i) results[batches[b][i]] = std::move(out[i]);
      }
    };
    if (workers <= 1 || batches.size() <= 1) {
      work();
    } else {
      std::vector<std::thread> pool;
      for (std::size_t t = 0; t < std::min(workers, batches.size()); ++t) {
        pool.emplace_back([&pipeline, &work] {
          pipeline.prepare_worker(1);
          work();
        });
      }
      for (auto& th : pool) th.join();
    }
    const auto t_write = std::chrono::steady_clock::now();
    std::string text;
    for (std::size_t k = 0; k < n; ++k) {
      if (results[k].error && options.fail_fast) {
        sink.write(text);
        Error e = *results[k].error;
        e.add_context(fmt::format("running input {} (--fail-fast stops at the first bad input)",
                                  pending[w + k]->id.dump()));
        throw e;
      }
      if (results[k].error) ++stats.errors;
      if (results[k].nonfinite_output) ++stats.nonfinite_outputs;
      ++stats.done;
      text += format_line(*pending[w + k], results[k]);
    }
    sink.write(text);
    stats.write_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_write).count();
    progress.advance(n);
  }
  progress.finish();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

JobStats run_infer(const InferRequest& request) {
  // Everything that can be checked without LibTorch is checked before it loads.
  check_job_options(request.job);
  const std::vector<PipelineInput> inputs = read_inputs(request.inputs);
  const ModelInfo model = open_model(request.model, request.task, request.overrides, request.hub);

  PipelineOptions popts;
  popts.device = request.device;
  auto pipeline = pipeline_factory(request.threads).create(model, popts);
  JobOptions job = request.job;
  job.workers = request.workers ? *request.workers : default_workers(*pipeline);
  log::info("{}: task {} on {}, {} worker(s)", model.dir.string(), pipeline->task(),
            pipeline->device(), job.workers);
  const JobStats stats = run_job(*pipeline, inputs, job);
  log::info("{} inputs: {} written ({} errors), {} skipped, {:.3f} s", stats.total, stats.done,
            stats.errors, stats.skipped, stats.seconds);
  log::info("of which {:.3f} s costing (tokenising) and sorting, {:.3f} s formatting and writing",
            stats.prepare_seconds, stats.write_seconds);
  return stats;
}

}  // namespace ms::infer
