// Batch inference jobs: read inputs, batch them by length, run a pipeline, write one JSON line per
// input in input order, resumably (append + fsync per window of batches), or the embeddings as one
// .npy matrix; run_infer() is the whole of `ms infer` (model, pipeline, worker choice, job).
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "ms/core/device.h"
#include "ms/core/error.h"
#include "ms/core/export.h"
#include "ms/infer/model_dir.h"
#include "ms/infer/pipeline.h"

namespace ms::infer {

/// The JSON fields and table columns an input's text is read from (the first present wins), and
/// those of its second sentence (pair tasks; "text2" is ModelScope's service schema's name). `ms
/// serve` takes the same names in /call bodies.
inline constexpr std::initializer_list<const char*> kTextFields = {
    "text", "sentence", "sentence1", "text_a", "source_sentence", "input"};
inline constexpr std::initializer_list<const char*> kPairFields = {"text_pair", "text2",
                                                                   "sentence2", "text_b"};

/// Where the inputs come from: exactly one of texts, file, dir or dataset.
struct InputSpec {
  std::vector<std::string> texts;             ///< --input TEXT ... (ids 0, 1, ...)
  std::optional<std::filesystem::path> file;  ///< .txt (id = line number), .jsonl, .csv, .tsv
  /// How `file` is read: "txt", "jsonl" (or "json"), "csv", "tsv"; empty: by its extension (a
  /// name without a known one, and "-", are text lines).
  std::string file_format;
  std::optional<std::filesystem::path> dir;  ///< every regular file, sorted (id = relative path)
  /// A dataset spec (ms::data: csv:, jsonl:, imagefolder:, zip:, hub:...): rows of one split,
  /// by their "id" column, else row number (image rows: path relative to the dataset root).
  std::optional<std::string> dataset;
  std::optional<std::string> subset;  ///< with dataset: which subset of its config
  std::optional<std::string> split;   ///< with dataset: which split (may be sliced, "test[:100]")
  /// The job's output file, never read as an input: an input file or dataset file that is this
  /// file is refused (the results would overwrite the inputs), and a folder's listing leaves it
  /// out (a rerun would take the last run's results for inputs).
  std::optional<std::filesystem::path> output;
  /// The model's own names of the text and second-sentence fields of JSON records and table
  /// columns (its configuration's preprocessor.first_sequence / second_sequence, the keys
  /// ModelScope's preprocessors read a dict input by): read before kTextFields / kPairFields.
  /// Empty: the model names none. `fields_source` says where they were named, for messages.
  std::string text_field, pair_field;
  std::string fields_source;
};

/// Reads the inputs. Text lines keep their content as written (a bad one becomes an error line
/// later); a malformed file (bad JSON line, CSV without a text column, duplicate ids) is an
/// ms::Error naming the file and line.
MS_API std::vector<PipelineInput> read_inputs(const InputSpec& spec);

struct JobOptions {
  std::size_t batch_size = 32;
  /// Unset: stdout. A name ending in .npy gets the embeddings as one float32 matrix (writes_npy).
  std::optional<std::filesystem::path> output;
  bool resume = false;  ///< skip ids already in `output`
  /// Only inputs i, i + n, ... of shard i of n (see data::parse_shard).
  std::size_t shard_index = 0, shard_count = 1;
  bool fail_fast = false;  ///< stop at the first bad item
  /// Batches run at once, each by its own thread with one intra-op thread (only when the pipeline
  /// is concurrent()). On a CPU, N single-threaded workers beat one N-threaded forward: small
  /// GEMMs and element-wise kernels scale poorly inside one batch.
  std::size_t workers = 1;
};

struct JobStats {
  std::size_t total = 0;    ///< inputs in this shard
  std::size_t skipped = 0;  ///< already done (resume)
  std::size_t done = 0;     ///< written in this run
  std::size_t errors = 0;   ///< error lines written in this run
  /// --resume: error lines the output kept from the runs before (among the skipped), and of
  /// those, outputs that were not numbers. The job is judged on them too: a failed job resumed
  /// is no success.
  std::size_t kept_errors = 0, kept_nonfinite_outputs = 0;
  /// Of those, outputs the model could not produce as data (NaN or infinity): the model is broken,
  /// so `ms infer` exits 7 after writing every line.
  std::size_t nonfinite_outputs = 0;
  double seconds = 0;  ///< wall time of the run loop
  /// The stages, each summed over windows. Running the batches is on the main thread (and its
  /// workers); preparing (costing, where text tasks tokenise, and sorting) the next window and
  /// formatting and writing the last one run beside it, on threads of their own.
  double run_seconds = 0, prepare_seconds = 0, write_seconds = 0;
  /// How long the main thread waited for the next window to be prepared, and for the last one to
  /// be written: the time the batches stood still because of those stages.
  double prepare_wait_seconds = 0, write_wait_seconds = 0;
  /// Inside the batches, summed over the worker threads (worker-seconds): their time in the
  /// pipeline's run(), formatting JSON lines, starting (prepare_worker), and the threads' whole
  /// time (per window: threads x its wall time; the difference is time without a batch, at the
  /// windows' ends, or waiting for a core).
  double pipeline_seconds = 0, format_seconds = 0, startup_seconds = 0, worker_seconds = 0;
  std::size_t threads = 1;  ///< the most worker threads a window ran

  /// The first input (in input order; with --resume, a kept line's first) whose result is an
  /// error line, and its error.
  std::optional<Error> first_error;
  Json first_error_id;
};

/// Runs one batch through `pipeline`; when the batch as a whole fails, each input is retried alone
/// so that one bad input cannot take its neighbours down. Never throws for a pipeline's error.
MS_API std::vector<PipelineResult> run_batch_isolated(
    Pipeline& pipeline, const std::vector<const PipelineInput*>& batch);

/// Batches a pipeline runs at once unless told: on the CPU one single-threaded worker per intra-op
/// thread (when the pipeline is concurrent()), on a GPU four host threads feeding the card.
MS_API std::size_t default_workers(const Pipeline& pipeline);

/// Batches a pipeline runs at once (`ms infer` and `ms serve`): `requested` (--workers), else
/// default_workers(); 1 for a pipeline that is not concurrent(), with a warning when --workers
/// asked for more.
MS_API std::size_t worker_count(const Pipeline& pipeline, std::optional<std::size_t> requested);

/// Whether the job writes a .npy file: row i = the embedding of the shard's input i, written
/// atomically when every input has succeeded (any failed input stops the job; no --resume).
MS_API bool writes_npy(const JobOptions& options);

/// What --resume finds in an output file: the ids of its complete lines, and how many bytes
/// those take (a last line torn by a kill follows them: the caller cuts it off once it has
/// accepted the file).
struct DoneIds {
  std::vector<Json> ids;
  /// Error lines among them; the first's error (as written: code, message, hint) and id; how
  /// many are of outputs that held NaN or infinity.
  std::size_t error_lines = 0, nonfinite_lines = 0;
  std::optional<Error> first_error;
  Json first_error_id;
  std::uintmax_t complete_bytes = 0;
  std::uintmax_t torn_bytes = 0;
};

/// Reads an output file for --resume without changing it; throws kIntegrity when a complete line
/// is not JSON, has no "id", or repeats an id.
MS_API DoneIds read_done_ids(const std::filesystem::path& output);

/// Runs `pipeline` over `inputs`. With fail_fast, the first error item throws its ms::Error after
/// the lines before it are written.
MS_API JobStats run_job(Pipeline& pipeline, const std::vector<PipelineInput>& inputs,
                        const JobOptions& options);

/// A whole `ms infer` run: which model, which inputs, where it runs, and the job.
struct InferRequest {
  std::string model;                   ///< a model folder, or a hub id OWNER/NAME (see `hub`)
  std::optional<std::string> task;     ///< default: the model's configuration.json
  std::vector<std::string> overrides;  ///< configuration overrides, KEY=VALUE
  HubModelOptions hub;
  InputSpec inputs;
  DeviceSpec device{DeviceSpec::Kind::kCpu, -1};
  std::string dtype = "fp32";  ///< compute type (PipelineOptions::dtype)
  std::optional<int> threads;  ///< intra-op threads of the torch layer (default: every core)
  /// Batches run at once. Unset: default_workers() (see JobOptions::workers).
  std::optional<std::size_t> workers;
  JobOptions job;  ///< its `workers` is replaced by the choice above
};

/// Runs a request: checks everything that needs no LibTorch first (job options, the model
/// folder, then the inputs, whose text fields the model's configuration may name), then loads
/// the torch layer, builds the model's pipeline, picks the workers and runs the job. Logs the
/// model, task, device and workers, and a summary at the end.
MS_API JobStats run_infer(const InferRequest& request);

/// One output line for an input: {"id": ..., <result keys>} or {"id": ..., "error": {...}}.
MS_API std::string format_line(const PipelineInput& input, const PipelineResult& result);

}  // namespace ms::infer
