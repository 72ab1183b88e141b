// How `ms COMMAND --help` shows an option's value: its type, then what it takes in words.
#pragma once

#include <CLI/CLI.hpp>

namespace ms::cli {

/// CLI11's own formatter, but an option's left column shows only its value's type
/// (`--port INT=8000`): CLI11 joins the type and every validator's description with ':' there
/// (`--max-epochs INT:a whole number of at least 1:INT in [1 - 1000000000]`). What the
/// validators take goes before the option's description instead, in words ("[1 to 1000000000]").
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_opts(const CLI::Option* option) const override;
  std::string make_option_desc(const CLI::Option* option) const override;
};

}  // namespace ms::cli
