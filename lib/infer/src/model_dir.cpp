#include "ms/infer/model_dir.h"

#include <algorithm>
#include <map>

#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/settings.h"
#include "ms/core/text.h"
#include "ms/hub/download.h"

namespace ms::infer {
namespace {

// Present but unreadable (a folder, a FIFO, a link loop or a link to nowhere) is an error naming
// it: taken for absent, a model ran with default settings, and an export dropped its
// configuration.json, with exit 0.
bool exists_file(const std::filesystem::path& p) { return optional_regular_file(p); }

// A hub id is "owner/name" with no further slashes and not an existing path.
bool looks_like_hub_id(const std::string& text) {
  const auto slash = text.find('/');
  return slash != std::string::npos && slash > 0 && slash + 1 < text.size() &&
         text.find('/', slash + 1) == std::string::npos && text[0] != '.' && text[0] != '~';
}

// Task of a Hugging Face folder, from sentence-transformers files or config.json's architectures.
std::optional<std::string> infer_hf_task(const std::filesystem::path& dir, const Json& hf) {
  if (exists_file(dir / "modules.json") || exists_file(dir / "sentence_bert_config.json")) {
    return std::string("sentence-embedding");
  }
  auto arch = hf.find("architectures");
  if (arch == hf.end() || !arch->is_array() || arch->empty() || !(*arch)[0].is_string()) {
    return std::nullopt;
  }
  const std::string name = (*arch)[0].get<std::string>();
  auto ends = [&name](const std::string& suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends("ForSequenceClassification")) return std::string("text-classification");
  if (ends("ForTokenClassification")) return std::string("token-classification");
  if (ends("ForMaskedLM")) return std::string("fill-mask");
  if (ends("ForImageClassification")) return std::string("image-classification");
  if (ends("LMHeadModel") || ends("ForCausalLM")) return std::string("text-generation");
  return std::nullopt;
}

}  // namespace

const std::vector<std::string>& known_tasks() {
  static const std::vector<std::string> tasks = {"sentence-embedding",
                                                 "text-classification",
                                                 "sentence-similarity",
                                                 "token-classification",
                                                 "named-entity-recognition",
                                                 "word-segmentation",
                                                 "fill-mask",
                                                 "text-generation",
                                                 "image-classification"};
  return tasks;
}

std::string canonical_task(const std::string& task) {
  std::string t = task;
  std::replace(t.begin(), t.end(), '_', '-');
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  // ModelScope's names for uses of a task ms runs alike: natural language inference classifies
  // a sentence pair (as sentence-similarity: a second text is required), sentiment
  // classification a text.
  static const std::map<std::string, std::string> kAliases = {
      {"nli", "sentence-similarity"}, {"sentiment-classification", "text-classification"}};
  if (const auto alias = kAliases.find(t); alias != kAliases.end()) return alias->second;
  const auto& tasks = known_tasks();
  if (std::find(tasks.begin(), tasks.end(), t) != tasks.end()) return t;
  std::vector<std::string> names = tasks;
  for (const auto& [alias, _] : kAliases) names.push_back(alias);
  std::string hint = did_you_mean(t, names);
  throw Error(ErrorCode::kUsage, fmt::format("unknown task '{}'", task),
              (hint.empty() ? std::string() : hint + "; ") + "known tasks: " + join(tasks, ", ") +
                  ", and nli (as sentence-similarity), sentiment-classification (as "
                  "text-classification)");
}

std::optional<std::size_t> preprocessor_max_length(const Config& config, const std::string& task) {
  const bool generation = task == "text-generation";
  for (const char* key :
       {generation ? "preprocessor.sequence_length" : "preprocessor.max_length",
        generation ? "preprocessor.max_length" : "preprocessor.sequence_length"}) {
    if (config.has(key) && !config.at(key).is_null()) {
      const auto length = config.get<std::size_t>(key);
      // 0 was "the tokenizer's own limit" to ms train and too small to ms infer, which then
      // refused the model folder the training wrote.
      const std::size_t least = generation ? 2 : 4;
      if (length < least) {
        throw Error(
            ErrorCode::kConfig,
            fmt::format("{} (or --set): {} {} is too small for {}", config.source(), key, length,
                        generation ? "a prompt token and the next" : "[CLS] text [SEP]"),
            fmt::format("set it to at least {} (the texts' longest, in tokens; 128 is "
                        "the usual)",
                        least));
      }
      return length;
    }
  }
  return std::nullopt;
}

void require_model_folder(const std::string& model, bool hub_ids) {
  MS_CHECK(!model.empty(), ErrorCode::kUsage, "--model is empty");
  std::error_code ec;
  if (std::filesystem::is_directory(model, ec)) return;
  if (std::filesystem::exists(model, ec)) {
    throw Error(ErrorCode::kUsage, fmt::format("--model '{}' is a file, not a model folder", model),
                "pass the folder that holds the model's configuration and tokenizer files");
  }
  throw Error(ErrorCode::kNotFound, fmt::format("model folder '{}' does not exist", model),
              hub_ids ? "pass a local model folder, or a hub id such as owner/name"
                      : "pass a local model folder");
}

ModelInfo open_model(const std::string& model, const std::optional<std::string>& task,
                     const std::vector<std::string>& overrides, const HubModelOptions& hub) {
  MS_CHECK(!model.empty(), ErrorCode::kUsage, "--model is empty");
  std::filesystem::path dir = model;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    if (std::filesystem::exists(dir, ec) || !looks_like_hub_id(model))
      require_model_folder(model, /*hub_ids=*/true);
    hub::DownloadOptions download;
    download.repo = hub::parse_repo_id(model);
    download.revision = hub.revision;
    download.offline = hub.offline;  // snapshot_download() adds MODELSCOPE_OFFLINE=1
    const hub::HubOptions hub_options = hub::resolve_hub_options(hub.endpoint, hub.token);
    try {
      dir = with_context("fetching model " + model + " from the hub",
                         [&] { return hub::snapshot_download(download, hub_options).local_path; });
    } catch (Error& e) {
      // The hub is down or unreachable, and a copy is in the cache: say how to use it (ms does
      // not fall back by itself: the copy may be older than what the hub holds now).
      if (e.code() == ErrorCode::kNetwork && !download.offline) {
        hub::DownloadOptions cached = download;
        cached.offline = true;
        try {
          hub::snapshot_download(cached, hub_options);
          // Before the hint the error has (a token the hub refuses: log in again).
          const std::string offline =
              "the model is in the cache: --offline (or MODELSCOPE_OFFLINE=1) uses that copy "
              "without asking the hub";
          e.set_hint(e.hint().empty() ? offline : offline + "; or " + e.hint());
        } catch (const Error&) {
        }
      }
      throw;
    }
  }

  ModelInfo info;
  info.dir = dir;
  const std::filesystem::path ms_config = dir / "configuration.json";
  const std::filesystem::path hf_config = dir / "config.json";
  if (exists_file(ms_config)) {
    info.config = Config::from_file(ms_config);
  } else if (exists_file(hf_config)) {
    const Config hf = Config::from_file(hf_config);
    info.hf_layout = true;
    Json root = Json::object();
    root["framework"] = "pytorch";
    if (auto t = infer_hf_task(dir, hf.root())) root["task"] = *t;
    if (hf.root().contains("model_type") && hf.root()["model_type"].is_string()) {
      root["model"]["type"] = hf.root()["model_type"];
    }
    info.config = Config(root, hf_config.string() + " (Hugging Face layout)");
  } else {
    throw Error(ErrorCode::kNotFound,
                fmt::format("{} is not a model folder: it has neither configuration.json nor "
                            "config.json",
                            dir.string()),
                "pass a ModelScope model folder, or a Hugging Face folder with --task");
  }
  for (const std::string& o : overrides) {
    info.config.apply_override(o);
    info.override_keys.push_back(o.substr(0, o.find('=')));
  }

  if (task) {
    info.task = canonical_task(*task);
  } else if (info.config.has("task")) {
    try {
      info.task = canonical_task(info.config.get<std::string>("task"));
    } catch (const Error& e) {
      // Named by the folder's config rather than the command line: a config error (exit 3).
      if (e.code() != ErrorCode::kUsage) throw;
      throw Error(ErrorCode::kConfig,
                  fmt::format("{}: key 'task': {}", info.config.source(), e.what()),
                  e.hint() + "; or pass --task");
    }
  } else {
    throw Error(ErrorCode::kUsage,
                fmt::format("cannot tell the task of {}: {} names none", dir.string(),
                            info.config.source()),
                "pass --task (one of: " + join(known_tasks(), ", ") + ")");
  }
  if (info.config.has("framework")) {
    const std::string framework = info.config.get<std::string>("framework");
    MS_CHECK(framework == "pytorch" || framework == "torch", ErrorCode::kConfig,
             "{}: framework '{}' is not supported (only pytorch)", info.config.source(), framework);
  }
  if (info.config.has("model.type")) info.model_type = info.config.get<std::string>("model.type");
  if (info.config.has("pipeline.type"))
    info.pipeline_type = info.config.get<std::string>("pipeline.type");
  return info;
}

}  // namespace ms::infer
