// The ONNX graph of a GPT-2 decoder without a cache (Model::structure() family "gpt2"): input_ids
// and attention_mask in, logits for every position out, as Gpt2LMHeadModel::forward computes them
// (positions counted over the attended tokens, causal and padding mask, pre-LayerNorm blocks,
// Conv1D projections stored [in, out], the head tied to wte unless the model has its own).
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "ms/core/error.h"
#include "onnx_graph.h"

namespace ms::exporter {

using onnx::TensorProto;

void build_gpt2_graph(GraphBuilder& g, const Json& s, const std::vector<int64_t>& static_shape) {
  const int64_t layers = s.at("n_layer").get<int64_t>();
  const int64_t heads = s.at("n_head").get<int64_t>();
  const int64_t hidden = s.at("n_embd").get<int64_t>();
  const int64_t head_dim = hidden / heads;
  const double eps = s.at("layer_norm_epsilon").get<double>();
  const std::string act = s.at("activation_function").get<std::string>();
  MS_CHECK(static_shape.empty() || static_shape.size() == 2, ErrorCode::kUsage,
           "--static for a text model is BATCH,SEQUENCE (e.g. 1,128), got {} sizes",
           static_shape.size());
  // Longer than the position table, the graph would fail on every input (a Gather past its end).
  const int64_t table_size = s.at("n_positions").get<int64_t>();
  MS_CHECK(static_shape.empty() || static_shape[1] <= table_size, ErrorCode::kUsage,
           "--static sequence length {} is longer than the model's {} positions", static_shape[1],
           table_size);
  const std::string batch = static_shape.empty() ? "batch" : std::to_string(static_shape[0]);
  const std::string seq = static_shape.empty() ? "sequence" : std::to_string(static_shape[1]);
  g.input("input_ids", TensorProto::INT64, {batch, seq});
  g.input("attention_mask", TensorProto::INT64, {batch, seq});

  // Positions: cumsum(mask) - 1 over the attended tokens, 1 on padding (what generate() passes).
  const std::string zero = g.constant_ints({0}, true), one = g.constant_ints({1}, true);
  const std::string padded = g.node("Equal", {"attention_mask", zero});
  const std::string counted = g.node("Sub", {g.node("CumSum", {"attention_mask", one}), one});
  const std::string positions = g.node("Where", {padded, one, counted});
  std::string x =
      g.node("Add", {g.node("Gather", {g.weight("transformer.wte.weight"), "input_ids"}),
                     g.node("Gather", {g.weight("transformer.wpe.weight"), positions})});

  // Additive bias [batch, 1, query, key]: key j is seen from query i when j <= i and the mask
  // keeps j; the lowest value of the computation's type elsewhere. A query on left padding has no
  // such key and sees itself instead: a row of masked scores only would be -inf everywhere in
  // float16 (-65504 plus a negative score), softmax would give NaN, and the NaN would reach the
  // real tokens through that position's keys in the next layer. Its own logits mean nothing.
  const std::string length =
      g.node("Gather", {g.node("Shape", {"input_ids"}), one}, {attr_int("axis", 0)});
  const std::string at = g.node("Range", {zero, length, one});
  const std::string causal =
      g.node("LessOrEqual", {g.unsqueeze(at, {0}), g.unsqueeze(at, {1})});  // [query, key]
  const std::string kept = g.unsqueeze(g.node("Not", {padded}), {1, 2});    // [b, 1, 1, key]
  const std::string seen = g.node("And", {g.unsqueeze(causal, {0, 1}), kept});
  const std::string sees_any = g.reduce(
      "ReduceMax", g.node("Cast", {seen}, {attr_int("to", TensorProto::INT64)}), {3}, true);
  const std::string itself =
      g.unsqueeze(g.node("Equal", {g.unsqueeze(at, {0}), g.unsqueeze(at, {1})}), {0, 1});
  const std::string alone = g.node("And", {itself, g.node("Equal", {sees_any, zero})});
  const std::string bias =
      g.node("Where", {g.node("Or", {seen, alone}), g.constant_float(0.0f),
                       g.constant_float(std::numeric_limits<float>::lowest())});

  const std::string split_shape = g.constant_ints({0, 0, heads, head_dim});
  const std::string merge_shape = g.constant_ints({0, 0, hidden});
  // Conv1D: x [.., in] times its [in, out] weight, plus bias.
  auto conv1d = [&](const std::string& in, const std::string& prefix) {
    return g.node("Add",
                  {g.node("MatMul", {in, g.weight(prefix + "weight")}), g.weight(prefix + "bias")});
  };
  for (int64_t i = 0; i < layers; ++i) {
    const std::string l = fmt::format("transformer.h.{}.", i);
    double scale = s.at("scale_attn_weights").get<bool>() ? 1.0 / std::sqrt(head_dim) : 1.0;
    if (s.at("scale_attn_by_inverse_layer_idx").get<bool>()) scale /= static_cast<double>(i + 1);
    const std::string qkv = conv1d(g.layer_norm(x, l + "ln_1.", eps), l + "attn.c_attn.");
    // The three [b, t, hidden] parts of the fused projection, each as [b, heads, t, d].
    auto part = [&](int64_t k) {
      const std::string y =
          g.node("Slice", {qkv, g.constant_ints({k * hidden}), g.constant_ints({(k + 1) * hidden}),
                           g.constant_ints({-1})});
      return g.node("Transpose", {g.node("Reshape", {y, split_shape})},
                    {attr_ints("perm", {0, 2, 1, 3})});  // [b, heads, t, d]
    };
    const std::string q = part(0), k = part(1), v = part(2);
    const std::string scores = g.node(
        "Add",
        {g.node("Mul",
                {g.node("MatMul", {q, g.node("Transpose", {k}, {attr_ints("perm", {0, 1, 3, 2})})}),
                 g.constant_float(static_cast<float>(scale))}),
         bias});
    const std::string probs = g.node("Softmax", {scores}, {attr_int("axis", -1)});
    const std::string merged = g.node(
        "Reshape",
        {g.node("Transpose", {g.node("MatMul", {probs, v})}, {attr_ints("perm", {0, 2, 1, 3})}),
         merge_shape});
    x = g.node("Add", {x, conv1d(merged, l + "attn.c_proj.")});
    const std::string h =
        g.activation(act, conv1d(g.layer_norm(x, l + "ln_2.", eps), l + "mlp.c_fc."));
    x = g.node("Add", {x, conv1d(h, l + "mlp.c_proj.")});
  }
  x = g.layer_norm(x, "transformer.ln_f.", eps);
  // The head's [vocab, n_embd] weight is transposed by a node, not stored twice: tied, it is
  // also the token embeddings' table.
  const std::string head = g.node("Transpose", {g.weight(s.at("lm_head").get<std::string>())},
                                  {attr_ints("perm", {1, 0})});
  const std::string logits = g.node("MatMul", {x, head});
  g.output(logits, "logits", TensorProto::FLOAT,
           {batch, seq, std::to_string(s.at("vocab_size").get<int64_t>())});
}

}  // namespace ms::exporter
