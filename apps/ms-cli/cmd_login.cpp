// `ms login --token T`: exchange an SDK token for credentials and store them as modelscope does.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "ms/core/settings.h"
#include "ms/hub/client.h"

namespace ms::cli {
namespace {

struct LoginCliOptions {
  std::string token;
  std::string endpoint;
  bool json = false;
};

void run_login(const LoginCliOptions& o) {
  hub::HubOptions options = hub::resolve_hub_options(optional_string(o.endpoint), o.token);
  hub::HubClient client(options);
  const hub::LoginResult r = hub::login_and_store(client, o.token);
  if (o.json) {
    nlohmann::ordered_json out;
    out["endpoint"] = options.endpoint;
    out["username"] = r.username;
    out["credentials_dir"] = credentials_dir().string();
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("Logged in to %s as %s; credentials in %s\n", options.endpoint.c_str(),
              r.username.empty() ? "(unknown user)" : r.username.c_str(),
              credentials_dir().string().c_str());
}

}  // namespace

void add_login_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto o = std::make_shared<LoginCliOptions>();
  CLI::App* c =
      app.add_subcommand("login", "Log in to a hub with an access token and store the credentials");
  c->add_option("--token", o->token, "SDK access token")->required();
  c->add_option("--endpoint", o->endpoint,
                "Hub URL (default: $MODELSCOPE_ENDPOINT, else modelscope.cn)");
  c->add_flag("--json", o->json, "Print the result as JSON on stdout");
  c->footer(
      "Credentials go to $MODELSCOPE_CREDENTIALS_PATH (default ~/.modelscope/credentials), mode "
      "0600, in the files Python's modelscope reads: cookies (the pickled m_session_id cookie), "
      "git_token, user, session.");
  c->callback([o] { run_login(*o); });
}

}  // namespace ms::cli
