// See ms/serve/call.h.
#include "ms/serve/call.h"

#include <algorithm>
#include <initializer_list>
#include <limits>

#include "ms/config/config.h"
#include "ms/core/encoding.h"
#include "ms/core/error.h"
#include "ms/core/text.h"
#include "ms/data/image.h"
#include "ms/infer/job.h"

namespace ms::serve {
namespace {

// The text and second-sentence fields are `ms infer`'s (infer::kTextFields, kPairFields, which
// hold ModelScope's service schema's "text2").
constexpr std::initializer_list<const char*> kImageKeys = {"image", "img", "input"};

// Tasks whose single input is a pair of sentences (ModelScope's input is a 2-tuple).
bool pair_task(const std::string& task) { return task == "sentence-similarity"; }
bool image_task(const std::string& task) { return task == "image-classification"; }
bool ranked_labels_task(const std::string& task) {
  return task == "text-classification" || task == "sentence-similarity" ||
         task == "image-classification";
}

// A field path as an error shows it: its start when it is long (a client's own key of
// megabytes came back twice in the error body), cut at a character boundary.
std::string shown_field(const std::string& field) {
  constexpr std::size_t kMaxShown = 200;
  if (field.size() <= kMaxShown) return field;
  std::size_t cut = kMaxShown;
  while (cut > 0 && (static_cast<unsigned char>(field[cut]) & 0xC0) == 0x80) --cut;
  return fmt::format("{}... ({} bytes)", field.substr(0, cut), field.size());
}

[[noreturn]] void bad(const std::string& field, std::string message) {
  throw CallError{400, shown_field(field), std::move(message)};
}

// No service body needs more: {"input": [{"text": ...}]} is 3 levels.
constexpr int kMaxDepth = 32;
// Members of one object: a /call body's objects have two or three.
constexpr std::size_t kMaxMembers = 64;

// 413, not 503: retrying cannot help a request that can never fit in the queue.
CallError too_many_inputs(const std::string& count, std::size_t max_inputs) {
  return CallError{413, "input",
                   fmt::format("{} inputs in one request; this server queues at most {} "
                               "(--max-queue): send fewer per request",
                               count, max_inputs)};
}

// A text is tokenised whole before the model's length cuts it; a few megabytes of text cost
// seconds and a gigabyte on a connection's thread, for tokens the model never reads.
constexpr std::size_t kMaxTextBytes = 1u << 20;

bool contains(std::initializer_list<const char*> keys, const std::string& key) {
  return std::any_of(keys.begin(), keys.end(), [&](const char* k) { return key == k; });
}

std::string text_of(const Json& value, const std::string& field) {
  if (!value.is_string())
    bad(field, fmt::format("expected a string, got {}", Config::type_name(value)));
  const std::string& text = value.get_ref<const std::string&>();
  // Refused here rather than by the pipeline, whose error could only name the whole input.
  if (text.empty()) bad(field, "empty text");
  if (text.size() > kMaxTextBytes) {
    bad(field, fmt::format("a text of {} bytes; ms serve takes at most {} per text (models read "
                           "a few hundred tokens)",
                           text.size(), kMaxTextBytes));
  }
  return text;
}

// Image bytes from a service string: base64 (standard or URL-safe, padding optional, as
// ModelScope's b64decode(content, '-_') takes it), a data: URL, or an http(s) URL.
std::string image_bytes(const std::string& value, const std::string& field,
                        const UrlFetcher& fetch) {
  if (value.rfind("http://", 0) == 0 || value.rfind("https://", 0) == 0) {
    try {
      return fetch(value);
    } catch (const Error& e) {
      bad(field, fmt::format("cannot read the image URL: {}", e.what()));
    }
  }
  // Never read from the server's disk: a path would let any client read its files. (A base64
  // JPEG starts with "/9j/", so only path-looking strings naming an image file are refused here;
  // others decode to bytes that are not an image.)
  const bool path_like = !value.empty() && (value[0] == '/' || value[0] == '.' || value[0] == '~');
  if (value.rfind("file:", 0) == 0 || value.rfind("oss:", 0) == 0 ||
      (path_like && data::has_image_extension(value))) {
    bad(field,
        "the server reads no local paths or file:/oss: URLs; send the image as base64 or "
        "an http(s) URL");
  }
  std::string_view data = value;
  if (data.rfind("data:", 0) == 0) {
    const std::size_t comma = data.find(',');
    if (comma == std::string_view::npos ||
        data.substr(0, comma).find(";base64") == std::string_view::npos) {
      bad(field, "a data: URL must be base64 (data:image/png;base64,...)");
    }
    data.remove_prefix(comma + 1);
  }
  std::string standard(data);
  for (char& c : standard) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (standard.size() % 4 != 0) standard.push_back('=');
  std::optional<std::string> bytes = base64_decode(standard);
  if (!bytes || bytes->empty()) bad(field, "not base64 image data and not an http(s) URL");
  return std::move(*bytes);
}

infer::PipelineInput one_input(const std::string& task, const Json& value, const std::string& field,
                               const UrlFetcher& fetch) {
  infer::PipelineInput in;
  in.id = field;
  if (image_task(task)) {
    std::string source;
    std::string where = field;
    if (value.is_object()) {
      for (auto it = value.begin(); it != value.end(); ++it) {
        if (!contains(kImageKeys, it.key())) {
          bad(field + "." + it.key(), "unknown key; an image input is {\"image\": BASE64_OR_URL}");
        }
        if (where != field) bad(field + "." + it.key(), "two image fields; give one");
        where = field + "." + it.key();
        source =
            it.value().is_string() ? it.value().get<std::string>() : text_of(it.value(), where);
      }
      if (value.empty()) bad(field, "expected {\"image\": BASE64_OR_URL}");
    } else {
      if (!value.is_string())
        bad(field, "expected an image: base64, a data: URL or an http(s) URL");
      source = value.get<std::string>();
    }
    in.content = image_bytes(source, where, fetch);
    in.path = "the image";  // names it in decoding errors, after the field
    in.id = where;
    return in;
  }
  if (value.is_string()) {
    in.text = text_of(value, field);
    return in;
  }
  if (pair_task(task) && value.is_array()) {
    if (value.size() != 2) bad(field, "a sentence pair is a list of two strings");
    in.text = text_of(value[0], field + "[0]");
    in.text_pair = text_of(value[1], field + "[1]");
    return in;
  }
  if (!value.is_object()) {
    bad(field, fmt::format("expected a string or an object with \"text\", got {}",
                           Config::type_name(value)));
  }
  bool have_text = false;
  std::string pair_key;
  for (auto it = value.begin(); it != value.end(); ++it) {
    const std::string key_field = field + "." + it.key();
    if (contains(infer::kTextFields, it.key())) {
      if (have_text) bad(key_field, "two text fields; give one");
      in.text = text_of(it.value(), key_field);
      have_text = true;
    } else if (contains(infer::kPairFields, it.key())) {
      if (!pair_key.empty()) {
        bad(key_field,
            fmt::format("two second-sentence fields ({} and {}); give one", pair_key, it.key()));
      }
      pair_key = it.key();
      in.text_pair = text_of(it.value(), key_field);
    } else {
      bad(key_field, "unknown key (the text goes in \"text\", a second sentence in \"text2\")");
    }
  }
  if (!have_text) bad(field + ".text", "missing");
  return in;
}

std::vector<std::string> sentence_list(const Json& value, const std::string& field) {
  std::vector<std::string> out;
  if (value.is_string()) return {text_of(value, field)};
  if (!value.is_array()) bad(field, "expected a list of strings");
  for (std::size_t i = 0; i < value.size(); ++i) {
    out.push_back(text_of(value[i], fmt::format("{}[{}]", field, i)));
  }
  return out;
}

void parse_embedding(const Json& input, CallRequest& request) {
  std::vector<std::string> sources, compare;
  std::string source_field = "input";
  if (input.is_object()) {
    for (auto it = input.begin(); it != input.end(); ++it) {
      const std::string key_field = "input." + it.key();
      if (contains(infer::kTextFields, it.key())) {  // source_sentence among them
        if (!sources.empty()) bad(key_field, "two source fields; give source_sentence once");
        sources = sentence_list(it.value(), key_field);
        source_field = key_field;
      } else if (it.key() == "sentences_to_compare") {
        compare = sentence_list(it.value(), key_field);
        request.compare = true;
      } else {
        bad(key_field,
            "unknown key (sentence-embedding takes source_sentence and "
            "sentences_to_compare)");
      }
    }
  } else {
    sources = sentence_list(input, "input");
  }
  if (sources.empty()) bad(source_field, "no sentence to embed");
  if (request.compare && compare.empty()) bad("input.sentences_to_compare", "empty list");
  auto add = [&](const std::string& text, std::string field) {
    infer::PipelineInput in;
    in.id = field;
    in.text = text;
    request.inputs.push_back(std::move(in));
    request.fields.push_back(std::move(field));
  };
  const bool source_list =
      !(input.is_object() ? input.at(source_field.substr(6)) : input).is_string();
  for (std::size_t i = 0; i < sources.size(); ++i) {
    add(sources[i], source_list ? fmt::format("{}[{}]", source_field, i) : source_field);
  }
  for (std::size_t i = 0; i < compare.size(); ++i) {
    add(compare[i], fmt::format("input.sentences_to_compare[{}]", i));
  }
  request.shape = CallShape::kEmbedding;
}

void parse_parameters(const std::string& task, const Json& parameters, CallRequest& request) {
  if (parameters.is_null()) return;
  if (!parameters.is_object()) bad("parameters", "expected an object");
  for (auto it = parameters.begin(); it != parameters.end(); ++it) {
    const std::string field = "parameters." + it.key();
    if (it.key() == "topk" && ranked_labels_task(task)) {
      if (it.value().is_null()) continue;  // ModelScope's default: every label
      if (!it.value().is_number_integer() || it.value().get<long long>() < 1) {
        bad(field, "expected a positive integer");
      }
      request.topk = it.value().get<std::size_t>();
      continue;
    }
    bad(field, task == "text-generation"
                   ? "not a per-request parameter here: generation options are set when the "
                     "server starts (ms serve --set max_new_tokens=64 --set top_k=20 ...)"
                   : "unknown parameter for " + task +
                         (ranked_labels_task(task) ? " (known: topk)" : " (it takes none)"));
  }
}

// A result's members as an object's text, the ranked lists cut to `topk`.
std::string object_text(const infer::PipelineResult& r, std::optional<std::size_t> topk) {
  Json output = r.output.is_object() ? r.output : Json::object();
  if (topk) {
    for (const char* key : {"scores", "labels"}) {
      auto it = output.find(key);
      if (it != output.end() && it->is_array() && it->size() > *topk) {
        it->erase(it->begin() + static_cast<std::ptrdiff_t>(*topk), it->end());
      }
    }
  }
  return infer::result_object_text(output, r.float_arrays);
}

// The embedding of a sentence-embedding result.
const std::vector<float>& embedding_of(const infer::PipelineResult& r) {
  for (const infer::FloatArray& array : r.float_arrays) {
    if (array.key == "text_embedding") return array.values;
  }
  throw Error(ErrorCode::kInternal, "a sentence-embedding result holds no text_embedding");
}

}  // namespace

CallRequest parse_call(const std::string& task, std::string_view body, const UrlFetcher& fetch,
                       std::size_t max_inputs) {
  // The shape is bounded while parsing: a body of a few megabytes of brackets would otherwise
  // build millions of nested values, and one of 8 million one-letter strings (a legal 32 MiB
  // body) about 3 GB of values, before any rule sees them. A list holds at most one element per
  // input (a sentence pair's two strings are one), and no object of a /call body has more than a
  // few members.
  const std::size_t max_elements = std::max<std::size_t>(max_inputs, 2);
  struct Open {
    bool array;
    std::size_t count;              // elements of an array, members of an object
    std::vector<std::string> keys;  // an object's keys so far (at most kMaxMembers)
  };
  std::vector<Open> open;  // the containers being parsed, innermost last
  // nlohmann's lexer reads a NUL byte as the end of the text: {"input":"a"}<NUL>xyz was answered
  // for "a". JSON holds none (inside a string one is written \u0000).
  if (const std::size_t nul = body.find('\0'); nul != std::string_view::npos) {
    bad("body", fmt::format("not valid JSON: a NUL byte at offset {} (JSON text holds none; in a "
                            "string it is written \\u0000)",
                            nul));
  }
  Json doc;
  try {
    doc = Json::parse(body, [&](int depth, Json::parse_event_t event, Json& parsed) {
      if (depth > kMaxDepth) {
        throw CallError{400, "body", fmt::format("nested deeper than {} levels", kMaxDepth)};
      }
      using Event = Json::parse_event_t;
      const bool element =
          event == Event::value || event == Event::array_start || event == Event::object_start;
      if (element && !open.empty() && open.back().array && ++open.back().count > max_elements) {
        throw too_many_inputs(fmt::format("more than {}", max_inputs), max_inputs);
      }
      if (event == Event::key && ++open.back().count > kMaxMembers) {
        throw CallError{400, "body", fmt::format("an object with over {} members", kMaxMembers)};
      }
      if (event == Event::key) {
        // JSON parsers keep the last of two equal keys: {"text": "a", "text": "b"} would be
        // answered for "b" alone, as if the client had sent one.
        std::vector<std::string>& keys = open.back().keys;
        const std::string& key = parsed.get_ref<const std::string&>();
        if (std::find(keys.begin(), keys.end(), key) != keys.end())
          throw CallError{
              400, "body",
              fmt::format("key \"{}\" given twice in one object; give it once", shown_field(key))};
        keys.push_back(key);
      }
      if (event == Event::array_start || event == Event::object_start) {
        open.push_back({event == Event::array_start, 0, {}});
      }
      if (event == Event::array_end || event == Event::object_end) open.pop_back();
      return true;
    });
  } catch (const Json::exception& e) {
    bad("body", fmt::format("not valid JSON: {}", e.what()));
  }
  if (!doc.is_object())
    bad("body", "expected a JSON object {\"input\": ..., \"parameters\": {...}}");
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() != "input" && it.key() != "parameters") {
      bad(it.key(), "unknown key; a /call body has \"input\" and \"parameters\"");
    }
  }
  auto input = doc.find("input");
  if (input == doc.end() || input->is_null()) bad("input", "missing");
  CallRequest request;
  if (auto p = doc.find("parameters"); p != doc.end()) parse_parameters(task, *p, request);
  if (task == "sentence-embedding") {
    parse_embedding(*input, request);
    if (request.inputs.size() > max_inputs) {
      throw too_many_inputs(std::to_string(request.inputs.size()), max_inputs);
    }
    return request;
  }
  const bool list = input->is_array() && !(pair_task(task) && input->size() == 2 &&
                                           (*input)[0].is_string() && (*input)[1].is_string());
  if (list) {
    if (input->empty()) bad("input", "empty list");
    request.shape = CallShape::kList;
    for (std::size_t i = 0; i < input->size(); ++i) {
      const std::string field = fmt::format("input[{}]", i);
      request.inputs.push_back(one_input(task, (*input)[i], field, fetch));
      request.fields.push_back(request.inputs.back().id.get<std::string>());
    }
  } else {
    request.shape = CallShape::kOne;
    request.inputs.push_back(one_input(task, *input, "input", fetch));
    request.fields.push_back(request.inputs.back().id.get<std::string>());
  }
  if (request.inputs.size() > max_inputs) {
    throw too_many_inputs(std::to_string(request.inputs.size()), max_inputs);
  }
  return request;
}

std::string render_call(const CallRequest& request,
                        const std::vector<infer::PipelineResult>& results) {
  MS_ASSERT(results.size() == request.fields.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    const infer::PipelineResult& r = results[i];
    if (!r.error) continue;
    const bool model_fault = r.nonfinite_output || r.error->code() == ErrorCode::kInternal;
    throw CallError{model_fault ? 500 : 400, request.fields[i], r.error->what()};
  }
  std::string out;
  switch (request.shape) {
    case CallShape::kOne:
      return object_text(results[0], request.topk);
    case CallShape::kList:
      out = "[";
      for (std::size_t i = 0; i < results.size(); ++i) {
        if (i > 0) out += ',';
        out += object_text(results[i], request.topk);
      }
      return out + "]";
    case CallShape::kEmbedding: {
      out = "{\"text_embedding\":[";
      for (std::size_t i = 0; i < results.size(); ++i) {
        if (i > 0) out += ',';
        out += infer::json_float_array(embedding_of(results[i]));
      }
      out += "],\"scores\":";
      Json scores = Json::array();
      if (request.compare) {
        const std::vector<float>& first = embedding_of(results[0]);
        for (std::size_t i = 1; i < results.size(); ++i) {
          const std::vector<float>& other = embedding_of(results[i]);
          double dot = 0;
          for (std::size_t d = 0; d < first.size() && d < other.size(); ++d) {
            dot += static_cast<double>(first[d]) * other[d];
          }
          scores.push_back(dot);
        }
      }
      return out + scores.dump() + "}";
    }
  }
  MS_ASSERT(false);
  return out;
}

std::string error_body(int status, const std::string& field, const std::string& message,
                       const std::string& request_id) {
  Json body = {{"Code", status},
               {"Success", false},
               {"Message", field.empty() ? message : field + ": " + message},
               {"RequestId", request_id},
               {"Data", field.empty() ? Json(nullptr) : Json{{"field", field}}}};
  return body.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace ms::serve

namespace ms::serve {
namespace {

Json string_property(const char* description) {
  return {{"type", "string"}, {"description", description}};
}

Json ranked_labels_output() {
  return {{"type", "object"},
          {"properties",
           {{"scores", {{"type", "array"}, {"items", {{"type", "number"}}}}},
            {"labels", {{"type", "array"}, {"items", {{"type", "string"}}}}}}}};
}

Json topk_parameters() {
  return {{"type", "object"},
          {"properties", {{"topk", {{"type", "integer"}, {"default", nullptr}}}}}};
}

// Input, parameters and output schemas and a sample body, in the layout of ModelScope's
// pipeline_schema.json and pipeline_inputs.json, for what ms serve accepts.
std::pair<Json, Json> schema_and_sample(const std::string& task) {
  const Json text_input = {{"type", "object"},
                           {"properties", {{"text", string_property("The input text.")}}}};
  const Json no_parameters = Json::object();
  if (task == "sentence-embedding") {
    return {{{"input",
              {{"type", "object"},
               {"properties",
                {{"source_sentence", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                 {"sentences_to_compare", {{"type", "array"}, {"items", {{"type", "string"}}}}}}}}},
             {"parameters", no_parameters},
             {"output",
              {{"type", "object"},
               {"properties",
                {{"text_embedding", {{"type", "array"}, {"items", {{"type", "array"}}}}},
                 {"scores", {{"type", "array"}, {"items", {{"type", "number"}}}}}}}}}},
            {{"input",
              {{"source_sentence", {"How do I bake bread?"}},
               {"sentences_to_compare",
                {"Bread needs flour, water and yeast.", "The sky is blue."}}}}}};
  }
  if (task == "text-classification") {
    Json input = text_input;
    input["properties"]["text2"] = string_property("A second sentence, for pair models.");
    return {
        {{"input", input}, {"parameters", topk_parameters()}, {"output", ranked_labels_output()}},
        {{"input", {{"text", "i like this wonderful place"}}}, {"parameters", Json::object()}}};
  }
  if (task == "sentence-similarity") {
    return {{{"input", {{"type", "array"}, {"items", string_property("The input text.")}}},
             {"parameters", topk_parameters()},
             {"output", ranked_labels_output()}},
            {{"input", {"A man is playing a guitar.", "Someone plays an instrument."}}}};
  }
  if (task == "image-classification") {
    return {{{"input",
              {{"type", "object"},
               {"properties",
                {{"image", string_property("Base64 encoded image file or url string.")}}}}},
             {"parameters", topk_parameters()},
             {"output", ranked_labels_output()}},
            {{"input", {{"image", "https://example.com/cat.jpg"}}}}};
  }
  if (task == "text-generation") {
    return {{{"input", text_input},
             {"parameters", no_parameters},
             {"output", {{"type", "object"}, {"properties", {{"text", {{"type", "string"}}}}}}}},
            {{"input", {{"text", "Once upon a time"}}}, {"parameters", Json::object()}}};
  }
  if (task == "fill-mask") {
    return {{{"input", text_input},
             {"parameters", no_parameters},
             {"output",
              {{"type", "object"},
               {"properties",
                {{"text", {{"type", "string"}}}, {"predictions", {{"type", "array"}}}}}}}},
            {{"input", {{"text", "The capital of France is [MASK]."}}}}};
  }
  // token-classification, named-entity-recognition, word-segmentation
  return {{{"input", text_input},
           {"parameters", no_parameters},
           {"output", {{"type", "object"}, {"properties", {{"output", {{"type", "array"}}}}}}}},
          {{"input", {{"text", "Alice moved to Paris in 2020."}}}}};
}

}  // namespace

std::string describe(const std::string& task) {
  auto [schema, sample] = schema_and_sample(task);
  Json doc = {{"schema", {{"task_name", task}, {"schema", schema}}}, {"sample", sample}};
  return doc.dump();
}

}  // namespace ms::serve
