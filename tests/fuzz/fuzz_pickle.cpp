// libFuzzer target: pickles -> ms::pickle::unpickle (ms/core/pickle.h), the one reader behind
// pytorch_model.bin (data.pkl of the zip layout, and the legacy layout's pickles in a row, read
// with torch's persistent-id hook) and the hub's cache index and cookie jar readers.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "fuzz_check.h"
#include "ms/core/error.h"
#include "ms/core/pickle.h"
#include "ms/hub/pickle.h"

namespace {

using ms::pickle::Value;

// As torch_pickle.cpp does: a persistent id becomes an external value (there, a storage).
ms::pickle::ValuePtr persistent_load(const Value& pid) {
  auto v = std::make_shared<Value>(Value::Kind::kExternal);
  v->external = pid.kind;
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  ms::pickle::Hooks hooks;
  hooks.persistent_load = persistent_load;
  // A legacy torch.save file is several pickles in a row; read on while they parse.
  std::size_t pos = 0;
  for (int i = 0; i < 8 && pos < bytes.size(); ++i) {
    try {
      const ms::pickle::Unpickled u = ms::pickle::unpickle(bytes, pos, "fuzz.pkl", hooks);
      if (u.value == nullptr || u.end <= pos || u.end > bytes.size()) __builtin_trap();
      pos = u.end;
    } catch (const ms::Error& e) {
      ms::fuzz::rejected(e);
      break;  // a documented rejection (kIntegrity)
    }
  }
  // The hub's readers of modelscope's cache index (.msc, .mdl) and credentials/cookies.
  try {
    (void)ms::hub::unpickle_cache_index(bytes);
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);
  }
  try {
    (void)ms::hub::unpickle_str_dict(bytes);
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);
  }
  try {
    (void)ms::hub::find_pickled_cookie(bytes, "m_session_id", 1700000000);
  } catch (const ms::Error& e) {
    ms::fuzz::rejected(e);
  }
  return 0;
}
