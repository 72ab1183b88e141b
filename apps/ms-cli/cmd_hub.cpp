// `ms hub serve` (the self-hosted hub server) and `ms hub token create` (access tokens for it).
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli.h"
#include "ms/core/error.h"
#include "ms/core/log.h"
#include "ms/hub_server/server.h"

namespace ms::cli {
namespace {

struct ServeOptions {
  std::string root;
  std::string host = "127.0.0.1";
  int port = 0;
  std::string tls_cert;
  std::string tls_key;
  std::string faults;  // --inject-faults (test builds only)
  int threads = 32;
  int header_timeout = 30;
  int max_client_connections = 256;
  bool json = false;
};

struct TokenOptions {
  std::string user;
  std::string root;
  bool json = false;
};

void run_serve(const ServeOptions& options) {
  if (options.json) report_errors_as_json(true, /*one_line=*/true);
  hub_server::ServerOptions server_options;
  server_options.root = options.root;
  server_options.host = options.host;
  server_options.port = options.port;
  server_options.tls_cert = options.tls_cert;
  server_options.tls_key = options.tls_key;
#ifdef MS_TEST_HOOKS
  server_options.faults = hub_server::parse_fault_spec(options.faults);
#endif
  server_options.threads = options.threads;
  server_options.header_timeout_s = options.header_timeout;
  server_options.max_client_connections = options.max_client_connections;
  // Large blocks (a listing of a big repo is megabytes of text) are mapped and unmapped, not
  // left in the heaps of the server's many threads: glibc raises this threshold as such blocks
  // are freed, after which a server that had answered a few dozen listings at once kept gigabytes.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  // Before any thread starts, so that only wait_for_shutdown_signal() receives the stop signals.
  hub_server::block_shutdown_signals();
  hub_server::Server server(server_options);
  server.start();
  if (options.json) {
    std::printf("%s\n", json_text(nlohmann::json{{"endpoint", server.endpoint()}}).c_str());
  } else {
    std::printf("ms hub serve: listening on %s\n", server.endpoint().c_str());
  }
  warn_if_ready_line_lost("ms hub serve");
  const int sig = hub_server::Server::wait_for_shutdown_signal();
  std::fprintf(stderr,
               "ms hub serve: %s: stopping (requests in flight get up to a minute; a second "
               "signal stops at once)\n",
               strsignal(sig));
  std::fflush(stderr);
  // As ms serve: Ctrl-C twice does not wait for the drain.
  std::thread([] {
    const int again = hub_server::Server::wait_for_shutdown_signal();
    std::fprintf(stderr, "ms hub serve: signal %d again: stopping at once\n", again);
    std::fflush(stderr);
    std::_Exit(128 + again);
  }).detach();
  server.stop();
}

void run_token_create(const TokenOptions& options) {
  if (options.json) report_errors_as_json(true, /*one_line=*/true);
  // A mistyped --root would silently mint the token into a new, empty hub that no server uses.
  const bool new_hub = !hub_server::hub_exists(options.root);
  const std::string token = hub_server::create_token(options.root, options.user);
  if (new_hub) {
    log::warn("{} held no hub yet; created one there (is it the --root of `ms hub serve`?)",
              options.root);
  }
  if (options.json) {
    std::printf("%s\n",
                json_text(nlohmann::json{{"user", options.user}, {"token", token}}).c_str());
  } else {
    std::printf("%s\n", token.c_str());
  }
}

}  // namespace

void add_hub_command(CLI::App& app, const GlobalOptions&) {
  CLI::App* hub = app.add_subcommand(
      "hub", "Run a self-hosted ModelScope-compatible hub (serve it, mint its access tokens)");
  hub->require_subcommand(1);
  hub->footer(
      "Examples:\n"
      "  ms hub serve --root /srv/hub --port 8080\n"
      "  ms hub token create alice --root /srv/hub\n"
      "  MODELSCOPE_ENDPOINT=http://127.0.0.1:8080 ms upload alice/bert ./bert --create "
      "--token TOKEN");

  auto serve_options = std::make_shared<ServeOptions>();
  CLI::App* serve = hub->add_subcommand(
      "serve",
      "Serve the ModelScope hub API (models and datasets, uploads, downloads, read-only git) "
      "from a local folder");
  serve
      ->add_option("--root", serve_options->root,
                   "Storage folder (created when missing; must not be a file)")
      ->required()
      ->check(non_empty("the hub's storage folder"));
  // An empty address bound [::1] alone and was announced as "http://:PORT", which no client
  // takes.
  serve->add_option("--host", serve_options->host, "Address to bind (0.0.0.0 for every interface)")
      ->capture_default_str()
      ->check(non_empty("an address: 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"));
  serve->add_option("--port", serve_options->port, "Port (0 picks a free one)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  auto* cert = serve->add_option("--tls-cert", serve_options->tls_cert,
                                 "PEM certificate: serve https (needs --tls-key)");
  auto* key = serve->add_option("--tls-key", serve_options->tls_key,
                                "Unencrypted PEM private key of "
                                "--tls-cert");
  cert->needs(key);
  key->needs(cert);
  serve
      ->add_option("--threads", serve_options->threads,
                   "Worker threads kept ready; more start while all are busy (one per open "
                   "connection, up to 4096)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  serve
      ->add_option("--header-timeout", serve_options->header_timeout,
                   "Seconds a client has to send a request's line and headers")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  serve
      ->add_option("--max-client-connections", serve_options->max_client_connections,
                   "Open connections allowed per client address; more are answered 503")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
#ifdef MS_TEST_HOOKS
  // Fails file downloads on purpose, e.g. 'status500=3,reset=5,stall=7,stall_seconds=2', for the
  // end-to-end tests; only in a -DMS_TEST_HOOKS=ON build, and never shown in --help.
  serve->add_option("--inject-faults", serve_options->faults)->group("");
#endif
  serve->add_flag("--json", serve_options->json,
                  "Print {\"endpoint\": URL} on stdout when ready (errors: {\"error\": {...}})");
  serve->footer(
      "Prints 'ms hub serve: listening on URL' on stdout when ready; stops cleanly on\n"
      "SIGINT/SIGTERM/SIGHUP (under nohup SIGHUP stays ignored).\n"
      "\n"
      "Examples:\n"
      "  ms hub serve --root /srv/hub --port 8080\n"
      "  ms hub serve --root /srv/hub --host 0.0.0.0 --port 8443 \\\n"
      "      --tls-cert hub.pem --tls-key hub.key\n"
      "\n"
      "Accounts: `ms hub token create USER --root DIR` mints a user's token.\n"
      "Clients: --endpoint URL or MODELSCOPE_ENDPOINT=URL (the URL printed above).\n"
      "\n"
      "Exit codes: 0 stopped by SIGINT/SIGTERM/SIGHUP, 2 bad option, 3 unreadable TLS\n"
      "certificate or key, 4 missing TLS file, 74 --root not a writable folder or\n"
      "the address/port not available (in use, or not this machine's). Errors are\n"
      "one line plus a hint on stderr; -v adds the details.");
  serve->callback([serve_options] { run_serve(*serve_options); });

  CLI::App* token = hub->add_subcommand("token", "Manage access tokens of a self-hosted hub");
  token->require_subcommand(1);
  auto token_options = std::make_shared<TokenOptions>();
  CLI::App* create = token->add_subcommand(
      "create", "Mint an access token for USER (created if new) of the hub stored in --root");
  create->add_option("USER", token_options->user, "User name")->required();
  // An empty one made a new hub in the current folder.
  create->add_option("--root", token_options->root, "Storage folder of the hub (its --root)")
      ->required()
      ->check(non_empty("the hub's storage folder (the --root of `ms hub serve`)"));
  create->add_flag("--json", token_options->json,
                   "Print {\"user\", \"token\"} on stdout (errors: {\"error\": {...}})");
  create->footer(
      std::string(
          "Prints the token on stdout; works while the hub is running. Warns on stderr when\n"
          "--root held no hub yet (a new one is made there: check the path).\n"
          "Use the token as --token, MODELSCOPE_API_TOKEN, `ms login --token`, the\n"
          "m_session_id cookie or 'Authorization: Bearer TOKEN'.\n"
          "\n"
          "Examples:\n"
          "  ms hub token create alice --root /srv/hub\n"
          "  export MODELSCOPE_API_TOKEN=$(ms hub token create ci --root /srv/hub)\n"
          "\n") +
      kExitCodesHelp);
  create->callback([token_options] { run_token_create(*token_options); });
}

}  // namespace ms::cli
