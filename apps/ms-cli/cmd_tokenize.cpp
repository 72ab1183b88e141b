// `ms tokenize`: a model folder's tokenizer (WordPiece, or GPT-2's byte-level BPE) over inputs, one
// JSON line per input (ids, segment ids and tokens). Torch-free: it never loads LibTorch.
#include <cstdio>
#include <functional>

#include "cli.h"
#include "ms/infer/job.h"
#include "ms/infer/model_dir.h"
#include "ms/text/bert_tokenizer.h"
#include "ms/text/gpt2_tokenizer.h"

namespace ms::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::optional<std::string> input_file;
  std::size_t max_length = 0;
  bool tokens = false;
};

// Tokenises each input with `encode` (filling a result's output), writes its JSON line, and ends
// as ms infer does when inputs failed (report_failed_inputs).
void tokenize_each(const std::vector<infer::PipelineInput>& inputs,
                   const std::function<void(const infer::PipelineInput&, Json&)>& encode) {
  std::size_t errors = 0;
  std::optional<Error> first_error;
  Json first_error_id;
  for (const auto& in : inputs) {
    infer::PipelineResult result;
    try {
      MS_CHECK(in.invalid.empty(), ErrorCode::kUsage, "{}", in.invalid);
      encode(in, result.output);
    } catch (const Error& e) {
      result.error = e;
      if (++errors == 1) {
        first_error = e;
        first_error_id = in.id;
      }
    }
    const std::string line = infer::format_line(in, result);
    std::fwrite(line.data(), 1, line.size(), stdout);
  }
  report_failed_inputs("ms tokenize", errors, inputs.size(), first_error, first_error_id);
}

void run_tokenize(const TokenizeOptions& o) {
  MS_CHECK(o.inputs.empty() != !o.input_file, ErrorCode::kUsage,
           "give exactly one input source: --input TEXT... or --input-file FILE");
  infer::InputSpec spec;
  spec.texts = o.inputs;
  if (o.input_file) spec.file = *o.input_file;
  infer::require_model_folder(o.model, /*hub_ids=*/false);
  const auto inputs = infer::read_inputs(spec);
  // A folder with a WordPiece vocab.txt is BERT's; otherwise GPT-2's files decide.
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(o.model) / "vocab.txt", ec) &&
      text::Gpt2Tokenizer::in_dir(o.model)) {
    // GPT-2-family folders: ids (cut to --max-length) and, with --tokens, the byte-level tokens.
    const text::Gpt2Tokenizer tokenizer = text::Gpt2Tokenizer::from_dir(o.model);
    tokenize_each(inputs, [&](const infer::PipelineInput& in, Json& output) {
      MS_CHECK(!in.text_pair, ErrorCode::kUsage,
               "a GPT-2 tokenizer takes one text per input, not a text pair");
      // Cut as transformers' truncation does: the text's tokens, so that the special tokens
      // around them (tokenizer.json's template, add_bos_token / add_eos_token) stay.
      std::vector<std::int64_t> ids = tokenizer.prefix_ids();
      std::vector<std::int64_t> body = tokenizer.encode_text(in.text);
      const std::vector<std::int64_t> suffix = tokenizer.suffix_ids();
      const std::size_t around = ids.size() + suffix.size();
      if (o.max_length > 0 && body.size() + around > o.max_length)
        body.resize(o.max_length > around ? o.max_length - around : 0);
      ids.insert(ids.end(), body.begin(), body.end());
      ids.insert(ids.end(), suffix.begin(), suffix.end());
      if (o.max_length > 0 && ids.size() > o.max_length) ids.resize(o.max_length);
      output["input_ids"] = ids;
      if (o.tokens) {
        Json tokens = Json::array();
        for (auto id : ids) tokens.push_back(tokenizer.id_to_token(id));
        output["tokens"] = std::move(tokens);
      }
    });
    return;
  }
  const text::BertTokenizer tokenizer = text::BertTokenizer::from_dir(o.model);
  tokenize_each(inputs, [&](const infer::PipelineInput& in, Json& output) {
    const text::Encoding enc = tokenizer.encode(
        in.text, in.text_pair ? std::optional<std::string_view>(*in.text_pair) : std::nullopt,
        o.max_length);
    output["input_ids"] = enc.ids;
    output["token_type_ids"] = enc.type_ids;
    if (o.tokens) {
      Json tokens = Json::array();
      for (auto id : enc.ids) tokens.push_back(tokenizer.id_to_token(id));
      output["tokens"] = std::move(tokens);
    }
  });
}

}  // namespace

void add_tokenize_command(CLI::App& app, const GlobalOptions& /*global*/) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Tokenise inputs with a model folder's tokenizer");
  cmd->footer(
      "Examples:\n"
      "  ms tokenize -m ~/.cache/ms/models/all-MiniLM-L6-v2 -i 'Hello, world!' --tokens\n"
      "  ms tokenize -m MODEL_DIR --input-file in.jsonl --max-length 128\n"
      "Prints one JSON line per input: its input_ids and token_type_ids (BERT family; GPT-2's\n"
      "have none), and tokens with --tokens, as the model's Hugging Face tokenizer gives them.\n" +
      std::string(kExitCodesHelp));
  cmd->add_option("--model,-m", opts->model,
                  "Model folder with vocab.txt (WordPiece) or vocab.json + merges.txt (GPT-2 "
                  "byte-level BPE), and tokenizer_config.json")
      ->required();
  cmd->add_option("--input,-i", opts->inputs, "Input text(s)");
  cmd->add_option(
      "--input-file", opts->input_file,
      "Inputs: .txt, .jsonl (text / text_pair), .json (also an array of records) or .csv");
  cmd->add_option("--max-length", opts->max_length,
                  "Truncate to this many tokens (default, or 0: the tokenizer's "
                  "model_max_length; ms infer also cuts to the model's positions and "
                  "sentence_bert_config.json's max_seq_length, so give the length it uses "
                  "when feeding an exported graph)")
      ->check(non_negative_whole_number());
  cmd->add_flag("--tokens", opts->tokens, "Also print the tokens");
  cmd->callback([opts] { run_tokenize(*opts); });
}

}  // namespace ms::cli
