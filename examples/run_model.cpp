// Downloads a model from a hub and runs its pipeline on texts given on the command line, printing
// one JSON line per text, as `ms infer` does. Built against an installed ms (find_package(ms)).
//
//   run_model OWNER/NAME TEXT...
//
// The hub and the cache come from the environment as for `ms download`: MODELSCOPE_ENDPOINT,
// MODELSCOPE_API_TOKEN, MODELSCOPE_CACHE. The model's configuration.json names its task and
// pipeline. LibTorch is loaded on first use, from the libms_torch.so installed beside libms.so: the
// program itself links only libms.so.
#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

#include "ms/core/error.h"
#include "ms/core/version.h"
#include "ms/infer/job.h"
#include "ms/infer/model_dir.h"
#include "ms/infer/pipeline.h"
#include "ms/infer/torch_layer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OWNER/NAME TEXT...\n", argv[0]);
    return 2;
  }
  try {
    // A hub id is downloaded into the cache (or found there); a local folder is used as it is.
    const ms::infer::ModelInfo model = ms::infer::open_model(argv[1], std::nullopt);
    std::fprintf(stderr, "ms %s (compiled against %s): %s, task %s, in %s\n", ms::version(),
                 MS_VERSION_STRING, argv[1], model.task.c_str(), model.dir.c_str());

    std::unique_ptr<ms::infer::Pipeline> pipeline =
        ms::infer::pipeline_factory().create(model, ms::infer::PipelineOptions{});
    std::fprintf(stderr, "torch layer %s, device %s\n", ms::infer::torch_layer_path().c_str(),
                 pipeline->device().c_str());

    std::vector<ms::infer::PipelineInput> inputs(argc - 2);
    std::vector<const ms::infer::PipelineInput*> batch;
    for (int i = 2; i < argc; ++i) {
      inputs[i - 2].id = i - 2;
      inputs[i - 2].text = argv[i];
      batch.push_back(&inputs[i - 2]);
    }
    const std::vector<ms::infer::PipelineResult> results = pipeline->run(batch);
    int status = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
      std::fputs(ms::infer::format_line(inputs[i], results[i]).c_str(), stdout);
      if (results[i].error) status = ms::exit_code(results[i].error->code());
    }
    return status;
  } catch (const ms::Error& e) {
    std::fprintf(stderr, "run_model: error: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "hint: %s\n", e.hint().c_str());
    return ms::exit_code(e.code());
  }
}
