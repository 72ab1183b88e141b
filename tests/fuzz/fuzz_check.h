// What every fuzz target accepts from the library: an ms::Error is a documented rejection, except
// kInternal (the CLI's exit 70, "internal error"), which only a bug raises.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "ms/core/error.h"

namespace ms::fuzz {

/// Called in each target's `catch (const ms::Error& e)`; aborts (a finding) on kInternal.
inline void rejected(const Error& e) {
  if (e.code() == ErrorCode::kInternal) {
    std::fprintf(stderr, "fuzz: internal error (a bug, exit 70 in the CLI): %s\n", e.what());
    std::abort();
  }
}

}  // namespace ms::fuzz
