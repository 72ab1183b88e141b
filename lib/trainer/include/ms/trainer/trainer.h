// The epoch-based trainer (ModelScope's EpochBasedTrainer): a train loop over batches of a dataset,
// with every action around it (backward and optimizer steps, LR schedules, evaluation, checkpoints,
// logs) done by hooks called at the stages of ms/trainer/hook.h.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ms/config/config.h"
#include "ms/core/error.h"
#include "ms/metrics/metric.h"
#include "ms/models/model.h"
#include "ms/trainer/distributed.h"
#include "ms/trainer/hook.h"
#include "ms/trainer/lr_scheduler.h"
#include "ms/trainer/optimizer.h"

namespace ms::trainer {

/// Batches of model inputs (labels included) for one split, on the CPU. A pass is started per
/// epoch; the order of an epoch depends only on the seed and the epoch (exact resume needs that).
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual std::size_t rows() const = 0;
  virtual std::size_t num_batches() const = 0;
  /// Rows per batch (the last may hold fewer).
  virtual std::size_t batch_size() const = 0;
  /// Whether each epoch's order is shuffled (by the seed and the epoch).
  virtual bool shuffled() const { return false; }
  /// Starts epoch `epoch`, skipping its first `skip` batches (a resumed epoch).
  virtual void start(std::uint64_t epoch, std::size_t skip) = 0;
  /// The next batch, or nullopt at the end of the epoch.
  virtual std::optional<models::TensorMap> next() = 0;
  /// The split's rows the last next() batch holds, in its order (text-gen-metric looks up their
  /// prompts and targets); empty where a source does not say.
  virtual std::vector<std::size_t> last_rows() const { return {}; }
};

/// text-gen-metric's side of an evaluation (text-generation), as ModelScope's
/// TextGenerationTrainer does it: the model continues each row's prompt, and the metric compares
/// the continuations ("preds") with the rows' target texts ("tgts").
struct GenerationEval {
  /// By row of the evaluation split.
  std::vector<std::string> prompts, targets;
  /// The model's continuations of `prompts` (the new text only), one per prompt.
  std::function<std::vector<std::string>(const std::vector<std::string>& prompts)> continue_texts;
};

/// Scalars logged by the hooks, averaged over the logging interval (ModelScope's LogBuffer).
class LogBuffer {
 public:
  /// Adds one value per key (counted `count` times in averages).
  void update(const std::string& key, double value, int count = 1);
  /// Averages the last `n` values of every key (all when n == 0) into output() and marks ready.
  void average(std::size_t n = 0);
  /// Drops the history and output (a new epoch).
  void clear();
  void clear_output();
  /// What the loggers write: averaged values and values hooks put there directly (lr,
  /// evaluation/<metric>), in insertion order.
  Json& output() { return output_; }
  bool ready = false;

 private:
  std::vector<std::string> keys_;  // insertion order
  std::map<std::string, std::vector<std::pair<double, int>>> history_;
  Json output_ = Json::object();
};

/// Everything a trainer runs on.
struct TrainerSetup {
  Config config;  ///< the merged configuration (train.*, evaluation.*)
  std::shared_ptr<models::Model> model;
  std::unique_ptr<BatchSource> train_data;  ///< null for evaluation only
  std::unique_ptr<BatchSource> eval_data;   ///< null when there is nothing to evaluate on
  std::filesystem::path work_dir;
  std::string device = "cpu";
  std::uint64_t seed = 42;
  /// Set when text-gen-metric evaluates a text-generation model; text-gen-metric is refused
  /// without it.
  std::optional<GenerationEval> generation;
  /// Class names by id: given to metrics that need them (token-cls-metric's id2label).
  std::vector<std::string> label_names;
  /// data::Table::content_hash() of the training split (0: unknown): saved in the trainer state,
  /// and a resume inside an epoch must read the same data.
  std::uint64_t train_data_hash = 0;
  /// The same of the evaluation split (0: unknown): data-parallel ranks each evaluate a share of
  /// it, so they must hold the same rows.
  std::uint64_t eval_data_hash = 0;
  /// Facts of the model folder's files that decide what it computes from a row (config.json and
  /// the tokenizer files, by content hash), one line each: data-parallel ranks must agree on
  /// them (evaluation_facts), since another vocabulary gives the same rows other token ids, and
  /// another config.json (heads, activation) another network of the same tensors.
  std::vector<std::string> model_file_facts;
  /// Writes the inference-ready model folder (output/ and output_best/) from the model's state.
  std::function<void(const std::filesystem::path& dir, const models::TensorMap& state,
                     const Json& metric_values)>
      save_output;
  /// Lines of text the TextLoggerHook writes (console); default: stderr.
  std::function<void(const std::string& line)> console;
  /// Names the run's logs, <timestamp>.log and <timestamp>.log.json ("20261205_213005");
  /// empty: the local time when the trainer is made.
  std::string timestamp;
  /// The data-parallel group this worker belongs to; null in a single process. train_data is
  /// then this rank's shard; eval_data is the whole split, of which each rank evaluates a share.
  std::shared_ptr<Distributed> distributed;
};

enum class Mode { kTrain, kEval };

class Trainer {
 public:
  explicit Trainer(TrainerSetup setup);
  ~Trainer();

  /// Adds a hook (see HookList::add for the order).
  void register_hook(std::shared_ptr<Hook> hook);
  /// The hooks of train.hooks (with ModelScope's defaults and key-chain sections merged in), the
  /// OptimizerHook and LrSchedulerHook, registered. Called by train(); exposed for tests.
  void register_hooks_from_config();

  /// The whole run: before_run, the epochs, after_run. `resume_from` is a checkpoint prefix or
  /// .pth file: a LoadCheckpointHook restores the model and the trainer state (optimizer,
  /// schedule, counters, hook states, RNG) from it, and the loop goes on from there.
  void train(const std::optional<std::filesystem::path>& resume_from = std::nullopt);
  /// Runs the metrics over the eval data (before_val and after_val around it); also sets
  /// metric_values(). Under data parallelism every rank evaluates a contiguous share of the
  /// batches and rank 0 merges the shares in rank order, so every rank gets the figure one
  /// process gives; an error on any rank is every rank's (named after that rank).
  Json evaluate();
  /// What data-parallel ranks must agree on to evaluate together (Distributed::check_alike): the
  /// labels, the evaluation data and its batches, the preprocessor.* and evaluation.*
  /// configuration, the model's config.json and tokenizer files (model_file_facts) and its tensors
  /// by name, shape and type. Part of what a training run checks too.
  std::vector<std::string> evaluation_facts() const;
  /// kConfig unless one of the evaluation's metrics (evaluation.metrics, or the task's default)
  /// may report `key`: a hook's metric_key checked when the run starts, naming `hook` and the
  /// close matches. Nothing to check without evaluation data.
  void check_metric_key(const std::string& key, const std::string& hook);

  // State the hooks read and change.
  Mode mode() const { return mode_; }
  std::int64_t epoch() const { return epoch_; }
  /// The epochs the run has reached, numbered from 1, for its summary: after a run, epoch() (the
  /// next epoch's index), or, where a resumed checkpoint lies past train.max_epochs, the epoch
  /// it was taken in (epoch() is its index then).
  std::int64_t epochs_reached() const { return std::max(epoch_, checkpoint_epochs_); }
  std::int64_t iter() const { return iter_; }
  /// The iteration this run started at: 0, or a resumed checkpoint's (set once it is loaded).
  std::int64_t first_iter() const { return first_iter_; }
  /// The rows this process trained on since it started (a ragged last batch counts its rows).
  std::int64_t rows_trained() const { return rows_trained_; }
  std::int64_t inner_iter() const { return inner_iter_; }
  std::int64_t max_epochs() const { return max_epochs_; }
  std::int64_t iters_per_epoch() const { return iters_per_epoch_; }
  /// The run's last iteration count: the epochs' batches, those done before a resume with
  /// another batch count per epoch (other workers, batch size or data) counted as they were.
  std::int64_t max_iters() const { return max_epochs_ * iters_per_epoch_ + iters_offset_; }
  /// Sets the counters (a restored checkpoint).
  void set_progress(std::int64_t epoch, std::int64_t iter, std::int64_t inner_iter);

  const Config& config() const { return setup_.config; }
  models::Model& model() { return *setup_.model; }
  const std::string& device() const { return setup_.device; }
  std::uint64_t seed() const { return setup_.seed; }
  const std::filesystem::path& work_dir() const { return setup_.work_dir; }
  /// The data-parallel group (null in a single process).
  Distributed* distributed() const { return setup_.distributed.get(); }
  /// Whether this worker writes checkpoints, logs and output (rank 0; ModelScope's
  /// master_only).
  bool is_main() const { return !setup_.distributed || setup_.distributed->is_main(); }
  /// The run's start time as ModelScope names log files: YYYYmmdd_HHMMSS.
  const std::string& timestamp() const { return timestamp_; }
  LogBuffer& log_buffer() { return log_buffer_; }
  const HookList& hooks() const { return hooks_; }

  /// The optimizer and schedule (built from train.optimizer / train.lr_scheduler on first use).
  Optimizer& optimizer();
  LrScheduler* lr_scheduler();
  void set_lr_scheduler(std::unique_ptr<LrScheduler> scheduler);

  /// The outputs of the last train step (loss keys included, still attached to the graph).
  const models::TensorMap& train_outputs() const { return train_outputs_; }
  /// The last evaluation's metric values (null before any).
  const Json& metric_values() const { return metric_values_; }

  /// Iterations whose gradients add up before one optimizer step (OptimizerHook sets it).
  std::int64_t cumulative_iters() const { return cumulative_iters_; }
  void set_cumulative_iters(std::int64_t n) { cumulative_iters_ = n; }
  /// Where the last evaluation happened: {"epoch", epoch()} or {"iter", iter()} (EvaluationHook
  /// sets it; BestCkptSaverHook saves right after one).
  const std::pair<std::string, std::int64_t>& last_eval_tag() const { return last_eval_tag_; }
  void set_last_eval_tag(std::string unit, std::int64_t at) { last_eval_tag_ = {unit, at}; }

  /// Runs `action` once the current stage's hooks are all done (CheckpointHook and
  /// BestCkptSaverHook write their files so: the trainer state then holds what every hook of the
  /// stage did, EarlyStopHook's and the LR step included).
  void at_stage_end(std::function<void()> action) { at_stage_end_.push_back(std::move(action)); }
  /// Runs `action` after every at_stage_end action of the stage: what makes a save the one
  /// --resume finds (latest_checkpoint.json), so that it never names a stage whose files, the
  /// best checkpoint's among them, are not all written yet.
  void after_stage_saves(std::function<void()> action) {
    after_stage_saves_.push_back(std::move(action));
  }

  /// Ends training after the current epoch (EarlyStopHook).
  void stop_training() { stop_ = true; }
  bool stop_requested() const { return stop_; }

  /// The model's state on the CPU and the trainer state as ModelScope saves them; see
  /// checkpoint.h for the files. Under data parallelism every rank calls trainer_state() at the
  /// same point (it gathers each rank's RNG state into rank 0's).
  models::TensorMap model_state() const;
  tensor::CheckpointValue trainer_state() const;
  void load_trainer_state(const tensor::CheckpointValue& state);
  /// Loads a model state dict (a <prefix>.pth file's content); `source` names it in errors.
  void load_model_state(const models::TensorMap& state, const std::string& source);
  /// Writes an inference-ready model folder (setup.save_output).
  void save_output(const std::filesystem::path& dir) const;
  /// The folder the CheckpointHook writes the model to (work_dir/output unless configured).
  const std::filesystem::path& output_dir() const { return output_dir_; }
  void set_output_dir(std::filesystem::path dir) { output_dir_ = std::move(dir); }
  /// A line for the console (TextLoggerHook).
  void console(const std::string& line) const;

 private:
  void train_step(models::TensorMap batch);
  /// The key each hook's state is saved under in the trainer state.
  std::vector<std::pair<std::string, Hook*>> hook_state_keys() const;
  /// Calls a stage's hooks, then the actions they left for its end.
  void call_stage(Stage stage);
  void move_to_device(models::TensorMap& batch) const;
  /// What data-parallel ranks must agree on (Distributed::check_alike): where the run starts, its
  /// iterations, seed and training data, the train.* configuration (but for this machine's
  /// folders and loader threads), and evaluation_facts().
  std::vector<std::string> run_facts() const;
  /// The metrics of evaluation.metrics (or the task's default), empty of batches.
  std::vector<std::unique_ptr<metrics::Metric>> build_metrics();
  /// Adds this rank's batches [first, end) of the eval data to `metrics`.
  void evaluate_batches(std::size_t first, std::size_t end,
                        std::vector<std::unique_ptr<metrics::Metric>>& metrics);
  /// text-gen-metric's fields of the batch next() gave last: the model's continuations of its
  /// rows' prompts (outputs "preds") and the rows' target texts (inputs "tgts").
  void add_generated_texts(metrics::Fields& outputs, metrics::Fields& inputs) const;
  /// Data parallelism: sends this rank's share (its metrics' states, or the error it met) to
  /// rank 0, which merges the shares in rank order; returns the values every rank then gets, or
  /// throws the first rank's error on every rank.
  Json combine_shares(std::vector<std::unique_ptr<metrics::Metric>>& metrics,
                      std::optional<Error> failure);

  TrainerSetup setup_;
  HookList hooks_;
  LogBuffer log_buffer_;
  Mode mode_ = Mode::kTrain;
  std::int64_t epoch_ = 0, iter_ = 0, inner_iter_ = 0, max_epochs_ = 1, iters_per_epoch_ = 0;
  std::int64_t checkpoint_epochs_ = 0;  // see epochs_reached()
  // Iterations done before the resumed epoch less what this run's batch count gives them (0
  // unless resumed with another count per epoch): max_iters() ends at the real last iteration.
  std::int64_t iters_offset_ = 0;
  std::optional<std::int64_t> val_iters_;  ///< evaluation.val_iters_per_epoch: batches evaluated
  std::int64_t first_iter_ = 0;
  std::int64_t rows_trained_ = 0;
  std::string timestamp_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<LrScheduler> lr_scheduler_;
  models::TensorMap train_outputs_;
  Json metric_values_;
  std::filesystem::path output_dir_;
  bool stop_ = false;
  bool epoch_end_ = false;           // inside after_train_epoch (and its end actions)
  bool resumed_epoch_done_ = false;  // the restored checkpoint was taken after its epoch ended
  std::vector<std::function<void()>> at_stage_end_, after_stage_saves_;
  std::int64_t cumulative_iters_ = 1;
  std::pair<std::string, std::int64_t> last_eval_tag_{"", -1};
  bool hooks_registered_ = false;
};

/// The file in a work dir naming its newest complete checkpoint ({"prefix": "iter_20", ...}),
/// replaced atomically after both checkpoint files are written: a kill at any moment leaves it
/// naming a checkpoint that is whole.
constexpr const char* kLatestCheckpointFile = "latest_checkpoint.json";

/// The checkpoint files of a prefix ("<work_dir>/epoch_2"): <prefix>.pth holds the model's state
/// dict, <prefix>_trainer_state.pth the trainer state.
std::filesystem::path model_file(const std::filesystem::path& prefix);
std::filesystem::path trainer_state_file(const std::filesystem::path& prefix);
/// The prefix of a checkpoint path given as a prefix, a .pth or a _trainer_state.pth file.
std::filesystem::path checkpoint_prefix(const std::filesystem::path& path);
/// The checkpoint latest_checkpoint.json names in a work dir, when both its files are there;
/// nullopt otherwise.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& work_dir);

}  // namespace ms::trainer
