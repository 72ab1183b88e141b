// `ms serve`: a model behind ModelScope's service API (/call, /describe, /health) plus /metrics,
// with dynamic batching.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli.h"
#include "ms/core/device.h"
#include "ms/hub/repo_id.h"
#include "ms/serve/server.h"

namespace ms::cli {
namespace {

// A token must be sendable as written: HTTP trims a header value's surrounding spaces and no
// client sends control characters, so such a token would refuse every request.
CLI::Validator sendable_token() {
  return CLI::Validator(
      [](std::string& value) {
        const bool has_control = std::any_of(value.begin(), value.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return u < 0x20 || u == 0x7f;
        });
        if (has_control) return std::string("holds a control character (a stray \\r from a file?)");
        if (!value.empty() && (value.front() == ' ' || value.back() == ' '))
          return std::string("starts or ends with a space, which HTTP drops from the header");
        return std::string();
      },
      "");
}

struct ServeCommandOptions {
  serve::ServeOptions serve;
  std::string device = "cpu";
  std::size_t max_body_mb = 32;
  std::string tls_cert;
  std::string tls_key;
  bool test_routes = false;
  bool json = false;
};

void run_serve(ServeCommandOptions& o) {
  if (o.json) report_errors_as_json(true, /*one_line=*/true);
  o.serve.device = parse_device(o.device);
  o.serve.max_body_bytes = o.max_body_mb << 20;
  o.serve.tls_cert = o.tls_cert;
  o.serve.tls_key = o.tls_key;
  o.serve.test_routes = o.test_routes;
  // Before any thread starts (the model's loading starts LibTorch's), so that only the watcher
  // below receives SIGINT/SIGTERM/SIGHUP. It is started at once: loading a model (a hub download)
  // can take minutes, and Ctrl-C must end that too. A second signal ends the process without
  // waiting for the drain.
  serve::block_shutdown_signals();
  struct Shutdown {
    std::atomic<bool> serving{false};
    std::promise<void> requested;
  };
  auto shutdown = std::make_shared<Shutdown>();
  std::thread([shutdown, json = o.json] {
    int sig = serve::wait_for_shutdown_signal();
    if (shutdown->serving) {
      std::fprintf(stderr, "ms serve: %s: stopping after answering what it holds\n",
                   strsignal(sig));
      std::fflush(stderr);
      shutdown->requested.set_value();
      sig = serve::wait_for_shutdown_signal();
      std::fprintf(stderr, "ms serve: signal %d again: stopping without answering the rest\n", sig);
    } else {
      std::fprintf(stderr, "ms serve: interrupted (signal %d) before it was ready\n", sig);
      // A script waiting for the ready document gets the other --json commands' "interrupted"
      // one instead of an empty stdout.
      if (json) print_interrupted_json(sig, "start `ms serve` again");
    }
    std::fflush(stderr);
    std::_Exit(128 + sig);
  }).detach();
  std::future<void> stop_requested = shutdown->requested.get_future();
  serve::Server server(o.serve);
  server.start();
  shutdown->serving = true;
  if (o.json) {
    const nlohmann::json ready = {{"endpoint", server.endpoint()},
                                  {"task", server.task()},
                                  {"model", server.model_dir().string()},
                                  {"device", server.device()},
                                  {"workers", server.workers()}};
    // Through the one printer of documents: a signal just as the server became ready prints
    // its "interrupted" document or lets this one through, never both.
    print_json_document(json_text(ready));
  } else {
    std::printf(
        "ms serve: %s (task %s, %s on %s, %zu worker(s)); POST /call, GET /describe, "
        "/health, /metrics\n",
        server.endpoint().c_str(), server.task().c_str(), server.model_dir().string().c_str(),
        server.device().c_str(), server.workers());
  }
  warn_if_ready_line_lost("ms serve");
  stop_requested.wait();
  server.stop();
}

}  // namespace

void add_serve_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto opts = std::make_shared<ServeCommandOptions>();
  serve::ServeOptions& s = opts->serve;
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve a model over HTTP with ModelScope's API (POST /call), batching concurrent requests");
  cmd->add_option("--model,-m", s.model,
                  "Model folder (ModelScope or Hugging Face layout), or a hub id OWNER/NAME")
      ->required();
  cmd->add_option("--task,-t", s.task, "Task (default: the model's configuration.json)");
  cmd->add_option("--host", s.host, "Address to bind (0.0.0.0 for every interface)")
      ->capture_default_str()
      ->check(non_empty("an address: 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"));
  cmd->add_option("--port", s.port, "Port (0 picks a free one)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--device,-d", opts->device, "cpu, gpu, gpu:N, cuda:N or auto (gpu if present)")
      ->capture_default_str();
  cmd->add_option("--dtype", s.dtype,
                  "Compute in fp32, fp16 (GPU only) or bf16; answers stay float32 (as ms infer)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  add_threads_option(*cmd, s.threads);
  // Bounded (see serve::kMaxWorkers): the default --workers is one per thread.
  cmd->get_option("--threads")->check(CLI::Range(1, serve::kMaxWorkers));
  cmd->add_option("--workers", s.workers,
                  "Batches run at once, one thread each (default: --threads on the CPU, 4 on a "
                  "GPU; text-generation runs one at a time)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{serve::kMaxWorkers}));
  cmd->add_option("--max-batch", s.max_batch, "Inputs per forward pass, at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--max-wait-ms", s.max_wait_ms,
                  "How long the oldest input waits for others while a worker is free (0: start at "
                  "once; under load, batches form while the workers are busy)")
      ->capture_default_str()
      ->check(CLI::Range(0, 60000));
  cmd->add_option("--max-queue", s.max_queue,
                  "Inputs waiting for a batch, at most; requests beyond get 503 + Retry-After")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  cmd->add_option("--request-timeout", s.request_timeout_s,
                  "Seconds a request may wait for its answer before it gets 504")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--header-timeout", s.header_timeout_s,
                  "Seconds a client has to send a request's line and headers (and its TLS "
                  "handshake); a stop waits for half-sent requests this long at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--max-body-mb", opts->max_body_mb,
                  "Largest request body in MiB (base64 images count 4/3 of their size); more: 413")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  // An empty token would silently serve without authentication.
  cmd->add_option("--token", s.token,
                  "Require 'Authorization: Bearer TOKEN' on /call, /describe and /metrics "
                  "(/health stays open)")
      ->check(non_empty("a token (leave out --token to serve without one)"))
      ->check(sendable_token());
  cmd->add_option("--max-client-connections", s.max_client_connections,
                  "Open connections allowed per client address; more are answered 503 (every "
                  "local client, and a proxy on this host, is 127.0.0.1)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  auto* cert = cmd->add_option("--tls-cert", opts->tls_cert,
                               "PEM certificate: serve https (needs --tls-key)");
  auto* key = cmd->add_option("--tls-key", opts->tls_key, "Unencrypted PEM private key");
  cert->needs(key);
  key->needs(cert);
  cmd->add_option("--set,--cfg-options", s.overrides,
                  "Override a configuration key: KEY=VALUE (text-generation options such as "
                  "max_new_tokens, top_k, seed apply to every request)");
  cmd->add_option(
      "--revision", s.hub.revision,
      std::string("Hub model ids: branch or tag (default ") + hub::kDefaultRevision + ")");
  cmd->add_flag("--offline", s.hub.offline, "Hub model ids: use the cache only, no network");
  cmd->add_option("--endpoint", s.hub.endpoint, "Hub model ids: the hub URL");
  cmd->add_option("--hub-token", s.hub.token,
                  "Hub model ids: access token (default: $MODELSCOPE_API_TOKEN or `ms login`)");
#ifdef MS_TEST_HOOKS
  // POST /_test/hold and /_test/release, for the end-to-end tests; test builds only, hidden.
  cmd->add_flag("--test-routes", opts->test_routes)->group("");
#endif
  cmd->add_flag("--json", opts->json,
                "Print one JSON object {endpoint, task, model, device, workers} when ready");
  cmd->footer(
      "Prints 'ms serve: URL ...' on stdout once it answers; SIGINT/SIGTERM/SIGHUP stop it\n"
      "after answering every request already received (a second signal stops it at once;\n"
      "under nohup SIGHUP stays ignored).\n"
      "\n"
      "API (ModelScope's `modelscope server`):\n"
      "  POST /call      {\"input\": ..., \"parameters\": {...}} -> the pipeline's output\n"
      "                  input: \"text\" | {\"text\": ..., \"text2\": ...} | {\"image\": "
      "BASE64|URL}\n"
      "                  | a list of those (answered with a list); sentence-embedding:\n"
      "                  {\"source_sentence\": [...], \"sentences_to_compare\": [...]}\n"
      "  GET  /describe  input/output schema and a sample body\n"
      "  GET  /health    {\"Code\": 200, ...}\n"
      "  GET  /metrics   Prometheus text: requests, errors, queue depth, batch sizes, latency\n"
      "Errors: {\"Code\": 400, \"Message\": \"input.text: ...\", \"Data\": {\"field\": ...}};\n"
      "401 without the token, 413 body too large, 503 queue full, 504 timeout.\n"
      "\n"
      "Examples:\n"
      "  ms serve -m ./all-MiniLM-L6-v2 --port 8000\n"
      "  curl -s localhost:8000/call -d '{\"input\": {\"source_sentence\": [\"hello\"]}}'\n"
      "  ms serve -m owner/bert-sentiment --max-batch 64 --max-wait-ms 10 --token s3cret\n\n" +
      std::string(kExitCodesHelp));
  cmd->callback([opts] { run_serve(*opts); });
}

}  // namespace ms::cli
