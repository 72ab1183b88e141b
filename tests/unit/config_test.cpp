// Unit tests of Config: JSON/YAML parsing with locations, dotted access, overrides, merge, strict
// mode.
#include "ms/config/config.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>
#include <vector>

#include "catch.h"
#include "ms/config/json_file.h"

using ms::Config;
using ms::ErrorCode;
using ms::Json;

namespace {

// Runs `body`, expecting an ms::Error with `code` whose message contains every fragment.
template <typename Body>
void expect_error(Body&& body, ErrorCode code, std::initializer_list<const char*> fragments) {
  try {
    body();
    FAIL("expected an ms::Error");
  } catch (const ms::Error& e) {
    INFO("message: " << e.what());
    CHECK(e.code() == code);
    for (const char* fragment : fragments)
      CHECK(std::string(e.what()).find(fragment) != std::string::npos);
  }
}

const char* kModelConfig = R"({
  "framework": "pytorch",
  "task": "text-classification",
  "model": {"type": "bert", "num_labels": 2},
  "train": {
    "max_epochs": 1,
    "optimizer": {"type": "AdamW", "lr": 2e-5},
    "hooks": [{"type": "CheckpointHook", "interval": 1}, {"type": "EvaluationHook", "interval": 1}]
  }
})";

}  // namespace

TEST_CASE("JSON configs give typed access by dotted key", "[config]") {
  Config c = Config::parse(kModelConfig, "json", "model/configuration.json");
  CHECK(c.get<std::string>("task") == "text-classification");
  CHECK(c.get<int>("model.num_labels") == 2);
  CHECK(c.get<double>("train.optimizer.lr") == Approx(2e-5));
  CHECK(c.get<int>("train.hooks.0.interval") == 1);
  CHECK(c.get<int>("train.hooks.EvaluationHook.interval") == 1);
  CHECK(c.get_or<int>("train.missing", 7) == 7);
  CHECK(c.has("model.type"));
  CHECK_FALSE(c.has("model.backbone"));
}

TEST_CASE("missing keys and wrong types name the file and the full key path", "[config]") {
  Config c = Config::parse(kModelConfig, "json", "model/configuration.json");
  expect_error([&] { c.at("train.optimzer.lr"); }, ErrorCode::kConfig,
               {"model/configuration.json", "missing key 'train.optimzer.lr'"});
  try {
    c.at("train.optimzer.lr");
  } catch (const ms::Error& e) {
    CHECK(e.hint().find("optimizer") != std::string::npos);  // did you mean
  }
  expect_error([&] { c.get<int>("task"); }, ErrorCode::kConfig,
               {"model/configuration.json", "key 'task' must be an integer, got string"});
  expect_error([&] { c.get<std::string>("train.max_epochs"); }, ErrorCode::kConfig,
               {"'train.max_epochs' must be a string"});
  expect_error([&] { c.at("train.hooks.LoggerHook"); }, ErrorCode::kConfig,
               {"missing key 'train.hooks.LoggerHook'"});
}

TEST_CASE("a null where a typed value is due is named once ('got null')", "[config]") {
  Config c = Config::parse(kModelConfig, "json", "model/configuration.json");
  c.set("max_new_tokens", Json());  // --set max_new_tokens=null
  try {
    c.get<int>("max_new_tokens");
    FAIL("no error");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kConfig);
    const std::string what = e.what();
    CHECK(what.find("key 'max_new_tokens' must be an integer, got null") != std::string::npos);
    CHECK(what.find("null null") == std::string::npos);
  }
}

TEST_CASE("integers out of the requested type's range are errors, not wrapped values", "[config]") {
  Config c = Config::parse(R"({"neg": -5, "big": 5000000000, "huge": 18446744073709551615})",
                           "json", "c.json");
  expect_error([&] { c.get<std::size_t>("neg"); }, ErrorCode::kConfig,
               {"c.json", "key 'neg' must be a non-negative integer"});
  expect_error([&] { c.get_or<std::size_t>("neg", 3); }, ErrorCode::kConfig, {"'neg'"});
  expect_error([&] { c.get<int>("big"); }, ErrorCode::kConfig,
               {"key 'big' must be an integer in range"});
  expect_error([&] { c.get<std::int64_t>("huge"); }, ErrorCode::kConfig, {"'huge'"});
  CHECK(c.get<std::int64_t>("neg") == -5);
  CHECK(c.get<std::int64_t>("big") == 5000000000);
  CHECK(c.get<std::uint64_t>("huge") == 18446744073709551615ull);
}

TEST_CASE("a number past a float's range is an error, not infinity; a format is the caller's",
          "[config]") {
  Config c = Config::parse(R"({"far": 1e300, "near": 3.5})", "json", "c.json");
  expect_error([&] { c.get<float>("far"); }, ErrorCode::kConfig,
               {"key 'far' must be a number in range"});
  CHECK(c.get<double>("far") == 1e300);
  CHECK(c.get<float>("near") == 3.5f);
  expect_error([&] { Config::parse("{}", "xml", "c.xml"); }, ErrorCode::kUsage,
               {"unknown configuration format 'xml'", "json"});
}

TEST_CASE("malformed JSON reports line and column", "[config]") {
  const char* bad = "{\n  \"a\": 1,\n  \"b\": [1, 2,,]\n}\n";
  expect_error([&] { Config::parse(bad, "json", "bad.json"); }, ErrorCode::kConfig,
               {"bad.json:3:", "invalid JSON"});
  expect_error([&] { Config::parse("[1, 2]", "json", "list.json"); }, ErrorCode::kConfig,
               {"list.json", "top level must be an object"});
  expect_error([&] { Config::parse("", "json", "empty.json"); }, ErrorCode::kConfig,
               {"empty.json:1:"});
  // Found by fuzz_config_json: a number beyond a double was an uncaught nlohmann exception.
  expect_error([&] { Config::parse("{\"a\": 1,\n \"b\": 11e999}", "json", "big.json"); },
               ErrorCode::kConfig, {"big.json:2:7", "11e999", "beyond the range"});
}

TEST_CASE("the JSON parser tells text that ends inside a value, and may refuse repeated keys",
          "[config]") {
  const auto parse = [](std::string_view text, bool refuse_repeated = false) {
    ms::Json out;
    ms::JsonParseError e;
    CHECK_FALSE(ms::try_parse_json(text, out, e, refuse_repeated));
    return e;
  };
  // Ends inside: a longer text might complete it (a look at a file's start reads on).
  CHECK(parse("[{").ends_early);
  CHECK(parse("{\"a\": 1,\n \"b\": \"te").ends_early);
  CHECK(parse("").ends_early);
  // Wrong where it stops: no longer text mends it.
  CHECK_FALSE(parse("[}").ends_early);
  CHECK_FALSE(parse("{\"a\": 1}}").ends_early);
  CHECK_FALSE(parse("{\"a\": x").ends_early);
  // A repeated key: the last value wins unless refused (then an error naming it).
  ms::Json out;
  ms::JsonParseError e;
  REQUIRE(ms::try_parse_json("{\"a\": 1, \"a\": 2}", out, e));
  CHECK(out["a"] == 2);
  const ms::JsonParseError twice = parse("\n {\"a\": 1, \"a\": 2}", true);
  CHECK(twice.reason == "key \"a\" appears twice in one object");
  CHECK(twice.line == 2);
  CHECK_FALSE(twice.ends_early);
}

TEST_CASE("the JSON parser refuses a NUL byte, which nlohmann read as the end of the text",
          "[config]") {
  // {"a": 1}<NUL>xyz{{{ parsed as {"a": 1}: the hub's JSON routes took such a body for its start.
  for (const std::string_view text :
       {std::string_view("{\"a\": 1}\0xyz{{{", 15), std::string_view("{\"a\": 1}\0", 9),
        std::string_view("{\"a\": \"b\0c\"}", 12)}) {
    ms::Json out;
    ms::JsonParseError e;
    CHECK_FALSE(ms::try_parse_json(text, out, e));
    CHECK(e.reason.find("NUL") != std::string::npos);
    CHECK(e.line == 1);
    CHECK(e.column == text.find('\0') + 1);
    CHECK_FALSE(e.ends_early);
  }
  // An escaped NUL is a character of a string, as JSON has it.
  ms::Json escaped;
  ms::JsonParseError e;
  REQUIRE(ms::try_parse_json(R"({"a": "b\u0000c"})", escaped, e));
  CHECK(escaped["a"].get<std::string>() == std::string("b\0c", 3));
}

TEST_CASE("JSON beyond the nesting and number limits is a config error with a location",
          "[config]") {
  // A SIGSEGV at 70,000 levels before (recursive dump / copy of the parsed tree).
  const std::string deep =
      "{\n \"a\": " + std::string(100000, '[') + std::string(100000, ']') + "\n}";
  expect_error([&] { Config::parse(deep, "json", "deep.json"); }, ErrorCode::kConfig,
               {"deep.json:2:1006: JSON nested deeper than 1000 levels"});
  expect_error([&] { Config::parse("{\"lr\": 1e999}", "json", "c.json"); }, ErrorCode::kConfig,
               {"c.json:1:8: number 1e999 is beyond the range of a 64-bit float"});
  expect_error([&] { ms::parse_json("[1,\n 2,,]", "p.json", ErrorCode::kIntegrity); },
               ErrorCode::kIntegrity, {"p.json:2:4: invalid JSON"});
  CHECK(ms::parse_json(std::string(1000, '[') + std::string(1000, ']'), "ok.json").is_array());

  const auto dir =
      std::filesystem::temp_directory_path() / ("ms-config-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << "{\"vocab_size\": " << std::string(400, '9') << "}";
  expect_error([&] { ms::read_json_file(dir / "config.json"); }, ErrorCode::kConfig,
               {"config.json:1:16: number 9999", "beyond the range"});
  std::ofstream(dir / "config.json") << "{\"a\": [1,]}";
  expect_error([&] { ms::read_json_file(dir / "config.json"); }, ErrorCode::kConfig,
               {"config.json:1:10: not valid JSON"});
  std::filesystem::remove_all(dir);

  Config c = Config::parse("{}", "json", "c.json");
  expect_error([&] { c.apply_override("x=1e999"); }, ErrorCode::kUsage, {"not valid JSON"});
  expect_error([&] { c.apply_override("x=" + std::string(2000, '[')); }, ErrorCode::kUsage,
               {"not valid JSON", "nested deeper"});
  // The key's levels count too: 1001 parts were written out as a configuration ms then
  // refused to read (20000 crashed the YAML writer of `ms config show`).
  std::string deep_key = "k";
  for (int i = 0; i < 1000; ++i) deep_key += ".k";
  expect_error([&] { c.apply_override(deep_key + "=1"); }, ErrorCode::kUsage,
               {"1001 levels deep, over the limit of 1000"});
  expect_error([&] { c.apply_override(deep_key.substr(4) + "=[[1]]"); }, ErrorCode::kUsage,
               {"1001 levels deep"});
  c.apply_override(deep_key.substr(2) + "=1");  // 1000 levels: within the limit
}

TEST_CASE("YAML aliases cannot make endless or huge trees; long scalars do not recurse",
          "[config]") {
  // Found by fuzz_config_yaml: an alias inside its own anchor recursed until the stack overflowed.
  expect_error([&] { Config::parse("a: &x [1, *x]\n", "yaml", "loop.yaml"); }, ErrorCode::kConfig,
               {"loop.yaml:", "nested deeper than 1000"});
  std::string laughs = "a: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 7; ++i) {
    laughs += fmt::format("l{}: &l{} [", i, i);
    for (int k = 0; k < 10; ++k) laughs += fmt::format("{}*l{}", k ? ", " : "", i - 1);
    laughs += "]\n";
  }
  expect_error([&] { Config::parse(laughs, "yaml", "laughs.yaml"); }, ErrorCode::kConfig,
               {"more than 1000000 values"});
  // std::regex recursed once per character: a 200,000-digit scalar overflowed the stack.
  const Config c = Config::parse("a: 0." + std::string(200000, '7') + "\nb: 0x1F\nc: -.5e3\n",
                                 "yaml", "long.yaml");
  CHECK(c.get<double>("a") == Approx(0.7777777));
  expect_error([&] { Config::parse("a: " + std::string(200000, '7'), "yaml", "long.yaml"); },
               ErrorCode::kConfig, {"long.yaml:1:4", "is not a finite number"});
  CHECK(c.get<int>("b") == 31);
  CHECK(c.get<double>("c") == -500.0);
}

TEST_CASE("YAML configs type plain scalars and keep quoted strings", "[config]") {
  const char* text =
      "train:\n"
      "  max_epochs: 3\n"
      "  lr: 1.0e-4\n"
      "  shuffle: true\n"
      "  name: '3'\n"
      "  nothing: ~\n"
      "  metrics: [accuracy, f1]\n"
      "  hex: 0x10\n";
  Config c = Config::parse(text, "yaml", "train.yaml");
  CHECK(c.get<int>("train.max_epochs") == 3);
  CHECK(c.get<double>("train.lr") == Approx(1e-4));
  CHECK(c.get<bool>("train.shuffle"));
  CHECK(c.get<std::string>("train.name") == "3");
  CHECK(c.at("train.nothing").is_null());
  CHECK(c.get<std::vector<std::string>>("train.metrics") ==
        std::vector<std::string>{"accuracy", "f1"});
  CHECK(c.get<int>("train.hex") == 16);
  CHECK(Config::parse("", "yaml", "empty.yaml").root().empty());
}

TEST_CASE("YAML reads as PyYAML (ModelScope's reader) does: 1.1 booleans, digit groups, merge keys",
          "[config]") {
  const Config c = Config::parse(
      "a: yes\nb: Off\nc: ON\nd: no\ne: 1_000\nf: 1_0.5\ng: 'yes'\nh: _1\ni: 1__0\n"
      "j: 0x1_F\nk: 1_000_\n",
      "yaml", "c.yaml");
  CHECK(c.at("a") == Json(true));
  CHECK(c.at("b") == Json(false));
  CHECK(c.at("c") == Json(true));
  CHECK(c.at("d") == Json(false));
  CHECK(c.at("e") == Json(1000));
  CHECK(c.get<double>("f") == Approx(10.5));
  CHECK(c.at("g") == Json("yes"));
  CHECK(c.at("h") == Json("_1"));
  CHECK(c.at("i") == Json(10));  // PyYAML: underscores anywhere after the first digit
  CHECK(c.at("j") == Json(31));
  CHECK(c.at("k") == Json(1000));
  // Written out, a string that would read back as another type is quoted.
  CHECK(Config::parse(c.dump("yaml"), "yaml", "again.yaml").root() == c.root());
  // The merge key: the merged maps first (an earlier one over a later one), own keys over them.
  const Config m = Config::parse(
      "base: &b {lr: 0.1, opt: sgd}\n"
      "more: &m {opt: adam, wd: 0.01}\n"
      "one: {<<: *b, lr: 0.2}\n"
      "two:\n  <<: [*b, *m]\n  extra: 1\n",
      "yaml", "m.yaml");
  CHECK(m.at("one") == Json::parse(R"({"lr": 0.2, "opt": "sgd"})"));
  CHECK(m.get<std::string>("two.opt") == "sgd");
  CHECK(m.get<double>("two.wd") == Approx(0.01));
  CHECK(m.get<int>("two.extra") == 1);
  CHECK_FALSE(m.has("two.<<"));
  expect_error([&] { Config::parse("a: {<<: 3}\n", "yaml", "bad.yaml"); }, ErrorCode::kConfig,
               {"bad.yaml:1:5", "merge key"});
  // A quoted "<<" is an ordinary key.
  CHECK(Config::parse("'<<': 3\n", "yaml", "q.yaml").get<int>("<<") == 3);
}

TEST_CASE("integers past int64 are written to YAML as they are", "[config]") {
  const Config c = Config::parse(
      R"({"a": 18446744073709551615, "b": 9223372036854775808, "c": -5})", "json", "u.json");
  const Config again = Config::parse(c.dump("yaml"), "yaml", "u.yaml");
  CHECK(c.dump("yaml").find("-1") == std::string::npos);
  CHECK(again.get<std::uint64_t>("a") == 18446744073709551615ull);
  CHECK(again.get<std::uint64_t>("b") == 9223372036854775808ull);
  CHECK(again.get<int>("c") == -5);
}

TEST_CASE("lists convert element by element, each with its type's checks", "[config]") {
  const Config c =
      Config::parse(R"({"a": [1, 1e300], "b": [1, -2], "c": [1, 2], "d": 3})", "json", "l.json");
  expect_error([&] { c.get<std::vector<int>>("a"); }, ErrorCode::kConfig,
               {"key 'a.1' must be an integer"});
  expect_error([&] { c.get<std::vector<std::size_t>>("b"); }, ErrorCode::kConfig,
               {"key 'b.1' must be a non-negative integer"});
  CHECK(c.get<std::vector<int>>("c") == std::vector<int>{1, 2});
  expect_error([&] { c.get<std::vector<int>>("d"); }, ErrorCode::kConfig,
               {"key 'd' must be a list"});
}

TEST_CASE("a Config is read from several threads at once", "[config]") {
  // Reads record the keys they touch (for strict mode): unguarded, concurrent reads corrupted
  // the heap.
  Json root = Json::object();
  for (int i = 0; i < 256; ++i) root["k" + std::to_string(i)] = i;
  // A stress test: unguarded, it crashes or miscounts on most runs (not on every one); guarded, it
  // always passes.
  for (int round = 0; round < 200; ++round) {
    const Config c(root, "t.json");
    std::vector<std::thread> readers;
    std::atomic<int> wrong{0};
    for (int t = 0; t < 8; ++t) {
      readers.emplace_back([&c, &wrong, t] {
        for (int i = 0; i < 256; ++i) {
          const int key = (i * 7 + t * 31) % 256;
          if (c.get<int>("k" + std::to_string(key)) != key) ++wrong;
        }
      });
    }
    for (auto& r : readers) r.join();
    CHECK(wrong == 0);
    CHECK(c.unread_keys().empty());
  }
}

TEST_CASE("malformed YAML reports line and column", "[config]") {
  expect_error([&] { Config::parse("a:\n  b: [1, 2\nc: 3\n", "yaml", "bad.yaml"); },
               ErrorCode::kConfig, {"bad.yaml:", "invalid YAML"});
  // A key given twice: the last value wins, as PyYAML (ModelScope's reader) has it.
  CHECK(Config::parse("a: 1\na: 2\n", "yaml", "dup.yaml").get<int>("a") == 2);
  expect_error([&] { Config::parse("- 1\n- 2\n", "yaml", "list.yaml"); }, ErrorCode::kConfig,
               {"top level must be an object"});
  // Found by fuzz_config_yaml: floats beyond a double threw std::out_of_range. Python's yaml
  // reads them as infinite, which a JSON tree cannot hold (written out they became null): they
  // are config errors, as .inf and .nan are; one below the smallest is 0.
  for (const char* text : {"a: 1e999\n", "a: -1e999\n", "a: .inf\n", "a: -.Inf\n", "a: .nan\n"}) {
    INFO(text);
    expect_error([&] { Config::parse(text, "yaml", "big.yaml"); }, ErrorCode::kConfig,
                 {"big.yaml:1:4", "is not a finite number"});
  }
  CHECK(Config::parse("c: 1e-999\n", "yaml", "big.yaml").get<double>("c") == 0.0);
  CHECK(Config::parse("c: '.nan'\n", "yaml", "q.yaml").get<std::string>("c") == ".nan");
  // A stream of two documents is refused, as by Python's yaml.load (the second was dropped).
  expect_error([&] { Config::parse("a: 1\n---\nb: 2\n", "yaml", "two.yaml"); }, ErrorCode::kConfig,
               {"two.yaml:", "a second document"});
  // Found by fuzz_config_yaml: yaml-cpp's LoadAll never ended on this stream (empty document
  // after empty document, until memory ran out); the documents are counted two at most.
  expect_error([&] { Config::parse(",!", "yaml", "loop.yaml"); }, ErrorCode::kConfig,
               {"loop.yaml:"});
  // Found by fuzz_config_yaml: invalid UTF-8 parsed, then failed as an internal error on dump().
  expect_error([&] { Config::parse("a: 1\nb: x\x9d\n", "yaml", "latin1.yaml"); },
               ErrorCode::kConfig, {"latin1.yaml:2:5", "not UTF-8"});
}

TEST_CASE("overrides take JSON literals and bare words", "[config][override]") {
  Config c = Config::parse(kModelConfig, "json", "c.json");
  c.apply_override("train.max_epochs=3");
  c.apply_override("evaluation.metrics=[\"accuracy\"]");
  c.apply_override("model.type=structbert");
  c.apply_override("train.optimizer.lr=0.001");
  c.apply_override("train.hooks.CheckpointHook.interval=2");
  c.apply_override("train.hooks.1.interval=5");
  c.apply_override("pipeline={\"type\": \"text-classification\"}");
  c.apply_override("model.dropout=null");
  c.apply_override("train.work_dir=");
  CHECK(c.get<int>("train.max_epochs") == 3);
  CHECK(c.at("evaluation.metrics") == Json::array({"accuracy"}));
  CHECK(c.get<std::string>("model.type") == "structbert");
  CHECK(c.get<double>("train.optimizer.lr") == Approx(0.001));
  CHECK(c.get<int>("train.hooks.CheckpointHook.interval") == 2);
  CHECK(c.get<int>("train.hooks.EvaluationHook.interval") == 5);
  CHECK(c.get<std::string>("pipeline.type") == "text-classification");
  CHECK(c.at("model.dropout").is_null());
  CHECK(c.get<std::string>("train.work_dir").empty());
}

TEST_CASE("YAML nested past the YAML reader's own depth says so", "[config]") {
  const std::string deep = "a: " + std::string(600, '[') + std::string(600, ']') + "\n";
  expect_error([&] { Config::parse(deep, "yaml", "deep.yaml"); }, ErrorCode::kConfig,
               {"deep.yaml:", "nested deeper than the YAML reader goes"});
}

TEST_CASE("a key with dots in its name is said to be there, not offered as a close match",
          "[config]") {
  const Config c = Config::parse(R"({"a.b": 5, "x": {"y.z": 1}})", "json", "dots.json");
  expect_error([&] { (void)c.at("a.b"); }, ErrorCode::kConfig,
               {"missing key 'a.b'", "a key named 'a.b'"});
  expect_error([&] { (void)c.at("x.y.z"); }, ErrorCode::kConfig, {"a key named 'y.z'"});
}

TEST_CASE("an override with a list of typed objects merges into the list by type",
          "[config][override]") {
  // As ModelScope's merge_from_dict: the other hooks stay, a new type is appended.
  Config c = Config::parse(kModelConfig, "json", "c.json");
  const std::size_t hooks = c.at("train.hooks").size();
  c.apply_override(R"(train.hooks=[{"type": "CheckpointHook", "interval": 7},
                                   {"type": "TensorboardHook"}])");
  CHECK(c.at("train.hooks").size() == hooks + 1);
  CHECK(c.get<int>("train.hooks.CheckpointHook.interval") == 7);
  CHECK(c.has("train.hooks.EvaluationHook"));
  CHECK(c.has("train.hooks.TensorboardHook"));
  // Other lists are replaced, typed ones too (transforms are an order a merge would not keep).
  c.apply_override(R"(preprocessor.val=[{"type": "Resize"}, {"type": "ToTensor"}])");
  c.apply_override(R"(preprocessor.val=[{"type": "ToTensor"}])");
  CHECK(c.at("preprocessor.val").size() == 1);
  c.apply_override(R"(evaluation.metrics=["accuracy"])");
  c.apply_override(R"(evaluation.metrics=["f1"])");
  CHECK(c.at("evaluation.metrics") == Json::array({"f1"}));
}

TEST_CASE("bad overrides are usage errors naming the assignment", "[config][override]") {
  Config c = Config::parse(kModelConfig, "json", "c.json");
  expect_error([&] { c.apply_override("train.max_epochs"); }, ErrorCode::kUsage,
               {"expected KEY=VALUE"});
  expect_error([&] { c.apply_override("=3"); }, ErrorCode::kUsage, {"--set '=3'"});
  expect_error([&] { c.apply_override("train..lr=3"); }, ErrorCode::kUsage,
               {"train..lr", "empty segment"});
  expect_error([&] { c.apply_override("task.name=x"); }, ErrorCode::kUsage,
               {"'task' is \"text-classification\", not an object"});
  // Said with the value, in words that fit it (an empty list's hint was "use the list is empty").
  {
    Config empty = Config::parse(R"({"train": []})", "json", "e.json");
    expect_error([&] { empty.apply_override("train.work_dir=x"); }, ErrorCode::kUsage,
                 {"'train' is an empty list"});
    Config number = Config::parse(R"({"train": 5})", "json", "n.json");
    expect_error([&] { number.apply_override("train.work_dir=x"); }, ErrorCode::kUsage,
                 {"'train' is 5, not an object"});
  }
  expect_error([&] { c.apply_override("metrics=[1, 2"); }, ErrorCode::kUsage, {"not valid JSON"});
  expect_error([&] { c.apply_override("train.hooks.9.interval=1"); }, ErrorCode::kUsage,
               {"has no element '9'"});
  expect_error([&] { c.apply_override("train.hooks.LoggerHook.interval=1"); }, ErrorCode::kUsage,
               {"has no element 'LoggerHook'"});
  // Bytes that are not UTF-8 (the JSON dump of the tree failed on them: exit 70).
  expect_error([&] { c.apply_override("a=\xff"); }, ErrorCode::kUsage,
               {"--set 'a=\\xff': not UTF-8 text"});
  expect_error([&] { c.apply_override("\xff=1"); }, ErrorCode::kUsage, {"not UTF-8"});
}

TEST_CASE("merge follows ModelScope's rule for lists of typed objects", "[config][merge]") {
  Config c = Config::parse(kModelConfig, "json", "c.json");
  c.merge(Json::parse(R"({
    "model": {"num_labels": 3},
    "train": {"hooks": [{"type": "EvaluationHook", "interval": 2}, {"type": "TextLoggerHook"}]},
    "preprocessor": {"type": "sen-cls-tokenizer"}
  })"));
  CHECK(c.get<int>("model.num_labels") == 3);
  CHECK(c.get<std::string>("model.type") == "bert");
  REQUIRE(c.at("train.hooks").size() == 3);
  CHECK(c.get<int>("train.hooks.EvaluationHook.interval") == 2);
  CHECK(c.get<int>("train.hooks.CheckpointHook.interval") == 1);
  CHECK(c.has("train.hooks.TextLoggerHook"));
  CHECK(c.get<std::string>("preprocessor.type") == "sen-cls-tokenizer");
  // Plain lists are replaced, not merged.
  c.merge(Json::parse(R"({"evaluation": {"metrics": ["a"]}})"));
  c.merge(Json::parse(R"({"evaluation": {"metrics": ["b"]}})"));
  CHECK(c.at("evaluation.metrics") == Json::array({"b"}));
}

TEST_CASE("strict mode lists keys nothing read", "[config][strict]") {
  Config c = Config::parse(
      R"({"model": {"type": "bert", "hiden_size": 8}, "task": "x", "train": {"lr": 1}})", "json",
      "c.json");
  c.get<std::string>("model.type");
  c.get<std::string>("task");
  c.at("train");  // reading a subtree marks all of it
  CHECK(c.unread_keys() == std::vector<std::string>{"model.hiden_size"});
  expect_error([&] { c.check_all_read(); }, ErrorCode::kConfig, {"model.hiden_size", "c.json"});
  c.get<int>("model.hiden_size");
  CHECK_NOTHROW(c.check_all_read());
}

TEST_CASE("dump writes YAML and JSON that parse back to the same tree", "[config]") {
  Config c = Config::parse(kModelConfig, "json", "c.json");
  c.apply_override("model.name=\"007\"");
  Config from_yaml = Config::parse(c.dump("yaml"), "yaml", "dumped.yaml");
  Config from_json = Config::parse(c.dump("json"), "json", "dumped.json");
  CHECK(from_yaml.root() == c.root());
  CHECK(from_json.root() == c.root());
}
