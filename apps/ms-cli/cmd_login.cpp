// `ms login --token T`: exchange an SDK token for credentials and store them as modelscope does.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "ms/core/error.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/hub/client.h"

namespace ms::cli {
namespace {

struct LoginCliOptions {
  std::string token;
  std::string endpoint;
  bool json = false;
};

// The --json document of a run a signal (SIGINT, SIGTERM, SIGHUP) stopped says what to do.
constexpr const char* kLoginInterruptedHint =
    "run ms login again (a credentials file is replaced whole or not at all)";

void run_login(const LoginCliOptions& o) {
  // As ms train: a stop by a signal still prints the one --json document, code "interrupted".
  if (o.json) report_as_json(kLoginInterruptedHint);
  // From the environment too, so that CI jobs keep the token out of the command line (and ps).
  std::string token = o.token;
  if (token.empty()) token = api_token_env().value_or("");
  // Surrounding spaces and line ends are a paste or `cat token.txt` artefact, never part of a
  // token: dropped, as Python's HubApi.login strips them.
  token = std::string(trim(token));
  if (token.empty()) {
    throw Error(ErrorCode::kUsage, "ms login needs an access token",
                "pass --token TOKEN or set MODELSCOPE_API_TOKEN (the SDK token of your account "
                "page, or of `ms hub token create` for a self-hosted hub)");
  }
  hub::HubOptions options = hub::resolve_hub_options(optional_string(o.endpoint), token);
  hub::HubClient client(options);
  const hub::LoginResult r = hub::login_and_store(client, token);
  if (o.json) {
    nlohmann::ordered_json out;
    out["endpoint"] = options.endpoint;
    out["username"] = r.username;
    out["credentials_dir"] = credentials_dir().string();
    nlohmann::json dirs = nlohmann::json::array();
    for (const auto& dir : credentials_dirs()) dirs.push_back(dir.string());
    out["credentials_dirs"] = dirs;
    print_json_document(json_text(out, 2));
    return;
  }
  std::vector<std::string> dirs;
  for (const auto& dir : credentials_dirs()) dirs.push_back(dir.string());
  std::printf("Logged in to %s as %s; credentials in %s\n", options.endpoint.c_str(),
              r.username.empty() ? "(unknown user)" : r.username.c_str(),
              join(dirs, " and ").c_str());
}

}  // namespace

void add_login_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto o = std::make_shared<LoginCliOptions>();
  CLI::App* c =
      app.add_subcommand("login", "Log in to a hub with an access token and store the credentials");
  c->add_option("--token", o->token, "SDK access token (default: $MODELSCOPE_API_TOKEN)");
  c->add_option("--endpoint", o->endpoint, kEndpointHelp);
  c->add_flag("--json", o->json,
              "Print {\"endpoint\", \"username\", \"credentials_dir\", \"credentials_dirs\"} on "
              "stdout (errors, and a stop by a signal: {\"error\": {...}})");
  c->footer(
      std::string(
          "Checks the token with the hub and stores the credentials (cookies, git_token,\n"
          "user, session; mode 0600) where each Python modelscope version reads them, so\n"
          "later ms and modelscope commands use them:\n"
          "  modelscope <= 1.37: $MODELSCOPE_CREDENTIALS_PATH (default ~/.modelscope/credentials)\n"
          "  modelscope >= 1.38: $MODELSCOPE_CREDENTIALS_PATH/credentials when the variable is\n"
          "                      set, else ${MODELSCOPE_HOME:-~/.modelscope}/credentials\n"
          "Nothing is stored when the hub refuses the token.\n"
          "\n"
          "Examples:\n"
          "  ms login --token \"$MY_TOKEN\"\n"
          "  MODELSCOPE_API_TOKEN=... ms login --endpoint http://127.0.0.1:8080 --json\n"
          "\n") +
      kExitCodesHelp);
  c->callback([o] { run_login(*o); });
}

}  // namespace ms::cli
