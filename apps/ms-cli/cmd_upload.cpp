// `ms upload OWNER/NAME [LOCAL_PATH] [PATH_IN_REPO]`: send a file or folder to a hub.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "ms/core/error.h"
#include "ms/core/progress.h"
#include "ms/hub/upload.h"

namespace ms::cli {
namespace {

struct UploadCliOptions {
  std::string repo;
  std::string local_path;
  std::string path_in_repo;
  bool dataset = false;
  std::string revision = hub::kDefaultRevision;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::string commit_message;
  bool create = false;
  bool is_private = false;
  std::string tag;
  bool tag_given = false;
  std::string endpoint;
  std::string token;
  int max_workers = 4;
  bool json = false;
};

// The --json document of a run a signal (SIGINT, SIGTERM, SIGHUP) stopped says what to do.
constexpr const char* kUploadInterruptedHint =
    "run the same command again: the upload resumes, sending nothing that the hub already has";

void run_upload(const UploadCliOptions& o) {
  // Before any thread starts (the transfers' workers inherit the blocked signals): as ms
  // train, a stop by a signal still prints the one --json document, code "interrupted".
  if (o.json) report_as_json(kUploadInterruptedHint);
  hub::UploadOptions options;
  options.type = o.dataset ? hub::RepoType::kDataset : hub::RepoType::kModel;
  options.repo = hub::parse_repo_id(o.repo);
  std::string local = o.local_path;
  if (local.empty()) {
    // As modelscope's CLI: ./<name> when it exists, else the current folder.
    std::error_code ec;
    local = std::filesystem::is_directory(options.repo.name, ec) ? options.repo.name : ".";
  }
  options.local_path = local;
  options.path_in_repo = o.path_in_repo;
  options.revision = o.revision;
  options.include = split_patterns(o.include);
  options.exclude = split_patterns(o.exclude);
  options.commit_message = o.commit_message;
  options.create = o.create;
  options.is_private = o.is_private;
  MS_CHECK(!o.is_private || o.create, ErrorCode::kUsage,
           "--private needs --create (it sets a new repo's visibility)");
  if (o.tag_given) {
    MS_CHECK(!o.tag.empty(), ErrorCode::kUsage, "--tag is empty");
    options.tag = o.tag;
  }
  options.max_workers = o.max_workers;
  const hub::HubOptions hub =
      hub::resolve_hub_options(optional_string(o.endpoint), optional_string(o.token));
  const hub::UploadResult r = hub::upload(options, hub);
  if (o.json) {
    nlohmann::ordered_json out;
    out["repo"] = options.repo.str();
    out["revision"] = options.revision;
    out["files"] = r.files;
    out["files_committed"] = r.files_committed;
    out["files_skipped"] = r.files_skipped;
    out["blobs_uploaded"] = r.blobs_uploaded;
    out["blobs_present"] = r.blobs_present;
    out["bytes_uploaded"] = r.bytes_uploaded;
    out["commits"] = r.commits;
    if (options.tag) out["tag"] = *options.tag;
    print_json_document(json_text(out, 2));
    return;
  }
  std::printf(
      "%s: %zu file(s), %zu committed, %zu unchanged; sent %s (%zu new LFS blob(s), %zu already on "
      "the hub)\n",
      options.repo.str().c_str(), r.files, r.files_committed, r.files_skipped,
      Progress::format_bytes(static_cast<double>(r.bytes_uploaded)).c_str(), r.blobs_uploaded,
      r.blobs_present);
}

}  // namespace

void add_upload_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto o = std::make_shared<UploadCliOptions>();
  CLI::App* c = app.add_subcommand(
      "upload",
      "Upload a file or folder to a model or dataset repo (needs a token with write access)");
  c->add_option("repo", o->repo, "OWNER/NAME of the repo")->required();
  c->add_option("local_path", o->local_path,
                "File or folder to upload (default: ./NAME if present, else .)");
  c->add_option("path_in_repo", o->path_in_repo,
                "Where it goes in the repo (default: the root; for a file, its name)");
  c->add_flag("--dataset", o->dataset, "The repo is a dataset (default: a model)");
  c->add_option("--revision", o->revision,
                std::string("Branch to commit to (default: ") + hub::kDefaultRevision + ")");
  c->add_option("--include", o->include, "Only files matching these globs (comma lists allowed)")
      ->expected(1, -1);
  c->add_option("--exclude", o->exclude, "Skip files matching these globs (comma lists allowed)")
      ->expected(1, -1);
  c->add_option("--commit-message", o->commit_message,
                "Commit message (default: one naming the "
                "upload)");
  c->add_flag("--create", o->create, "Create the repo first when it does not exist");
  c->add_flag("--private", o->is_private, "With --create: make the new repo private");
  o->tag_given = false;
  c->add_option("--tag", o->tag,
                "Tag the revision after the upload (a tag that exists is refused first)")
      ->each([o](const std::string&) { o->tag_given = true; });
  c->add_option("--max-workers", o->max_workers,
                "Parallel hashing and blob uploads, 1-64 (default 4)")
      ->check(CLI::Range(1, 64));
  c->add_option("--endpoint", o->endpoint, kEndpointHelp);
  c->add_option("--token", o->token, kTokenHelp);
  c->add_flag("--json", o->json,
              "Print one JSON object on stdout: repo, revision, files, files_committed, "
              "files_skipped, blobs_uploaded, blobs_present, bytes_uploaded, commits (and tag); "
              "on failure, or a stop by SIGINT/SIGTERM/SIGHUP (then exit_code 128 + the signal), "
              "{\"error\": {code, exit_code, message, hint, context}}");
  c->footer(
      std::string(
          "Hashes the files, sends only the blobs the hub lacks, commits them and prints a\n"
          "summary. A re-run after an interruption sends nothing twice: files the revision\n"
          "already holds are skipped, and blobs the hub has are not sent again.\n"
          "\n"
          "Examples:\n"
          "  ms upload alice/bert ./bert-finetuned --create --commit-message 'epoch 3'\n"
          "  ms upload alice/bert ./eval.json results/eval.json --tag v1.1\n"
          "  ms upload alice/corpus ./data --dataset --include '*.jsonl' --json\n"
          "\n"
          "Environment: MODELSCOPE_ENDPOINT / MODELSCOPE_DOMAIN, MODELSCOPE_API_TOKEN,\n"
          "MODELSCOPE_CREDENTIALS_PATH, MS_HUB_RETRIES, MS_HUB_STALL_TIMEOUT, REQUESTS_CA_BUNDLE,\n"
          "MS_NO_PROGRESS=1 (a progress bar is drawn on stderr only when it is a terminal).\n"
          "\n") +
      kExitCodesHelp);
  c->callback([o] { run_upload(*o); });
}

}  // namespace ms::cli
