// The BERT family as an ONNX graph, op for op what ms::models::BertEncoder and its heads compute
// in eval mode (bert.cpp, bert_heads.cpp, sentence_embedding.cpp), over their state_dict() names.
#include <cmath>
#include <limits>

#include "ms/core/error.h"
#include "onnx_graph.h"

namespace ms::exporter {
namespace {

using onnx::TensorProto;

struct Encoder {
  std::string hidden;  // [batch, sequence, hidden]
  std::string mask_f;  // attention_mask as float [batch, sequence]
};

Encoder build_encoder(GraphBuilder& g, const Json& s) {
  const std::string p = s.at("encoder").get<std::string>();
  const int64_t hidden = s.at("hidden_size").get<int64_t>();
  const int64_t heads = s.at("num_attention_heads").get<int64_t>();
  const int64_t layers = s.at("num_hidden_layers").get<int64_t>();
  const int64_t head_dim = hidden / heads;
  const double eps = s.at("layer_norm_eps").get<double>();
  const std::string act = s.at("hidden_act").get<std::string>();

  // Embeddings: words + positions + token types, then LayerNorm.
  const std::string words =
      g.node("Gather", {g.weight(p + "embeddings.word_embeddings.weight"), "input_ids"});
  std::string positions;
  if (s.at("roberta_positions").get<bool>()) {
    // cumsum(ids != pad) * (ids != pad) + pad: padding keeps position pad_token_id.
    const int64_t pad = s.at("pad_token_id").get<int64_t>();
    const std::string not_pad = g.node(
        "Cast", {g.node("Not", {g.node("Equal", {"input_ids", g.constant_ints({pad}, true)})})},
        {attr_int("to", TensorProto::INT64)});
    const std::string cum = g.node("CumSum", {not_pad, g.constant_ints({1}, true)});
    positions = g.node("Add", {g.node("Mul", {cum, not_pad}), g.constant_ints({pad}, true)});
  } else {
    // 0 .. sequence-1, broadcast over the batch.
    const std::string length =
        g.node("Gather", {g.node("Shape", {"input_ids"}), g.constant_ints({1}, true)},
               {attr_int("axis", 0)});
    positions = g.node("Range", {g.constant_ints({0}, true), length, g.constant_ints({1}, true)});
  }
  const std::string pos =
      g.node("Gather", {g.weight(p + "embeddings.position_embeddings.weight"), positions});
  // One token type (RoBERTa): every id reads row 0, as BertEncoder::forward takes them.
  const std::string type_ids = s.value("type_vocab_size", int64_t{2}) == 1
                                   ? g.node("Mul", {"token_type_ids", g.constant_ints({0}, true)})
                                   : std::string("token_type_ids");
  const std::string types =
      g.node("Gather", {g.weight(p + "embeddings.token_type_embeddings.weight"), type_ids});
  std::string x = g.node("Add", {g.node("Add", {words, pos}), types});
  x = g.layer_norm(x, p + "embeddings.LayerNorm.", eps);

  // Additive attention mask [batch, 1, 1, sequence]: 0 where attended, the lowest float where
  // padded (BertEncoder::forward).
  Encoder out;
  out.mask_f = g.node("Cast", {"attention_mask"}, {attr_int("to", g.float_type())});
  const std::string bias =
      g.unsqueeze(g.node("Mul", {g.node("Sub", {g.constant_float(1.0f), out.mask_f}),
                                 g.constant_float(std::numeric_limits<float>::lowest())}),
                  {1, 2});
  const std::string split_shape = g.constant_ints({0, 0, heads, head_dim});
  const std::string merge_shape = g.constant_ints({0, 0, hidden});
  const std::string scale = g.constant_float(static_cast<float>(1.0 / std::sqrt(head_dim)));
  for (int64_t i = 0; i < layers; ++i) {
    const std::string l = fmt::format("{}encoder.layer.{}.", p, i);
    auto heads_of = [&](const char* which, const std::vector<int64_t>& perm) {
      const std::string y = g.linear(x, l + "attention.self." + which + ".");
      return g.node("Transpose", {g.node("Reshape", {y, split_shape})}, {attr_ints("perm", perm)});
    };
    const std::string q = heads_of("query", {0, 2, 1, 3});  // [b, heads, t, d]
    const std::string k = heads_of("key", {0, 2, 3, 1});    // [b, heads, d, t]
    const std::string v = heads_of("value", {0, 2, 1, 3});
    const std::string scores =
        g.node("Add", {g.node("Mul", {g.node("MatMul", {q, k}), scale}), bias});
    const std::string probs = g.node("Softmax", {scores}, {attr_int("axis", -1)});
    const std::string context = g.node(
        "Reshape",
        {g.node("Transpose", {g.node("MatMul", {probs, v})}, {attr_ints("perm", {0, 2, 1, 3})}),
         merge_shape});
    const std::string attended =
        g.layer_norm(g.node("Add", {g.linear(context, l + "attention.output.dense."), x}),
                     l + "attention.output.LayerNorm.", eps);
    const std::string inner = g.activation(act, g.linear(attended, l + "intermediate.dense."));
    x = g.layer_norm(g.node("Add", {g.linear(inner, l + "output.dense."), attended}),
                     l + "output.LayerNorm.", eps);
  }
  out.hidden = x;
  return out;
}

std::string first_token(GraphBuilder& g, const std::string& hidden) {
  return g.node("Gather", {hidden, g.constant_ints({0}, true)}, {attr_int("axis", 1)});
}

// The sentence-transformers Pooling modes, concatenated in their order (sentence_embedding.cpp).
std::string pool(GraphBuilder& g, const std::string& mode, const std::string& hidden,
                 const std::string& mask_f) {
  const std::string m = g.unsqueeze(mask_f, {-1});  // [b, t, 1]
  const std::string tiny = g.constant_float(1e-9f);
  auto masked_sum = [&](const std::string& weights) {
    return g.reduce_sum(g.node("Mul", {hidden, weights}), {1}, false);
  };
  if (mode == "cls") return first_token(g, hidden);
  if (mode == "max") {
    const std::string padded = g.node("Equal", {m, g.constant_float(0.0f)});
    return g.reduce("ReduceMax", g.node("Where", {padded, g.constant_float(-1e9f), hidden}), {1},
                    false);
  }
  if (mode == "mean" || mode == "mean_sqrt_len") {
    std::string count = g.node("Max", {g.reduce_sum(m, {1}, false), tiny});
    if (mode == "mean_sqrt_len") count = g.node("Sqrt", {count});
    return g.node("Div", {masked_sum(m), count});
  }
  // Positions 1 .. t as floats, [1, t, 1].
  const std::string length = g.node(
      "Gather", {g.node("Shape", {hidden}), g.constant_ints({1}, true)}, {attr_int("axis", 0)});
  const std::string index =
      g.node("Range", {g.constant_ints({0}, true), length, g.constant_ints({1}, true)});
  if (mode == "weightedmean") {
    const std::string ones_up = g.unsqueeze(
        g.node("Add",
               {g.node("Cast", {index}, {attr_int("to", g.float_type())}), g.constant_float(1.0f)}),
        {0, 2});
    const std::string w = g.node("Mul", {m, ones_up});
    return g.node("Div", {masked_sum(w), g.node("Max", {g.reduce_sum(w, {1}, false), tiny})});
  }
  if (mode == "lasttoken") {
    // Right-padded rows: the last real token is at length - 1; a one-hot row picks it exactly.
    const std::string last = g.node(
        "Max", {g.node("Sub", {g.reduce_sum("attention_mask", {1}, true), g.constant_ints({1})}),
                g.constant_ints({0})});  // [b, 1]
    const std::string one_hot = g.node("Cast", {g.node("Equal", {g.unsqueeze(index, {0}), last})},
                                       {attr_int("to", g.float_type())});  // [b, t]
    return masked_sum(g.unsqueeze(one_hot, {-1}));
  }
  fail(ErrorCode::kInternal, "no ONNX form for the pooling mode '{}'", mode);
}

}  // namespace

void build_bert_graph(GraphBuilder& g, const Json& s, const std::vector<int64_t>& static_shape) {
  std::vector<std::string> shape = {"batch", "sequence"};
  if (!static_shape.empty()) {
    MS_CHECK(static_shape.size() == 2, ErrorCode::kUsage,
             "--static for a text model is BATCH,SEQUENCE (e.g. 1,128), got {} sizes",
             static_shape.size());
    const int64_t positions =
        s.at("max_position_embeddings").get<int64_t>() -
        (s.at("roberta_positions").get<bool>() ? s.at("pad_token_id").get<int64_t>() + 1 : 0);
    MS_CHECK(static_shape[1] <= positions, ErrorCode::kUsage,
             "--static sequence length {} is longer than the model's {} positions", static_shape[1],
             positions);
    shape = {std::to_string(static_shape[0]), std::to_string(static_shape[1])};
  }
  for (const char* name : {"input_ids", "attention_mask", "token_type_ids"})
    g.input(name, TensorProto::INT64, shape);

  const Encoder enc = build_encoder(g, s);
  const std::string head = s.at("head").get<std::string>();
  const std::string p = s.at("encoder").get<std::string>();
  const std::string batch = shape[0], seq = shape[1];
  const int64_t hidden_size = s.at("hidden_size").get<int64_t>();
  auto rows = [&](const std::string& weight) { return std::to_string(g.tensor(weight).size(0)); };
  if (head == "sequence-classification") {
    std::string logits;
    std::string out_weight;
    if (s.at("classifier").get<std::string>() == "roberta") {
      const std::string x =
          g.node("Tanh", {g.linear(first_token(g, enc.hidden), "classifier.dense.")});
      logits = g.linear(x, "classifier.out_proj.");
      out_weight = "classifier.out_proj.weight";
    } else {
      const std::string pooled =
          g.node("Tanh", {g.linear(first_token(g, enc.hidden), p + "pooler.dense.")});
      logits = g.linear(pooled, "classifier.");
      out_weight = "classifier.weight";
    }
    g.output(logits, "logits", TensorProto::FLOAT, {batch, rows(out_weight)});
  } else if (head == "token-classification") {
    g.output(g.linear(enc.hidden, "classifier."), "logits", TensorProto::FLOAT,
             {batch, seq, rows("classifier.weight")});
  } else if (head == "fill-mask") {
    std::string x = g.activation(s.at("hidden_act").get<std::string>(),
                                 g.linear(enc.hidden, "cls.predictions.transform.dense."));
    x = g.layer_norm(x, "cls.predictions.transform.LayerNorm.",
                     s.at("layer_norm_eps").get<double>());
    // The decoder may be the word-embedding matrix itself: one initializer, transposed by a node
    // rather than stored twice.
    const std::string decoder = s.at("decoder").get<std::string>();
    const std::string w = g.node("Transpose", {g.weight(decoder)}, {attr_ints("perm", {1, 0})});
    const std::string logits =
        g.node("Add", {g.node("MatMul", {x, w}), g.weight("cls.predictions.bias")});
    g.output(logits, "logits", TensorProto::FLOAT, {batch, seq, rows(decoder)});
  } else if (head == "sentence-embedding") {
    std::vector<std::string> parts;
    for (const Json& mode : s.at("pooling")) parts.push_back(pool(g, mode, enc.hidden, enc.mask_f));
    std::string x = parts.size() == 1 ? parts[0] : g.node("Concat", parts, {attr_int("axis", 1)});
    int64_t dim = hidden_size * static_cast<int64_t>(parts.size());
    for (const Json& step : s.at("steps")) {
      if (step.contains("dense")) {
        const std::string prefix = step.at("dense").get<std::string>() + ".linear.";
        x = g.activation(step.at("activation").get<std::string>(),
                         g.linear(x, prefix, g.has_weight(prefix + "bias")));
        dim = g.tensor(prefix + "weight").size(0);
      } else {
        const std::string norm = g.reduce("ReduceL2", x, {1}, true);
        x = g.node("Div", {x, g.node("Max", {norm, g.constant_float(1e-12f)})});
      }
    }
    g.output(enc.hidden, "last_hidden_state", TensorProto::FLOAT,
             {batch, seq, std::to_string(hidden_size)});
    g.output(x, "sentence_embedding", TensorProto::FLOAT, {batch, std::to_string(dim)});
  } else {
    fail(ErrorCode::kInternal, "no ONNX form for the BERT head '{}'", head);
  }
}

}  // namespace ms::exporter
