// The torch-free face of `ms train` and `ms eval`: what to train or evaluate, and what came out.
// The torch layer implements TrainerService (lib/trainer); run_train() / run_eval() check what
// needs no LibTorch, open the model, load the torch layer and call it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ms/config/config.h"
#include "ms/core/device.h"
#include "ms/core/export.h"
#include "ms/infer/distributed_env.h"
#include "ms/infer/model_dir.h"

namespace ms::infer {

/// The most epochs a run may ask for (train.max_epochs, --max-epochs): keeps epochs x iterations
/// (the ETA, max_iters) far from int64's limit.
inline constexpr std::int64_t kMaxTrainEpochs = 1000000000;

/// `ms train`.
struct TrainRequest {
  std::string model;  ///< a model folder (weights or only a configuration) or a hub id
  /// A configuration file or folder merged over the model's configuration.json (ModelScope's
  /// cfg_file): a model's folder plus a training recipe.
  std::optional<std::filesystem::path> config;
  std::optional<std::string> task;
  std::string dataset;                      ///< dataset spec; its train split (or only split)
  std::optional<std::string> subset;        ///< --subset: of --dataset and --eval-dataset
  std::optional<std::string> split;         ///< --split: the training split, may be sliced
  std::optional<std::string> eval_dataset;  ///< default: the dataset's validation / test split
  /// --eval-split: the evaluation split (of eval_dataset, else of dataset), may be sliced:
  /// "train[90%:]" holds out the end of the training split.
  std::optional<std::string> eval_split;
  std::optional<std::filesystem::path> work_dir;  ///< default: train.work_dir, else ./work_dir
  std::vector<std::string> overrides;             ///< --set KEY=VALUE (cfg_options)
  std::optional<std::int64_t> max_epochs;         ///< --max-epochs: 1..kMaxTrainEpochs
  DeviceSpec device{DeviceSpec::Kind::kCpu, -1};
  std::uint64_t seed = 42;
  /// --resume: "" for the work dir's latest checkpoint, else a checkpoint prefix or file.
  std::optional<std::string> resume;
  /// --overwrite: start over in a work dir that holds a run (refused otherwise).
  bool overwrite = false;
  std::optional<int> threads;
  HubModelOptions hub;
  /// This worker's place in a data-parallel run (torchrun's / Slurm's variables; run_train reads
  /// them when unset); nullopt: one process.
  std::optional<DistributedEnv> distributed;
};

/// What a training run did.
struct TrainSummary {
  std::filesystem::path work_dir;
  /// <work_dir>/output, the inference-ready model; empty when no checkpoint was saved.
  std::filesystem::path output_dir;
  std::int64_t epochs = 0;  ///< epochs done, counting those before a resume
  std::int64_t iters = 0;
  std::int64_t train_rows = 0, eval_rows = 0;
  Json metric_values;  ///< the last evaluation's (null when none ran)
  std::optional<std::filesystem::path> resumed_from;
  double seconds = 0;
  /// Training samples of this run per second of the loop (full batches counted; all ranks'
  /// under data parallelism).
  double samples_per_second = 0;
  int rank = 0, world_size = 1;  ///< the worker that reports (rank 0 prints the summary)
};

/// `ms eval`.
struct EvalRequest {
  std::string model;
  std::optional<std::string> task;
  std::string dataset;
  std::optional<std::string> subset;  ///< of a dataset config that has several
  std::optional<std::string> split;   ///< default: validation, else test, else the only split
  /// A <prefix>.pth (or prefix) whose weights replace the folder's.
  std::optional<std::filesystem::path> checkpoint;
  std::vector<std::string> metrics;  ///< default: evaluation.metrics, else the task's
  std::vector<std::string> overrides;
  DeviceSpec device{DeviceSpec::Kind::kCpu, -1};
  std::size_t batch_size = 0;  ///< 0: evaluation.dataloader.batch_size_per_gpu, else 32
  std::optional<int> threads;
  HubModelOptions hub;
  /// The torchrun variables of this worker (read from the environment when absent): the workers
  /// each evaluate a share of the split, and rank 0's result is everyone's.
  std::optional<DistributedEnv> distributed;
};

/// Implemented by the torch layer (TorchLayer::trainer).
class MS_API TrainerService {
 public:
  virtual ~TrainerService() = default;
  virtual TrainSummary train(const TrainRequest& request, const ModelInfo& model) = 0;
  /// The metric values, as one JSON object (on every data-parallel worker alike).
  virtual Json evaluate(const EvalRequest& request, const ModelInfo& model) = 0;
};

/// A whole `ms train`: opens the model (downloading a hub id), loads the torch layer, trains.
MS_API TrainSummary run_train(const TrainRequest& request);
/// A whole `ms eval`.
MS_API Json run_eval(const EvalRequest& request);

}  // namespace ms::infer
