// Includes Catch2 v2 (Debian 12: catch2/catch.hpp) or v3 (GPU machine: catch2/catch_all.hpp).
// Include LibTorch headers before this one: glog's CHECK would otherwise replace Catch's.
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#define MS_CATCH2_V3 1
#else
#include <catch2/catch.hpp>
#endif
