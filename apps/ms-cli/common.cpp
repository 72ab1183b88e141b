#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <stdio_ext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>

#include "cli.h"
#include "ms/core/file.h"
#include "ms/hub/repo_id.h"
#include "ms/infer/launch.h"

namespace ms::cli {

namespace {
// Atomic: report_signals_as_json's thread reads them.
std::atomic<bool> json_errors{false};
std::atomic<bool> json_errors_on_one_line{false};
std::vector<std::string> args;
// Held while the stdout document is printed; set once it is.
std::timed_mutex document_mutex;
bool document_printed = false;
// Set by report_signals_as_json's thread when a signal ends the run: it prints the document and
// ends the process by that signal.
std::atomic<bool> ending_by_signal{false};
}  // namespace

void set_program_args(int argc, char** argv) { args.assign(argv, argv + argc); }
const std::vector<std::string>& program_args() { return args; }

void report_errors_as_json(bool on, bool one_line) {
  json_errors = on;
  json_errors_on_one_line = one_line;
}
bool errors_as_json() { return json_errors; }
bool json_errors_one_line() { return json_errors_on_one_line; }

namespace {
// Prints `text` as the command's stdout document unless one is printed, having waited for
// `patience` at most for another thread printing one.
void print_document_within(const std::string& text, std::chrono::seconds patience) {
  std::unique_lock<std::timed_mutex> lock(document_mutex, std::defer_lock);
  if (!lock.try_lock_for(patience) || document_printed) return;
  document_printed = true;
  // A worker of `--nproc`: to its launcher, which prints the one that is the run's.
  if (const char* file = std::getenv(infer::kDocumentFileVariable)) {
    try {
      write_file_atomic(file, text + "\n");
      return;
    } catch (const Error&) {
      // Where the launcher cannot read it: rank 0's on the stdout the workers share (the one
      // document that goes there); the others' are on stderr already, as errors.
      const char* rank = std::getenv("RANK");
      if (rank == nullptr || std::string_view(rank) != "0") return;
    }
  }
  std::fputs(text.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

nlohmann::ordered_json error_document(const std::string& code, int exit_code,
                                      const std::string& message, const std::string& hint,
                                      const std::vector<std::string>& context) {
  nlohmann::ordered_json detail;
  detail["code"] = code;
  detail["exit_code"] = exit_code;
  detail["message"] = message;
  detail["hint"] = hint;
  detail["context"] = context;
  return nlohmann::ordered_json{{"error", detail}};
}

std::string interrupted_document(int signo, const std::string& hint) {
  return json_text(
      error_document("interrupted", 128 + signo,
                     fmt::format("interrupted by signal {} ({})", signo, strsignal(signo)), hint,
                     {}),
      json_errors_on_one_line ? -1 : 2);
}
}  // namespace

void print_json_document(const std::string& text) {
  print_document_within(text, std::chrono::hours(24 * 365));
  // The run's own document (its result, or its error) came after a signal's: the signal's thread
  // is ending the process by that signal. Returning would let it exit 0 first, with an
  // "interrupted" document on stdout.
  if (ending_by_signal) {
    for (;;) ::pause();
  }
}

void print_json_error(const std::string& code, int exit_code, const std::string& message,
                      const std::string& hint, const std::vector<std::string>& context) {
  print_json_document(json_text(error_document(code, exit_code, message, hint, context),
                                json_errors_on_one_line ? -1 : 2));
}

void print_interrupted_json(int signo, const std::string& hint) {
  print_json_document(interrupted_document(signo, hint));
}

void report_as_json(std::string interrupted_hint) {
  report_errors_as_json();
  report_signals_as_json(std::move(interrupted_hint));
}

void report_signals_as_json(std::string hint) {
  sigset_t signals;
  sigemptyset(&signals);
  for (int signo : {SIGINT, SIGTERM, SIGHUP}) {
    // One started ignored (SIGHUP under nohup, SIGINT in a script's background job) stays so.
    struct sigaction inherited {};
    if (sigaction(signo, nullptr, &inherited) == 0 && inherited.sa_handler != SIG_IGN)
      sigaddset(&signals, signo);
  }
  if (pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0) return;
  const auto watch = [signals, hint = std::move(hint)] {
    int signo = 0;
    while (sigwait(&signals, &signo) != 0) {
    }
    ending_by_signal = true;
    if (json_errors) {
      // A document being printed (the result) is waited for a moment, not for ever: a stdout
      // that takes no more (a stopped reader) must not keep the signal from ending the run.
      print_document_within(interrupted_document(signo, hint), std::chrono::seconds(2));
    }
    // Ends as the signal would have ended it (a parent's wait sees the signal): its default
    // action, delivered to this thread, the one that does not block it.
    ::signal(signo, SIG_DFL);
    sigset_t just_this;
    sigemptyset(&just_this);
    sigaddset(&just_this, signo);
    pthread_sigmask(SIG_UNBLOCK, &just_this, nullptr);
    ::raise(signo);
    std::_Exit(128 + signo);  // a signal whose default is not to end the process: none of these
  };
  try {
    std::thread(watch).detach();
  } catch (const std::system_error&) {
    // No thread, no watch: the signals act as they did.
    pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
  }
}

namespace {
// An argument no one types: a control character the parser does not treat as a list's start.
constexpr char kBracketMark = '\x01';

// Parsed here, not by CLI11's lexical_cast, which took 18446744073709551615 for a long long.
CLI::Validator whole_number_at_least(long long bound, const std::string& what) {
  return CLI::Validator(
      [bound, what](std::string& value) -> std::string {
        long long n = 0;
        const char* end = value.data() + value.size();
        const auto [stop, error] = std::from_chars(value.data(), end, n);
        if (error == std::errc::result_out_of_range && value.front() != '-') {
          return "is too large: at most " + std::to_string(std::numeric_limits<long long>::max()) +
                 ", got '" + value + "'";
        }
        if (value.empty() || error != std::errc() || stop != end || n < bound) {
          return "must be " + what + ", got '" + value + "'";
        }
        return {};
      },
      what);
}
}  // namespace

// Blank too: a token of spaces no client can send (HTTP trims header values).
CLI::Validator non_empty(const std::string& what) {
  return CLI::Validator(
      [what](std::string& value) {
        return value.find_first_not_of(" \t\r\n") == std::string::npos ? "empty; give " + what
                                                                       : std::string();
      },
      "");
}

const CLI::Validator& positive_whole_number() {
  static const CLI::Validator v = whole_number_at_least(1, "a whole number of at least 1");
  return v;
}
const CLI::Validator& non_negative_whole_number() {
  static const CLI::Validator v = whole_number_at_least(0, "a whole number of at least 0");
  return v;
}

std::vector<std::string> protect_bracketed_arguments(int argc, char** argv) {
  // CLI11's parse(vector) takes the arguments last first, without the program's name.
  std::vector<std::string> reversed;
  for (int i = argc - 1; i >= 1; --i) {
    std::string arg = argv[i];
    if (arg.size() >= 2 && arg.front() == '[' && arg.back() == ']') arg.insert(0, 1, kBracketMark);
    reversed.push_back(std::move(arg));
  }
  return reversed;
}

void unmark_bracketed_arguments(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    if (option->get_type_size() == 0) continue;  // a flag: it takes no value
    option->transform(
        [](std::string value) {
          if (value.rfind(kBracketMark, 0) == 0) value.erase(0, 1);
          return value;
        },
        "", "");
  }
  for (CLI::App* sub : app.get_subcommands({})) unmark_bracketed_arguments(*sub);
}

void add_hub_options(CLI::App& cmd, infer::HubModelOptions& hub) {
  cmd.add_option(
      "--revision", hub.revision,
      std::string("Hub model ids: branch or tag (default ") + hub::kDefaultRevision + ")");
  cmd.add_flag("--offline", hub.offline, "Hub model ids: use the cache only, no network");
  cmd.add_option("--endpoint", hub.endpoint, "Hub model ids: the hub URL");
  cmd.add_option("--token", hub.token, "Hub model ids: access token");
}

void add_threads_option(CLI::App& command, std::optional<int>& threads) {
  command
      .add_option("--threads", threads,
                  "LibTorch intra-op threads (default: $OMP_NUM_THREADS, else the cores this "
                  "process may use)")
      ->check(positive_whole_number());
}

void warn_if_ready_line_lost(const char* who) {
  errno = 0;
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return;
  const int err = errno;
  std::fprintf(stderr,
               "%s: warning: its ready line could not be written to standard output%s%s; "
               "serving anyway\n",
               who, err != 0 ? ": " : "", err != 0 ? std::strerror(err) : "");
  std::fflush(stderr);
  // Dropped, or the exit's flush would try (and fail) again.
  __fpurge(stdout);
  std::clearerr(stdout);
}

void report_failed_inputs(const char* command, std::size_t errors, std::size_t done,
                          const std::optional<Error>& first, const Json& first_id) {
  if (errors == 0) return;
  if (errors == done && first) {
    // "the one input (3) failed: ..." / "every one of the 2 inputs failed; the first, input 0: ..."
    const std::string which =
        done == 1 ? fmt::format("the one input ({}) failed", first_id.dump())
                  : fmt::format("every one of the {} inputs failed; the first, input {}", done,
                                first_id.dump());
    throw Error(first->code(), fmt::format("{}: {}", which, first->what()),
                first->hint().empty() ? "each has an \"error\" line in the output" : first->hint());
  }
  std::fprintf(stderr, "%s: %zu of %zu inputs failed (see the \"error\" lines)\n", command, errors,
               done);
}

}  // namespace ms::cli
