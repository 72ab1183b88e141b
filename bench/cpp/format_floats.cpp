// How fast embeddings become JSON text: the float formatting of `ms infer`'s sentence-embedding
// lines (lib/infer/src/pipeline.cpp, json_float_array), with fmt's format string
// parsed at run time ("{}") and compiled (FMT_COMPILE("{}"), what ms uses). Both give the
// shortest decimal that reads back as the same float; the program checks that the texts are equal.
//
//   build/bin/ms_bench_format_floats [ROWS=20000]
#include <fmt/compile.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int kDim = 384;  // all-MiniLM-L6-v2's embedding size

template <typename Format>
std::string format_rows(const std::vector<float>& values, Format format_one, double& ns_per_float) {
  const auto start = std::chrono::steady_clock::now();
  std::string all;
  fmt::memory_buffer row;
  for (std::size_t r = 0; r < values.size() / kDim; ++r) {
    row.clear();
    for (int i = 0; i < kDim; ++i) {
      if (i > 0) row.push_back(',');
      format_one(row, values[r * kDim + i]);
    }
    all.append(row.data(), row.size());
    all.push_back('\n');
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ns_per_float = seconds * 1e9 / static_cast<double>(values.size());
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  const long rows = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 20000;
  if (rows <= 0) {
    std::fprintf(stderr, "usage: %s [ROWS > 0]\n", argv[0]);
    return 2;
  }
  // Values shaped like normalised embeddings: small, of both signs.
  std::mt19937 rng(1);
  std::normal_distribution<float> value(0.0F, 0.05F);
  std::vector<float> values(static_cast<std::size_t>(rows) * kDim);
  for (float& v : values) v = value(rng);

  double runtime_ns = 0, compiled_ns = 0;
  for (int round = 0; round < 3; ++round) {  // the last round counts: caches and pages are warm
    const std::string runtime = format_rows(
        values, [](auto& out, float v) { fmt::format_to(std::back_inserter(out), "{}", v); },
        runtime_ns);
    const std::string compiled = format_rows(
        values,
        [](auto& out, float v) { fmt::format_to(std::back_inserter(out), FMT_COMPILE("{}"), v); },
        compiled_ns);
    if (runtime != compiled) {
      std::fprintf(stderr, "the two formats gave different texts\n");
      return 1;
    }
  }
  std::printf(
      "%ld rows of %d floats (fmt %d.%d.%d): \"{}\" %.1f ns/float, FMT_COMPILE(\"{}\") "
      "%.1f ns/float, same text\n",
      rows, kDim, FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100, runtime_ns,
      compiled_ns);
  return 0;
}
