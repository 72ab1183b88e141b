// What every `ms export` format shares: the model's type and loaded model, the side files that
// make an exported folder self-describing, and the temp folder renamed to --output at the end (an
// error leaves nothing behind).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ms/infer/export.h"
#include "ms/infer/model_dir.h"
#include "ms/models/model.h"

namespace ms::exporter {

/// configuration.json's model.type, else config.json's model_type, else BERT: the choice the
/// pipelines make (text_pipelines.cpp, image_pipelines.cpp).
std::string model_type_of(const infer::ModelInfo& info);

/// The model as `ms infer` loads it (models::load_pretrained), on the CPU.
std::shared_ptr<models::Model> load_for_export(const infer::ModelInfo& info,
                                               const std::string& type);

/// Copies configuration.json, config.json, tokenizer and preprocessor files (every file at the
/// top of the folder but weights), and the config.json of each sentence-transformers module
/// folder that modules.json names. Where --set changed the configuration, configuration.json is
/// the configuration the model was exported with. Returns the written paths, relative to `out`.
std::vector<std::string> copy_side_files(const infer::ModelInfo& info,
                                         const std::filesystem::path& out);

/// Refuses (kUsage) what an export cannot carry: a --task other than the folder's own (the
/// exported files would describe one model and hold another), and for a safetensors repository
/// of a sentence-transformers folder, --set model.* and preprocessor.* (sentence-transformers
/// reads modules.json, sentence_bert_config.json and 1_Pooling/config.json, not
/// configuration.json). A Hugging Face folder's --task is not refused: it names the task.
void check_export_overrides(const infer::ExportRequest& request, const infer::ModelInfo& info);

/// Writes an export folder whole or not at all: `write` fills a new folder next to `output` (the
/// final rename stays within one file system) and returns the paths it wrote, which are sorted
/// and returned once the folder has been renamed to `output` (absent or an empty folder, named
/// as run_export normalised it: "out", not "out/" or "out/."). On an
/// error the temp folder is removed. kIo when the parent cannot be written or the rename fails.
std::vector<std::string> write_export_folder(
    const std::filesystem::path& output,
    const std::function<std::vector<std::string>(const std::filesystem::path& temp)>& write);

}  // namespace ms::exporter
