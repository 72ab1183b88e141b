#include "ms/text/gpt2_tokenizer.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <functional>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <set>

#include "added_token_matcher.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/text/unicode.h"
#include "tokenizer_files.h"

namespace ms::text {
namespace {

// GPT-2 runs BPE over bytes, each shown as a printable character so that vocabulary and merges
// are text: printable Latin-1 bytes stand for themselves, the other 68 (controls, space, 0x7F-0xA0,
// 0xAD) for U+0100 onwards, in byte order.
struct ByteAlphabet {
  std::array<std::string, 256> char_of;  // byte -> its character's UTF-8
  std::array<int, 0x200> byte_of;        // character (all below U+0200) -> byte, -1 if none

  ByteAlphabet() {
    byte_of.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(char_of[static_cast<std::size_t>(b)], cp);
      byte_of[cp] = b;
    }
  }
};

const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}

// The byte a token's character stands for, or -1 for characters outside the alphabet (added
// tokens written in plain text keep their UTF-8, as Hugging Face's decoders do).
int byte_of(char32_t cp) { return cp < 0x200 ? alphabet().byte_of[cp] : -1; }

enum class Kind { kLetter, kNumber, kSpace, kOther };

Kind kind_of(char32_t cp) {
  // \s of the `regex` module that GPT-2's pattern runs on is Unicode's White_Space property,
  // which is what is_whitespace() tests.
  if (is_whitespace(cp)) return Kind::kSpace;
  if (is_letter(cp)) return Kind::kLetter;
  if (is_number(cp)) return Kind::kNumber;
  return Kind::kOther;
}

// The end of the piece GPT-2's pattern matches at `i`; alternatives in the pattern's order.
std::size_t piece_end(const std::u32string& s, std::size_t i) {
  const std::size_t n = s.size();
  // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, as in GPT-2)
  if (s[i] == U'\'' && i + 1 < n) {
    const char32_t a = s[i + 1];
    if (a == U's' || a == U't' || a == U'm' || a == U'd') return i + 2;
    if (i + 2 < n) {
      const char32_t b = s[i + 2];
      if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l'))
        return i + 3;
    }
  }
  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ : an optional space, then a run of one class.
  std::size_t k = i;
  if (s[i] == U' ' && i + 1 < n && kind_of(s[i + 1]) != Kind::kSpace) k = i + 1;
  const Kind kind = kind_of(s[k]);
  if (kind != Kind::kSpace) {
    std::size_t j = k + 1;
    while (j < n && kind_of(s[j]) == kind) ++j;
    return j;
  }
  // \s+(?!\S) : the whitespace run, less its last character when a non-space follows (that one
  // then opens the next piece, e.g. " word"); \s+ : a single whitespace before a non-space.
  std::size_t j = i + 1;
  while (j < n && kind_of(s[j]) == Kind::kSpace) ++j;
  if (j == n) return n;
  return j - i >= 2 ? j - 1 : i + 1;
}

// merges.txt / vocab.bpe: an optional "#version" line, then one "left right" pair a line.
std::vector<std::pair<std::string, std::string>> merges_from_text(
    const std::filesystem::path& path) {
  const std::string text = read_file(path);
  std::vector<std::pair<std::string, std::string>> merges;
  std::size_t line_no = 0;
  for (std::string_view line : split_lines(text)) {
    ++line_no;
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const std::size_t space = line.find(' ');
    MS_CHECK(space != std::string_view::npos && space > 0 && space + 1 < line.size() &&
                 line.find(' ', space + 1) == std::string_view::npos,
             ErrorCode::kConfig, "{}:{}: a merge must be two tokens separated by one space",
             path.string(), line_no);
    merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
  }
  return merges;
}

// Present but unreadable (a folder, a link loop or to nowhere) is an error naming it, not absent:
// a skipped tokenizer.json or modules.json changes the ids or the pooling without a word.
bool is_file(const std::filesystem::path& p) { return optional_regular_file(p); }

// Whether tokenizer.json's pre-tokeniser is GPT-2's ByteLevel (alone or in a Sequence); sets
// add_prefix_space from it.
bool byte_level(const nlohmann::json& pre, bool& add_prefix_space) {
  if (!pre.is_object()) return false;
  const std::string type = pre.value("type", "");
  if (type == "ByteLevel") {
    add_prefix_space = pre.value("add_prefix_space", false);
    return pre.value("use_regex", true);
  }
  if (type == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array()) {
    for (const auto& p : pre["pretokenizers"]) {
      if (byte_level(p, add_prefix_space)) return pre["pretokenizers"].size() == 1;
    }
  }
  return false;
}

// One entry of tokenizer.json's added_tokens or tokenizer_config.json's added_tokens_decoder
// ({"content", "special", "normalized", "single_word", "lstrip", "rstrip"}); `normalized`
// defaults to not `special`, as in tokenizers.
Gpt2AddedToken added_token(const nlohmann::json& entry, const std::string& source) {
  Gpt2AddedToken t;
  t.content = entry["content"].get<std::string>();
  t.special =
      entry.contains("special") && entry["special"].is_boolean() && entry["special"].get<bool>();
  const nlohmann::json normalized = entry.value("normalized", nlohmann::json());
  t.normalized = normalized.is_boolean() ? normalized.get<bool>() : !t.special;
  const AddedTokenFlags flags = added_token_flags(entry, source);
  t.single_word = flags.single_word;
  t.lstrip = flags.lstrip;
  t.rstrip = flags.rstrip;
  return t;
}

// A TemplateProcessing post-processor's single-sequence template ("single": [{"SpecialToken":
// {"id": "<|endoftext|>"}}, {"Sequence": {"id": "A"}}]) as the ids before and after the text;
// false when it is not special tokens around one "A" (whose ids are in its special_tokens).
// The special tokens a template names, with their ids, for from_dir() to check against the
// vocabulary.
using TemplateTokens = std::vector<std::pair<std::string, std::vector<std::int64_t>>>;

bool template_ids(const nlohmann::json& post, Gpt2TokenizerOptions& options,
                  TemplateTokens& named) {
  const nlohmann::json single = post.value("single", nlohmann::json());
  const nlohmann::json specials = post.value("special_tokens", nlohmann::json::object());
  if (!single.is_array() || !specials.is_object()) return false;
  std::vector<std::int64_t> prefix, suffix;
  bool seen_text = false;
  for (const nlohmann::json& piece : single) {
    if (!piece.is_object() || piece.size() != 1) return false;
    if (piece.contains("Sequence")) {
      if (seen_text || piece["Sequence"].value("id", "") != "A") return false;
      seen_text = true;
      continue;
    }
    if (!piece.contains("SpecialToken") || !piece["SpecialToken"].is_object()) return false;
    const nlohmann::json name = piece["SpecialToken"].value("id", nlohmann::json());
    if (!name.is_string() || !specials.contains(name.get<std::string>())) return false;
    const nlohmann::json ids = specials[name.get<std::string>()].value("ids", nlohmann::json());
    if (!ids.is_array()) return false;
    named.emplace_back(name.get<std::string>(), std::vector<std::int64_t>());
    for (const nlohmann::json& id : ids) {
      if (!id.is_number_integer()) return false;
      (seen_text ? suffix : prefix).push_back(id.get<std::int64_t>());
      named.back().second.push_back(id.get<std::int64_t>());
    }
  }
  if (!seen_text) return false;
  options.prefix_ids = std::move(prefix);
  options.suffix_ids = std::move(suffix);
  return true;
}

// tokenizer.json's normalizer and post-processor, which change the ids tokenizers gives: ms
// tokenises without a normalizer, and applies a post-processor that only trims offsets
// (ByteLevel) or puts special tokens around the text (TemplateProcessing's single form, read
// into `options`). Any other is refused by name rather than tokenised differently.
void check_processing(const nlohmann::json& j, const std::string& source,
                      Gpt2TokenizerOptions& options, bool normalizer_ignored,
                      TemplateTokens& named) {
  const nlohmann::json normalizer = j.value("normalizer", nlohmann::json());
  if (!normalizer.is_null() && !normalizer_ignored) {
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: key 'normalizer' is {}, which ms's byte-level BPE tokenizer does "
                            "not apply",
                            source, normalizer.dump().substr(0, 200)),
                "ms reads byte-level BPE tokenizers whose tokenizer.json has \"normalizer\": "
                "null, as GPT-2's has");
  }
  const nlohmann::json post = j.value("post_processor", nlohmann::json());
  std::vector<nlohmann::json> parts;
  if (component_type(post) == "Sequence" && post.contains("processors") &&
      post["processors"].is_array()) {
    for (const nlohmann::json& p : post["processors"]) parts.push_back(p);
  } else if (!post.is_null()) {
    parts.push_back(post);
  }
  bool templated = false;
  for (const nlohmann::json& part : parts) {
    const std::string type = component_type(part);
    if (type == "ByteLevel") continue;  // trims the offsets of tokens, not their ids
    if (type == "TemplateProcessing" && !templated && template_ids(part, options, named)) {
      templated = true;
      continue;
    }
    throw Error(ErrorCode::kConfig,
                fmt::format("{}: key 'post_processor' is {}, which ms's byte-level BPE tokenizer "
                            "does not apply",
                            source, part.dump().substr(0, 200)),
                "ms applies a ByteLevel post-processor, and a TemplateProcessing that puts "
                "special tokens around one text (\"single\": [..., {\"Sequence\": {\"id\": "
                "\"A\"}}, ...])");
  }
}

// Whether transformers 5 builds the folder's tokenizer itself and ignores tokenizer.json's
// normalizer: GPT2Tokenizer and CodeGenTokenizer (named by tokenizer_config.json's
// tokenizer_class, or by config.json's model_type without one) make GPT-2's byte-level BPE from
// tokenizer.json's vocabulary and merges, with no normalizer, and keep its post-processor. A
// tokenizer.json that stands as it is (TokenizersBackend, PreTrainedTokenizerFast, the other
// classes) is run with its normalizer, which ms does not apply (transformers 4.49's fast
// tokenizers apply it for every class; the newer release is followed).
bool normalizer_ignored(const std::filesystem::path& dir) {
  std::string name;
  if (const auto config = read_json_file(dir / "tokenizer_config.json");
      config && config->is_object() && config->contains("tokenizer_class") &&
      (*config)["tokenizer_class"].is_string()) {
    name = (*config)["tokenizer_class"].get<std::string>();
  }
  if (name.empty()) {
    if (const auto config = read_json_file(dir / "config.json");
        config && config->is_object() && config->contains("model_type") &&
        (*config)["model_type"].is_string()) {
      const std::string type = (*config)["model_type"].get<std::string>();
      return type == "gpt2" || type == "codegen";
    }
    return false;
  }
  return name == "GPT2Tokenizer" || name == "GPT2TokenizerFast" || name == "CodeGenTokenizer" ||
         name == "CodeGenTokenizerFast";
}

}  // namespace

struct Gpt2Tokenizer::State {
  std::unordered_map<std::string, std::int64_t> vocab;
  std::vector<std::string> tokens;             // by id ("" for ids the vocabulary skips)
  std::vector<std::string> token_bytes;        // by id: the bytes the token stands for
  std::vector<bool> special;                   // by id: skipped by skip_special_tokens
  std::unordered_map<std::string, int> ranks;  // "left right" -> merge rank
  // Added tokens, found in the text first, then (normalized ones) in the text between those.
  AddedTokenMatcher<char> raw_added, normalized_added;
  std::size_t base_size = 0;  // the highest id of a token not added, + 1
  std::mutex cache_mutex;
  std::unordered_map<std::string, std::vector<std::int64_t>> cache;  // piece -> ids
};

Gpt2Tokenizer::Gpt2Tokenizer(std::unordered_map<std::string, std::int64_t> vocab,
                             std::vector<std::pair<std::string, std::string>> merges,
                             Gpt2TokenizerOptions options, std::vector<Gpt2AddedToken> added_tokens)
    : state_(std::make_unique<State>()), options_(std::move(options)) {
  State& st = *state_;
  MS_CHECK(!vocab.empty(), ErrorCode::kConfig, "the vocabulary is empty");
  std::int64_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    MS_CHECK(id >= 0 && id < std::numeric_limits<int32_t>::max(), ErrorCode::kConfig,
             "token '{}' has an invalid id {}", token, id);
    max_id = std::max(max_id, id);
  }
  st.tokens.resize(static_cast<std::size_t>(max_id) + 1);
  st.token_bytes.resize(st.tokens.size());
  st.special.assign(st.tokens.size(), false);
  for (const auto& [token, id] : vocab) {
    auto& slot = st.tokens[static_cast<std::size_t>(id)];
    MS_CHECK(slot.empty(), ErrorCode::kConfig, "tokens '{}' and '{}' share the id {}", slot, token,
             id);
    slot = token;
  }
  st.vocab = std::move(vocab);
  for (std::size_t id = 0; id < st.tokens.size(); ++id) {
    std::string& bytes = st.token_bytes[id];
    const std::u32string chars = decode_utf8(st.tokens[id]);
    bool mapped = !chars.empty();
    for (char32_t c : chars) mapped = mapped && byte_of(c) >= 0;
    if (!mapped) {
      bytes = st.tokens[id];
      continue;
    }
    for (char32_t c : chars) bytes.push_back(static_cast<char>(byte_of(c)));
  }
  st.ranks.reserve(merges.size() * 2);
  for (std::size_t i = 0; i < merges.size(); ++i) {
    // The first occurrence of a pair keeps its rank, as in Hugging Face's loader.
    st.ranks.emplace(merges[i].first + ' ' + merges[i].second, static_cast<int>(i));
  }

  unk_id_ = token_to_id(options_.unk_token);
  bos_id_ = token_to_id(options_.bos_token);
  eos_id_ = token_to_id(options_.eos_token);
  if (options_.pad_token) {
    pad_id_ = token_to_id(*options_.pad_token);
    MS_CHECK(pad_id_ >= 0, ErrorCode::kConfig, "the vocabulary has no padding token '{}'",
             *options_.pad_token);
  }
  for (const std::string* t : {&options_.unk_token, &options_.bos_token, &options_.eos_token}) {
    added_tokens.push_back({*t, true});
  }
  if (options_.pad_token) added_tokens.push_back({*options_.pad_token, true});
  std::set<std::string> added_set;
  for (const Gpt2AddedToken& t : added_tokens) {
    const std::int64_t id = token_to_id(t.content);
    if (t.content.empty() || id < 0) continue;
    const auto slot = static_cast<std::size_t>(id);
    // A token named special anywhere is special (a special token map may name one that
    // tokenizer.json lists as not).
    if (t.special) st.special[slot] = true;
    // Decoded as written, as Hugging Face decodes an added token (not through the byte
    // alphabet: an added "Ġx" is those characters, not " x").
    st.token_bytes[slot] = t.content;
    // The first entry of a token (tokenizer.json's, when it has one) says how it is matched.
    if (!added_set.insert(t.content).second) continue;
    (t.normalized ? st.normalized_added : st.raw_added)
        .add(t.content, id, {t.single_word, t.lstrip, t.rstrip});
  }
  for (const auto& [token, id] : st.vocab)
    if (added_set.count(token) == 0)
      st.base_size = std::max(st.base_size, static_cast<std::size_t>(id) + 1);
}

Gpt2Tokenizer::Gpt2Tokenizer(Gpt2Tokenizer&&) noexcept = default;
Gpt2Tokenizer& Gpt2Tokenizer::operator=(Gpt2Tokenizer&&) noexcept = default;
Gpt2Tokenizer::~Gpt2Tokenizer() = default;

bool Gpt2Tokenizer::in_dir(const std::filesystem::path& dir) {
  if (is_file(dir / "vocab.json") && is_file(dir / "merges.txt")) return true;
  if (is_file(dir / "encoder.json") && is_file(dir / "vocab.bpe")) return true;
  if (!is_file(dir / "tokenizer.json") || is_file(dir / "vocab.txt")) return false;
  try {
    const nlohmann::json j = read_big_json(dir / "tokenizer.json");
    return j.is_object() && j.contains("model") && j["model"].is_object() &&
           j["model"].value("type", "") == "BPE";
  } catch (const Error&) {
    return false;  // from_dir() reports what is wrong with it
  }
}

Gpt2Tokenizer Gpt2Tokenizer::from_dir(const std::filesystem::path& dir) {
  return with_context("reading the tokenizer in " + dir.string(), [&] {
    std::unordered_map<std::string, std::int64_t> vocab;
    std::vector<std::pair<std::string, std::string>> merges;
    // Added tokens by where they are listed: tokenizer.json's (`added`), tokenizer_config.json's
    // added_tokens_decoder, added_tokens.json, additional_special_tokens.
    std::vector<Gpt2AddedToken> added, decoder_added, legacy_added, special_added;
    Gpt2TokenizerOptions options;
    TemplateTokens template_tokens;  // tokenizer.json's template's special tokens
    // tokenizer.json's added tokens: {"id", "content", "special", ...} entries, whichever files
    // hold the vocabulary (transformers 5 writes vocab.json and merges.txt beside it and keeps
    // the tokens it added only there).
    auto read_tokenizer_json = [&](const nlohmann::json& j) {
      const std::string source = (dir / "tokenizer.json").string();
      if (!j.is_object()) return;
      check_processing(j, source, options, normalizer_ignored(dir), template_tokens);
      if (!j.contains("added_tokens") || !j["added_tokens"].is_array()) return;
      for (const auto& t : j["added_tokens"]) {
        if (!t.is_object() || !t.contains("content") || !t["content"].is_string() ||
            !t.contains("id") || !t["id"].is_number_integer())
          continue;
        vocab.emplace(t["content"].get<std::string>(), t["id"].get<std::int64_t>());
        added.push_back(added_token(t, source));
      }
    };
    if (is_file(dir / "vocab.json") && is_file(dir / "merges.txt")) {
      vocab = vocab_from_json(read_big_json(dir / "vocab.json"), (dir / "vocab.json").string());
      merges = merges_from_text(dir / "merges.txt");
      if (is_file(dir / "tokenizer.json"))
        read_tokenizer_json(read_tokenizer_json_without_vocab(dir / "tokenizer.json"));
    } else if (is_file(dir / "encoder.json") && is_file(dir / "vocab.bpe")) {
      vocab = vocab_from_json(read_big_json(dir / "encoder.json"), (dir / "encoder.json").string());
      merges = merges_from_text(dir / "vocab.bpe");
    } else if (is_file(dir / "tokenizer.json")) {
      const std::string source = (dir / "tokenizer.json").string();
      const nlohmann::json j = read_big_json(dir / "tokenizer.json");
      const bool bpe = j.is_object() && j.contains("model") && j["model"].is_object() &&
                       j["model"].value("type", "") == "BPE";
      MS_CHECK(bpe, ErrorCode::kConfig,
               "{}: the model is not BPE (a byte-level BPE tokenizer "
               "is what GPT-2-family models use)",
               source);
      MS_CHECK(
          j.contains("pre_tokenizer") && byte_level(j["pre_tokenizer"], options.add_prefix_space),
          ErrorCode::kConfig,
          "{}: the pre-tokenizer is not GPT-2's ByteLevel one, which is the only one "
          "supported",
          source);
      vocab = vocab_from_json(j["model"]["vocab"], source);
      const nlohmann::json& m = j["model"].value("merges", nlohmann::json::array());
      MS_CHECK(m.is_array(), ErrorCode::kConfig, "{}: model.merges must be an array", source);
      for (const auto& pair : m) {
        if (pair.is_string()) {
          const std::string s = pair.get<std::string>();
          const std::size_t space = s.find(' ');
          MS_CHECK(space != std::string::npos, ErrorCode::kConfig,
                   "{}: merge '{}' is not two tokens separated by a space", source, s);
          merges.emplace_back(s.substr(0, space), s.substr(space + 1));
        } else {
          MS_CHECK(
              pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string(),
              ErrorCode::kConfig, "{}: merge {} is not a pair of tokens", source, pair.dump());
          merges.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
        }
      }
      read_tokenizer_json(j);
    } else {
      throw Error(ErrorCode::kNotFound,
                  fmt::format("no byte-level BPE tokenizer in {}", dir.string()),
                  "a GPT-2-family model folder needs vocab.json and merges.txt (or "
                  "tokenizer.json) next to its weights");
    }
    MS_CHECK(!vocab.empty(), ErrorCode::kConfig, "the vocabulary in {} is empty", dir.string());
    // A key that is present must have its type, as for the WordPiece tokenizer's configs.
    for (const char* name : {"special_tokens_map.json", "tokenizer_config.json"}) {
      const auto j = read_json_file(dir / name);
      if (!j || !j->is_object()) continue;
      const std::string source = (dir / name).string();
      for (auto [key, flag] :
           {std::pair<const char*, bool*>{"add_prefix_space", &options.add_prefix_space},
            {"add_bos_token", &options.add_bos_token},
            {"add_eos_token", &options.add_eos_token}}) {
        auto it = j->find(key);
        if (it == j->end() || it->is_null()) continue;
        MS_CHECK(it->is_boolean(), ErrorCode::kConfig, "{}: key '{}' must be true or false, got {}",
                 source, key, it->dump());
        *flag = it->get<bool>();
      }
      if (auto it = j->find("model_max_length"); it != j->end() && !it->is_null()) {
        MS_CHECK(it->is_number() && it->get<double>() >= 1, ErrorCode::kConfig,
                 "{}: key 'model_max_length' must be a positive integer, got {}", source,
                 it->dump());
        // Hugging Face writes a huge sentinel (1e30, a float) when the length is unknown.
        if (it->is_number_integer() && it->get<double>() < 1000000)
          options.model_max_length = it->get<std::size_t>();
      }
      if (auto v = token_value(*j, "unk_token")) options.unk_token = *v;
      if (auto v = token_value(*j, "bos_token")) options.bos_token = *v;
      if (auto v = token_value(*j, "eos_token")) options.eos_token = *v;
      if (auto v = token_value(*j, "pad_token")) options.pad_token = *v;
      if (auto it = j->find("added_tokens_decoder"); it != j->end() && it->is_object()) {
        for (const auto& [id, t] : it->items()) {
          if (!t.is_object() || !t.contains("content") || !t["content"].is_string()) continue;
          const std::string content = t["content"].get<std::string>();
          std::int64_t value = -1;
          const auto parsed = std::from_chars(id.data(), id.data() + id.size(), value);
          MS_CHECK(parsed.ec == std::errc() && parsed.ptr == id.data() + id.size() && value >= 0,
                   ErrorCode::kConfig, "{}: key 'added_tokens_decoder.{}' is not a token id",
                   source, id);
          vocab.emplace(content, value);
          decoder_added.push_back(added_token(t, source));
        }
      }
      if (auto it = j->find("additional_special_tokens"); it != j->end() && it->is_array()) {
        for (const auto& t : *it) {
          if (t.is_string()) special_added.push_back({t.get<std::string>(), true});
          if (t.is_object() && t.contains("content") && t["content"].is_string()) {
            // {"content", "lstrip", ...}: a special token with those options.
            nlohmann::json entry = t;
            entry["special"] = true;
            special_added.push_back(added_token(entry, source));
          }
        }
      }
    }
    // Older releases' tokenizer.add_tokens(...): {"token": id}, not special.
    if (const auto j = read_json_file(dir / "added_tokens.json"); j && j->is_object()) {
      for (const auto& [token, id] : j->items()) {
        MS_CHECK(id.is_number_integer() && id.get<std::int64_t>() >= 0, ErrorCode::kConfig,
                 "{}: the id of '{}' must be a non-negative integer, got {}",
                 (dir / "added_tokens.json").string(), token, id.dump());
        vocab.emplace(token, id.get<std::int64_t>());
        legacy_added.push_back({token, false});
      }
    }
    // The constructor matches a token as its first entry says: the most complete source first
    // (transformers writes a token's options to tokenizer.json and added_tokens_decoder, but not
    // to added_tokens.json, nor always to special_tokens_map.json).
    for (auto* more : {&decoder_added, &legacy_added, &special_added})
      added.insert(added.end(), more->begin(), more->end());
    // transformers 5 drops add_bos_token and add_eos_token when there is a tokenizer.json
    // (its post-processor alone decides; transformers 4.49's fast tokenizer does the same);
    // without one it builds "bos $A eos" from them. (4.49's GPT2TokenizerFast, converted from
    // the slow GPT2Tokenizer then, reads add_bos_token but not add_eos_token: the newer
    // release is followed.)
    if (is_file(dir / "tokenizer.json")) options.add_bos_token = options.add_eos_token = false;
    // The template's ids must be its tokens' ids in the vocabulary (a token of one id), or at
    // least ids the vocabulary has.
    std::int64_t vocab_end = 0;
    for (const auto& [token, id] : vocab) vocab_end = std::max(vocab_end, id + 1);
    for (const auto& [name, ids] : template_tokens) {
      const auto it = vocab.find(name);
      for (const std::int64_t id : ids) {
        const bool ok = id >= 0 && id < vocab_end &&
                        (ids.size() != 1 || (it != vocab.end() && it->second == id));
        MS_CHECK(ok, ErrorCode::kConfig,
                 "{}: key 'post_processor.special_tokens.{}.ids' holds {}, which is not {}",
                 (dir / "tokenizer.json").string(), name, id,
                 it != vocab.end() && ids.size() == 1
                     ? fmt::format("the token's id in the vocabulary ({})", it->second)
                     : fmt::format("the id of a token '{}' in the vocabulary (0 to {})", name,
                                   vocab_end - 1));
      }
    }
    try {
      return Gpt2Tokenizer(std::move(vocab), std::move(merges), std::move(options),
                           std::move(added));
    } catch (const Error& e) {
      // The checks of the vocabulary itself: name the folder whose files they read.
      throw Error(e.code(), fmt::format("the tokenizer in {}: {}", dir.string(), e.what()),
                  e.hint());
    }
  });
}

std::vector<std::string> Gpt2Tokenizer::pre_tokenize(std::string_view text) {
  const std::u32string s = decode_utf8(text);
  std::vector<std::string> pieces;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t j = piece_end(s, i);
    pieces.push_back(encode_utf8(std::u32string_view(s).substr(i, j - i)));
    i = j;
  }
  return pieces;
}

void Gpt2Tokenizer::bpe(const std::string& piece, std::vector<std::int64_t>& ids,
                        std::vector<std::string>* tokens) const {
  const State& st = *state_;
  // Merges the adjacent pair of lowest rank (the leftmost of equal ones) until none is left:
  // every occurrence of a pair left to right before any pair of higher rank, as GPT-2's loop
  // does, but with the pairs in a heap and the symbols in a linked list, so that a long piece (a
  // megabyte without a space) costs n log n rather than the loop's n squared.
  struct Symbol {
    std::string text;
    std::size_t prev, next;     // kNone at the ends
    std::uint32_t version = 0;  // bumped when it absorbs its right neighbour
    bool alive = true;
  };
  constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  for (std::size_t i = 0; i < piece.size(); ++i) {
    symbols.push_back({alphabet().char_of[static_cast<unsigned char>(piece[i])],
                       i == 0 ? kNone : i - 1, i + 1 == piece.size() ? kNone : i + 1});
  }
  struct Pair {
    int rank;
    std::size_t left, right;
    std::uint32_t left_version, right_version;
    bool operator>(const Pair& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Pair, std::vector<Pair>, std::greater<Pair>> pairs;
  std::string key;
  auto push_pair = [&](std::size_t left) {
    if (left == kNone) return;
    const std::size_t right = symbols[left].next;
    if (right == kNone) return;
    key.assign(symbols[left].text).append(1, ' ').append(symbols[right].text);
    const auto it = st.ranks.find(key);
    if (it != st.ranks.end())
      pairs.push({it->second, left, right, symbols[left].version, symbols[right].version});
  };
  for (std::size_t i = 0; i + 1 < symbols.size(); ++i) push_pair(i);
  while (!pairs.empty()) {
    const Pair p = pairs.top();
    pairs.pop();
    Symbol& left = symbols[p.left];
    Symbol& right = symbols[p.right];
    // A pair whose symbols have merged since it was pushed is gone.
    if (!left.alive || !right.alive || left.next != p.right || left.version != p.left_version ||
        right.version != p.right_version)
      continue;
    left.text += right.text;
    ++left.version;
    right.alive = false;
    left.next = right.next;
    if (right.next != kNone) symbols[right.next].prev = p.left;
    push_pair(left.prev);
    push_pair(p.left);
  }
  std::vector<std::string> word;
  word.reserve(symbols.size());
  for (std::size_t i = 0; i != kNone && !symbols.empty(); i = symbols[i].next)
    word.push_back(std::move(symbols[i].text));
  for (std::string& token : word) {
    std::int64_t id = token_to_id(token);
    if (id < 0) {
      MS_CHECK(unk_id_ >= 0, ErrorCode::kConfig,
               "token '{}' is not in the vocabulary, which has no unknown token '{}' either", token,
               options_.unk_token);
      id = unk_id_;
    }
    ids.push_back(id);
    if (tokens != nullptr) tokens->push_back(std::move(token));
  }
}

void Gpt2Tokenizer::encode_into(std::string_view text, std::vector<std::int64_t>& ids,
                                std::vector<std::string>* tokens) const {
  require_valid_utf8(text);
  State& st = *state_;
  std::string prefixed;
  auto plain = [&](std::string_view segment) {
    if (options_.add_prefix_space && segment.front() != ' ') {
      prefixed = " " + std::string(segment);
      segment = prefixed;
    }
    for (const std::string& piece : pre_tokenize(segment)) {
      if (tokens != nullptr) {
        bpe(piece, ids, tokens);
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(st.cache_mutex);
        auto it = st.cache.find(piece);
        if (it != st.cache.end()) {
          ids.insert(ids.end(), it->second.begin(), it->second.end());
          continue;
        }
      }
      std::vector<std::int64_t> piece_ids;
      bpe(piece, piece_ids, nullptr);
      ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
      std::lock_guard<std::mutex> lock(st.cache_mutex);
      // Bounded: a long stream of distinct pieces (random text) must not grow it without end.
      if (st.cache.size() >= (1u << 16)) st.cache.clear();
      st.cache.emplace(piece, std::move(piece_ids));
    }
  };
  // Added tokens split the text first, as Hugging Face does: those not normalized in the text,
  // then the normalized ones in the text between them; the text left is pre-tokenised and
  // merged.
  auto token = [&](std::int64_t id) {
    ids.push_back(id);
    if (tokens != nullptr) tokens->push_back(st.tokens[static_cast<std::size_t>(id)]);
  };
  for (const auto& outer : st.raw_added.split(text)) {
    if (outer.id >= 0) {
      token(outer.id);
      continue;
    }
    const std::string_view between = text.substr(outer.begin, outer.end - outer.begin);
    for (const auto& inner : st.normalized_added.split(between)) {
      if (inner.id >= 0)
        token(inner.id);
      else
        plain(between.substr(inner.begin, inner.end - inner.begin));
    }
  }
}

std::vector<std::string> Gpt2Tokenizer::tokenize(std::string_view text) const {
  std::vector<std::int64_t> ids;
  std::vector<std::string> tokens;
  encode_into(text, ids, &tokens);
  return tokens;
}

std::vector<std::int64_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<std::int64_t> ids = prefix_ids();
  encode_into(text, ids, nullptr);
  const std::vector<std::int64_t> suffix = suffix_ids();
  ids.insert(ids.end(), suffix.begin(), suffix.end());
  return ids;
}

std::vector<std::int64_t> Gpt2Tokenizer::encode_text(std::string_view text) const {
  std::vector<std::int64_t> ids;
  encode_into(text, ids, nullptr);
  return ids;
}

std::vector<std::int64_t> Gpt2Tokenizer::prefix_ids() const {
  std::vector<std::int64_t> ids;
  if (options_.add_bos_token && bos_id_ >= 0) ids.push_back(bos_id_);
  ids.insert(ids.end(), options_.prefix_ids.begin(), options_.prefix_ids.end());
  return ids;
}

std::vector<std::int64_t> Gpt2Tokenizer::suffix_ids() const {
  std::vector<std::int64_t> ids = options_.suffix_ids;
  if (options_.add_eos_token && eos_id_ >= 0) ids.push_back(eos_id_);
  return ids;
}

std::string Gpt2Tokenizer::decode_bytes(const std::vector<std::int64_t>& ids,
                                        bool skip_special_tokens) const {
  const State& st = *state_;
  std::string out;
  for (std::int64_t id : ids) {
    MS_CHECK(id >= 0 && static_cast<std::size_t>(id) < st.tokens.size() &&
                 !st.tokens[static_cast<std::size_t>(id)].empty(),
             ErrorCode::kUsage, "token id {} is not in the vocabulary (size {})", id,
             st.vocab.size());
    if (skip_special_tokens && st.special[static_cast<std::size_t>(id)]) continue;
    out += st.token_bytes[static_cast<std::size_t>(id)];
  }
  return out;
}

std::string Gpt2Tokenizer::decode(const std::vector<std::int64_t>& ids,
                                  bool skip_special_tokens) const {
  return utf8_replace_invalid(decode_bytes(ids, skip_special_tokens));
}

std::int64_t Gpt2Tokenizer::token_to_id(std::string_view token) const {
  auto it = state_->vocab.find(std::string(token));
  return it == state_->vocab.end() ? -1 : it->second;
}

const std::string& Gpt2Tokenizer::id_to_token(std::int64_t id) const {
  const State& st = *state_;
  MS_CHECK(id >= 0 && static_cast<std::size_t>(id) < st.tokens.size() &&
               !st.tokens[static_cast<std::size_t>(id)].empty(),
           ErrorCode::kUsage, "token id {} is not in the vocabulary (size {})", id,
           st.vocab.size());
  return st.tokens[static_cast<std::size_t>(id)];
}

std::size_t Gpt2Tokenizer::vocab_size() const { return state_->tokens.size(); }

std::size_t Gpt2Tokenizer::base_vocab_size() const { return state_->base_size; }

std::string utf8_replace_invalid(std::string_view bytes) {
  static const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(bytes.size());
  const std::size_t n = bytes.size();
  for (std::size_t i = 0; i < n;) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    // Expected length and the allowed range of the second byte (which rules out overlong forms,
    // surrogates and code points above U+10FFFF); the others are 0x80-0xBF.
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    }
    if (len == 0) {  // not a lead byte: one replacement for it alone
      out += kReplacement;
      ++i;
      continue;
    }
    // The maximal subpart: the lead and the continuation bytes that are valid so far.
    std::size_t k = 1;
    while (k < len && i + k < n) {
      const auto c = static_cast<unsigned char>(bytes[i + k]);
      const bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
      if (!ok) break;
      ++k;
    }
    if (k == len) {
      out.append(bytes.substr(i, len));
    } else {
      out += kReplacement;
    }
    i += k;
  }
  return out;
}

}  // namespace ms::text
