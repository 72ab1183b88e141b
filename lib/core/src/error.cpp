#include "ms/core/error.h"

#include <algorithm>
#include <iterator>
#include <new>
#include <system_error>

namespace ms {

int exit_code(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUsage:
      return 2;
    case ErrorCode::kConfig:
      return 3;
    case ErrorCode::kNotFound:
      return 4;
    case ErrorCode::kNetwork:
      return 5;
    case ErrorCode::kMissingComponent:
      return 6;
    case ErrorCode::kIntegrity:
      return 7;
    case ErrorCode::kIo:
      return 74;  // sysexits.h EX_IOERR
    case ErrorCode::kInternal:
      return 70;
  }
  return 70;
}

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUsage:
      return "usage";
    case ErrorCode::kConfig:
      return "config";
    case ErrorCode::kNotFound:
      return "not-found";
    case ErrorCode::kNetwork:
      return "network";
    case ErrorCode::kMissingComponent:
      return "missing-component";
    case ErrorCode::kIntegrity:
      return "integrity";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

std::optional<ErrorCode> error_code_named(std::string_view name) {
  for (const ErrorCode code : {ErrorCode::kUsage, ErrorCode::kConfig, ErrorCode::kNotFound,
                               ErrorCode::kNetwork, ErrorCode::kMissingComponent,
                               ErrorCode::kIntegrity, ErrorCode::kIo, ErrorCode::kInternal}) {
    if (name == error_code_name(code)) return code;
  }
  return std::nullopt;
}

Error::Error(ErrorCode code, std::string message, std::string hint)
    : std::runtime_error(std::move(message)), code_(code), hint_(std::move(hint)) {}

Error& Error::add_context(std::string frame) {
  context_.push_back(std::move(frame));
  return *this;
}

Error& Error::set_hint(std::string hint) {
  hint_ = std::move(hint);
  return *this;
}

Error error_from_exception(const std::exception& e) {
  if (const auto* error = dynamic_cast<const Error*>(&e)) return *error;
  if (dynamic_cast<const std::filesystem::filesystem_error*>(&e) != nullptr)
    return Error(ErrorCode::kIo, e.what());
  const std::string what = e.what();
  const std::string first_line = what.substr(0, what.find('\n'));
  // LibTorch's allocators' words (CPU: DefaultCPUAllocator, mimalloc; CUDA's caching allocator,
  // cuBLAS's workspace), not any message that says "out of memory" (user text can).
  static constexpr const char* kAllocatorPhrases[] = {"can't allocate memory",
                                                      "not enough memory",
                                                      "CUDA out of memory",
                                                      "CUDA error: out of memory",
                                                      "CUDA driver error: out of memory",
                                                      "HIP out of memory",
                                                      "CUBLAS_STATUS_ALLOC_FAILED",
                                                      "CUDNN_STATUS_ALLOC_FAILED"};
  const bool bad_alloc = dynamic_cast<const std::bad_alloc*>(&e) != nullptr &&
                         dynamic_cast<const std::bad_array_new_length*>(&e) == nullptr;
  const auto* system = dynamic_cast<const std::system_error*>(&e);
  const bool allocator =
      std::any_of(std::begin(kAllocatorPhrases), std::end(kAllocatorPhrases),
                  [&](const char* phrase) { return first_line.find(phrase) != std::string::npos; });
  if (bad_alloc || allocator ||
      (system != nullptr && system->code() == std::errc::not_enough_memory)) {
    return Error(ErrorCode::kIo,
                 bad_alloc ? std::string("out of memory") : "out of memory: " + first_line,
                 "the job needs more memory than this machine (or `ulimit -v`, or the GPU) "
                 "gives: give it less at once (a smaller file, batch or model)");
  }
  return Error(ErrorCode::kInternal, what);
}

}  // namespace ms
