// Test-only tool for tests/e2e/test_checkpoint_interop.py: `write FILE` saves a fixed tree of
// values and tensors with ms::tensor::save_checkpoint (the script builds the same tree in Python
// and compares it with torch.load's); `write-no-floats FILE` the same without Python floats (torch
// 1.13's weights_only reader knows no BINFLOAT); `read FILE` loads one with load_checkpoint and
// prints it as JSON in the script's encoding (floats tagged, tensors as dtype, shape and raw bytes
// in hex).
#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "ms/core/error.h"
#include "ms/tensor/checkpoint.h"

using ms::tensor::CheckpointValue;
using nlohmann::json;

namespace {

CheckpointValue tree(bool floats) {
  auto t = [](c10::ScalarType dtype) { return at::arange(6, at::kLong).reshape({2, 3}).to(dtype); };
  CheckpointValue state = CheckpointValue::dict();
  for (int p = 0; p < 2; ++p) {
    state.set(p, CheckpointValue::dict({{"step", at::arange(3, 4, at::kFloat).reshape({})},
                                        {"exp_avg", at::arange(6, at::kFloat).mul(0.5 + p)}}));
  }
  CheckpointValue group = CheckpointValue::dict({{"params", CheckpointValue::list({0, 1})},
                                                 {"amsgrad", false},
                                                 {"foreach", CheckpointValue()}});
  if (floats) {
    group.set("lr", 0.1);
    group.set("betas", CheckpointValue::tuple({0.9, 0.999}));
  }
  CheckpointValue dtypes = CheckpointValue::list();
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong, at::kInt,
                     at::kShort, at::kChar, at::kByte, at::kBool}) {
    dtypes.push_back(dtype == at::kBool ? t(at::kLong).remainder(2).to(at::kBool) : t(dtype));
  }
  CheckpointValue big = CheckpointValue::list();
  for (std::int64_t v :
       {std::int64_t{1} << 40, -(std::int64_t{1} << 40), INT64_MAX, INT64_MIN, std::int64_t{255},
        std::int64_t{256}, std::int64_t{65535}, std::int64_t{65536}, std::int64_t{-1},
        std::int64_t{1} << 31, std::int64_t{INT32_MIN} - 1}) {
    big.push_back(v);
  }
  CheckpointValue root = CheckpointValue::dict({
      {"state", state},
      {"param_groups", CheckpointValue::list({group})},
      {"model", CheckpointValue::state_dict(
                    {{"b.bias", at::arange(3, at::kDouble)}, {"a.weight", t(at::kFloat)}})},
      {"big", big},
      {"dtypes", dtypes},
      {"noncontig", at::arange(12, at::kFloat).reshape({3, 4}).t()},
      {"offset", at::arange(10, at::kInt).slice(0, 3, 7)},
      {"empty", at::zeros({0, 3})},
      {"scalar", at::arange(7, 8, at::kLong).reshape({})},
      {"text", CheckpointValue::tuple({"h\xc3\xa9llo", std::string(300, 'x'), ""})},
      {"flags", CheckpointValue::tuple({true, false, CheckpointValue(), 1, 2, 3, 4})},
  });
  if (floats) root.set("floats", CheckpointValue::list({0.1, 1e300, -0.0, 1.5, -2.5e-300}));
  return root;
}

json encode(const CheckpointValue& v) {
  using Kind = CheckpointValue::Kind;
  switch (v.kind()) {
    case Kind::kNone:
      return nullptr;
    case Kind::kBool:
      return v.as_bool();
    case Kind::kInt:
      return v.as_int();
    case Kind::kFloat: {
      // The bits, so that the comparison is exact (-0.0 too).
      const double f = v.as_float();
      std::uint64_t bits = 0;
      std::memcpy(&bits, &f, sizeof bits);
      return json{{"float", bits}};
    }
    case Kind::kString:
      return v.as_string();
    case Kind::kTensor: {
      const at::Tensor t = v.as_tensor().contiguous();
      std::string hex;
      const auto* bytes = static_cast<const unsigned char*>(t.data_ptr());
      for (std::size_t i = 0; i < t.numel() * t.element_size(); ++i) {
        char buf[3];
        std::snprintf(buf, sizeof buf, "%02x", bytes[i]);
        hex += buf;
      }
      return json{{"tensor", std::string(c10::toString(t.scalar_type()))},
                  {"shape", t.sizes().vec()},
                  {"hex", hex}};
    }
    case Kind::kList:
    case Kind::kTuple: {
      json items = json::array();
      for (const auto& item : v.items()) items.push_back(encode(item));
      return json{{v.kind() == Kind::kList ? "list" : "tuple", items}};
    }
    case Kind::kDict: {
      json entries = json::array();
      for (const auto& [key, value] : v.entries())
        entries.push_back(json::array({encode(key), encode(value)}));
      return json{{"dict", entries}, {"ordered", v.is_ordered_dict()}};
    }
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc == 3 ? argv[1] : "";
  if (command != "write" && command != "write-no-floats" && command != "read") {
    std::cerr << "usage: ms_checkpoint_tool write|write-no-floats|read FILE\n";
    return 2;
  }
  try {
    if (command == "read") {
      std::cout << encode(ms::tensor::load_checkpoint(argv[2])).dump() << "\n";
    } else {
      ms::tensor::save_checkpoint(argv[2], tree(command == "write"));
    }
  } catch (const ms::Error& e) {
    std::cerr << e.what() << "\n";
    return ms::exit_code(e.code());
  }
  return 0;
}
