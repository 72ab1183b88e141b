// Test-only tool for tests/e2e/test_tensorboard.py: writes scalars through ms::trainer's
// TensorboardWriter into LOG_DIR, so that the real `tensorboard` package can read them.
//
//   ms_test_tensorboard_scalars LOG_DIR < commands
//
// Prints the event file's path first, then runs one command per line of standard input:
//   scalar TAG STEP VALUE WALL_TIME   add_scalar (VALUE as strtod reads it: nan, inf and hex
//                                     floats too; WALL_TIME "now" for the default stamp)
//   flush                             flush(), then prints "flushed"
// End of input destroys the writer, which flushes what is pending. An ms::Error exits with its
// code's exit status, a malformed command with 2.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>

#include "ms/core/error.h"
#include "ms/trainer/tensorboard.h"

namespace {

double parse_double(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  MS_CHECK(!text.empty() && *end == '\0', ms::ErrorCode::kUsage, "not a number: '{}'", text);
  return value;
}

void run(const std::string& log_dir) {
  ms::trainer::TensorboardWriter writer(log_dir);
  std::cout << writer.file().string() << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string command, tag, step, value, wall_time;
    in >> command;
    if (command == "flush") {
      writer.flush();
      std::cout << "flushed" << std::endl;
    } else if (command == "scalar" && (in >> tag >> step >> value >> wall_time)) {
      const std::int64_t step_number = std::stoll(step);
      if (wall_time == "now") {
        writer.add_scalar(tag, parse_double(value), step_number);
      } else {
        writer.add_scalar(tag, parse_double(value), step_number, parse_double(wall_time));
      }
    } else {
      ms::fail(ms::ErrorCode::kUsage, "bad command line: '{}'", line);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: ms_test_tensorboard_scalars LOG_DIR < commands\n";
    return 2;
  }
  try {
    run(argv[1]);
  } catch (const ms::Error& e) {
    std::cerr << "ms_test_tensorboard_scalars: error: " << e.what() << "\n";
    return ms::exit_code(e.code());
  } catch (const std::exception& e) {  // std::stoll's
    std::cerr << "ms_test_tensorboard_scalars: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
