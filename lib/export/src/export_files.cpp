#include "export_files.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/log.h"
#include "ms/infer/export.h"
#include "ms/models/sentence_pooling.h"

namespace ms::exporter {

namespace fs = std::filesystem;

std::string model_type_of(const infer::ModelInfo& info) {
  if (!info.model_type.empty()) return info.model_type;
  if (const auto hf = read_json_file(info.dir / "config.json")) {
    if (hf->contains("model_type") && (*hf)["model_type"].is_string())
      return (*hf)["model_type"].get<std::string>();
  }
  return "bert";
}

namespace {

// Weight files stay behind: the export writes its own.
bool weight_file(const std::string& name) {
  static const char* const kSuffixes[] = {".safetensors", ".bin",       ".pth",      ".pt",
                                          ".ckpt",        ".h5",        ".onnx",     ".msgpack",
                                          ".index.json",  ".onnx_data", ".onnx.data"};
  for (const char* suffix : kSuffixes) {
    const std::size_t n = std::strlen(suffix);
    if (name.size() >= n && name.compare(name.size() - n, n, suffix) == 0) return true;
  }
  return false;
}

void copy_into(const fs::path& from, const fs::path& to) { write_file_atomic(to, read_file(from)); }

// A sentence-transformers Pooling module's config.json saying `mode` (a --set model.pooling the
// exported graph or archive holds), in the file's own form, since older sentence-transformers
// refuse keys they do not know: `pooling_mode` (5.7; a list stays a list) where the file has it;
// else the mode's flag true and the other flags it has false, mean's too, since an absent mean
// flag reads as true. Readers that pool the last hidden state themselves go by this file.
std::string pooling_config_for(const std::string& copied, const std::string& mode,
                               const fs::path& source) {
  std::string name = mode;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name == "mean_sqrt_len") name = "mean_sqrt_len_tokens";
  Json config = parse_json(copied, source.string());
  MS_CHECK(config.is_object(), ErrorCode::kConfig, "{} must be a JSON object", source.string());
  if (config.contains("pooling_mode")) {
    config["pooling_mode"] = config["pooling_mode"].is_array() ? Json::array({name}) : Json(name);
    return config.dump(2) + "\n";
  }
  bool known = false;
  for (const models::PoolingFlag& flag : models::sentence_pooling_flags()) {
    const bool chosen = name == flag.mode;
    known = known || chosen;
    if (chosen || config.contains(flag.key) || std::string(flag.mode) == "mean")
      config[flag.key] = chosen;
  }
  // The model was built with this mode, so its name has been checked already.
  MS_CHECK(known, ErrorCode::kInternal, "pooling mode '{}' has no sentence-transformers flag",
           mode);
  return config.dump(2) + "\n";
}

// Whether `readme` is a model card an earlier `ms export` wrote (front matter tagged ms-export,
// and its sentence): it describes that export, not this one. A card its owner has rewritten
// keeps the tag only if they kept the front matter; it is left out then too, with a note.
bool written_by_an_export(const std::string& readme) {
  if (readme.rfind("---\n", 0) != 0) return false;
  const std::size_t end = readme.find("\n---\n", 3);
  if (end == std::string::npos) return false;
  const std::string front = readme.substr(0, end + 1);
  const std::size_t tags = front.find("\ntags:\n");
  return tags != std::string::npos && front.find("\n- ms-export\n", tags) != std::string::npos &&
         readme.find("exported by `ms export", end) != std::string::npos;
}

}  // namespace

std::vector<std::string> copy_side_files(const infer::ModelInfo& info, const fs::path& out) {
  const fs::path& model_dir = info.dir;
  std::vector<std::string> copied;
  for (const auto& entry : fs::directory_iterator(model_dir)) {
    const std::string name = entry.path().filename().string();
    // A link that leads nowhere (dangling, or a loop) is no file to copy, as a folder is not:
    // its status error would have failed the export as an I/O error.
    std::error_code ec;
    if (!entry.is_regular_file(ec) || name.empty() || name[0] == '.' || weight_file(name)) continue;
    std::string content = read_file(entry.path());
    // A card `ms export` wrote describes that export (its title, format and dtype), not this one.
    if (name == "README.md" && written_by_an_export(content)) {
      log::info("{}: not copied: it is the card of an earlier export", entry.path().string());
      continue;
    }
    write_file_atomic(out / name, content);
    copied.push_back(name);
  }
  const bool pooling_set = std::find(info.override_keys.begin(), info.override_keys.end(),
                                     "model.pooling") != info.override_keys.end() &&
                           info.config.has("model.pooling") &&
                           info.config.at("model.pooling").is_string();
  if (const auto modules = read_json_file(model_dir / "modules.json");
      modules && modules->is_array()) {
    for (const Json& m : *modules) {
      const std::string rel = m.is_object() ? m.value("path", "") : "";
      // The model built from modules.json has already refused paths outside the folder.
      if (rel.empty() || rel == ".") continue;
      const fs::path config = model_dir / rel / "config.json";
      if (!optional_regular_file(config)) continue;
      const std::string type = m.value("type", "");
      const bool pooling = type.size() >= 7 && type.compare(type.size() - 7, 7, "Pooling") == 0;
      if (pooling && pooling_set) {
        write_file_atomic(
            out / rel / "config.json",
            pooling_config_for(read_file(config), info.config.get<std::string>("model.pooling"),
                               config));
      } else {
        copy_into(config, out / rel / "config.json");
      }
      copied.push_back((fs::path(rel) / "config.json").string());
    }
  }
  // The exported model is the one --set made (another pooling is baked into an ONNX graph):
  // the folder's configuration.json would describe another, and `ms infer` of a safetensors
  // repository would build that other one. A Hugging Face folder has none, and ms guesses its
  // task from config.json's architectures: with --task or --set, the configuration they made is
  // written, or the export would run as the guessed task (a word segmenter as NER).
  const bool task_named =
      info.hf_layout && (!info.config.has("task") || !info.config.at("task").is_string() ||
                         info.config.get<std::string>("task") != info.task);
  if (!info.override_keys.empty() || task_named) {
    Json configuration = info.config.root();
    configuration["task"] = info.task;
    write_file_atomic(out / "configuration.json", configuration.dump(2) + "\n");
    if (std::find(copied.begin(), copied.end(), "configuration.json") == copied.end())
      copied.push_back("configuration.json");
  }
  return copied;
}

void check_export_overrides(const infer::ExportRequest& request, const infer::ModelInfo& info) {
  // A Hugging Face folder declares no task (ms guesses one from config.json's architectures):
  // --task is what names it.
  std::string own_task;
  if (!info.hf_layout && info.config.has("task") && info.config.at("task").is_string()) {
    try {
      own_task = infer::canonical_task(info.config.get<std::string>("task"));
    } catch (const Error&) {  // a task ms does not know: --task is what names it
    }
  }
  if (!own_task.empty() && own_task != info.task) {
    throw Error(ErrorCode::kUsage,
                fmt::format("--task {}: {} holds a {} model; an export writes the model as it "
                            "is, and its files would describe one task and hold another",
                            info.task, info.dir.string(), own_task),
                "export without --task");
  }
  if (request.format != "safetensors" || !optional_regular_file(info.dir / "modules.json")) return;
  for (const std::string& key : info.override_keys) {
    if (key.rfind("model.", 0) != 0 && key.rfind("preprocessor.", 0) != 0) continue;
    throw Error(ErrorCode::kUsage,
                fmt::format("--set {}: a safetensors repository of a sentence-transformers "
                            "folder is loaded by sentence-transformers from modules.json, "
                            "sentence_bert_config.json and its module folders "
                            "(1_Pooling/config.json), which --set does not change",
                            key),
                "edit those files in a copy of the folder and export the copy, or export "
                "--format onnx or torchscript (they hold the model --set makes)");
  }
}

namespace {

// An export is written in ".NAME" + kTempInfix + "XXXXXX" beside its output, then renamed.
const std::string kTempInfix(ms::kExportTempInfix);

// The export's temp folder (see make_locked_temp_folder), the parent made first.
LockedTempFolder make_temp_folder(const fs::path& output) {
  fs::path parent = output.parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    throw Error(
        ErrorCode::kIo,
        fmt::format("cannot create the folder {} for --output: {}", parent.string(), ec.message()),
        "choose an --output in a folder you can write");
  }
  return make_locked_temp_folder(output, kTempInfix,
                                 "choose an --output in a folder you can write");
}

void move_into_place(const fs::path& temp, const fs::path& output) {
  std::error_code ec;
  fs::rename(temp, output, ec);
  if (ec) {
    throw Error(ErrorCode::kIo,
                fmt::format("cannot move the export into {}: {}", output.string(), ec.message()),
                "choose an --output that does not exist or is an empty folder");
  }
}

// Renames `from` to `to` where nothing is at `to`: RENAME_NOREPLACE, or where the file system
// has no such flag (NFS, 9p, older FUSE: EINVAL), a check and a plain rename. 0 or an errno.
int rename_unless_taken(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  struct stat st {};
  if (::lstat(to.c_str(), &st) == 0) return EEXIST;
  return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
}

// Moves the export in `temp` (a folder inside `output`, a mount point that no rename replaces)
// into `output`, entry by entry, replacing nothing (a file put there meanwhile, another export
// filling it at once): all or, after a failure, none. The configuration files go last, so that
// a run killed among the moves leaves no folder that `ms infer` would take for a model.
void fill_folder(const fs::path& temp, const fs::path& output) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(temp, ec), end; !ec && it != end; it.increment(ec))
    names.push_back(it->path().filename().string());
  if (ec) {
    throw Error(ErrorCode::kIo,
                fmt::format("cannot list the export in {}: {}", temp.string(), ec.message()));
  }
  auto last = [](const std::string& name) {
    return name == "configuration.json" || name == "config.json";
  };
  std::stable_partition(names.begin(), names.end(), [&](const std::string& n) { return !last(n); });
  std::vector<std::string> moved;
  for (const std::string& name : names) {
    if (const int error = rename_unless_taken(temp / name, output / name)) {
      for (const std::string& back : moved) {
        if (::rename((output / back).c_str(), (temp / back).c_str()) != 0)
          log::warn("{}: could not take back {} ({})", output.string(), back, std::strerror(errno));
      }
      throw Error(ErrorCode::kIo,
                  fmt::format("cannot move the export's {} into {}: {}", name, output.string(),
                              std::strerror(error)),
                  error == EEXIST ? "something else wrote into the folder during the export "
                                    "(another export?): give each export its own --output"
                                  : "check the folder's permissions and free space");
    }
    moved.push_back(name);
  }
  if (::rmdir(temp.c_str()) != 0) {
    throw Error(ErrorCode::kIo, fmt::format("{}: the export's temp folder {} was not emptied: {}",
                                            output.string(), temp.string(), std::strerror(errno)));
  }
}

// Whether `folder` is a mount point, which rename(2) cannot replace (EBUSY): the root of a
// mount as statx says (a bind mount of a folder of the same file system too), or a folder whose
// file system is not its parent's.
bool is_mount_point(const fs::path& folder) {
#ifdef STATX_ATTR_MOUNT_ROOT
  struct statx sx {};
  if (::statx(AT_FDCWD, folder.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) == 0 &&
      (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0)
    return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
#endif
  struct stat own {};
  struct stat parent {};
  const fs::path above = fs::absolute(folder).lexically_normal().parent_path();
  return ::stat(folder.c_str(), &own) == 0 && ::stat(above.c_str(), &parent) == 0 &&
         own.st_dev != parent.st_dev;
}

// Gives the export's folder the owner, group and mode (setgid included) of the empty folder it
// replaces, as far as this process may: the user made that folder so. Its owner keeps the right
// to write it (a folder made read-only would fail the export it was made for).
void take_attributes_of(const fs::path& existing, int temp_fd) {
  struct stat st {};
  if (::stat(existing.c_str(), &st) != 0) return;
  if (::fchown(temp_fd, st.st_uid, st.st_gid) != 0)
    (void)::fchown(temp_fd, static_cast<uid_t>(-1), st.st_gid);  // not root: the group only
  (void)::fchmod(temp_fd, (st.st_mode & 07777) | S_IRWXU);
}

}  // namespace

std::shared_ptr<models::Model> load_for_export(const infer::ModelInfo& info,
                                               const std::string& type) {
  models::ModelSpec spec;
  spec.task = info.task;
  spec.type = type;
  spec.dir = info.dir;
  spec.config = info.config;
  return models::load_pretrained(spec, "cpu");
}

std::vector<std::string> write_export_folder(
    const fs::path& output, const std::function<std::vector<std::string>(const fs::path&)>& write) {
  // A new --output, or an existing empty folder, is written beside it and renamed into place
  // whole (the empty folder's owner, group and mode carried over). A mount point
  // (`docker run -v $PWD/out:/out`), which no rename replaces, is filled: the export is written
  // inside it, on its file system, and moved in at the end.
  std::error_code ec;
  const bool fill = fs::is_directory(fs::symlink_status(output, ec)) && is_mount_point(output);
  const fs::path temp_name = fill ? output / "export" : output;
  // What an export killed on its way to the same output left (it had not finished).
  std::size_t removed = remove_abandoned_folders(output, kTempInfix);
  if (fs::is_directory(fs::symlink_status(output, ec)))
    removed += remove_abandoned_folders(output / "export", kTempInfix);
  if (removed > 0) {
    log::info("{}: removed {} unfinished export folder(s) of a stopped run", output.string(),
              removed);
  }
  const LockedTempFolder temp = make_temp_folder(temp_name);
  try {
    // Before the writing, so that a setgid folder's group is its files' too.
    if (!fill && fs::is_directory(fs::symlink_status(output, ec)))
      take_attributes_of(output, temp.lock);
    std::vector<std::string> files = write(temp.path);
    std::sort(files.begin(), files.end());
    if (fill) {
      fill_folder(temp.path, output);
    } else {
      move_into_place(temp.path, output);
    }
    ::close(temp.lock);
    return files;
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temp.path, ignored);
    ::close(temp.lock);
    throw;
  }
}

}  // namespace ms::exporter
