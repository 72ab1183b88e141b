// What `ms train --nproc` prints of its workers' stderr: ordinary lines pass through as they
// come; an error block ("ms: error: " and its indented lines) prints once however many workers
// write it, and a different one still prints.
#include "ms/infer/worker_output.h"

#include <string>
#include <vector>

#include "catch.h"

using ms::infer::ErrorDeduplicator;

TEST_CASE("workers' errors print once each, other lines as they come", "[launch]") {
  std::vector<std::string> printed;
  ErrorDeduplicator out(3, [&](const std::string& text) { printed.push_back(text); });
  const std::string error =
      "ms: error: no evaluation data\n  hint: give --eval-dataset\n  (run with --verbose)\n";
  out.add(0, "epoch [1][1/4]\tloss: 0.7\n");
  REQUIRE(printed == std::vector<std::string>{"epoch [1][1/4]\tloss: 0.7\n"});
  // Pieces of lines, split anywhere, from two workers at once.
  out.add(1, error.substr(0, 7));
  out.add(2, error.substr(0, 20));
  out.add(1, error.substr(7));
  out.add(2, error.substr(20));
  // A block may go on with more indented lines until the stream ends: not printed yet.
  CHECK(printed.size() == 1);
  out.close(1);
  out.close(2);
  REQUIRE(printed.size() == 2);
  CHECK(printed[1] == error);
  CHECK(out.repeated_errors() == 1);
  // Another error, then an ordinary line that ends the block; a last line without a newline.
  out.add(0, "ms: error: rank 0 of 3: the gradient all-reduce failed\n  hint: see rank 1\n");
  out.add(0, "ms train: done\nno newline");
  out.close(0);
  REQUIRE(printed.size() == 5);
  CHECK(printed[2] ==
        "ms: error: rank 0 of 3: the gradient all-reduce failed\n  hint: see rank 1\n");
  CHECK(printed[3] == "ms train: done\n");
  CHECK(printed[4] == "no newline\n");
  CHECK(out.repeated_errors() == 1);
}

TEST_CASE("a warning every worker writes prints once, one worker's prints every time", "[launch]") {
  std::vector<std::string> printed;
  ErrorDeduplicator out(2, [&](const std::string& text) { printed.push_back(text); });
  const std::string alike = "ms: warning: nothing left to train: the run resumes at epoch 3\n";
  out.add(0, alike);
  out.add(1, alike);
  REQUIRE(printed == std::vector<std::string>{alike});
  // Written twice by one worker (once by the other): printed twice.
  out.add(1, alike);
  CHECK(printed.size() == 2);
  out.add(0, alike);
  CHECK(printed.size() == 2);
  // A warning only worker 1 meets, each time it meets it.
  const std::string own = "ms: warning: iteration 4: the loss is nan; the batch is skipped\n";
  out.add(1, own);
  out.add(1, own);
  REQUIRE(printed.size() == 4);
  CHECK(printed[2] == own);
  CHECK(printed[3] == own);
  out.close(0);
  out.close(1);
  CHECK(out.repeated_errors() == 0);
}
