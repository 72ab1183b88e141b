// `ms infer`: run a model folder's pipeline over texts, a file or a folder of inputs, writing one
// JSON line per input in input order.
#include <cstdio>
#include <tuple>

#include "cli.h"
#include "ms/core/device.h"
#include "ms/data/loader.h"
#include "ms/hub/repo_id.h"
#include "ms/infer/job.h"

namespace ms::cli {
namespace {

struct InferOptions {
  std::string model;
  std::optional<std::string> task;
  std::vector<std::string> inputs;
  std::optional<std::string> input_file;
  std::string input_format;
  std::optional<std::string> input_dir;
  std::optional<std::string> dataset;
  std::optional<std::string> subset;
  std::optional<std::string> split;
  infer::HubModelOptions hub;
  std::size_t batch_size = 32;
  std::string device = "cpu";
  std::string dtype = "fp32";
  std::optional<int> threads;
  std::optional<std::string> output;
  bool resume = false;
  std::optional<std::string> shard;
  std::vector<std::string> overrides;
  bool fail_fast = false;
  std::optional<std::size_t> workers;
};

void run_infer(const InferOptions& o) {
  infer::InferRequest r;
  r.model = o.model;
  r.task = o.task;
  r.overrides = o.overrides;
  r.hub = o.hub;
  r.inputs.texts = o.inputs;
  if (o.input_file) r.inputs.file = *o.input_file;
  r.inputs.file_format = o.input_format;
  if (o.input_dir) r.inputs.dir = *o.input_dir;
  r.inputs.dataset = o.dataset;
  r.inputs.subset = o.subset;
  r.inputs.split = o.split;
  r.device = parse_device(o.device);
  r.dtype = o.dtype;
  r.threads = o.threads;
  r.workers = o.workers;
  r.job.batch_size = o.batch_size;
  // "-" is standard output, as --input-file - is standard input.
  if (o.output && *o.output != "-") r.job.output = *o.output;
  r.job.resume = o.resume;
  r.job.fail_fast = o.fail_fast;
  if (o.shard) std::tie(r.job.shard_index, r.job.shard_count) = data::parse_shard(*o.shard);
  const infer::JobStats stats = infer::run_infer(r);
  // The job is judged on its whole output: a resumed run counts the lines it kept (a failed job
  // resumed after a kill exited 0). Outputs that are not numbers are the model's failure,
  // reported below.
  const std::size_t errors = stats.errors + stats.kept_errors;
  const std::size_t done = stats.done + stats.skipped;
  const std::size_t nonfinite = stats.nonfinite_outputs + stats.kept_nonfinite_outputs;
  if (nonfinite == 0) {
    report_failed_inputs("ms infer", errors, done, stats.first_error, stats.first_error_id);
  } else if (errors > 0) {
    std::fprintf(stderr, "ms infer: %zu of %zu inputs failed (see the \"error\" lines)\n", errors,
                 done);
  }
  if (nonfinite > 0) {
    // Bad inputs are the inputs' problem; outputs that are not numbers mean the model is broken.
    throw Error(ErrorCode::kIntegrity,
                fmt::format("the model gave NaN or infinity for {} of {} inputs", nonfinite, done),
                "every line was written; the failed inputs have \"error\" lines (code "
                "\"integrity\"); check the model's config.json and weights");
  }
}

}  // namespace

void add_infer_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto opts = std::make_shared<InferOptions>();
  CLI::App* cmd = app.add_subcommand(
      "infer", "Run a model's pipeline on inputs; one JSON line per input, in input order");
  cmd->footer(
      "Examples:\n"
      "  ms infer -m ~/.cache/ms/models/all-MiniLM-L6-v2 -i 'a cat sat' 'a dog ran'\n"
      "  ms infer -m MODEL_DIR --input-file in.jsonl -o out.jsonl -b 64 --device auto\n"
      "  ms infer ... -o out.jsonl --resume   # after a kill: skip the ids already written\n"
      "  ms infer -m MODEL_DIR --input-file in.txt -o emb.npy   # one float32 matrix\n"
      "  ms infer -m MODEL_DIR --dataset imagefolder:photos --shard 0/4 -o part0.jsonl\n"
      "Each line is {\"id\", ...the result} or {\"id\", \"error\"} for a bad input; the job exits\n"
      "0 when some inputs failed (stderr says how many) and with the first failure's code when\n"
      "all did. -v ends with where the time went (stages, and inside the batches).\n" +
      std::string(kExitCodesHelp));
  cmd->add_option("--model,-m", opts->model,
                  "Model folder (ModelScope or Hugging Face layout), or a hub id OWNER/NAME "
                  "(downloaded into the cache once; see --revision, --offline)")
      ->required();
  cmd->add_option("--task,-t", opts->task, "Task (default: the model's configuration.json)");
  cmd->add_option("--input,-i", opts->inputs, "Input text(s)");
  CLI::Option* input_file = cmd->add_option(
      "--input-file", opts->input_file,
      "Inputs: .txt (one per line), .jsonl or .json (JSON lines, or one array of records), "
      ".csv, .tsv; - reads standard input (text lines unless --input-format says otherwise)");
  cmd->add_option("--input-format", opts->input_format,
                  "How --input-file is read: txt, jsonl (or json), csv, tsv (default: by its "
                  "extension; - and other names are txt)")
      ->check(CLI::IsMember({"txt", "jsonl", "json", "csv", "tsv"}))
      ->needs(input_file);
  cmd->add_option("--input-dir", opts->input_dir, "Inputs: every file in a folder");
  cmd->add_option("--dataset", opts->dataset,
                  "Inputs: the rows of a dataset (csv:F, jsonl:F, imagefolder:DIR, zip:F, "
                  "hub:OWNER/NAME[@REV][:SUBSET[/SPLIT]]; see ms dataset info)");
  cmd->add_option("--subset", opts->subset,
                  "With --dataset: the subset of a dataset config that has several");
  cmd->add_option("--split", opts->split,
                  "With --dataset: the split, optionally sliced (test[:100])");
  cmd->add_option(
      "--revision", opts->hub.revision,
      std::string("Hub model ids: branch or tag (default ") + hub::kDefaultRevision + ")");
  cmd->add_flag("--offline", opts->hub.offline,
                "Hub model ids: use the cache only, no network (also MODELSCOPE_OFFLINE=1)");
  cmd->add_option("--endpoint", opts->hub.endpoint, "Hub model ids: the hub URL");
  cmd->add_option("--token", opts->hub.token, "Hub model ids: access token");
  cmd->add_option("--batch-size,-b", opts->batch_size, "Inputs per forward pass")
      ->check(positive_whole_number());
  cmd->add_option("--device,-d", opts->device, "cpu, gpu, gpu:N, cuda:N or auto (gpu if present)");
  cmd->add_option(
         "--dtype", opts->dtype,
         "Compute in fp32 (default), fp16 (GPU only) or bf16; outputs stay float32. Native "
         "BERT-family and image models; a TorchScript export keeps its own dtype")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  add_threads_option(*cmd, opts->threads);
  cmd->add_option("--output,-o", opts->output,
                  "Write JSON lines here (default, or -: stdout). FILE.npy: the embeddings as one "
                  "float32 matrix, row i = input i, written when every input succeeded "
                  "(sentence-embedding; no --resume)");
  cmd->add_flag("--resume", opts->resume,
                "Continue a stopped job: keep --output's lines, skip their ids");
  cmd->add_option("--shard", opts->shard, "Only inputs i, i+n, i+2n, ... of 'i/n'");
  cmd->add_option("--set,--cfg-options", opts->overrides,
                  "Override a configuration key: KEY=VALUE");
  cmd->add_option(
         "--workers", opts->workers,
         "Batches run at once, one thread each (default: --threads on the CPU, 4 on a GPU; "
         "text-generation runs one at a time)")
      ->check(positive_whole_number());
  cmd->add_flag("--fail-fast", opts->fail_fast,
                "Stop at the first bad input instead of writing an error line");
  cmd->callback([opts] { run_infer(*opts); });
}

}  // namespace ms::cli
