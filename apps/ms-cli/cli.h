// Shared pieces of the ms command line: global options and helpers each subcommand uses.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ms/core/error.h"
#include "ms/core/text.h"
#include "ms/infer/model_dir.h"

namespace ms::cli {

/// Options that every subcommand sees.
struct GlobalOptions {
  bool verbose = false;  ///< print the error context chain and info-level logs
};

/// Help text shared by the hub commands, so that each --help says the same thing.
inline constexpr const char* kEndpointHelp =
    "Hub URL: https://HOST[:PORT], http://HOST:PORT or a bare HOST (https). Default: "
    "$MODELSCOPE_ENDPOINT, else $MODELSCOPE_DOMAIN, else https://www.modelscope.cn";
inline constexpr const char* kTokenHelp =
    "Access token. Default: $MODELSCOPE_API_TOKEN, else the one `ms login` (or Python's "
    "modelscope login) stored in $MODELSCOPE_CREDENTIALS_PATH";
inline constexpr const char* kExitCodesHelp =
    "Exit codes: 0 ok, 2 usage (bad option, repo id or URL; a request the hub refuses, a\n"
    "token's user lacking permission included), 3 config, 4 not found (repo, revision, file\n"
    "or path), 5 network (hub unreachable, timeout, HTTP error, token not accepted),\n"
    "6 missing component, 7 integrity (sha256 mismatch), 74 I/O (unwritable folder, full disk),\n"
    "70 internal error. Errors are one line plus a hint on stderr; -v adds the details.";

/// Each subcommand lives in its own file and adds itself to the app here.
void add_env_command(CLI::App& app, const GlobalOptions& global);
void add_config_command(CLI::App& app, const GlobalOptions& global);
void add_list_command(CLI::App& app, const GlobalOptions& global);
void add_download_command(CLI::App& app, const GlobalOptions& global);
void add_upload_command(CLI::App& app, const GlobalOptions& global);
void add_login_command(CLI::App& app, const GlobalOptions& global);
void add_hub_command(CLI::App& app, const GlobalOptions& global);
void add_dataset_command(CLI::App& app, const GlobalOptions& global);
void add_infer_command(CLI::App& app, const GlobalOptions& global);
void add_tokenize_command(CLI::App& app, const GlobalOptions& global);
void add_train_command(CLI::App& app, const GlobalOptions& global);
void add_export_command(CLI::App& app, const GlobalOptions& global);
void add_serve_command(CLI::App& app, const GlobalOptions& global);

/// Splits repeated, comma-separated glob options ("a,b" "c" -> a, b, c).
std::vector<std::string> split_patterns(const std::vector<std::string>& values);

/// nullopt for an empty string (an option not given).
std::optional<std::string> optional_string(const std::string& value);

/// Called by a --json command before its work: it prints its JSON document only on success, so
/// main() prints an error as {"error": {...}} on stdout too (a script then always gets JSON).
/// `false` takes that back (a data-parallel worker other than rank 0: rank 0 reports).
/// `one_line`: the error document is one line, as the command's own (serve, train, export, ...).
void report_errors_as_json(bool on = true, bool one_line = false);
bool errors_as_json();
/// Whether the error document is one line, as the command's own document is (serve, train, ...).
bool json_errors_one_line();

/// Prints the command's one JSON document on stdout (its result, or {"error": {...}} with code,
/// exit_code, message, hint and context), unless one is printed already: a signal's error
/// document (report_signals_as_json) and the result can come at the same time. Once a signal's
/// thread has taken over, it does not return: that thread ends the process by the signal.
void print_json_document(const std::string& text);
void print_json_error(const std::string& code, int exit_code, const std::string& message,
                      const std::string& hint, const std::vector<std::string>& context);
/// The error document of a command a signal stopped: code "interrupted", exit_code 128 + signo.
void print_interrupted_json(int signo, const std::string& hint);
/// For a long --json command in one process (ms train, ms eval, ms download, ms upload, ms
/// login): SIGINT, SIGTERM and SIGHUP (those not inherited as ignored) print the error document
/// {"code": "interrupted", "exit_code": 128 + the signal's number, "hint": hint} when
/// errors_as_json() holds, and the process then ends by the signal as it would have without this.
/// Blocks those signals in the calling thread and every thread started after it, so it is called
/// before any other thread starts; a thread of its own waits for them.
void report_signals_as_json(std::string hint);

/// A --json command's set-up, before any thread starts: errors as JSON documents
/// (report_errors_as_json), then signals (report_signals_as_json with `interrupted_hint`), in
/// that order, so that a signal from the start finds the flag set and prints its document.
void report_as_json(std::string interrupted_hint);

/// The command line main() was given (a launcher re-runs it for its workers).
void set_program_args(int argc, char** argv);
const std::vector<std::string>& program_args();

/// Thrown by a command whose outcome is an exit code of its own (a launcher passing on its
/// workers' code); main() returns it as it is.
struct ExitStatus {
  int code;
  /// For --json: the error document's message when the command failed without printing one of
  /// its own (a launcher whose rank 0 a signal ended); the document's code is "worker-failed".
  std::string json_error = {};
};
/// A JSON document as text for stdout or stderr. Invalid UTF-8 in a string (a path, a server's
/// message) becomes U+FFFD instead of an exception: nlohmann's dump() throws on it, and an error
/// report must never turn into an abort.
template <typename J>
std::string json_text(const J& json, int indent = -1) {
  std::string text = json.dump(indent, ' ', false, J::error_handler_t::replace);
  escape_unicode_line_breaks(text);
  return text;
}

/// Refuses an empty or blank value (`--token ""`, `--opset ""`: a shell variable that was not
/// set), naming what to give; an optional number would otherwise take "" as its default.
CLI::Validator non_empty(const std::string& what);

/// Whole-number checks for counts (--batch-size, --workers, ...) whose message names the value
/// and the bound, where CLI11's PositiveNumber prints a range up to DBL_MAX.
const CLI::Validator& positive_whole_number();
const CLI::Validator& non_negative_whole_number();

/// CLI11 reads an argument written as "[a,b]" as a list for a many-valued option, so `-i "[MASK]
/// fills"` would lose its brackets and `-i "[x, y]"` become two inputs. main() marks such
/// arguments before parsing (protect_bracketed_arguments) and every option takes the mark off
/// its values (unmark_bracketed_arguments), so each argument arrives as it was typed.
std::vector<std::string> protect_bracketed_arguments(int argc, char** argv);
void unmark_bracketed_arguments(CLI::App& app);

/// Adds --revision, --offline, --endpoint and --token for a model given as a hub id.
void add_hub_options(CLI::App& command, infer::HubModelOptions& hub);

/// Adds --threads to a subcommand that uses LibTorch.
void add_threads_option(CLI::App& command, std::optional<int>& threads);

/// How a command that writes one line per input ends when some inputs failed (their lines hold
/// "error"): `errors` of `done`, the first of them `first` (input `first_id`). Every input
/// failed: the job as a whole went wrong (text files given to an image model, the wrong
/// column), which a script must not take for success, so this throws the first failure's error.
/// Some failed: says how many on stderr, and the command exits 0.
void report_failed_inputs(const char* command, std::size_t errors, std::size_t done,
                          const std::optional<Error>& first, const Json& first_id);

/// For a server, after it printed its ready line: when standard output did not take it (a full
/// disk, /dev/full, a pipe whose reader left), says so on stderr as a warning, and drops the
/// line, so that the server's exit after a clean stop is not the failed-write exit (74): a server
/// has no results on stdout to lose. `who` names the command ("ms serve").
void warn_if_ready_line_lost(const char* who);

}  // namespace ms::cli
