#include "ms/infer/torch_layer.h"

#include <dlfcn.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "ms/core/device.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/infer/pipeline.h"

namespace ms::infer {
namespace {

using EntryPoint = const TorchLayer* (*)(int);

const TorchLayer* g_layer = nullptr;
std::mutex g_mutex;

[[noreturn]] void missing(const std::string& message, const std::string& hint) {
  throw Error(ErrorCode::kMissingComponent, message, hint);
}

constexpr const char* kInstallHint =
    "install LibTorch (Debian/Ubuntu: run scripts/setup.sh, or apt-get install libtorch-dev "
    "libopenblas0-openmp) and build with -DMS_WITH_TORCH=ON";
constexpr const char* kAddressSpaceHint =
    "LibTorch needs more than 1 GiB of address space: raise `ulimit -v`, or lift it";

// More threads than this is a typo or a misread variable (LibTorch would try to start them all).
constexpr int kMaxThreads = 1024;

// Where the thread count came from: --threads or OMP_NUM_THREADS (a person's choice, checked
// against the cores), else the usable cores.
struct ThreadCount {
  int threads = 1;
  const char* asked_by = nullptr;  // "--threads", "OMP_NUM_THREADS"; nullptr: the cores
};

// $OMP_NUM_THREADS, else the usable cores.
ThreadCount default_threads() {
  if (auto omp = env_var("OMP_NUM_THREADS")) {
    // The whole value: "4abc", "2.5" or "1e3" are no count (stoi read their first digits). A
    // list ("4,2": the threads of nested levels, in OpenMP) gives the outer level's.
    const std::string_view text = trim(std::string_view(*omp).substr(0, omp->find(',')));
    if (is_decimal(text)) {
      int n = 0;
      const auto [stop, error] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (error == std::errc::result_out_of_range) {
        throw Error(
            ErrorCode::kUsage,
            fmt::format("OMP_NUM_THREADS={} asks for more threads than ms runs (at most {})", *omp,
                        kMaxThreads),
            fmt::format("this process may use {} core(s): set it to at most that", usable_cores()));
      }
      if (n > 0) return {n, "OMP_NUM_THREADS"};
    }
    log::warn("ignoring OMP_NUM_THREADS='{}': not a positive integer", *omp);
  }
  return {static_cast<int>(usable_cores()), nullptr};
}

}  // namespace

std::filesystem::path torch_layer_path() {
  if (auto override_path = env_var("MS_TORCH_LAYER")) return *override_path;
  // libms_torch.so is installed beside libms.so; find the folder of the library holding this code.
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&torch_layer_path), &info) != 0 && info.dli_fname != nullptr) {
    return std::filesystem::path(info.dli_fname).parent_path() / "libms_torch.so";
  }
  return "libms_torch.so";
}

const TorchLayer& load_torch_layer(const TorchOptions& options) {
  // Checked on every call: a bad count must not pass because an earlier call loaded the layer.
  if (options.threads) {
    MS_CHECK(*options.threads > 0, ErrorCode::kUsage,
             "--threads must be a positive integer, got {}", *options.threads);
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_layer != nullptr) return *g_layer;

  const std::filesystem::path path = torch_layer_path();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (env_var("MS_TORCH_LAYER")) {
      missing(fmt::format("MS_TORCH_LAYER names the torch layer {}, which does not exist",
                          path.string()),
              "point MS_TORCH_LAYER at a libms_torch.so, or unset it to use the one installed "
              "beside libms.so");
    }
#ifdef MS_BUILT_WITH_TORCH
    missing(fmt::format("the torch layer {} is missing: this ms was built with LibTorch, but the "
                        "file is not beside libms.so",
                        path.string()),
            "reinstall ms (cmake --install), which puts libms_torch.so beside libms.so");
#else
    missing(fmt::format("the torch layer is not installed: {} does not exist (this ms was built "
                        "without LibTorch)",
                        path.string()),
            kInstallHint);
#endif
  }
  // LibTorch logs through glog (Debian's build, which reads GLOG_minloglevel as it loads) or c10's
  // own logger (PyPI's: TORCH_CPP_LOG_LEVEL). A rendezvous on a port in use printed four raw
  // lines of c10d's before ms's one-line error, which says the same; ms reports what fails
  // itself. They are shown at ms's debug level, or with the user's own setting.
  if (log::level() > log::Level::kDebug) {
    ::setenv("GLOG_minloglevel", "3", /*overwrite=*/0);
    ::setenv("TORCH_CPP_LOG_LEVEL", "FATAL", /*overwrite=*/0);
  }
  // Below about 1 GiB of address space LibTorch's BLAS (OpenBLAS) retries a failing allocation
  // for ever as it loads: `ms env` under `ulimit -v 800000` spun without end. Said up front.
  constexpr rlim_t kLeastAddressSpace = rlim_t{1} << 30;
  if (rlimit space{}; ::getrlimit(RLIMIT_AS, &space) == 0 && space.rlim_cur != RLIM_INFINITY &&
                      space.rlim_cur < kLeastAddressSpace) {
    throw Error(ErrorCode::kIo,
                fmt::format("cannot load the torch layer {}: out of memory (the address space "
                            "is limited to {} MiB; LibTorch needs more than 1 GiB)",
                            path.string(), space.rlim_cur >> 20),
                kAddressSpaceHint);
  }
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    const std::string why = error ? error : "unknown error";
    // Mapping LibTorch's ~1 GB of code fails under a small `ulimit -v`: no component is
    // missing then, and reinstalling is no help.
    if (why.find("failed to map segment") != std::string::npos ||
        why.find("Cannot allocate memory") != std::string::npos) {
      throw Error(
          ErrorCode::kIo,
          fmt::format("cannot load the torch layer {}: out of memory ({})", path.string(), why),
          kAddressSpaceHint);
    }
    missing(fmt::format("cannot load the torch layer {}: {}", path.string(), why), kInstallHint);
  }
  auto entry = reinterpret_cast<EntryPoint>(dlsym(handle, kTorchLayerEntryPoint));
  if (entry == nullptr) {
    dlclose(handle);
    missing(fmt::format("{} is not an ms torch layer: it has no '{}' entry point", path.string(),
                        kTorchLayerEntryPoint),
            "reinstall ms so that libms.so and libms_torch.so come from the same build");
  }
  const TorchLayer* layer = entry(kTorchLayerAbiVersion);
  if (layer == nullptr) {
    missing(fmt::format("{} was built for another version of ms (ABI {} expected)", path.string(),
                        kTorchLayerAbiVersion),
            "reinstall ms so that libms.so and libms_torch.so come from the same build");
  }
  // The handle is kept open for the life of the process: LibTorch cannot be unloaded safely.
  const ThreadCount count =
      options.threads ? ThreadCount{*options.threads, "--threads"} : default_threads();
  // A machine with more cores than that runs kMaxThreads unless asked otherwise.
  const int threads =
      count.asked_by != nullptr ? count.threads : std::min(count.threads, kMaxThreads);
  MS_CHECK(threads > 0, ErrorCode::kUsage, "--threads must be a positive integer, got {}", threads);
  if (threads > kMaxThreads) {
    throw Error(ErrorCode::kUsage,
                fmt::format("{} asks for {} threads; ms runs at most {}", count.asked_by, threads,
                            kMaxThreads),
                fmt::format("this process may use {} core(s): {} at most that", usable_cores(),
                            options.threads ? "give --threads" : "set OMP_NUM_THREADS to"));
  }
  // More threads than cores take turns on them, and every parallel region waits for the slowest
  // (a 2-core machine ran a one-layer MiniLM 8x slower at 16 threads than at 2).
  if (count.asked_by != nullptr && static_cast<unsigned>(threads) > usable_cores()) {
    log::warn(
        "{} asks for {} threads, and this process may use {} core(s): the threads will "
        "take turns, which is slower than --threads {}",
        count.asked_by, threads, usable_cores(), usable_cores());
  }
  // Same ABI version, so a missing service is a bug of the torch layer's build.
  MS_ASSERT(layer->runtime != nullptr && layer->pipelines != nullptr &&
            layer->register_components != nullptr);
  layer->runtime->set_num_threads(threads);
  g_layer = layer;
  return *g_layer;
}

PipelineFactory& pipeline_factory(std::optional<int> threads) {
  return *load_torch_layer(TorchOptions{threads}).pipelines;
}

bool torch_layer_loaded() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_layer != nullptr;
}

}  // namespace ms::infer
