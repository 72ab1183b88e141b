// `ms train` and `ms eval` up to the torch layer: the model folder and its merged configuration
// (model's configuration.json, then --config, then --set), then the TrainerService.
#include "ms/infer/train.h"

#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/infer/launch.h"
#include "ms/infer/torch_layer.h"

namespace ms::infer {
namespace {

// The model and the configuration it trains with: --config merged over the model's own, then the
// overrides, so that a recipe (configs/...) applies to any model folder or hub id.
ModelInfo open_for_training(const std::string& model, std::optional<std::string> task,
                            const std::optional<std::filesystem::path>& recipe,
                            const std::vector<std::string>& overrides, const HubModelOptions& hub) {
  // --set task=T chooses the task as --task does, over the recipe's (it would otherwise change
  // the configuration's task key after the task was chosen, and be ignored).
  for (const std::string& o : overrides) {
    if (task || o.rfind("task=", 0) != 0) continue;
    Config probe(Json::object(), "--set");
    probe.apply_override(o);
    if (probe.has("task") && probe.at("task").is_string()) task = probe.get<std::string>("task");
  }
  std::optional<Config> extra;
  if (recipe) {
    extra = Config::from_file(*recipe);
    if (!task && extra->has("task")) task = extra->get<std::string>("task");
  }
  ModelInfo info = open_model(model, task, {}, hub);
  if (extra) {
    Json merged = info.config.root();
    merge_json(merged, extra->root());
    info.config = Config(merged, info.config.source() + " + " + extra->source());
  }
  for (const std::string& o : overrides) info.config.apply_override(o);
  if (info.config.has("model.type")) info.model_type = info.config.get<std::string>("model.type");
  return info;
}

TrainerService& trainer_service(std::optional<int> threads) {
  const TorchLayer& layer = load_torch_layer(TorchOptions{threads});
  MS_CHECK(layer.trainer != nullptr, ErrorCode::kMissingComponent,
           "this torch layer was built without the trainer");
  return *layer.trainer;
}

}  // namespace

TrainSummary run_train(const TrainRequest& request) {
  MS_CHECK(!request.dataset.empty(), ErrorCode::kUsage, "--dataset is required");
  if (request.max_epochs)
    MS_CHECK(*request.max_epochs > 0, ErrorCode::kUsage,
             "--max-epochs must be a positive integer, got {}", *request.max_epochs);
  TrainRequest r = request;
  if (!r.distributed) r.distributed = read_distributed_env();
  if (r.distributed) ensure_open_files_for(r.distributed->world_size);
  const ModelInfo model = open_for_training(r.model, r.task, r.config, r.overrides, r.hub);
  return trainer_service(r.threads).train(r, model);
}

Json run_eval(const EvalRequest& request) {
  MS_CHECK(!request.dataset.empty(), ErrorCode::kUsage, "--dataset is required");
  // Under torchrun (or --nproc) the workers each evaluate a share of the split, and every one
  // returns the merged figure.
  EvalRequest r = request;
  if (!r.distributed) r.distributed = read_distributed_env();
  if (r.distributed) ensure_open_files_for(r.distributed->world_size);
  const ModelInfo model = open_for_training(r.model, r.task, std::nullopt, r.overrides, r.hub);
  return trainer_service(r.threads).evaluate(r, model);
}

}  // namespace ms::infer
