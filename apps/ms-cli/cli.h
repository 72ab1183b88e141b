// Shared pieces of the ms command line: global options and helpers each subcommand uses.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ms::cli {

/// Options that every subcommand sees.
struct GlobalOptions {
  bool verbose = false;  ///< print the error context chain and info-level logs
};

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

/// Splits repeated, comma-separated glob options ("a,b" "c" -> a, b, c).
std::vector<std::string> split_patterns(const std::vector<std::string>& values);

/// nullopt for an empty string (an option not given).
std::optional<std::string> optional_string(const std::string& value);

/// Adds --threads to a subcommand that uses LibTorch.
void add_threads_option(CLI::App& command, std::optional<int>& threads);

}  // namespace ms::cli
