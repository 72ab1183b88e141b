#include "ms/infer/pipeline.h"

#include "ms/core/error.h"

namespace ms::infer {

void Pipeline::set_dtype(const std::string& dtype) {
  throw Error(ErrorCode::kUsage,
              fmt::format("--dtype {}: the {} pipeline computes in float32 only", dtype, task()),
              "leave out --dtype (fp32 is the default)");
}

}  // namespace ms::infer
