// `ms train` and `ms eval`: finetune a model from its configuration (ModelScope's
// build_trainer(...).train()), and evaluate a model folder on a dataset (trainer.evaluate()).
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli.h"
#include "ms/core/device.h"
#include "ms/core/error.h"
#include "ms/hub/repo_id.h"
#include "ms/infer/launch.h"
#include "ms/infer/train.h"

namespace ms::cli {
namespace {

struct TrainOptions {
  infer::TrainRequest request;
  std::string device = "cpu";
  std::optional<std::string> work_dir, config;
  int nproc = 0;
  bool json = false;
};

struct EvalOptions {
  infer::EvalRequest request;
  std::string device = "cpu";
  std::optional<std::string> checkpoint;
  std::vector<std::string> metrics;
  int nproc = 0;
  bool json = false;
};

// What the --json document of a command a signal stopped says to do.
constexpr const char* kTrainInterruptedHint =
    "checkpoints are whole files: `ms train ... --resume auto` goes on from the last one (or "
    "starts over where there is none)";
constexpr const char* kEvalInterruptedHint =
    "the evaluation stopped before its figures: run it again";

// --nproc N: this process only starts, watches and stops N workers of the same command (less
// --nproc), with torchrun's variables. It prints the --json document: the one of the worker
// whose failure is the run's, or rank 0's result (each writes its own to a file of the
// launcher's), else one naming the failure. Stopped by a signal (passed on to the workers), it
// reports and ends as one process does (report_signals).
void launch_local_workers(int nproc, bool json, const char* interrupted_hint) {
  if (json) report_errors_as_json(true, /*one_line=*/true);
  const infer::WorkersOutcome outcome =
      infer::run_local_workers(nproc, infer::without_option(program_args(), "--nproc"));
  if (const int signo = outcome.interrupted_by;
      signo != 0 && outcome.exit_code != 0 && outcome.document.empty()) {
    if (json) print_interrupted_json(signo, interrupted_hint);
    std::signal(signo, SIG_DFL);
    std::raise(signo);
  }
  if (!outcome.document.empty()) print_json_document(outcome.document);
  if (outcome.exit_code != 0)
    throw ExitStatus{outcome.exit_code, outcome.document.empty() ? outcome.failure : ""};
}

Json summary_json(const infer::TrainSummary& s) {
  Json out = Json::object();
  out["work_dir"] = s.work_dir.string();
  out["output_dir"] = s.output_dir.empty() ? Json() : Json(s.output_dir.string());
  out["epochs"] = s.epochs;
  out["iters"] = s.iters;
  out["train_rows"] = s.train_rows;
  out["eval_rows"] = s.eval_rows;
  out["metrics"] = s.metric_values;
  out["resumed_from"] = s.resumed_from ? Json(s.resumed_from->string()) : Json();
  out["seconds"] = s.seconds;
  out["samples_per_second"] = s.samples_per_second;
  out["world_size"] = s.world_size;
  return out;
}

// A run in one process (or under torchrun) that a signal ends still prints its --json document.
// A worker of --nproc leaves that to its launcher, whose document names the signal. Before any
// thread starts (die_with_launcher's, LibTorch's): they inherit the blocked signals.
void report_signals(bool json, const char* hint) {
  if (json && std::getenv("MS_LAUNCHER_PID") == nullptr) report_signals_as_json(hint);
}

// A worker of --nproc: its --json document goes to its launcher (whichever rank it is), which
// prints the one that is the run's.
bool documents_to_launcher() { return std::getenv(infer::kDocumentFileVariable) != nullptr; }

void run_train(TrainOptions& o) {
  if (o.nproc > 0) return launch_local_workers(o.nproc, o.json, kTrainInterruptedHint);
  report_signals(o.json, kTrainInterruptedHint);
  infer::die_with_launcher();
  if (o.json) report_errors_as_json(true, /*one_line=*/true);
  infer::TrainRequest& r = o.request;
  // Only rank 0 prints the --json document, its error as its summary: N ranks failing alike
  // (a bad config) would print N documents on one stdout.
  r.distributed = infer::read_distributed_env();
  // An attempt torchrun will restart after a failure prints no error document either: the run's
  // stdout gets one document, the last attempt's.
  if (r.distributed && (!r.distributed->is_main() || r.distributed->restarts_left > 0) &&
      !documents_to_launcher())
    report_errors_as_json(false);
  r.device = parse_device(o.device);
  if (o.work_dir) r.work_dir = *o.work_dir;
  if (o.config) r.config = *o.config;
  const infer::TrainSummary s = infer::run_train(r);
  if (s.rank != 0) return;  // rank 0 reports for the whole data-parallel run
  if (o.json) {
    print_json_document(json_text(summary_json(s)));
    return;
  }
  std::fprintf(stderr, "ms train: %lld epochs, %lld iterations in %.1f s (%.1f samples/s)%s%s\n",
               static_cast<long long>(s.epochs), static_cast<long long>(s.iters), s.seconds,
               s.samples_per_second, s.output_dir.empty() ? "" : "; model in ",
               s.output_dir.c_str());
  if (!s.metric_values.is_null())
    std::fprintf(stderr, "ms train: last evaluation %s\n", json_text(s.metric_values).c_str());
}

void run_eval(EvalOptions& o) {
  if (o.nproc > 0) return launch_local_workers(o.nproc, o.json, kEvalInterruptedHint);
  report_signals(o.json, kEvalInterruptedHint);
  infer::die_with_launcher();
  if (o.json) report_errors_as_json(true, /*one_line=*/true);
  // As for ms train: under torchrun only rank 0 prints the --json document.
  if (const auto d = infer::read_distributed_env();
      d && (!d->is_main() || d->restarts_left > 0) && !documents_to_launcher())
    report_errors_as_json(false);
  infer::EvalRequest& r = o.request;
  r.device = parse_device(o.device);
  if (o.checkpoint) r.checkpoint = *o.checkpoint;
  r.metrics = split_patterns(o.metrics);
  // "--metrics ," names none: the defaults in its place would answer another question.
  MS_CHECK(o.metrics.empty() || !r.metrics.empty(), ErrorCode::kUsage,
           "--metrics names no metric (see ms list metrics)");
  const Json values = infer::run_eval(r);
  // JSON has no NaN or infinity (it would print null): a figure that is not a number is the
  // evaluation's failure, never a result.
  for (const auto& [key, value] : values.items()) {
    if (value.is_number_float() && !std::isfinite(value.get<double>())) {
      throw Error(
          ErrorCode::kIntegrity,
          fmt::format("the evaluation's {} is {}, not a finite number", key, value.get<double>()),
          "the model's outputs are not numbers, or a perplexity overflows (the mean "
          "loss is above 709): check the weights with --metrics loss-metric");
    }
  }
  // Every worker checked the figure above (each exits with its error); rank 0 prints it.
  if (const auto d = infer::read_distributed_env(); d && !d->is_main()) return;
  if (o.json) {
    print_json_document(json_text(values));
    return;
  }
  for (const auto& [key, value] : values.items())
    std::cout << key << ": " << json_text(value) << "\n";
}

}  // namespace

void add_train_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto opts = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Finetune a model as its configuration says (train.*, evaluation.*): ModelScope's trainer");
  cmd->footer(
      "Examples:\n"
      "  ms train --model configs/image-classification-small-cnn --dataset imagefolder:DIR\n"
      "  ms train --model MINILM_DIR --config configs/text-classification \\\n"
      "      --dataset csv:train.csv --eval-dataset csv:test.csv --work-dir runs/spam\n"
      "  ms train ... --resume            # after a kill: go on from the last checkpoint\n"
      "  ms train ... --resume auto       # one command for the first run and every rerun\n"
      "  ms train ... --overwrite         # start over in a work dir that holds a run\n"
      "  ms train ... --nproc 2           # data-parallel: 2 workers on this machine (Gloo)\n"
      "  torchrun --nproc_per_node 2 --no_python ms train ...   # the same under torchrun\n"
      "Writes <work-dir>/epoch_N.pth (or iter_N.pth) and <prefix>_trainer_state.pth (both\n"
      "torch.load-able), <timestamp>.log.json, tensorboard_output/ (TensorboardHook) and\n"
      "output/: a model folder for ms infer, ms eval, ms upload and transformers.\n" +
      std::string(kExitCodesHelp));
  cmd->add_option("--model,-m", opts->request.model,
                  "Model folder (weights + configuration.json, or a configuration only, to train "
                  "from scratch) or a hub id OWNER/NAME")
      ->required();
  cmd->add_option("--config,-c", opts->config,
                  "A configuration file or folder merged over the model's configuration.json "
                  "(a training recipe such as configs/text-classification)");
  cmd->add_option("--task,-t", opts->request.task, "Task (default: the configuration's)");
  cmd->add_option("--dataset", opts->request.dataset,
                  "Training data (csv:F, jsonl:F, imagefolder:DIR, zip:F, hub:OWNER/NAME...); its "
                  "train split, else its only split")
      ->required();
  cmd->add_option("--subset", opts->request.subset,
                  "The subset of a dataset config that has several (of --dataset and "
                  "--eval-dataset)");
  cmd->add_option("--split", opts->request.split,
                  "The training split, optionally sliced (default: train, else the only split): "
                  "train[:90%]");
  cmd->add_option("--eval-dataset", opts->request.eval_dataset,
                  "Evaluation data (default: --dataset's validation or test split, if any)");
  cmd->add_option("--eval-split", opts->request.eval_split,
                  "The evaluation split of --eval-dataset, else of --dataset, optionally sliced: "
                  "train[90%:]");
  cmd->add_option("--work-dir,-w", opts->work_dir,
                  "Checkpoints, logs and output/ (default: train.work_dir, else ./work_dir)")
      ->check(non_empty("a folder for the run (leave out --work-dir for train.work_dir)"));
  cmd->add_option("--set,--cfg-options", opts->request.overrides,
                  "Override a configuration key: KEY=VALUE (e.g. train.optimizer.lr=1e-4)");
  // Checked here, so that the error names the option rather than the configuration files.
  cmd->add_option("--max-epochs", opts->request.max_epochs, "Epochs (train.max_epochs)")
      ->check(positive_whole_number())
      ->check(CLI::Range(std::int64_t{1}, infer::kMaxTrainEpochs));
  cmd->add_option("--device,-d", opts->device, "cpu, gpu, gpu:N, cuda:N or auto");
  // At most 2^63 - 1: the trainer state stores it as a signed 64-bit integer (as torch does), and
  // CLI11 would wrap -1 to 2^64 - 1.
  cmd->add_option("--seed", opts->request.seed,
                  "Seed of the weights' initialisation, dropout and shuffling (default 42)")
      ->check(non_negative_whole_number());
  cmd->add_option("--resume", opts->request.resume,
                  "Go on from a checkpoint: the work dir's latest (no value), a .pth / prefix, "
                  "or auto: the latest if the work dir has one, else start (reruns, torchrun "
                  "restarts)")
      ->expected(0, 1)
      ->default_str("");
  cmd->add_flag("--overwrite", opts->request.overwrite,
                "Start over in a work dir that holds a run (refused without it: its output/ "
                "would be replaced); its checkpoint files stay unless this run's take their "
                "names");
  cmd->add_option("--nproc", opts->nproc,
                  "Data-parallel: start N workers of this command on this machine (torchrun's "
                  "variables; each trains batch_size_per_gpu rows a step, gradients averaged; "
                  "rank 0 writes). MS_DIST_TIMEOUT: seconds a worker waits for the others")
      ->check(positive_whole_number())
      ->check(CLI::Range(1, 1024));
  add_hub_options(*cmd, opts->request.hub);
  add_threads_option(*cmd, opts->request.threads);
  cmd->add_flag("--json", opts->json,
                "Print a JSON summary on stdout; a failure, or a stop by SIGINT/SIGTERM/SIGHUP "
                "(then exit_code 128 + the signal), prints {\"error\": {...}} instead");
  cmd->callback([opts] { run_train(*opts); });

  auto eopts = std::make_shared<EvalOptions>();
  CLI::App* eval = app.add_subcommand("eval", "Evaluate a model on a dataset with its metrics");
  eval->footer(
      "Examples:\n"
      "  ms eval --model runs/spam/output --dataset csv:test.csv --json\n"
      "  ms eval --model runs/spam/output --dataset csv:test.csv --checkpoint runs/spam/epoch_2\n"
      "  ms eval ... --nproc 4            # 4 workers on this machine, each a quarter of the "
      "split\n"
      "  torchrun --nproc_per_node 4 --no_python ms eval ...   # the same under torchrun\n"
      "Several workers give the figure one process gives (rank 0 prints it).\n" +
      std::string(kExitCodesHelp));
  eval->add_option("--model,-m", eopts->request.model, "Model folder or hub id")->required();
  eval->add_option("--task,-t", eopts->request.task, "Task (default: the configuration's)");
  eval->add_option("--dataset", eopts->request.dataset, "Evaluation data")->required();
  eval->add_option("--subset", eopts->request.subset,
                   "The subset of a dataset config that has several");
  eval->add_option("--split", eopts->request.split,
                   "Split, optionally sliced: test, train[90%:] (default: validation, else "
                   "test, else the only one)");
  eval->add_option(
      "--checkpoint", eopts->checkpoint,
      "Weights from a checkpoint (<prefix>.pth or the prefix) instead of the folder's");
  eval->add_option("--metrics", eopts->metrics,
                   "Metrics by name, comma-separated (default: evaluation.metrics, else the "
                   "task's; see ms list metrics)");
  eval->add_option("--set,--cfg-options", eopts->request.overrides,
                   "Override a configuration key: KEY=VALUE");
  eval->add_option("--batch-size,-b", eopts->request.batch_size, "Rows per forward pass")
      ->check(positive_whole_number());
  eval->add_option("--device,-d", eopts->device, "cpu, gpu, gpu:N, cuda:N or auto");
  eval->add_option("--nproc", eopts->nproc,
                   "Data-parallel: start N workers of this command on this machine (torchrun's "
                   "variables); each evaluates a share of the batches, rank 0 merges them. "
                   "MS_DIST_TIMEOUT: seconds a worker waits for the others")
      ->check(positive_whole_number())
      ->check(CLI::Range(1, 1024));
  add_hub_options(*eval, eopts->request.hub);
  add_threads_option(*eval, eopts->request.threads);
  eval->add_flag("--json", eopts->json,
                 "Print one JSON object of metric values on stdout ({\"error\": {...}} for a "
                 "failure or a stop by a signal)");
  eval->callback([eopts] { run_eval(*eopts); });
}

}  // namespace ms::cli
