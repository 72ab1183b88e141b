// `ms serve` without HTTP or LibTorch: the dynamic batcher over a fake pipeline (batch shapes,
// length grouping, a full queue, a bad input failing alone, timeouts, draining), the /call body
// rules of ModelScope's service API, and the Prometheus text.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "catch.h"
#include "ms/core/encoding.h"
#include "ms/core/error.h"
#include "ms/serve/batcher.h"
#include "ms/serve/call.h"
#include "ms/serve/metrics.h"

using ms::infer::PipelineInput;
using ms::infer::PipelineResult;
using ms::serve::BatcherOptions;
using ms::serve::CallError;
using ms::serve::CallRequest;
using ms::serve::CallShape;
using ms::serve::DynamicBatcher;
using WaitResult = ms::serve::DynamicBatcher::WaitResult;
using nlohmann::json;

namespace {

// Echoes each text with the size of the batch it ran in; a batch holding "boom" fails as a whole.
class FakePipeline : public ms::infer::Pipeline {
 public:
  const std::string& task() const override { return task_; }
  std::string device() const override { return "cpu"; }
  std::size_t cost(const PipelineInput& in) const override { return in.text.size(); }
  std::vector<PipelineResult> run(const std::vector<const PipelineInput*>& batch) override {
    std::vector<std::string> texts;
    for (const auto* in : batch) texts.push_back(in->text);
    {
      std::lock_guard<std::mutex> lock(mu_);
      batches_.push_back(texts);
    }
    for (const auto& t : texts) {
      if (t == "boom") throw ms::Error(ms::ErrorCode::kUsage, "cannot take boom");
      // A text starting "gate" holds its forward pass until open_gate(), for tests that need
      // one to be running.
      if (t.rfind("gate", 0) == 0) {
        std::unique_lock<std::mutex> lock(mu_);
        gate_entered_ = true;
        gate_cv_.notify_all();
        gate_cv_.wait(lock, [&] { return gate_open_; });
      }
    }
    std::vector<PipelineResult> out(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      out[i].output = {{"text", texts[i]}, {"batch", batch.size()}};
    }
    return out;
  }
  void forget(const PipelineInput& in) const override {
    std::lock_guard<std::mutex> lock(mu_);
    forgotten_.push_back(in.text);
  }
  std::vector<std::string> forgotten() {
    std::lock_guard<std::mutex> lock(mu_);
    return forgotten_;
  }
  std::vector<std::vector<std::string>> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }
  void wait_at_gate() {
    std::unique_lock<std::mutex> lock(mu_);
    gate_cv_.wait(lock, [&] { return gate_entered_; });
  }
  void open_gate() {
    std::lock_guard<std::mutex> lock(mu_);
    gate_open_ = true;
    gate_cv_.notify_all();
  }

 private:
  std::string task_ = "text-classification";
  mutable std::mutex mu_;
  std::vector<std::vector<std::string>> batches_;
  mutable std::vector<std::string> forgotten_;
  std::condition_variable gate_cv_;
  bool gate_entered_ = false;
  bool gate_open_ = false;
};

std::vector<PipelineInput> texts(std::initializer_list<const char*> list) {
  std::vector<PipelineInput> out;
  for (const char* t : list) {
    PipelineInput in;
    in.text = t;
    out.push_back(in);
  }
  return out;
}

BatcherOptions options(std::size_t max_batch, std::size_t max_queue = 100) {
  BatcherOptions o;
  o.max_batch = max_batch;
  o.max_queue = max_queue;
  o.max_wait = std::chrono::milliseconds(0);
  return o;
}

const auto kForever = ms::serve::Clock::now() + std::chrono::hours(1);

ms::serve::UrlFetcher no_fetch = [](const std::string& url) -> std::string {
  throw ms::Error(ms::ErrorCode::kNetwork, "no network in this test: " + url);
};

CallError call_error(const std::string& task, const std::string& body,
                     std::size_t max_inputs = 1000) {
  try {
    ms::serve::parse_call(task, body, no_fetch, max_inputs);
  } catch (const CallError& e) {
    return e;
  }
  FAIL("expected a CallError for " << body);
  return {};
}

}  // namespace

TEST_CASE("batcher: workers that cannot all start end in an ms::Error, not std::terminate") {
  struct ConcurrentPipeline : FakePipeline {
    bool concurrent() const override { return true; }
  };
  // With address space for a few thread stacks only, most of 1000 workers cannot start. In a
  // child process, so that the limit (and an abort, as before the fix) stays there.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    long pages = 0;
    std::FILE* statm = std::fopen("/proc/self/statm", "r");
    if (statm == nullptr || std::fscanf(statm, "%ld", &pages) != 1) std::_Exit(10);
    std::fclose(statm);
    rlimit limit{};
    limit.rlim_cur = limit.rlim_max =
        static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + (64u << 20);
    if (::setrlimit(RLIMIT_AS, &limit) != 0) std::_Exit(11);
    int code = 12;  // every worker started: the limit did not bite
    try {
      ConcurrentPipeline pipeline;
      BatcherOptions o = options(1);
      o.workers = 1000;
      DynamicBatcher batcher(pipeline, o);
    } catch (const ms::Error& e) {
      const bool named =
          std::string(e.what()).find("cannot start 1000 worker threads") != std::string::npos;
      code = e.code() == ms::ErrorCode::kIo && named ? 0 : 13;
    }
    std::_Exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));  // not killed by SIGABRT
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("batcher: a batch holds the oldest input and those nearest it in length") {
  FakePipeline pipeline;
  DynamicBatcher batcher(pipeline, options(3));
  batcher.hold(true);
  // Lengths 5, 1, 6, 20, 4, 21: the oldest (5) goes with 6 and 4; then 1 with 20 and 21.
  std::vector<std::shared_ptr<ms::serve::Submission>> subs;
  for (const char* t :
       {"aaaaa", "b", "cccccc", "dddddddddddddddddddd", "eeee", "fffffffffffffffffffff"}) {
    subs.push_back(batcher.submit(texts({t})));
    REQUIRE(subs.back());
  }
  REQUIRE(batcher.queue_depth() == 6);
  batcher.hold(false);
  for (auto& s : subs) REQUIRE(batcher.wait(*s, kForever) == WaitResult::kDone);
  const auto batches = pipeline.batches();
  // Each batch runs as forward passes of similar length, longest first: padding 1 to 21 would
  // more than double that pass's tokens.
  REQUIRE(batches.size() == 3);
  CHECK(batches[0] == std::vector<std::string>{"cccccc", "aaaaa", "eeee"});
  CHECK(batches[1] == std::vector<std::string>{"fffffffffffffffffffff", "dddddddddddddddddddd"});
  CHECK(batches[2] == std::vector<std::string>{"b"});
  CHECK(subs[2]->results()[0].output["text"] == "cccccc");
  CHECK(subs[2]->results()[0].output["batch"] == 3);
}

TEST_CASE("batcher: a request's list of inputs is batched with other requests") {
  FakePipeline pipeline;
  DynamicBatcher batcher(pipeline, options(8));
  batcher.hold(true);
  auto a = batcher.submit(texts({"x", "y", "z"}));
  auto b = batcher.submit(texts({"w"}));
  batcher.hold(false);
  REQUIRE(batcher.wait(*a, kForever) == WaitResult::kDone);
  REQUIRE(batcher.wait(*b, kForever) == WaitResult::kDone);
  REQUIRE(pipeline.batches().size() == 1);
  CHECK(a->results()[2].output["text"] == "z");
  CHECK(b->results()[0].output["batch"] == 4);
}

TEST_CASE("batcher: a full queue refuses a whole request; draining refuses new ones") {
  FakePipeline pipeline;
  DynamicBatcher batcher(pipeline, options(8, 3));
  batcher.hold(true);
  auto a = batcher.submit(texts({"x", "y"}));
  REQUIRE(a);
  CHECK_FALSE(batcher.submit(texts({"z", "w"})));  // 4 > 3: none of it is queued
  CHECK(batcher.queue_depth() == 2);
  CHECK(batcher.submit(texts({"z"})));
  // Draining runs what is queued even while held, and takes nothing new.
  batcher.drain();
  CHECK_FALSE(batcher.submit(texts({"v"})));
  REQUIRE(batcher.wait(*a, kForever) == WaitResult::kDone);
  CHECK(a->results()[1].output["text"] == "y");
}

TEST_CASE("batcher: one bad input fails alone") {
  FakePipeline pipeline;
  DynamicBatcher batcher(pipeline, options(8));
  batcher.hold(true);
  auto good = batcher.submit(texts({"fine"}));
  auto bad = batcher.submit(texts({"boom"}));
  auto other = batcher.submit(texts({"also fine"}));
  batcher.hold(false);
  REQUIRE(batcher.wait(*good, kForever) == WaitResult::kDone);
  REQUIRE(batcher.wait(*bad, kForever) == WaitResult::kDone);
  REQUIRE(batcher.wait(*other, kForever) == WaitResult::kDone);
  CHECK_FALSE(good->results()[0].error);
  CHECK(good->results()[0].output["text"] == "fine");
  REQUIRE(bad->results()[0].error);
  CHECK(std::string(bad->results()[0].error->what()) == "cannot take boom");
  CHECK(other->results()[0].output["text"] == "also fine");
}

TEST_CASE("batcher: a request past its deadline leaves the queue") {
  FakePipeline pipeline;
  DynamicBatcher batcher(pipeline, options(8));
  batcher.hold(true);
  auto late = batcher.submit(texts({"late", "later"}));
  auto kept = batcher.submit(texts({"kept"}));
  CHECK(batcher.wait(*late, ms::serve::Clock::now()) == WaitResult::kTimedOut);
  CHECK(batcher.queue_depth() == 1);
  // What the pipeline kept for them (cost()'s tokens) is dropped too.
  CHECK(pipeline.forgotten() == std::vector<std::string>{"late", "later"});
  batcher.hold(false);
  REQUIRE(batcher.wait(*kept, kForever) == WaitResult::kDone);
  REQUIRE(pipeline.batches().size() == 1);
  CHECK(pipeline.batches()[0] == std::vector<std::string>{"kept"});
}

TEST_CASE("batcher: a request whose client left leaves the queue") {
  FakePipeline pipeline;
  DynamicBatcher batcher(pipeline, options(8));
  batcher.hold(true);
  auto left = batcher.submit(texts({"nobody waits"}));
  auto kept = batcher.submit(texts({"kept"}));
  int asked = 0;
  // The client is there for the first two checks, then gone.
  CHECK(batcher.wait(*left, kForever, [&] { return ++asked > 2; }) == WaitResult::kClientGone);
  CHECK(asked == 3);
  CHECK(batcher.queue_depth() == 1);
  CHECK(pipeline.forgotten() == std::vector<std::string>{"nobody waits"});
  batcher.hold(false);
  REQUIRE(batcher.wait(*kept, kForever, [] { return false; }) == WaitResult::kDone);
  CHECK(pipeline.batches()[0] == std::vector<std::string>{"kept"});
}

TEST_CASE("batcher: a forward pass nobody waits for any more is not run") {
  FakePipeline pipeline;
  DynamicBatcher batcher(pipeline, options(8));
  batcher.hold(true);
  // One batch, two forward passes (lengths far apart): the long one first, held at the gate.
  auto running = batcher.submit(texts({"gate: a much longer text than the other"}));
  auto given_up = batcher.submit(texts({"b"}));
  batcher.hold(false);
  pipeline.wait_at_gate();
  CHECK(batcher.wait(*given_up, ms::serve::Clock::now()) == WaitResult::kTimedOut);
  pipeline.open_gate();
  REQUIRE(batcher.wait(*running, kForever) == WaitResult::kDone);
  batcher.drain();
  while (batcher.running() > 0) std::this_thread::yield();
  // "b"'s pass was skipped (and what the pipeline kept for it dropped).
  CHECK(pipeline.batches() ==
        std::vector<std::vector<std::string>>{{"gate: a much longer text than the other"}});
  CHECK(pipeline.forgotten() == std::vector<std::string>{"b"});
}

TEST_CASE("batcher: options out of range are usage errors") {
  FakePipeline pipeline;
  CHECK_THROWS_AS(DynamicBatcher(pipeline, options(0)), ms::Error);
  CHECK_THROWS_AS(DynamicBatcher(pipeline, options(4, 0)), ms::Error);
}

TEST_CASE("call: text inputs as ModelScope's service takes them") {
  CallRequest r = ms::serve::parse_call("text-classification", R"({"input": "good"})", no_fetch);
  REQUIRE(r.inputs.size() == 1);
  CHECK(r.shape == CallShape::kOne);
  CHECK(r.inputs[0].text == "good");

  r = ms::serve::parse_call("text-classification",
                            R"({"input": {"text": "a", "text2": "b"}, "parameters": {"topk": 2}})",
                            no_fetch);
  CHECK(r.inputs[0].text == "a");
  CHECK(r.inputs[0].text_pair == "b");
  CHECK(r.topk == 2u);

  r = ms::serve::parse_call("text-classification", R"({"input": ["a", {"text": "b"}]})", no_fetch);
  CHECK(r.shape == CallShape::kList);
  REQUIRE(r.inputs.size() == 2);
  CHECK(r.fields[1] == "input[1]");

  // A pair task's two-string list is one pair; a list of pairs is several inputs.
  r = ms::serve::parse_call("sentence-similarity", R"({"input": ["a", "b"]})", no_fetch);
  CHECK(r.shape == CallShape::kOne);
  CHECK(r.inputs[0].text_pair == "b");
  r = ms::serve::parse_call("sentence-similarity", R"({"input": [["a", "b"], ["c", "d"]]})",
                            no_fetch);
  CHECK(r.shape == CallShape::kList);
  CHECK(r.inputs[1].text == "c");
}

TEST_CASE("call: malformed bodies name the field at fault") {
  CHECK(call_error("text-classification", "{\"input\":").field == "body");
  CHECK(call_error("text-classification", "[1]").field == "body");
  CHECK(call_error("text-classification", "{}").field == "input");
  CHECK(call_error("text-classification", R"({"input": 3})").field == "input");
  CHECK(call_error("text-classification", R"({"input": {"txt": "a"}})").field == "input.txt");
  CHECK(call_error("text-classification", R"({"input": {"text": 1}})").field == "input.text");
  CHECK(call_error("text-classification", R"({"input": []})").field == "input");
  CHECK(call_error("text-classification", R"({"input": ["a", 2]})").field == "input[1]");
  CHECK(call_error("text-classification", R"({"input": "a", "extra": 1})").field == "extra");
  CHECK(call_error("text-classification", R"({"input": "a", "parameters": {"topk": 0}})").field ==
        "parameters.topk");
  CHECK(call_error("text-generation", R"({"input": "a", "parameters": {"top_k": 5}})").field ==
        "parameters.top_k");
  CHECK(call_error("text-classification", R"({"input": {}})").status == 400);
  // Two second sentences are as ambiguous as two first ones; empty texts are named where they are.
  CHECK(
      call_error("text-classification", R"({"input": {"text": "a", "text2": "b", "text_b": "c"}})")
          .field == "input.text_b");
  CHECK(call_error("text-classification", R"({"input": {"text": ""}})").field == "input.text");
  CHECK(call_error("sentence-similarity", R"({"input": ["a", ""]})").field == "input[1]");
  CHECK(call_error("sentence-embedding", R"({"input": {"source_sentence": ["a", ""]}})").field ==
        "input.source_sentence[1]");
}

TEST_CASE("call: more inputs than the queue takes are 413, found while parsing") {
  // The bad fourth element is never reached: the list's length is checked as it is parsed.
  const CallError e = call_error("text-classification", R"({"input": ["a", "b", "c", 4]})", 3);
  CHECK(e.status == 413);
  CHECK(e.field == "input");
  CHECK(e.message.find("more than 3 inputs") != std::string::npos);
  CHECK(call_error("text-classification", R"({"input": ["a", "b", 3]})", 3).status == 400);
  // A sentence pair is two strings but one input.
  CHECK(ms::serve::parse_call("sentence-similarity", R"({"input": ["a", "b"]})", no_fetch, 1)
            .inputs.size() == 1);
  CHECK(call_error("sentence-similarity", R"({"input": [["a", "b"], ["c", "d"]]})", 1).status ==
        413);
  // Embeddings count sources and sentences to compare together.
  CHECK(call_error("sentence-embedding",
                   R"({"input": {"source_sentence": ["a"], "sentences_to_compare": ["b", "c"]}})",
                   2)
            .status == 413);
  // An object's members are not inputs.
  CHECK(ms::serve::parse_call(
            "text-classification",
            R"({"input": {"text": "a", "text2": "b"}, "parameters": {"topk": 1}})", no_fetch, 1)
            .inputs.size() == 1);
}

TEST_CASE("call: sentence-embedding returns every embedding and the first one's dot products") {
  CallRequest r = ms::serve::parse_call(
      "sentence-embedding",
      R"({"input": {"source_sentence": ["q"], "sentences_to_compare": ["a", "b"]}})", no_fetch);
  REQUIRE(r.inputs.size() == 3);
  CHECK(r.shape == CallShape::kEmbedding);
  CHECK(r.fields[2] == "input.sentences_to_compare[1]");
  std::vector<PipelineResult> results(3);
  results[0].float_arrays = {{"text_embedding", {1, 2}}};
  results[1].float_arrays = {{"text_embedding", {3, 4}}};
  results[2].float_arrays = {{"text_embedding", {0.5F, -1}}};
  const json out = json::parse(ms::serve::render_call(r, results));
  CHECK(out["text_embedding"] == json::parse("[[1,2],[3,4],[0.5,-1]]"));
  CHECK(out["scores"] == json::parse("[11.0,-1.5]"));

  r = ms::serve::parse_call("sentence-embedding", R"({"input": {"source_sentence": "q"}})",
                            no_fetch);
  REQUIRE(r.inputs.size() == 1);
  results.resize(1);
  CHECK(json::parse(ms::serve::render_call(r, results))["scores"] == json::array());
  CHECK(call_error("sentence-embedding", R"({"input": {"sentences_to_compare": ["a"]}})").field ==
        "input");
  CHECK(call_error("sentence-embedding",
                   R"({"input": {"source_sentence": ["a"], "sentences_to_compare": []}})")
            .field == "input.sentences_to_compare");
}

TEST_CASE("call: images as base64 (standard, URL-safe, data: URL) or http(s) URLs") {
  const std::string bytes = std::string("\x89PNG\xff\xfe\x00", 7);
  const std::string b64 = ms::base64_encode(bytes);
  std::string url_safe = b64;
  for (char& c : url_safe) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!url_safe.empty() && url_safe.back() == '=') url_safe.pop_back();
  for (const std::string& value : {b64, url_safe, "data:image/png;base64," + b64}) {
    CallRequest r = ms::serve::parse_call("image-classification",
                                          json{{"input", {{"image", value}}}}.dump(), no_fetch);
    REQUIRE(r.inputs.size() == 1);
    CHECK(r.inputs[0].content == bytes);
  }
  std::string fetched;
  CallRequest r =
      ms::serve::parse_call("image-classification", R"({"input": "https://example.com/a.jpg"})",
                            [&](const std::string& url) {
                              fetched = url;
                              return std::string("JPEG");
                            });
  CHECK(fetched == "https://example.com/a.jpg");
  CHECK(r.inputs[0].content == "JPEG");

  CHECK(call_error("image-classification", R"({"input": {"image": "http://x/y.png"}})").field ==
        "input.image");
  const CallError local = call_error("image-classification", R"({"input": "/srv/data/cat.jpg"})");
  CHECK(local.field == "input");
  CHECK(local.message.find("local paths") != std::string::npos);
  CHECK(call_error("image-classification", R"({"input": "file:///etc/passwd"})").field == "input");
  CHECK(call_error("image-classification", R"({"input": {"image": "not base64!"}})").field ==
        "input.image");
  CHECK(call_error("image-classification", R"({"input": [{"picture": "AAAA"}]})").field ==
        "input[0].picture");
}

TEST_CASE("call: results render as the pipeline's output; failed inputs become errors") {
  CallRequest r = ms::serve::parse_call(
      "text-classification", R"({"input": ["a", "b"], "parameters": {"topk": 1}})", no_fetch);
  std::vector<PipelineResult> results(2);
  results[0].output = {{"scores", {0.75, 0.25}}, {"labels", {"pos", "neg"}}};
  results[1].output = {{"scores", {0.6, 0.4}}, {"labels", {"neg", "pos"}}};
  CHECK(json::parse(ms::serve::render_call(r, results)) ==
        json::parse(R"([{"labels":["pos"],"scores":[0.75]},{"labels":["neg"],"scores":[0.6]}])"));

  results[1].error = ms::Error(ms::ErrorCode::kUsage, "text too odd");
  try {
    ms::serve::render_call(r, results);
    FAIL("expected a CallError");
  } catch (const CallError& e) {
    CHECK(e.status == 400);
    CHECK(e.field == "input[1]");
    CHECK(e.message == "text too odd");
  }
  results[1].nonfinite_output = true;
  try {
    ms::serve::render_call(r, results);
    FAIL("expected a CallError");
  } catch (const CallError& e) {
    CHECK(e.status == 500);
  }
  const json body = json::parse(ms::serve::error_body(400, "input.text", "missing", "r-1"));
  CHECK(body["Code"] == 400);
  CHECK(body["Success"] == false);
  CHECK(body["Message"] == "input.text: missing");
  CHECK(body["Data"]["field"] == "input.text");
}

TEST_CASE("metrics: Prometheus counters and cumulative histograms") {
  ms::serve::Metrics m;
  m.request(200, 0.003);
  m.request(200, 0.2);
  m.request(503, 0.0001);
  m.batch(3, 0.01);
  m.batch(40, 0.02);
  const std::string text = m.render(5, 2);
  CHECK(text.find("ms_serve_requests_total{code=\"200\"} 2\n") != std::string::npos);
  CHECK(text.find("ms_serve_requests_total{code=\"503\"} 1\n") != std::string::npos);
  CHECK(text.find("ms_serve_errors_total 1\n") != std::string::npos);
  CHECK(text.find("ms_serve_queue_depth 5\n") != std::string::npos);
  CHECK(text.find("ms_serve_inputs_running 2\n") != std::string::npos);
  CHECK(text.find("ms_serve_request_duration_seconds_bucket{le=\"0.001\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("ms_serve_request_duration_seconds_bucket{le=\"0.25\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("ms_serve_batch_size_bucket{le=\"4\"} 1\n") != std::string::npos);
  CHECK(text.find("ms_serve_batch_size_bucket{le=\"+Inf\"} 2\n") != std::string::npos);
  CHECK(text.find("ms_serve_batch_size_sum 43\n") != std::string::npos);
}

namespace {

// cost() blocks until released, so a test can drain the batcher while a submission is between
// its admission and its queueing.
class SlowCostPipeline : public FakePipeline {
 public:
  std::size_t cost(const PipelineInput& in) const override {
    std::unique_lock<std::mutex> lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    return in.text.size();
  }
  void wait_entered() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return entered_; });
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable bool entered_ = false;
  bool released_ = false;
};

}  // namespace

TEST_CASE("batcher: a request admitted before a drain is run, not dropped") {
  SlowCostPipeline pipeline;
  DynamicBatcher batcher(pipeline, options(8));
  std::shared_ptr<ms::serve::Submission> submission;
  std::thread client([&] { submission = batcher.submit(texts({"admitted"})); });
  pipeline.wait_entered();
  batcher.drain();  // the workers must wait for the admitted submission's inputs
  pipeline.release();
  client.join();
  REQUIRE(submission);
  REQUIRE(batcher.wait(*submission, kForever) == WaitResult::kDone);
  CHECK(submission->results()[0].output["text"] == "admitted");
}
