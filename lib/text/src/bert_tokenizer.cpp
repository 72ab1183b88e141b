#include "ms/text/bert_tokenizer.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "added_token_matcher.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/text.h"
#include "ms/text/unicode.h"
#include "tokenizer_files.h"

namespace ms::text {
namespace {

// Code points in UTF-8 text: its bytes that start one (valid text assumed).
std::size_t code_points(std::string_view utf8) {
  std::size_t n = 0;
  for (unsigned char c : utf8) n += (c & 0xC0) != 0x80;
  return n;
}

// Whether tokenizer.json holds a WordPiece model (transformers 5 saves a BERT tokenizer as
// tokenizer.json and tokenizer_config.json alone, without vocab.txt).
bool holds_wordpiece(const nlohmann::json& j) {
  return j.is_object() && j.contains("model") && j["model"].is_object() &&
         j["model"].value("type", "") == "WordPiece";
}

// tokenizer.json's WordPiece vocabulary (model.vocab) in id order.
std::vector<std::string> wordpiece_vocab(const nlohmann::json& j, const std::string& source) {
  const auto ids =
      vocab_from_json(j["model"].value("vocab", nlohmann::json()), source + " (model.vocab)");
  std::vector<std::string> vocab(ids.size());
  std::vector<bool> taken(ids.size(), false);
  for (const auto& [token, id] : ids) {
    const auto slot = static_cast<std::size_t>(id);
    MS_CHECK(id >= 0 && slot < vocab.size() && !taken[slot], ErrorCode::kConfig,
             "{}: model.vocab gives '{}' the id {}, but its ids must be 0 to {}, each once", source,
             token, id, static_cast<std::int64_t>(vocab.size()) - 1);
    vocab[slot] = token;
    taken[slot] = true;
  }
  return vocab;
}

// One added token as tokenizers writes it ({"id", "content", "special", "normalized", ...}; a
// token's `normalized` defaults to not `special`, as tokenizers' AddedToken does).
AddedToken added_token(const nlohmann::json& entry, std::int64_t id, const std::string& source) {
  MS_CHECK(entry.is_object() && entry.contains("content") && entry["content"].is_string(),
           ErrorCode::kConfig, "{}: an added token needs a string 'content', got {}", source,
           entry.dump().substr(0, 200));
  AddedToken token;
  token.content = entry["content"].get<std::string>();
  token.id = id;
  const bool special = entry.value("special", false);
  const nlohmann::json normalized = entry.value("normalized", nlohmann::json());
  token.normalized = normalized.is_boolean() ? normalized.get<bool>() : !special;
  const AddedTokenFlags flags = added_token_flags(entry, source);
  token.single_word = flags.single_word;
  token.lstrip = flags.lstrip;
  token.rstrip = flags.rstrip;
  return token;
}

// The tokens added to a folder's vocabulary, from the first place that lists them:
// tokenizer.json's added_tokens (the fast tokenizer's), tokenizer_config.json's
// added_tokens_decoder (transformers 4.34 and later), added_tokens.json (older; matched as
// written).
std::vector<AddedToken> read_added_tokens(const std::filesystem::path& dir,
                                          const nlohmann::json* tokenizer_json) {
  std::vector<AddedToken> out;
  const std::string json_source = (dir / "tokenizer.json").string();
  if (tokenizer_json != nullptr && tokenizer_json->contains("added_tokens")) {
    const nlohmann::json& list = (*tokenizer_json)["added_tokens"];
    MS_CHECK(list.is_array(), ErrorCode::kConfig, "{}: added_tokens must be a list", json_source);
    for (const nlohmann::json& entry : list) {
      MS_CHECK(entry.is_object() && entry.contains("id") && entry["id"].is_number_integer(),
               ErrorCode::kConfig, "{}: an added token needs an integer 'id', got {}", json_source,
               entry.dump().substr(0, 200));
      out.push_back(added_token(entry, entry["id"].get<std::int64_t>(), json_source));
    }
    return out;
  }
  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  if (const auto config = read_json_file(config_path);
      config && config->is_object() && config->contains("added_tokens_decoder")) {
    const nlohmann::json decoder = nlohmann::json::parse((*config)["added_tokens_decoder"].dump());
    MS_CHECK(decoder.is_object(), ErrorCode::kConfig,
             "{}: added_tokens_decoder must be an object of id -> token", config_path.string());
    for (const auto& [key, entry] : decoder.items()) {
      std::int64_t id = -1;
      const auto [end, error] = std::from_chars(key.data(), key.data() + key.size(), id);
      MS_CHECK(error == std::errc() && end == key.data() + key.size(), ErrorCode::kConfig,
               "{}: added_tokens_decoder's key '{}' is not an id", config_path.string(), key);
      out.push_back(added_token(entry, id, config_path.string()));
    }
    return out;
  }
  const std::filesystem::path legacy = dir / "added_tokens.json";
  if (optional_regular_file(legacy)) {
    for (const auto& [content, id] : vocab_from_json(read_big_json(legacy), legacy.string()))
      out.push_back(AddedToken{content, id});
  }
  return out;
}

// The special token of a TemplateProcessing piece ({"SpecialToken": {"id": "[CLS]", ...}}), or
// nullopt for another piece.
std::optional<std::string> template_special(const nlohmann::json& piece) {
  if (!piece.is_object() || !piece.contains("SpecialToken")) return std::nullopt;
  const nlohmann::json& special = piece["SpecialToken"];
  if (!special.is_object() || !special.contains("id") || !special["id"].is_string())
    return std::nullopt;
  return special["id"].get<std::string>();
}

// Whether a TemplateProcessing piece is sequence `name` ("A", "B") with segment id `type_id`.
bool template_sequence(const nlohmann::json& piece, const char* name, int type_id) {
  if (!piece.is_object() || !piece.contains("Sequence")) return false;
  const nlohmann::json& sequence = piece["Sequence"];
  return sequence.is_object() && sequence.value("id", "") == name &&
         sequence.value("type_id", -1) == type_id;
}

// The options of a tokenizer.json that stands as it is (transformers' TokenizersBackend /
// PreTrainedTokenizerFast, which read no do_lower_case): its normalizer, WordPiece model and
// post-processor. One that normalises, pre-tokenises or adds special tokens otherwise than BERT
// is refused by name, not tokenised differently.
void read_wordpiece_options(const nlohmann::json& j, const std::string& source,
                            BertTokenizerOptions& options) {
  const nlohmann::json& model = j["model"];
  auto text = [&](const char* key, std::string& out) {
    if (model.contains(key) && !model[key].is_null()) {
      MS_CHECK(model[key].is_string(), ErrorCode::kConfig, "{}: model.{} must be a string, got {}",
               source, key, model[key].dump());
      out = model[key].get<std::string>();
    }
  };
  text("unk_token", options.unk_token);
  text("continuing_subword_prefix", options.continuing_prefix);
  if (model.contains("max_input_chars_per_word")) {
    const nlohmann::json& v = model["max_input_chars_per_word"];
    MS_CHECK(v.is_number_integer() && v.get<std::int64_t>() >= 0, ErrorCode::kConfig,
             "{}: model.max_input_chars_per_word must be a whole number, got {}", source, v.dump());
    options.max_input_chars_per_word = v.get<std::size_t>();
  }
  const nlohmann::json normalizer = j.value("normalizer", nlohmann::json());
  if (normalizer.is_null()) {
    // No normalizer: the text is split as it is.
    options.lowercase = options.tokenize_chinese_chars = options.clean_text = false;
    options.strip_accents = false;
  } else {
    MS_CHECK(component_type(normalizer) == "BertNormalizer", ErrorCode::kConfig,
             "{}: the normalizer {} is not BERT's (BertNormalizer), which ms's WordPiece "
             "tokenizer applies",
             source, component_type(normalizer));
    auto flag = [&](const char* key, bool fallback) {
      const nlohmann::json v = normalizer.value(key, nlohmann::json());
      if (v.is_null()) return fallback;
      MS_CHECK(v.is_boolean(), ErrorCode::kConfig,
               "{}: normalizer.{} must be true or false, got {}", source, key, v.dump());
      return v.get<bool>();
    };
    options.clean_text = flag("clean_text", true);
    options.tokenize_chinese_chars = flag("handle_chinese_chars", true);
    options.lowercase = flag("lowercase", true);
    const nlohmann::json strip = normalizer.value("strip_accents", nlohmann::json());
    if (!strip.is_null()) options.strip_accents = flag("strip_accents", false);
  }
  const nlohmann::json pre = j.value("pre_tokenizer", nlohmann::json());
  MS_CHECK(component_type(pre) == "BertPreTokenizer", ErrorCode::kConfig,
           "{}: the pre-tokenizer {} is not BERT's (BertPreTokenizer), which ms's WordPiece "
           "tokenizer applies",
           source, component_type(pre));
  // The special tokens around a text: [CLS] A [SEP] and [CLS] A [SEP] B [SEP], B's segment 1.
  const nlohmann::json post = j.value("post_processor", nlohmann::json());
  bool bert_like = false;
  if (component_type(post) == "TemplateProcessing") {
    const nlohmann::json single = post.value("single", nlohmann::json());
    const nlohmann::json pair = post.value("pair", nlohmann::json());
    if (single.is_array() && single.size() == 3 && pair.is_array() && pair.size() == 5) {
      const auto cls = template_special(single[0]), sep = template_special(single[2]);
      bert_like = cls && sep && template_sequence(single[1], "A", 0) &&
                  template_special(pair[0]) == cls && template_sequence(pair[1], "A", 0) &&
                  template_special(pair[2]) == sep && template_sequence(pair[3], "B", 1) &&
                  template_special(pair[4]) == sep;
      if (bert_like) {
        options.cls_token = *cls;
        options.sep_token = *sep;
      }
    }
  } else if (component_type(post) == "BertProcessing") {
    const nlohmann::json cls = post.value("cls", nlohmann::json());
    const nlohmann::json sep = post.value("sep", nlohmann::json());
    bert_like = cls.is_array() && !cls.empty() && cls[0].is_string() && sep.is_array() &&
                !sep.empty() && sep[0].is_string();
    if (bert_like) {
      options.cls_token = cls[0].get<std::string>();
      options.sep_token = sep[0].get<std::string>();
    }
  }
  MS_CHECK(bert_like, ErrorCode::kConfig,
           "{}: the post-processor {} does not put a text between a classifier and a separator "
           "token as BERT's does ([CLS] A [SEP], [CLS] A [SEP] B [SEP]), which ms's WordPiece "
           "tokenizer does",
           source, post.is_null() ? "null" : post.dump().substr(0, 200));
}

}  // namespace

struct BertTokenizer::Matchers {
  AddedTokenMatcher<char> raw;             // in the text as written (UTF-8)
  AddedTokenMatcher<char32_t> normalized;  // normalised, in the normalised text
};

BertTokenizer::BertTokenizer(std::vector<std::string> vocab, BertTokenizerOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  index_.reserve(vocab_.size() * 2);
  for (std::size_t i = 0; i < vocab_.size(); ++i) {
    // A token listed twice takes its last line's id, as Hugging Face's loaders do.
    index_[vocab_[i]] = static_cast<std::int64_t>(i);
  }
  model_vocab_size_ = vocab_.size();
  std::vector<AddedToken> added = options_.added_tokens;
  std::stable_sort(added.begin(), added.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  for (const AddedToken& token : added) {
    MS_CHECK(token.id >= 0 && static_cast<std::size_t>(token.id) <= vocab_.size(),
             ErrorCode::kConfig,
             "the added token '{}' has the id {}, past the vocabulary's {} tokens and those added "
             "before it",
             token.content, token.id, vocab_.size());
    if (static_cast<std::size_t>(token.id) == vocab_.size()) vocab_.push_back(token.content);
    index_[token.content] = token.id;
  }
  for (const auto& entry : index_)
    longest_token_chars_ = std::max(longest_token_chars_, code_points(entry.first));
  auto need = [this](const std::string& token, const char* what) {
    const std::int64_t id = token_to_id(token);
    MS_CHECK(id >= 0, ErrorCode::kConfig, "the vocabulary has no {} token '{}'", what, token);
    return id;
  };
  unk_id_ = need(options_.unk_token, "unknown (unk_token)");
  cls_id_ = need(options_.cls_token, "classifier (cls_token)");
  sep_id_ = need(options_.sep_token, "separator (sep_token)");
  pad_id_ = need(options_.pad_token, "padding (pad_token)");
  mask_id_ = token_to_id(options_.mask_token);
  auto matchers = std::make_shared<Matchers>();
  // The added tokens' own entries first: the first entry of a text says how it is matched.
  for (const AddedToken& token : options_.added_tokens) {
    const AddedTokenFlags flags{token.single_word, token.lstrip, token.rstrip};
    if (token.normalized)
      matchers->normalized.add(normalize(token.content).text, token.id, flags);
    else
      matchers->raw.add(token.content, token.id, flags);
  }
  for (const std::string* t : {&options_.unk_token, &options_.cls_token, &options_.sep_token,
                               &options_.pad_token, &options_.mask_token}) {
    if (token_to_id(*t) >= 0) matchers->raw.add(*t, token_to_id(*t), {});
  }
  matchers_ = std::move(matchers);
}

bool BertTokenizer::in_dir(const std::filesystem::path& dir) {
  if (optional_regular_file(dir / "vocab.txt")) return true;
  if (!optional_regular_file(dir / "tokenizer.json")) return false;
  try {
    return holds_wordpiece(read_big_json(dir / "tokenizer.json"));
  } catch (const Error&) {
    return false;  // from_dir() reports what is wrong with it
  }
}

BertTokenizer BertTokenizer::from_dir(const std::filesystem::path& dir) {
  std::filesystem::path vocab_path = dir / "vocab.txt";
  BertTokenizerOptions options;
  std::vector<std::string> vocab;
  bool json_stands = false;  // tokenizer.json's options rule (see below)
  const std::filesystem::path json_path = dir / "tokenizer.json";
  // The fast tokenizer's file, when it is a WordPiece one: its added tokens count beside vocab.txt
  // too.
  std::optional<nlohmann::json> tokenizer_json;
  if (optional_regular_file(json_path)) {
    tokenizer_json = optional_regular_file(vocab_path)
                         ? read_tokenizer_json_without_vocab(json_path)
                         : read_big_json(json_path);
    if (!holds_wordpiece(*tokenizer_json) && optional_regular_file(vocab_path))
      tokenizer_json.reset();
  }
  if (optional_regular_file(vocab_path)) {
    const std::string text = read_file(vocab_path);
    for (std::string_view token : split_lines(text)) vocab.emplace_back(token);
  } else if (tokenizer_json) {
    const nlohmann::json& j = *tokenizer_json;
    MS_CHECK(holds_wordpiece(j), ErrorCode::kNotFound,
             "no WordPiece vocabulary: {} does not exist, and {} holds a {} model, not WordPiece",
             vocab_path.string(), json_path.string(),
             component_type(j.is_object() ? j.value("model", nlohmann::json()) : j));
    vocab = wordpiece_vocab(j, json_path.string());
    // transformers 5 reads such a folder as its tokenizer_config.json's tokenizer_class says: a
    // BertTokenizer (or no class) takes only the vocabulary from tokenizer.json and builds BERT's
    // normalizer from tokenizer_config.json (as for vocab.txt); any other class
    // (TokenizersBackend, PreTrainedTokenizerFast) runs tokenizer.json as it stands, and ignores
    // tokenizer_config.json's do_lower_case and the like.
    std::string tokenizer_class;
    if (const auto config = read_json_file(dir / "tokenizer_config.json");
        config && config->is_object() && config->contains("tokenizer_class") &&
        (*config)["tokenizer_class"].is_string()) {
      tokenizer_class = (*config)["tokenizer_class"].get<std::string>();
    }
    json_stands = !tokenizer_class.empty() && tokenizer_class != "BertTokenizer" &&
                  tokenizer_class != "BertTokenizerFast";
    if (json_stands) read_wordpiece_options(j, json_path.string(), options);
    vocab_path = json_path;
  } else {
    // Half of a byte-level BPE tokenizer: say what is missing of it, not that BERT's is.
    for (const auto& [have, need] :
         {std::pair<const char*, const char*>{"vocab.json", "merges.txt"},
          {"encoder.json", "vocab.bpe"}}) {
      if (optional_regular_file(dir / have)) {
        throw Error(ErrorCode::kNotFound,
                    fmt::format("{} is missing: the tokenizer in {} has {} but not {}, and a "
                                "GPT-2-style (byte-level BPE) tokenizer needs both",
                                (dir / need).string(), dir.string(), have, need),
                    "copy the model's tokenizer files into the folder");
      }
    }
    throw Error(ErrorCode::kNotFound,
                fmt::format("no WordPiece vocabulary: {} does not exist", vocab_path.string()),
                "a BERT-family model folder needs vocab.txt (or a WordPiece tokenizer.json) next "
                "to its weights");
  }
  MS_CHECK(!vocab.empty(), ErrorCode::kConfig, "{} is empty", vocab_path.string());

  // A key that is present must have its type: a misspelt value ("do_lower_case": "banana") would
  // otherwise silently tokenise differently from the model's training. null means "not set".
  auto apply = [&options, json_stands](const Json& j, const std::filesystem::path& file) {
    if (!j.is_object()) return;
    auto flag = [&](const char* key) -> std::optional<bool> {
      auto it = j.find(key);
      if (it == j.end() || it->is_null()) return std::nullopt;
      MS_CHECK(it->is_boolean(), ErrorCode::kConfig, "{}: key '{}' must be true or false, got {}",
               file.string(), key, it->dump());
      return it->get<bool>();
    };
    if (!json_stands) {
      if (auto v = flag("do_lower_case")) options.lowercase = *v;
      if (auto v = flag("strip_accents")) options.strip_accents = *v;
      if (auto v = flag("tokenize_chinese_chars")) options.tokenize_chinese_chars = *v;
    }
    if (auto it = j.find("model_max_length"); it != j.end() && !it->is_null()) {
      MS_CHECK(it->is_number() && it->get<double>() >= 1, ErrorCode::kConfig,
               "{}: key 'model_max_length' must be a positive integer, got {}", file.string(),
               it->dump());
      // Hugging Face writes a huge sentinel (1e30, stored as a float) when the length is unknown.
      if (it->is_number_integer() && it->get<double>() < 1000000)
        options.model_max_length = it->get<std::size_t>();
    }
    if (auto v = token_value(j, "unk_token"); v && !json_stands) options.unk_token = *v;
    // tokenizer.json's model and post-processor name these when it rules.
    if (auto v = token_value(j, "cls_token"); v && !json_stands) options.cls_token = *v;
    if (auto v = token_value(j, "sep_token"); v && !json_stands) options.sep_token = *v;
    if (auto v = token_value(j, "pad_token")) options.pad_token = *v;
    if (auto v = token_value(j, "mask_token")) options.mask_token = *v;
  };
  for (const char* name : {"special_tokens_map.json", "tokenizer_config.json"}) {
    if (auto j = read_json_file(dir / name)) apply(*j, dir / name);
  }
  options.added_tokens = read_added_tokens(dir, tokenizer_json ? &*tokenizer_json : nullptr);
  try {
    return BertTokenizer(std::move(vocab), std::move(options));
  } catch (const Error& e) {
    // The checks of the vocabulary itself (its special tokens): name the file they read.
    throw Error(e.code(), fmt::format("{}: {}", vocab_path.string(), e.what()),
                e.hint().empty() ? "tokenizer_config.json and special_tokens_map.json name the "
                                   "special tokens; the vocabulary must list each of them"
                                 : e.hint());
  }
}

std::int64_t BertTokenizer::token_to_id(std::string_view token) const {
  auto it = index_.find(std::string(token));
  return it == index_.end() ? -1 : it->second;
}

const std::string& BertTokenizer::id_to_token(std::int64_t id) const {
  MS_CHECK(id >= 0 && static_cast<std::size_t>(id) < vocab_.size(), ErrorCode::kUsage,
           "token id {} is outside the vocabulary (size {})", id, vocab_.size());
  return vocab_[static_cast<std::size_t>(id)];
}

BertTokenizer::Normalized BertTokenizer::normalize(std::string_view text) const {
  const std::u32string input = decode_utf8(text);
  // Normaliser: clean-up, CJK spacing, accent stripping, lower-casing (in Hugging Face's order).
  // Each character keeps the index of the input character it came from, for offsets.
  std::u32string cleaned;
  std::vector<std::size_t> src;
  cleaned.reserve(input.size() + 8);
  src.reserve(input.size() + 8);
  for (std::size_t i = 0; i < input.size(); ++i) {
    char32_t cp = input[i];
    if (options_.clean_text) {
      if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
      if (is_whitespace(cp)) cp = ' ';
    }
    if (options_.tokenize_chinese_chars && is_cjk(cp)) {
      cleaned.append({U' ', cp, U' '});
      src.insert(src.end(), {i, i, i});
    } else {
      cleaned.push_back(cp);
      src.push_back(i);
    }
  }
  std::u32string scratch;
  std::vector<std::size_t> scratch_src;
  if (options_.strip_accents.value_or(options_.lowercase)) {
    scratch.clear();
    scratch_src.clear();
    for (std::size_t k = 0; k < cleaned.size(); ++k) {
      const std::size_t before = scratch.size();
      append_nfd(scratch, cleaned[k]);
      scratch_src.resize(scratch.size(), src[k]);
      // Drop the non-spacing marks that decomposition produced or that were there.
      std::size_t w = before;
      for (std::size_t r = before; r < scratch.size(); ++r) {
        if (!is_nonspacing_mark(scratch[r])) {
          scratch[w] = scratch[r];
          scratch_src[w] = scratch_src[r];
          ++w;
        }
      }
      scratch.resize(w);
      scratch_src.resize(w);
    }
    cleaned.swap(scratch);
    src.swap(scratch_src);
  }
  if (options_.lowercase) {
    scratch.clear();
    scratch_src.clear();
    for (std::size_t k = 0; k < cleaned.size(); ++k) {
      append_lower(scratch, cleaned[k]);
      scratch_src.resize(scratch.size(), src[k]);
    }
    cleaned.swap(scratch);
    src.swap(scratch_src);
  }
  return {std::move(cleaned), std::move(src)};
}

std::vector<BertTokenizer::Word> BertTokenizer::split_words(const Normalized& text,
                                                            std::size_t begin,
                                                            std::size_t end) const {
  // Pre-tokeniser: split on whitespace, and every punctuation character is a word of its own.
  std::vector<Word> words;
  Word current;
  auto flush = [&] {
    if (!current.text.empty()) words.push_back(std::move(current));
    current = Word{};
  };
  for (std::size_t k = begin; k < end; ++k) {
    const char32_t cp = text.text[k];
    if (is_whitespace(cp)) {
      flush();
    } else if (is_punctuation(cp)) {
      flush();
      words.push_back(Word{std::u32string(1, cp), {text.source[k]}});
    } else {
      current.text.push_back(cp);
      current.source.push_back(text.source[k]);
    }
  }
  flush();
  return words;
}

std::vector<std::string> BertTokenizer::basic_tokenize(std::string_view text) const {
  std::vector<std::string> out;
  const Normalized normalized = normalize(text);
  for (const Word& w : split_words(normalized, 0, normalized.text.size()))
    out.push_back(encode_utf8(w.text));
  return out;
}

void BertTokenizer::wordpiece(const Word& w, std::size_t base, std::int64_t word_id,
                              Pieces& out) const {
  const std::u32string& word = w.text;
  const std::pair<std::size_t, std::size_t> whole{base + w.source.front(),
                                                  base + w.source.back() + 1};
  if (word.size() > options_.max_input_chars_per_word) {
    out.ids.push_back(unk_id_);
    out.offsets.push_back(whole);
    out.word_ids.push_back(word_id);
    return;
  }
  const std::size_t mark = out.ids.size();
  // The word as UTF-8 once, with where each code point starts: a piece is then one append. (It
  // was built code point by code point for every length tried: a 99-letter word that matches
  // only letter by letter cost ~160,000 appends, and 1 MiB of them 4.9 s in `ms serve`.)
  std::string utf8;
  std::vector<std::size_t> starts;
  starts.reserve(word.size() + 1);
  for (char32_t c : word) {
    starts.push_back(utf8.size());
    append_utf8(utf8, c);
  }
  starts.push_back(utf8.size());
  std::string piece;
  std::size_t start = 0;
  while (start < word.size()) {
    std::size_t end = std::min(word.size(), start + longest_token_chars_);
    std::int64_t found = -1;
    while (start < end) {
      piece.clear();
      if (start > 0) piece = options_.continuing_prefix;
      piece.append(utf8, starts[start], starts[end] - starts[start]);
      // A piece of the model's vocabulary: an added token is no WordPiece piece (tokenizers
      // keeps them apart), so "zqzq" is not "zq" "##z" "##q" where "zq" is added single_word.
      auto it = index_.find(piece);
      if (it != index_.end() && static_cast<std::size_t>(it->second) < model_vocab_size_ &&
          vocab_[static_cast<std::size_t>(it->second)] == piece) {
        found = it->second;
        break;
      }
      --end;
    }
    if (found < 0) {
      // One unmatched piece makes the whole word unknown.
      out.ids.resize(mark);
      out.offsets.resize(mark);
      out.word_ids.resize(mark);
      out.ids.push_back(unk_id_);
      out.offsets.push_back(whole);
      out.word_ids.push_back(word_id);
      return;
    }
    out.ids.push_back(found);
    out.offsets.emplace_back(base + w.source[start], base + w.source[end - 1] + 1);
    out.word_ids.push_back(word_id);
    start = end;
  }
}

void BertTokenizer::plain_pieces(std::string_view text, std::size_t base, std::int64_t& word_id,
                                 Pieces& out, std::size_t keep) const {
  // A long text is read in segments cut after white space (which ends a word anyway), so that
  // the working copies of normalize() (about 60 bytes per byte of text) stay small however long
  // the text; past `keep` pieces only their number is kept. A 50 MB line took 3.5 GB before. (A
  // text without white space is read whole; a normalized added token with white space inside is
  // not found across a cut.)
  constexpr std::size_t kSegment = 1 << 16;
  for (std::string_view rest = text; !rest.empty();) {
    std::size_t cut = rest.size();
    if (rest.size() > kSegment) {
      cut = rest.find_first_of(" \t\n\r", kSegment);
      cut = cut == std::string_view::npos ? rest.size() : cut + 1;
    }
    const std::string_view segment = rest.substr(0, cut);
    const Normalized normalized = normalize(segment);
    // The normalized added tokens, in the normalised text.
    for (const auto& split : matchers_->normalized.split(normalized.text)) {
      if (split.id < 0) {
        for (const Word& word : split_words(normalized, split.begin, split.end))
          wordpiece(word, base, word_id++, out);
      } else {
        out.ids.push_back(split.id);
        out.offsets.emplace_back(base + normalized.source[split.begin],
                                 base + normalized.source[split.end - 1] + 1);
        out.word_ids.push_back(word_id++);
      }
    }
    if (out.ids.size() > keep) {
      out.dropped += out.ids.size() - keep;
      out.ids.resize(keep);
      out.offsets.resize(keep);
      out.word_ids.resize(keep);
    }
    base += code_points(segment);
    rest.remove_prefix(cut);
  }
}

BertTokenizer::Pieces BertTokenizer::pieces(std::string_view text, std::size_t keep) const {
  // Special tokens and added tokens that are not normalized, written in the text (e.g.
  // "[MASK]"), are kept whole; the text between them is normalised, and normalized added tokens
  // are found in it.
  Pieces out;
  std::size_t base = 0;  // code points before the current split
  std::int64_t word_id = 0;
  for (const auto& split : matchers_->raw.split(text)) {
    const std::string_view part = text.substr(split.begin, split.end - split.begin);
    const std::size_t length = code_points(part);
    if (split.id < 0) {
      plain_pieces(part, base, word_id, out, keep);
    } else if (out.ids.size() < keep) {
      out.ids.push_back(split.id);
      out.offsets.emplace_back(base, base + length);
      out.word_ids.push_back(word_id++);
    } else {
      ++out.dropped;
      ++word_id;
    }
    base += length;
  }
  return out;
}

std::vector<std::int64_t> BertTokenizer::token_ids(std::string_view text) const {
  return pieces(text).ids;
}

std::vector<std::string> BertTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (std::int64_t id : token_ids(text)) out.push_back(vocab_[static_cast<std::size_t>(id)]);
  return out;
}

Encoding BertTokenizer::encode(std::string_view text, std::optional<std::string_view> pair,
                               std::size_t max_length) const {
  if (max_length == 0) max_length = options_.model_max_length;
  const std::size_t specials = pair ? 3 : 2;
  MS_CHECK(max_length > specials, ErrorCode::kUsage,
           "max_length {} leaves no room for text next to the {} special tokens", max_length,
           specials);
  const std::size_t budget = max_length - specials;
  // No side keeps more than the budget; the counts (which decide the cut) are whole.
  Pieces a = pieces(text, budget);
  Pieces b;
  if (pair) b = pieces(*pair, budget);
  std::size_t n1 = a.count(), n2 = b.count();
  if (n1 + n2 > budget) {
    if (!pair) {
      n1 = budget;
    } else {
      // Longest-first: trim the longer side; if both are long, split the budget in half.
      const bool swapped = n1 > n2;
      if (swapped) std::swap(n1, n2);
      n2 = n1 > budget ? n1 : std::max(n1, budget - n1);
      if (n1 + n2 > budget) {
        n1 = budget / 2;
        n2 = n1 + budget % 2;
      }
      if (swapped) std::swap(n1, n2);
      n1 = std::min(n1, a.ids.size());
      n2 = std::min(n2, b.ids.size());
    }
  }
  Encoding out;
  out.ids.reserve(n1 + n2 + specials);
  auto special = [&out](std::int64_t id, std::int64_t type) {
    out.ids.push_back(id);
    out.type_ids.push_back(type);
    out.offsets.emplace_back(0, 0);
    out.word_ids.push_back(-1);
  };
  auto append = [&out](const Pieces& p, std::size_t n, std::int64_t type) {
    out.ids.insert(out.ids.end(), p.ids.begin(), p.ids.begin() + static_cast<long>(n));
    out.offsets.insert(out.offsets.end(), p.offsets.begin(),
                       p.offsets.begin() + static_cast<long>(n));
    out.word_ids.insert(out.word_ids.end(), p.word_ids.begin(),
                        p.word_ids.begin() + static_cast<long>(n));
    out.type_ids.resize(out.ids.size(), type);
  };
  special(cls_id_, 0);
  append(a, n1, 0);
  special(sep_id_, 0);
  if (pair) {
    append(b, n2, 1);
    special(sep_id_, 1);
  }
  return out;
}

}  // namespace ms::text
