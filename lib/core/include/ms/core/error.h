// ms::Error: the one error type of the project, with an ErrorCode, a hint and a context chain.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ms/core/export.h"

namespace ms {

/// What kind of failure an Error is. The CLI maps each code to one exit code (exit_code()).
enum class ErrorCode {
  kUsage,             ///< bad command line or argument value (exit 2)
  kConfig,            ///< malformed or invalid configuration (exit 3)
  kNotFound,          ///< a file, key, repo or revision that does not exist (exit 4)
  kNetwork,           ///< connection, timeout or HTTP failure (exit 5)
  kMissingComponent,  ///< a library or plugin that is not installed or not built (exit 6)
  kIntegrity,         ///< checksum mismatch, corrupt archive or data (exit 7)
  kIo,                ///< local I/O failure such as a permission error or full disk (exit 74)
  kInternal,          ///< a bug in ms (exit 70)
};

/// Process exit code for an error code: 2 usage, 3 config, 4 not found, 5 network,
/// 6 missing component, 7 integrity, 74 I/O, 70 internal.
MS_API int exit_code(ErrorCode code);

/// Short lower-case name of a code ("config", "not-found", ...), used in --json error output.
MS_API const char* error_code_name(ErrorCode code);
/// The code of such a name, as read back from an output ms wrote; nullopt for another name.
MS_API std::optional<ErrorCode> error_code_named(std::string_view name);

/// The project's exception. `what()` is the one-line message; `hint()` tells the user how to fix
/// it; `context()` lists what was being done, innermost first ("while reading configs/a.json").
class MS_API Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message, std::string hint = {});

  ErrorCode code() const { return code_; }
  const std::string& hint() const { return hint_; }
  const std::vector<std::string>& context() const { return context_; }

  /// Adds one frame of context (what the caller was doing); returns *this for rethrowing.
  Error& add_context(std::string frame);
  Error& set_hint(std::string hint);

 private:
  ErrorCode code_;
  std::string hint_;
  std::vector<std::string> context_;
};

/// Throws an Error built from a format string.
template <typename... Args>
[[noreturn]] void fail(ErrorCode code, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(code, fmt::format(format, std::forward<Args>(args)...));
}

/// An exception that is not an ms::Error as one: a resource the machine ran out of is no bug
/// (std::bad_alloc, and LibTorch's allocators' c10::Error, "can't allocate memory" or "CUDA out
/// of memory", told by its message since this layer does not know LibTorch's types: kIo "out of
/// memory" with a hint), nor is a folder or file the system refused (filesystem_error: kIo);
/// anything else is kInternal with its message. An ms::Error is returned as it is.
MS_API Error error_from_exception(const std::exception& e);

/// Runs `body`; an ms::Error escaping it gets `frame` added to its context chain, and any other
/// std::exception is made one (error_from_exception) with that frame.
template <typename Body>
auto with_context(const std::string& frame, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (Error& e) {
    e.add_context(frame);
    throw;
  } catch (const std::exception& e) {
    Error wrapped = error_from_exception(e);
    wrapped.add_context(frame);
    throw wrapped;
  }
}

}  // namespace ms

namespace ms::detail {

// How many arguments the replacement fields of a format string take ("{}", "{:>8}", "{0}", a
// nested width "{:{}}"; "{{" is a brace), for MS_CHECK's compile-time count: fmt ignores
// arguments a format does not use, so a hint passed as an extra argument vanished silently.
constexpr std::size_t format_arguments(std::string_view f) {
  std::size_t automatic = 0, manual = 0;
  // One field's id at f[i] (digits, or none for the next automatic argument); i moves past it.
  auto field = [&](std::size_t& i) {
    if (i < f.size() && f[i] >= '0' && f[i] <= '9') {
      std::size_t n = 0;
      while (i < f.size() && f[i] >= '0' && f[i] <= '9') n = n * 10 + (f[i++] - '0');
      manual = n + 1 > manual ? n + 1 : manual;
    } else {
      ++automatic;
    }
  };
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '{') continue;
    if (i + 1 < f.size() && f[i + 1] == '{') {
      ++i;
      continue;
    }
    ++i;
    field(i);
    // The format spec up to the field's '}', with its nested fields.
    while (i < f.size() && f[i] != '}') {
      if (f[i++] == '{') {
        field(i);
        while (i < f.size() && f[i] != '}') ++i;
        ++i;
      }
    }
  }
  return automatic > manual ? automatic : manual;
}

// A reference to char[N] for N arguments (the format and those after it): sizeof(decltype(...))
// counts them without evaluating any.
template <typename... Args>
char (&count_tag(const Args&...))[sizeof...(Args)];

}  // namespace ms::detail

// The first of a macro's arguments (the format of MS_CHECK's), whether or not others follow.
#define MS_DETAIL_FIRST(...) MS_DETAIL_FIRST_(__VA_ARGS__, unused)
#define MS_DETAIL_FIRST_(first, ...) first

/// User-facing check: throws ms::Error(code, formatted message) when `cond` is false. The format
/// is a string literal whose fields take every argument after it, checked when compiling (a hint
/// is no format argument: throw ms::Error(code, message, hint) for one). The arguments are
/// counted in an unevaluated context, where C++17 takes no lambda: compute such a value first.
#define MS_CHECK(cond, code, ...)                                                               \
  do {                                                                                          \
    static_assert(::ms::detail::format_arguments(MS_DETAIL_FIRST(__VA_ARGS__)) + 1 ==           \
                      sizeof(decltype(::ms::detail::count_tag(__VA_ARGS__))),                   \
                  "MS_CHECK: the format's fields and the arguments after it differ in number"); \
    if (!(cond)) ::ms::fail((code), __VA_ARGS__);                                               \
  } while (0)

/// Internal invariant: a failure is a bug in ms, reported with file and line.
#define MS_ASSERT(cond)                                                                        \
  do {                                                                                         \
    if (!(cond))                                                                               \
      ::ms::fail(::ms::ErrorCode::kInternal, "internal error: assertion '{}' failed at {}:{}", \
                 #cond, __FILE__, __LINE__);                                                   \
  } while (0)
