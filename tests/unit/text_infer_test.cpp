// Unit tests of the WordPiece tokenizer (small hand-made vocabulary), Unicode helpers, and the
// torch-free inference front: inputs, shards, resume bookkeeping.

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>
#include <tuple>

#include "catch.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/data/csv.h"
#include "ms/data/loader.h"
#include "ms/infer/job.h"
#include "ms/infer/model_dir.h"
#include "ms/text/bert_tokenizer.h"
#include "ms/text/unicode.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using ms::text::BertTokenizer;

namespace {

BertTokenizer tiny_bert(bool lowercase = true) {
  std::vector<std::string> vocab = {"[PAD]", "[UNK]",  "[CLS]", "[SEP]", "[MASK]",   "un",
                                    "##aff", "##able", "hello", "world", ",",        "!",
                                    "cafe",  "北",     "京",    "i",     "istanbul", "Hello"};
  ms::text::BertTokenizerOptions o;
  o.lowercase = lowercase;
  return BertTokenizer(vocab, o);
}

std::vector<std::string> tokens(const BertTokenizer& t, const std::string& text) {
  return t.tokenize(text);
}

}  // namespace

TEST_CASE("WordPiece splits greedily, longest match first", "[text]") {
  const BertTokenizer t = tiny_bert();
  CHECK(tokens(t, "unaffable") == std::vector<std::string>{"un", "##aff", "##able"});
  CHECK(tokens(t, "unaffablex") == std::vector<std::string>{"[UNK]"});
  CHECK(tokens(t, "Hello, WORLD!") == std::vector<std::string>{"hello", ",", "world", "!"});
}

TEST_CASE("normalisation: accents, CJK, control characters, special tokens", "[text]") {
  const BertTokenizer t = tiny_bert();
  CHECK(tokens(t, "Café") == std::vector<std::string>{"cafe"});
  CHECK(tokens(t, "Cafe\xCC\x81") == std::vector<std::string>{"cafe"});  // combining acute
  CHECK(tokens(t, "北京") == std::vector<std::string>{"北", "京"});
  // NUL is dropped, so "hello\0world" is one word that WordPiece cannot cover.
  CHECK(tokens(t, std::string("hello\0world", 11)) == std::vector<std::string>{"[UNK]"});
  CHECK(tokens(t, "hello\xE2\x80\x8Bworld").size() == 1);  // U+200B is a format char: removed
  CHECK(tokens(t, "\xC4\xB0stanbul") == std::vector<std::string>{"istanbul"});  // U+0130
  CHECK(tokens(t, "hello [MASK] world") == std::vector<std::string>{"hello", "[MASK]", "world"});
  CHECK(tokens(t, "hello[MASK]") == std::vector<std::string>{"hello", "[MASK]"});
  // A code point this Unicode version has not assigned (U+1FA77, an emoji of Unicode 15; U+0378)
  // is kept, as Hugging Face's fast tokenizers keep it: [UNK], not dropped.
  CHECK(tokens(t, "hello \xF0\x9F\xA9\xB7") == std::vector<std::string>{"hello", "[UNK]"});
  CHECK(tokens(t, "hello\xCD\xB8world") == std::vector<std::string>{"[UNK]"});
  const BertTokenizer cased = tiny_bert(false);
  CHECK(tokens(cased, "Hello") == std::vector<std::string>{"Hello"});
}

TEST_CASE("encode adds specials, segment ids, offsets and truncates longest first", "[text]") {
  const BertTokenizer t = tiny_bert();
  const auto e = t.encode("hello world", std::string_view("un"));
  CHECK(e.ids == std::vector<std::int64_t>{2, 8, 9, 3, 5, 3});
  CHECK(e.type_ids == std::vector<std::int64_t>{0, 0, 0, 0, 1, 1});
  CHECK(e.offsets[1] == std::pair<std::size_t, std::size_t>{0, 5});
  CHECK(e.offsets[2] == std::pair<std::size_t, std::size_t>{6, 11});
  CHECK(e.word_ids == std::vector<std::int64_t>{-1, 0, 1, -1, 0, -1});
  const auto u = t.encode("unaffable");
  CHECK(u.word_ids == std::vector<std::int64_t>{-1, 0, 0, 0, -1});
  CHECK(u.offsets[2] == std::pair<std::size_t, std::size_t>{2, 5});
  const auto cut = t.encode("hello world hello world", std::string_view("un un"), 7);
  CHECK(cut.ids.size() == 7);
  CHECK(cut.ids == std::vector<std::int64_t>{2, 8, 9, 3, 5, 5, 3});
  CHECK_THROWS_AS(t.encode("x", std::nullopt, 2), ms::Error);
}

TEST_CASE("special tokens written many times in a text are found in linear time", "[text]") {
  // 200,000 of them: quadratic search (every other special token looked for to the end after
  // each match) made this take minutes; linear, it is a fraction of a second.
  std::string text;
  for (int i = 0; i < 200000; ++i) text += "[MASK]";
  const auto ids = tiny_bert().token_ids(text);
  REQUIRE(ids.size() == 200000);
  CHECK(ids.front() == 4);
  CHECK(ids.back() == 4);
}

TEST_CASE("a long text is read in segments: the same pieces, offsets and cuts", "[text]") {
  // Words of every kind (pieces, accents, CJK, punctuation, an unknown word, a special token),
  // past several 64 KiB segments; a segment is cut only after white space.
  const std::vector<std::string> words = {"unaffable", "Café,", "北京!",    "hello", "zzz",
                                          "[MASK]",    "world", "İstanbul", "\t"};
  std::string text;
  std::vector<std::string> expected;
  const BertTokenizer t = tiny_bert();
  for (int i = 0; i < 60000; ++i) {
    const std::string& w = words[static_cast<std::size_t>(i * 7) % words.size()];
    text += w + (i % 3 == 0 ? "  " : " ");
    for (const std::string& piece : tokens(t, w)) expected.push_back(piece);
  }
  REQUIRE(text.size() > 4 * 65536);
  CHECK(tokens(t, text) == expected);
  // Truncation keeps the first pieces, with their offsets into the whole text; a pair is cut by
  // the sides' whole lengths (the longer, the text, gives up one token more).
  const auto e = t.encode(text, std::string_view(text.substr(0, text.size() - 2)), 9);
  REQUIRE(e.ids.size() == 9);
  CHECK(e.ids[1] == 5);  // "un" of unaffable
  CHECK(e.type_ids == std::vector<std::int64_t>{0, 0, 0, 0, 0, 1, 1, 1, 1});
  const auto full = t.encode(text, std::nullopt, 1000000);
  REQUIRE(full.ids.size() == expected.size() + 2);
  CHECK(std::vector<std::int64_t>(full.ids.begin() + 1, full.ids.end() - 1) == t.token_ids(text));
  // Offsets past the first segment are counted in code points from the text's start: the last
  // "hello" points at "hello".
  const std::u32string code_points = ms::text::decode_utf8(text);
  std::size_t k = full.ids.size() - 2;
  while (full.ids[k] != 8) --k;
  REQUIRE(full.offsets[k].first > 4 * 65536 / 2);
  CHECK(code_points.substr(full.offsets[k].first, full.offsets[k].second - full.offsets[k].first) ==
        U"hello");
}

TEST_CASE("invalid UTF-8 is a usage error naming the offset", "[text]") {
  const BertTokenizer t = tiny_bert();
  try {
    t.encode("ok \xFF bad");
    FAIL("expected an error");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kUsage);
    CHECK(std::string(e.what()).find("offset 3") != std::string::npos);
  }
  CHECK_FALSE(ms::text::is_valid_utf8("\xC0\xAF"));      // overlong
  CHECK_FALSE(ms::text::is_valid_utf8("\xED\xA0\x80"));  // surrogate
  CHECK(ms::text::is_valid_utf8("\xF0\x9F\x98\x80"));    // emoji
}

TEST_CASE("Unicode classes", "[text]") {
  using namespace ms::text;
  CHECK(is_punctuation(U'!'));
  CHECK(is_punctuation(U'$'));       // ASCII symbols count as punctuation for BERT
  CHECK(is_punctuation(U'\u3002'));  // ideographic full stop
  CHECK_FALSE(is_punctuation(U'a'));
  CHECK(is_whitespace(U'\u3000'));
  CHECK(is_control(U'\u200b'));
  CHECK_FALSE(is_control(U'\t'));
  CHECK(is_cjk(U'\u4e2d'));
  CHECK_FALSE(is_control(U'\U0001FA77'));  // unassigned in Unicode 14: not control
  CHECK(is_control(U'\uE000'));            // private use: dropped, as Hugging Face does
  // Hugging Face's (Rust) ranges leave out U+2B820-2B91F of CJK Extension E.
  CHECK_FALSE(is_cjk(U'\U0002B820'));
  CHECK(is_cjk(U'\U0002B920'));
  CHECK_FALSE(is_cjk(U'\u3042'));  // hiragana is not split
  std::u32string out;
  append_nfd(out, U'\uac00');  // Hangul syllable GA -> two jamo
  CHECK(out == U"\u1100\u1161");
}

TEST_CASE("vocabulary files: missing vocab.txt and special tokens", "[text]") {
  TempDir dir;
  CHECK_THROWS_AS(BertTokenizer::from_dir(dir.path), ms::Error);
  ms::write_file_atomic(dir.path / "vocab.txt", "[PAD]\n[CLS]\n[SEP]\nhello\n");
  try {
    BertTokenizer::from_dir(dir.path);
    FAIL("expected an error");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kConfig);
    CHECK(std::string(e.what()).find("[UNK]") != std::string::npos);
  }
  ms::write_file_atomic(dir.path / "tokenizer_config.json", R"({"unk_token": "hello"})");
  CHECK(BertTokenizer::from_dir(dir.path).tokenize("xyz") == std::vector<std::string>{"hello"});
}

TEST_CASE("a WordPiece tokenizer.json without vocab.txt, as transformers 5 saves BERT's",
          "[text]") {
  TempDir dir;
  // tokenizer.json's layout as tokenizers 0.23 writes it (ids in any order in model.vocab).
  const std::string model =
      R"("model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
         "max_input_chars_per_word": 100,
         "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "un": 5, "[MASK]": 4,
                   "##aff": 6, "##able": 7, "cafe": 8, "Cafe": 9}})";
  const std::string cased =
      R"("normalizer": {"type": "BertNormalizer", "clean_text": true,
         "handle_chinese_chars": true, "strip_accents": false, "lowercase": false})";
  const std::string bert_pre = R"("pre_tokenizer": {"type": "BertPreTokenizer"})";
  const std::string bert_post =
      R"("post_processor": {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                  {"Sequence": {"id": "B", "type_id": 1}},
                  {"SpecialToken": {"id": "[SEP]", "type_id": 1}}]})";
  auto write = [&](const std::string& normalizer, const std::string& pre, const std::string& post,
                   const std::string& body = "") {
    ms::write_file_atomic(
        dir.path / "tokenizer.json",
        "{" + (body.empty() ? model : body) + "," + normalizer + "," + pre + "," + post + "}");
  };
  auto tokenizer_class = [&](const std::string& name, const std::string& more = "") {
    ms::write_file_atomic(dir.path / "tokenizer_config.json",
                          R"({"tokenizer_class": ")" + name + "\"" + more + "}");
  };
  // transformers 5's BertTokenizer (or no tokenizer_config.json) takes the vocabulary alone and
  // normalises as tokenizer_config.json says (lower-casing by default), whatever tokenizer.json's
  // normalizer says.
  write(cased, bert_pre, bert_post);
  CHECK(BertTokenizer::in_dir(dir.path));
  CHECK(BertTokenizer::from_dir(dir.path).vocab_size() == 10);
  CHECK(BertTokenizer::from_dir(dir.path).encode("Unaffable CAFÉ").ids ==
        std::vector<std::int64_t>{2, 5, 6, 7, 8, 3});
  tokenizer_class("BertTokenizer", R"(, "do_lower_case": false)");
  CHECK(BertTokenizer::from_dir(dir.path).tokenize("Cafe") == std::vector<std::string>{"Cafe"});
  // So a normalizer of another kind does not matter there.
  write(R"("normalizer": {"type": "Sequence", "normalizers": []})", R"("pre_tokenizer": null)",
        R"("post_processor": null)");
  CHECK(BertTokenizer::from_dir(dir.path).tokenize("Cafe") == std::vector<std::string>{"Cafe"});
  // TokenizersBackend (or PreTrainedTokenizerFast) runs tokenizer.json as it stands: its
  // normalizer rules, and tokenizer_config.json's do_lower_case is ignored.
  write(cased, bert_pre, bert_post);
  tokenizer_class("TokenizersBackend", R"(, "do_lower_case": true)");
  CHECK(BertTokenizer::from_dir(dir.path).tokenize("Cafe") == std::vector<std::string>{"Cafe"});
  // Anything BERT's WordPiece would not do is refused by name there, not tokenised differently.
  const std::string lone_sequence =
      R"("post_processor": {"type": "TemplateProcessing",
         "single": [{"Sequence": {"id": "A", "type_id": 0}}], "pair": []})";
  for (const auto& [normalizer, pre, post, body, fragment] :
       std::vector<std::tuple<std::string, std::string, std::string, std::string, std::string>>{
           {R"("normalizer": {"type": "Sequence", "normalizers": []})", bert_pre, bert_post, "",
            "the normalizer Sequence is not BERT's"},
           {cased, R"("pre_tokenizer": {"type": "Whitespace"})", bert_post, "",
            "the pre-tokenizer Whitespace is not BERT's"},
           {cased, bert_pre, R"("post_processor": null)", "", "the post-processor null does not"},
           {cased, bert_pre, lone_sequence, "", "does not put a text between"},
           {cased, bert_pre, bert_post,
            R"("model": {"type": "WordPiece", "vocab": {"[PAD]": 0, "[UNK]": 2}})",
            "its ids must be 0 to 1, each once"},
           {cased, bert_pre, bert_post, R"("model": {"type": "BPE", "vocab": {}, "merges": []})",
            "holds a BPE model, not WordPiece"},
       }) {
    write(normalizer, pre, post, body);
    CAPTURE(fragment);
    try {
      BertTokenizer::from_dir(dir.path);
      FAIL("expected an error");
    } catch (const ms::Error& e) {
      CHECK(std::string(e.what()).find(fragment) != std::string::npos);
      CHECK(std::string(e.what()).find("tokenizer.json") != std::string::npos);
    }
  }
  CHECK_FALSE(BertTokenizer::in_dir(dir.path));  // the BPE one
}

TEST_CASE("added tokens are matched whole, normalised ones in the lower-cased text", "[text]") {
  TempDir dir;
  ms::write_file_atomic(dir.path / "vocab.txt",
                        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nx\nnew\n##word\n");
  // transformers 4.34+: tokenizer_config.json's added_tokens_decoder (ids past vocab.txt).
  ms::write_file_atomic(dir.path / "tokenizer_config.json", R"({"added_tokens_decoder": {
      "8": {"content": "[E1]", "special": true, "normalized": false},
      "9": {"content": "NewWord", "special": false, "normalized": true}}})");
  BertTokenizer t = BertTokenizer::from_dir(dir.path);
  CHECK(t.vocab_size() == 10);
  CHECK(t.encode("x [E1] newword [e1]").ids ==
        std::vector<std::int64_t>{2, 5, 8, 9, 1, 1, 1, 3});  // "[e1]" is "[", "e1", "]": unknown
  // Older folders: added_tokens.json, matched as written.
  fs::remove(dir.path / "tokenizer_config.json");
  ms::write_file_atomic(dir.path / "added_tokens.json", R"({"[E1]": 8})");
  CHECK(BertTokenizer::from_dir(dir.path).encode("[E1]x").ids ==
        std::vector<std::int64_t>{2, 8, 5, 3});
  // An id that leaves a gap after the vocabulary is refused, naming the token.
  ms::write_file_atomic(dir.path / "added_tokens.json", R"({"[E1]": 12})");
  try {
    BertTokenizer::from_dir(dir.path);
    FAIL("expected an error");
  } catch (const ms::Error& e) {
    CHECK(std::string(e.what()).find("'[E1]' has the id 12") != std::string::npos);
  }
}

TEST_CASE("normalised added tokens are found normalised as the text is; options as tokenizers'",
          "[text]") {
  TempDir dir;
  ms::write_file_atomic(dir.path / "vocab.txt",
                        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\nx\ny\n##q\nz\n");
  ms::write_file_atomic(dir.path / "tokenizer_config.json", R"({"added_tokens_decoder": {
      "11": {"content": "Café", "special": false},
      "12": {"content": "x y", "special": false},
      "13": {"content": "zq", "special": false, "single_word": true},
      "14": {"content": "<ent>", "special": false, "lstrip": true, "rstrip": true},
      "15": {"content": "Ünï", "special": false, "normalized": false}}})");
  const BertTokenizer t = BertTokenizer::from_dir(dir.path);
  using Ids = std::vector<std::int64_t>;
  // Lower-cased and accent-stripped as the text is: "CAFÉ" and "café" are "cafe" (transformers:
  // the added token's id); a no-break space is a space after the clean-up.
  CHECK(t.encode("CAFÉ").ids == Ids{2, 11, 3});
  CHECK(t.encode("a café").ids == Ids{2, 5, 11, 3});
  CHECK(t.encode("x\xC2\xA0y").ids == Ids{2, 12, 3});
  // Matched as written where not normalised.
  CHECK(t.encode("Ünï").ids == Ids{2, 15, 3});
  CHECK(t.encode("ünï").ids == Ids{2, 1, 3});
  // single_word: "zq" not inside a word ("azqb" is one unknown word), but alone it is.
  CHECK(t.encode("azqb").ids == Ids{2, 1, 3});
  CHECK(t.encode("a zq b").ids == Ids{2, 5, 13, 6, 3});
  CHECK(t.encode("zq").ids == Ids{2, 13, 3});
  CHECK(t.encode("zqq").ids == Ids{2, 10, 9, 9, 3});  // an added token is no WordPiece piece
  // lstrip / rstrip: the white space is the token's (its offsets include it).
  const ms::text::Encoding e = t.encode("a <ent> b");
  CHECK(e.ids == Ids{2, 5, 14, 6, 3});
  CHECK(e.offsets[2] == std::pair<std::size_t, std::size_t>{1, 8});
}

TEST_CASE("a token listed twice takes its last line's id, as Hugging Face's loaders do", "[text]") {
  TempDir dir;
  // The error names the file it read.
  ms::write_file_atomic(dir.path / "vocab.txt", "[PAD]\n[CLS]\n[SEP]\nthe\n");
  try {
    BertTokenizer::from_dir(dir.path);
    FAIL("expected an error");
  } catch (const ms::Error& e) {
    CHECK(std::string(e.what()).find("vocab.txt") != std::string::npos);
  }
  ms::write_file_atomic(dir.path / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncat\nthe\n");
  const BertTokenizer t = BertTokenizer::from_dir(dir.path);
  CHECK(t.token_to_id("the") == 6);  // transformers 4.49 and 5.25: [CLS] the cat [SEP] = 2 6 5 3
  CHECK(t.encode("the cat").ids == std::vector<std::int64_t>{2, 6, 5, 3});
}

TEST_CASE("inputs: txt, jsonl, csv; duplicate ids rejected", "[infer]") {
  TempDir dir;
  ms::write_file_atomic(dir.path / "a.txt", "one\ntwo\r\n\nfour");
  ms::infer::InputSpec spec;
  spec.file = dir.path / "a.txt";
  auto in = ms::infer::read_inputs(spec);
  REQUIRE(in.size() == 4);
  CHECK(in[1].text == "two");
  CHECK(in[3].id == 3);
  ms::write_file_atomic(dir.path / "b.jsonl",
                        "{\"id\":\"x\",\"sentence1\":\"a\",\"sentence2\":\"b\"}\n\"plain\"\n[1]\n");
  spec.file = dir.path / "b.jsonl";
  in = ms::infer::read_inputs(spec);
  REQUIRE(in.size() == 3);
  CHECK(in[0].id == "x");
  CHECK(in[0].text_pair.value_or("") == "b");
  CHECK(in[1].text == "plain");
  CHECK_FALSE(in[2].invalid.empty());
  ms::write_file_atomic(dir.path / "c.csv", "text,id\n\"a, \"\"quoted\"\"\",7\nplain,8\n");
  spec.file = dir.path / "c.csv";
  in = ms::infer::read_inputs(spec);
  REQUIRE(in.size() == 2);
  CHECK(in[0].text == "a, \"quoted\"");
  CHECK(in[0].id == "7");
  CHECK(in[1].text == "plain");
  // A ragged row is a malformed file (later rows cannot be trusted), short ones too (unlike a
  // dataset's, which pandas fills): an error naming file and line.
  ms::write_file_atomic(dir.path / "r.csv", "text,id\na,1\nshort\n");
  spec.file = dir.path / "r.csv";
  try {
    ms::infer::read_inputs(spec);
    FAIL("expected an error");
  } catch (const ms::Error& e) {
    CHECK(std::string(e.what()).find("r.csv") != std::string::npos);
    CHECK(std::string(e.what()).find("3") != std::string::npos);
  }
  ms::write_file_atomic(dir.path / "t.tsv", "id\ttext\nx\ta, b\n");
  spec.file = dir.path / "t.tsv";
  in = ms::infer::read_inputs(spec);
  REQUIRE(in.size() == 1);
  CHECK(in[0].text == "a, b");
  CHECK(in[0].id == "x");
  ms::infer::InputSpec ds;
  ds.dataset = "csv:" + (dir.path / "c.csv").string();
  in = ms::infer::read_inputs(ds);
  REQUIRE(in.size() == 2);
  CHECK(in[1].text == "plain");
  CHECK(in[1].id == 8);  // typed by the dataset loader
  ms::write_file_atomic(dir.path / "d.jsonl",
                        "{\"id\":1,\"text\":\"a\"}\n{\"id\":1,\"text\":\"b\"}\n");
  spec.file = dir.path / "d.jsonl";
  CHECK_THROWS_AS(ms::infer::read_inputs(spec), ms::Error);
  ms::infer::InputSpec none;
  CHECK_THROWS_AS(ms::infer::read_inputs(none), ms::Error);
}

TEST_CASE("inputs: the model's named fields are read before the default names", "[infer]") {
  TempDir dir;
  ms::infer::InputSpec spec;
  spec.text_field = "review";
  spec.pair_field = "answer";
  spec.fields_source = "configuration.json";
  // A table with both the model's column and a default one reads the model's.
  ms::write_file_atomic(dir.path / "both.csv",
                        "text,review,text_pair,answer\nwrong,right,wrong2,right2\n");
  spec.file = dir.path / "both.csv";
  auto in = ms::infer::read_inputs(spec);
  REQUIRE(in.size() == 1);
  CHECK(in[0].text == "right");
  CHECK(in[0].text_pair.value_or("") == "right2");
  ms::infer::InputSpec ds = spec;
  ds.file.reset();
  ds.dataset = "csv:" + (dir.path / "both.csv").string();
  in = ms::infer::read_inputs(ds);
  REQUIRE(in.size() == 1);
  CHECK(in[0].text == "right");
  CHECK(in[0].text_pair.value_or("") == "right2");
  // A column only the model names (no default name) is found.
  ms::write_file_atomic(dir.path / "only.csv", "review\nfine\n");
  spec.file = dir.path / "only.csv";
  in = ms::infer::read_inputs(spec);
  REQUIRE(in.size() == 1);
  CHECK(in[0].text == "fine");
  // JSON records: the named field wins; a record without it falls back to the default names.
  ms::write_file_atomic(dir.path / "r.jsonl",
                        "{\"text\":\"wrong\",\"review\":\"right\"}\n{\"text\":\"plain\"}\n"
                        "{\"other\":1}\n");
  spec.file = dir.path / "r.jsonl";
  in = ms::infer::read_inputs(spec);
  REQUIRE(in.size() == 3);
  CHECK(in[0].text == "right");
  CHECK(in[1].text == "plain");
  // The error for a record with no text field lists the model's name first.
  CHECK(in[2].invalid.find("expected one of review, text") != std::string::npos);
  // A table with neither: the hint names the model's key and where it is set.
  ms::write_file_atomic(dir.path / "none.csv", "body\nx\n");
  spec.file = dir.path / "none.csv";
  try {
    ms::infer::read_inputs(spec);
    FAIL("expected an error");
  } catch (const ms::Error& e) {
    CHECK(e.hint().find("preprocessor.first_sequence in configuration.json") != std::string::npos);
  }
}

TEST_CASE("shards and task names", "[infer]") {
  CHECK(ms::data::parse_shard("1/4") == std::pair<std::size_t, std::size_t>{1, 4});
  for (const char* bad : {"4/4", "-1/2", "1/0", "a/b", "1", "1/2/3", "1/"}) {
    CHECK_THROWS_AS(ms::data::parse_shard(bad), ms::Error);
  }
  CHECK(ms::infer::canonical_task("Sentence_Similarity") == "sentence-similarity");
  try {
    ms::infer::canonical_task("fill-mast");
    FAIL("expected an error");
  } catch (const ms::Error& e) {
    CHECK(std::string(e.hint()).find("fill-mask") != std::string::npos);
  }
}

TEST_CASE("resume reads finished ids and measures a torn last line", "[infer]") {
  TempDir dir;
  const fs::path out = dir.path / "out.jsonl";
  const std::string written = "{\"id\":0,\"x\":1}\n{\"id\":\"b\"}\n{\"id\":2,\"x\"";
  ms::write_file_atomic(out, written);
  const auto done = ms::infer::read_done_ids(out);
  REQUIRE(done.ids.size() == 2);
  CHECK(done.ids[1] == "b");
  CHECK(done.complete_bytes == 26);
  CHECK(done.torn_bytes == 11);
  CHECK(ms::read_file(out) == written);  // run_job cuts it once the file is accepted
  ms::write_file_atomic(out, "not json\n");
  CHECK_THROWS_AS(ms::infer::read_done_ids(out), ms::Error);
  // An id twice: two jobs wrote the file.
  ms::write_file_atomic(out, "{\"id\":0}\n{\"id\":\"0\"}\n{\"id\":0}\n");
  try {
    ms::infer::read_done_ids(out);
    FAIL("a repeated id was accepted");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ms::ErrorCode::kIntegrity);
    CHECK(std::string(e.what()).find("id 0 twice (lines 1 and 3)") != std::string::npos);
  }
}

namespace {

// A pipeline without a model: "runs" an input by echoing its text's length, fails inputs whose
// text is "bad", and lets a test hold the first batch until the next window is being costed.
class EchoPipeline final : public ms::infer::Pipeline {
 public:
  const std::string& task() const override { return task_; }
  std::string device() const override { return "cpu"; }
  std::size_t cost(const ms::infer::PipelineInput& in) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    costed_.insert(in.id.get<int>());
    changed_.notify_all();
    return in.text.size();
  }
  std::vector<ms::infer::PipelineResult> run(
      const std::vector<const ms::infer::PipelineInput*>& batch) override {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (hold_until_costed_ >= 0) {
        // A generous bound, so that a missing overlap fails the test instead of hanging it.
        const int wanted = hold_until_costed_;
        hold_until_costed_ = -1;
        overlapped_ = changed_.wait_for(lock, std::chrono::seconds(60),
                                        [&] { return costed_.count(wanted) != 0; });
      }
    }
    if (model_step_ > std::chrono::microseconds(0)) {
      // A "model" that takes at least model_step_ of the host's time.
      phases_.time(ms::infer::PhaseTotals::kModel, [this] {
        const auto start = std::chrono::steady_clock::now();
        while (std::chrono::steady_clock::now() - start < model_step_) {
        }
      });
    }
    std::vector<ms::infer::PipelineResult> out(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i]->text == "bad") {
        out[i].error = ms::Error(ms::ErrorCode::kUsage, "bad input");
      } else {
        out[i].output = {{"length", batch[i]->text.size()}};
      }
    }
    return out;
  }
  ms::infer::RunPhases run_phases() const override { return phases_.totals(); }
  int hold_until_costed_ = -1;
  bool overlapped_ = false;
  std::chrono::microseconds model_step_{0};
  ms::infer::PhaseTotals phases_;

 private:
  std::string task_ = "echo";
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  mutable std::set<int> costed_;
};

std::vector<ms::infer::PipelineInput> echo_inputs(std::size_t n) {
  std::vector<ms::infer::PipelineInput> inputs(n);
  for (std::size_t i = 0; i < n; ++i) {
    inputs[i].id = static_cast<int>(i);
    inputs[i].text = std::string(1 + (i * 7) % 13, 'x');
  }
  return inputs;
}

std::vector<ms::Json> read_lines(const fs::path& file) {
  std::vector<ms::Json> lines;
  for (const auto& line : ms::data::parse_json_lines(ms::read_file(file)))
    lines.push_back(line.value);
  return lines;
}

}  // namespace

TEST_CASE("run_job: windows overlap, lines stay in input order", "[infer]") {
  TempDir tmp;
  // Batch size 1: a window is 64 inputs, so 200 inputs make 4 windows.
  const auto inputs = echo_inputs(200);
  EchoPipeline pipeline;
  // The first batch (window 0) runs only once input 64 (window 1) has been costed: the next
  // window is prepared while this one runs.
  pipeline.hold_until_costed_ = 64;
  ms::infer::JobOptions options;
  options.batch_size = 1;
  options.output = tmp.path / "out.jsonl";
  const auto stats = ms::infer::run_job(pipeline, inputs, options);
  CHECK(pipeline.overlapped_);
  CHECK(stats.done == 200);
  CHECK(stats.errors == 0);
  const auto lines = read_lines(*options.output);
  REQUIRE(lines.size() == 200);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    CHECK(lines[i]["id"] == static_cast<int>(i));
    CHECK(lines[i]["length"] == inputs[i].text.size());
  }
}

TEST_CASE("PhaseTotals adds each step's time to its phase, a throwing step's too", "[infer]") {
  ms::infer::PhaseTotals totals;
  auto wait = [](std::chrono::microseconds at_least) {
    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < at_least) {
    }
  };
  CHECK(totals.time(ms::infer::PhaseTotals::kInputs, [&] {
    wait(std::chrono::microseconds(200));
    return 7;
  }) == 7);
  CHECK_THROWS(totals.time(ms::infer::PhaseTotals::kDevice, [&] {
    wait(std::chrono::microseconds(300));
    throw std::runtime_error("the copy failed");
  }));
  const ms::infer::RunPhases phases = totals.totals();
  CHECK(phases.inputs >= 200e-6);
  CHECK(phases.device >= 300e-6);
  CHECK(phases.model == 0);
}

TEST_CASE("run_job: the batches stage's parts add up to at most the workers' time", "[infer]") {
  TempDir tmp;
  const auto inputs = echo_inputs(40);
  EchoPipeline pipeline;
  pipeline.model_step_ = std::chrono::microseconds(500);
  ms::infer::JobOptions options;
  options.batch_size = 4;
  options.output = tmp.path / "out.jsonl";
  const auto stats = ms::infer::run_job(pipeline, inputs, options);
  CHECK(stats.done == 40);
  // 10 batches, each at least 500 us in the pipeline's "model" phase.
  const ms::infer::RunPhases phases = pipeline.run_phases();
  CHECK(phases.model >= 10 * 500e-6);
  CHECK(stats.pipeline_seconds >= phases.model);
  CHECK(stats.format_seconds > 0);
  // One worker (the pipeline is not concurrent): its time in the pipeline and formatting lies
  // inside the stage's wall time.
  CHECK(stats.worker_seconds == Approx(stats.run_seconds));
  CHECK(stats.worker_seconds + 1e-9 >= stats.pipeline_seconds + stats.format_seconds);
}

TEST_CASE("run_job: --fail-fast writes the lines before the first error, none after", "[infer]") {
  TempDir tmp;
  auto inputs = echo_inputs(300);
  inputs[150].text = "bad";  // window 2 (inputs 128-191)
  EchoPipeline pipeline;
  ms::infer::JobOptions options;
  options.batch_size = 1;
  options.workers = 3;
  options.output = tmp.path / "out.jsonl";
  options.fail_fast = true;
  std::string message;
  try {
    ms::infer::run_job(pipeline, inputs, options);
  } catch (const ms::Error& e) {
    message = e.what();
    for (const auto& frame : e.context()) message += "; " + frame;
  }
  CHECK(message.find("bad input") != std::string::npos);
  CHECK(message.find("--fail-fast") != std::string::npos);
  const auto lines = read_lines(*options.output);
  REQUIRE(lines.size() == 150);
  CHECK(lines.back()["id"] == 149);

  // Without --fail-fast the bad input is an error line and the job goes on.
  options.fail_fast = false;
  options.output = tmp.path / "all.jsonl";
  const auto stats = ms::infer::run_job(pipeline, inputs, options);
  CHECK(stats.errors == 1);
  const auto all = read_lines(*options.output);
  REQUIRE(all.size() == 300);
  CHECK(all[150].contains("error"));
  CHECK(all[299]["id"] == 299);
}
