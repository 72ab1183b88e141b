// ms: the command-line front end. Parses arguments with CLI11 and hands each subcommand to the
// library; every error becomes one line on stderr, a hint, and an exit code from one table.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "cli.h"
#include "help_format.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/core/text.h"
#include "ms/core/version.h"

namespace {

// The error's own hint; an I/O error without one gets the checks that fit every such error.
std::string hint_of(const ms::Error& error) {
  if (!error.hint().empty() || error.code() != ms::ErrorCode::kIo) return error.hint();
  // Out of descriptors, where free space and `ulimit -f` are no help.
  const std::string_view message = error.what();
  if (message.find(std::strerror(EMFILE)) != std::string_view::npos) {
    rlimit files{};
    const bool known = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY;
    // A download or upload holds a few per connection (8 by default).
    return fmt::format(
        "ms ran out of file descriptors{}: raise the limit (ulimit -n), or "
        "open fewer at once (ms download/upload --max-workers 1)",
        known ? fmt::format(" (the limit is {})", files.rlim_cur) : "");
  }
  if (message.find(std::strerror(ENFILE)) != std::string_view::npos) {
    return "the system's table of open files is full: close other programs' files, or raise "
           "fs.file-max";
  }
  return "check the free space, the file size limit (ulimit -f) and the permissions where the "
         "path named above lives";
}

void print_error(const ms::Error& error, bool verbose) {
  std::fprintf(stderr, "ms: error: %s\n", error.what());
  const std::string hint = hint_of(error);
  if (!hint.empty()) std::fprintf(stderr, "  hint: %s\n", hint.c_str());
  if (verbose) {
    for (const std::string& frame : error.context())
      std::fprintf(stderr, "  while %s\n", frame.c_str());
    std::fprintf(stderr, "  (error kind: %s, exit code %d)\n", ms::error_code_name(error.code()),
                 ms::exit_code(error.code()));
  } else if (!error.context().empty()) {
    std::fprintf(stderr, "  (run with --verbose for details)\n");
  }
}

// "ms hub serve": the command line of the deepest subcommand that was recognised.
std::string command_path(const CLI::App& app) {
  std::string path = app.get_name();
  const CLI::App* current = &app;
  for (;;) {
    const auto subs = current->get_subcommands();
    if (subs.empty()) return path;
    current = subs.front();
    path += " " + current->get_name();
  }
}

// For commands that promised a JSON document on stdout (ms::cli::report_errors_as_json()).
void print_json_error(const ms::Error& error) {
  ms::cli::print_json_error(ms::error_code_name(error.code()), ms::exit_code(error.code()),
                            error.what(), hint_of(error), error.context());
}

// A program started with descriptor 0, 1 or 2 closed (`ms infer ... >&-`) would hand that
// number to the next file it opens, and its results would land in, say, a checkpoint. Each closed
// one is held instead: standard input by /dev/null (it reads as empty), the outputs by a path-only
// descriptor of "/", which fails every write as a closed one does (reported) and which no name of
// it reopens for writing: held by /dev/null, `-o /dev/stdout` opened /dev/null and threw every
// result away with exit 0.
void hold_closed_standard_descriptors() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int held = fd == 0 ? ::open("/dev/null", O_RDONLY) : ::open("/", O_PATH | O_DIRECTORY);
    if (held >= 0 && held != fd) {
      ::dup2(held, fd);
      ::close(held);
    }
  }
}

// Results on stdout that did not all reach it (a full disk, a closed pipe or descriptor) are
// lost data: the run fails with exit 74 even when the command itself succeeded.
int check_stdout(int code) {
  errno = 0;
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return code;
  if (code != 0) return code;  // the command failed and said why (perhaps this very write)
  const int err = errno;
  std::fprintf(
      stderr,
      "ms: error: standard output could not be written%s%s: the results on it are incomplete\n",
      err != 0 ? ": " : "", err != 0 ? std::strerror(err) : "");
  return 74;
}

}  // namespace

int main(int argc, char** argv) {
  hold_closed_standard_descriptors();
  // A reader that stops early (`ms infer ... | head`) makes writes fail with EPIPE, which the
  // commands report, instead of killing ms with SIGPIPE halfway through a write.
  std::signal(SIGPIPE, SIG_IGN);
  // Past a file size limit (`ulimit -f`) a write fails with EFBIG, reported as an I/O error
  // (exit 74, previous files intact), instead of SIGXFSZ killing ms in the middle of a write.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{
      "ms: download, serve, run and train ModelScope models from the shell.\n"
      "Run 'ms COMMAND --help' for the options of a command.",
      "ms"};
  app.set_version_flag("--version", std::string("ms ") + ms::version(),
                       "Print the ms version and exit");
  app.require_subcommand(1);
  app.fallthrough();
  // Before the commands are added: each takes its parent's formatter.
  app.formatter(std::make_shared<ms::cli::HelpFormatter>());

  ms::cli::GlobalOptions global;
  app.add_flag("-v,--verbose", global.verbose, "Show info logs and the full context of errors");
  app.parse_complete_callback([&global] {
    if (global.verbose && ms::log::level() > ms::log::Level::kInfo)
      ms::log::set_level(ms::log::Level::kInfo);
  });
  app.footer(
      "Examples:\n"
      "  ms download damo/nlp_structbert_sentiment-classification_chinese-base\n"
      "  ms upload alice/bert ./bert --create --json\n"
      "  ms hub serve --root /srv/hub --port 8080\n"
      "\n"
      "Exit codes: 0 ok, 2 usage, 3 config, 4 not found, 5 network, 6 missing component,\n"
      "7 integrity, 70 internal error, 74 I/O error. Errors are one line plus a hint on stderr;\n"
      "-v adds the details. With --json, results (for the hub commands, errors too) are JSON on\n"
      "stdout; logs and progress bars (terminal only) go to stderr.\n"
      "Environment: MODELSCOPE_CACHE, MODELSCOPE_ENDPOINT (or MODELSCOPE_DOMAIN),\n"
      "MODELSCOPE_API_TOKEN, MODELSCOPE_CREDENTIALS_PATH, MODELSCOPE_OFFLINE, MS_LOG_LEVEL\n"
      "(debug|info|warning|error|off), MS_NO_PROGRESS=1; see each command's --help.");

  ms::cli::add_env_command(app, global);
  ms::cli::add_config_command(app, global);
  ms::cli::add_list_command(app, global);
  ms::cli::add_download_command(app, global);
  ms::cli::add_upload_command(app, global);
  ms::cli::add_login_command(app, global);
  ms::cli::add_hub_command(app, global);
  ms::cli::add_dataset_command(app, global);
  ms::cli::add_infer_command(app, global);
  ms::cli::add_train_command(app, global);
  ms::cli::add_export_command(app, global);
  ms::cli::add_serve_command(app, global);
  ms::cli::add_tokenize_command(app, global);

  ms::cli::unmark_bracketed_arguments(app);

  // A mistyped command would otherwise read as "A subcommand is required".
  std::vector<std::string> commands;
  for (const CLI::App* sub : app.get_subcommands({})) commands.push_back(sub->get_name());
  if (argc > 1 && argv[1][0] != '-' &&
      std::find(commands.begin(), commands.end(), argv[1]) == commands.end()) {
    const std::string close = ms::did_you_mean(argv[1], commands);
    std::fprintf(stderr, "ms: error: unknown command '%s'\n  hint: %s\n", argv[1],
                 close.empty() ? "see 'ms --help' for the commands" : close.c_str());
    return 2;
  }

  // Parse first: argument errors exit 2, --help and --version exit 0.
  ms::cli::set_program_args(argc, argv);
  std::vector<std::string> arguments = ms::cli::protect_bracketed_arguments(argc, argv);
  // An error as the user gets it: a JSON document under --json, the message and hint on stderr,
  // its code's exit status.
  const auto report = [&global](const ms::Error& e) {
    if (ms::cli::errors_as_json()) print_json_error(e);
    print_error(e, global.verbose);
    return check_stdout(ms::exit_code(e.code()));
  };
  try {
    app.parse(arguments);
  } catch (const ms::cli::ExitStatus& status) {
    if (ms::cli::errors_as_json() && !status.json_error.empty())
      ms::cli::print_json_error("worker-failed", status.code, status.json_error, "", {});
    return check_stdout(status.code);
  } catch (const CLI::CallForHelp& e) {
    return check_stdout(app.exit(e));
  } catch (const CLI::CallForAllHelp& e) {
    return check_stdout(app.exit(e));
  } catch (const CLI::CallForVersion& e) {
    return check_stdout(app.exit(e));
  } catch (const CLI::ParseError& e) {
    // Same shape as every other error: one "ms: error:" line and a hint naming the help to read.
    // A script that asked for --json gets its error document even when the line did not parse.
    if (std::find(argv + 1, argv + argc, std::string("--json")) != argv + argc) {
      // In the shape the command's own documents have: one line for the long-running commands
      // whose progress is JSON lines (as their callbacks set it).
      const CLI::App* command = app.get_subcommands().empty() ? nullptr : app.get_subcommands()[0];
      const std::string name = command ? command->get_name() : "";
      ms::cli::report_errors_as_json(true, name == "train" || name == "eval" || name == "serve" ||
                                               name == "hub" || name == "export");
      print_json_error(
          ms::Error(ms::ErrorCode::kUsage, e.what(), "see '" + command_path(app) + " --help'"));
    }
    std::fprintf(stderr, "ms: error: %s\n  hint: see '%s --help'\n", e.what(),
                 command_path(app).c_str());
    return 2;
  } catch (const ms::Error& e) {
    // Subcommand callbacks run inside parse(); their errors land here.
    return report(e);
  } catch (const std::exception& e) {
    // A file-system call the library did not wrap, memory this machine ran out of (LibTorch's
    // allocators' errors among them): an I/O error (74), not a bug's 70.
    if (const ms::Error mapped = ms::error_from_exception(e);
        mapped.code() != ms::ErrorCode::kInternal)
      return report(mapped);
    if (ms::cli::errors_as_json()) print_json_error(ms::Error(ms::ErrorCode::kInternal, e.what()));
    // LibTorch's messages carry a C++ backtrace after the first line: only --verbose shows it.
    const std::string what = e.what();
    const std::string shown = global.verbose ? what : what.substr(0, what.find('\n'));
    std::fprintf(stderr, "ms: internal error: %s\n%s", shown.c_str(),
                 global.verbose || shown == what ? "" : "  (run with --verbose for details)\n");
    return 70;
  }
  return check_stdout(0);
}
