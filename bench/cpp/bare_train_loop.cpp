// The baseline of the trainer-overhead benchmark (bench/train_overhead.sh): the same model, data
// and optimizer `ms train` uses, driven by the plainest C++ loop there is: no hooks, no logging,
// no evaluation, no checkpoints. What `ms train` spends beyond this loop is the trainer's overhead.
//
//   ms_bench_bare_train_loop CONFIG_DIR DATASET [--threads N] [--epochs E] [--seed S]
//
// CONFIG_DIR is an image-classification model folder or config (configs/image-classification-*):
// its model.type, preprocessor transforms, train.dataloader and train.optimizer are used as
// `ms train` uses them (the trainer's own batch source, optimizer and model builder). Prints one
// JSON object: samples/s of the training loop (data loading included, as the trainer's
// iter_time includes it), seconds, iterations and the last loss.
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <malloc.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "batch_sources.h"  // lib/trainer/src: the trainer's batch sources
#include "ms/config/config.h"
#include "ms/core/error.h"
#include "ms/data/dataset.h"
#include "ms/models/model.h"
#include "ms/pipelines/image_transforms.h"
#include "ms/trainer/optimizer.h"

namespace {

struct Args {
  std::string config_dir, dataset;
  int threads = 2;
  int epochs = 1;
  std::uint64_t seed = 42;
};

Args parse_args(int argc, char** argv) {
  Args a;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--threads") {
      a.threads = std::stoi(value());
    } else if (arg == "--epochs") {
      a.epochs = std::stoi(value());
    } else if (arg == "--seed") {
      a.seed = std::stoull(value());
    } else if (positional == 0) {
      a.config_dir = arg, ++positional;
    } else if (positional == 1) {
      a.dataset = arg, ++positional;
    } else {
      throw std::runtime_error("unexpected argument " + arg);
    }
  }
  if (positional != 2)
    throw std::runtime_error(
        "usage: ms_bench_bare_train_loop CONFIG_DIR DATASET [--threads N] [--epochs E] "
        "[--seed S]");
  return a;
}

int run(const Args& a) {
  using namespace ms;
  // The process settings `ms` makes when it loads its torch layer (torch_runtime_impl.cpp): they
  // are the runtime's, not the trainer's, so the baseline has them too (without them this loop's
  // activations are mmapped and unmapped every batch, ~15 % slower on the small CNN).
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  at::set_num_threads(a.threads);
  at::manual_seed(a.seed);
  const Config config =
      Config::from_file(std::filesystem::path(a.config_dir) / "configuration.json");
  const data::Dataset ds = data::load_dataset(a.dataset);
  const data::Split* train = nullptr;  // the "train" split, as `ms train` picks it
  for (const auto& s : ds.splits)
    if (s.name == "train") train = &s;
  if (train == nullptr) train = &ds.only_split();

  models::ModelSpec spec;
  spec.task = config.get_or<std::string>("task", "image-classification");
  spec.type = config.get_or<std::string>("model.type", "");
  spec.config = config;
  spec.num_labels = static_cast<std::int64_t>(ds.labels.size());
  std::shared_ptr<models::Model> model = models::build_model(spec);
  model->module().train();

  trainer::Batching batching;
  batching.batch_size = config.get_or<std::size_t>("train.dataloader.batch_size_per_gpu", 32);
  batching.shuffle = config.get_or<bool>("train.dataloader.shuffle", true);
  batching.seed = a.seed;
  std::unique_ptr<trainer::BatchSource> batches =
      trainer::make_image_batches(*train, pipelines::parse_transforms(config),
                                  trainer::LabelMap(ds.labels), ds.labels, batching, a.dataset);

  std::vector<at::Tensor> params;
  for (const at::Tensor& p : model->module().parameters())
    if (p.requires_grad()) params.push_back(p);
  std::unique_ptr<trainer::Optimizer> optimizer = trainer::build_optimizer(
      nlohmann::json::parse(config.at("train.optimizer").dump()), {{std::move(params), {}}});

  std::int64_t iters = 0, samples = 0;
  double last_loss = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int epoch = 0; epoch < a.epochs; ++epoch) {
    batches->start(static_cast<std::uint64_t>(epoch), 0);
    while (std::optional<models::TensorMap> batch = batches->next()) {
      samples += batch->at("labels").size(0);
      at::Tensor loss = model->forward(*batch).at("loss");
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      last_loss = loss.item<double>();  // a real loop reads the loss too (and it syncs a GPU)
      ++iters;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "{\"samples_per_s\": %.3f, \"seconds\": %.3f, \"iters\": %lld, \"samples\": %lld, "
      "\"threads\": %d, \"last_loss\": %.6f}\n",
      static_cast<double>(samples) / seconds, seconds, static_cast<long long>(iters),
      static_cast<long long>(samples), a.threads, last_loss);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "ms_bench_bare_train_loop: " << e.what() << "\n";
    return 2;
  }
}
