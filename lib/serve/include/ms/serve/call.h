// ModelScope's service API for one pipeline: /call bodies in, pipeline inputs out, and back
// (modelscope/server: {"input": ..., "parameters": ...} -> the pipeline's output dict), plus the
// /describe document. Torch-free and without HTTP, so that each rule is unit-tested.
#pragma once

#include <cstddef>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ms/core/export.h"
#include "ms/infer/pipeline.h"

namespace ms::serve {

/// A request answered with an error: HTTP `status` and a JSON body naming the `field` at fault
/// ("input.image", "parameters.topk", "body").
struct CallError {
  int status;
  std::string field;
  std::string message;
};

/// How the results of a request's inputs make its response.
enum class CallShape {
  kOne,        ///< one input: the response is its output object
  kList,       ///< "input" was a list: a JSON array of output objects, in order
  kEmbedding,  ///< sentence-embedding: {"text_embedding": [...], "scores": [...]}
};

struct CallRequest {
  std::vector<infer::PipelineInput> inputs;  ///< moved into the batcher once parsed
  std::vector<std::string> fields;           ///< each input's place in the body, for errors
  CallShape shape = CallShape::kOne;
  /// kEmbedding: whether sentences_to_compare was given (then "scores" are the dot products of
  /// the first embedding with each later one, as ModelScope's pipeline computes them).
  bool compare = false;
  std::optional<std::size_t> topk;  ///< classification: keep the best k labels and scores
};

/// Reads an http(s) image URL; throws ms::Error on failure.
using UrlFetcher = std::function<std::string(const std::string& url)>;

/// Parses a /call body for `task` (canonical spelling). Throws CallError (400) for malformed JSON,
/// a missing or mistyped field, unknown keys, undecodable base64, local paths, or an image URL
/// that cannot be read; 413 for more than `max_inputs` inputs, found while parsing when a list
/// is longer (the body's tree is never built whole).
MS_API CallRequest parse_call(const std::string& task, std::string_view body,
                              const UrlFetcher& fetch,
                              std::size_t max_inputs = std::numeric_limits<std::size_t>::max());

/// The response body from the results of `request`'s inputs (one each, in order). Throws
/// CallError when an input failed: 400 naming its field for a bad input, 500 when the model
/// failed (an output with NaN or infinity, an internal error).
MS_API std::string render_call(const CallRequest& request,
                               const std::vector<infer::PipelineResult>& results);

/// The GET /describe body: {"schema": {"task_name", "schema": {input, parameters, output}},
/// "sample": {...}} in ModelScope's layout, for `task`.
MS_API std::string describe(const std::string& task);

/// A JSON error body in ModelScope's response envelope, with the field at fault under "Data".
MS_API std::string error_body(int status, const std::string& field, const std::string& message,
                              const std::string& request_id);

}  // namespace ms::serve
