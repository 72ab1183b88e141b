// For unit tests: the ms::Error a piece of code throws, as its code (a test fails when it throws
// none).
#pragma once

#include <functional>

#include "catch.h"
#include "ms/core/error.h"

/// The code of the ms::Error `body` throws; fails the test when it throws none.
inline ms::ErrorCode code_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const ms::Error& e) {
    return e.code();
  }
  FAIL("expected an ms::Error");
  return ms::ErrorCode::kInternal;
}
