// For unit tests: the ms::Error a piece of code throws, as its code (a test fails when it throws
// none).
#pragma once

#include <functional>
#include <string>

#include "catch.h"
#include "ms/core/error.h"

/// The code of the ms::Error `body` throws; fails the test when it throws none. With `what`, also
/// the error's message and hint ("message | hint").
inline ms::ErrorCode code_of(const std::function<void()>& body, std::string* what = nullptr) {
  try {
    body();
  } catch (const ms::Error& e) {
    if (what != nullptr) *what = std::string(e.what()) + " | " + e.hint();
    return e.code();
  }
  FAIL("expected an ms::Error");
  return ms::ErrorCode::kInternal;
}
