// The precompiled header of the torch modules (tensor, models, pipelines, trainer, export,
// torch_layer): the LibTorch headers most of their sources include. Parsing them takes 5-18 s of
// each such source's 10-40 s compile; compiled once (CMakeLists.txt, target_precompile_headers)
// the torch sources took 22% less CPU time (6 sources measured: 101 s against 129 s; the compiled
// header itself takes ~40 s and 0.5 GB). Sources still include what they use: this list only
// decides what is parsed once, never what a source may leave out.
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/version.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
