// ms::tensor checkpoints (torch.save files): a tree of every kind of value round-trips exactly,
// writes are atomic, and bad files fail with errors naming them. Interop with Python's torch is
// tests/e2e/test_checkpoint_interop.py.
#include "ms/tensor/checkpoint.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>
#include <caffe2/serialize/inline_container.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include "catch.h"
#include "ms/core/error.h"
#include "ms/core/file.h"
#include "ms/core/pickle.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using ms::ErrorCode;
using ms::tensor::CheckpointValue;

namespace {

// Runs `f`, which must throw ms::Error of `code` whose message contains every fragment.
template <typename F>
void expect_error(F&& f, ErrorCode code, std::initializer_list<std::string> fragments) {
  try {
    f();
    FAIL("no error thrown");
  } catch (const ms::Error& e) {
    CHECK(e.code() == code);
    for (const auto& fragment : fragments) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(fragment) != std::string::npos);
    }
  }
}

at::Tensor numbers(c10::ScalarType dtype) {
  return at::arange(-3, 3, at::kLong).reshape({2, 3}).to(dtype);
}

CheckpointValue sample_tree() {
  CheckpointValue dtypes = CheckpointValue::list();
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong, at::kInt,
                     at::kShort, at::kChar, at::kByte, at::kBool}) {
    dtypes.push_back(numbers(dtype));
  }
  CheckpointValue by_int = CheckpointValue::dict();
  by_int.set(0, CheckpointValue::dict({{"step", at::arange(3, 4, at::kFloat).reshape({})}}));
  by_int.set(-7, CheckpointValue::list());
  return CheckpointValue::dict({
      {"by_int", by_int},
      {"model", CheckpointValue::state_dict({{"w", numbers(at::kFloat)}})},
      {"list", CheckpointValue::list({1, "two", CheckpointValue(), true, false,
                                      CheckpointValue::tuple(), CheckpointValue::dict()})},
      {"tuple", CheckpointValue::tuple({0.1, 1e300, -0.0, 5e-324, -1.5})},
      {"big", CheckpointValue::list({INT64_MAX, INT64_MIN, std::int64_t{1} << 32,
                                     -(std::int64_t{1} << 31) - 1, std::int64_t{65536}})},
      {"dtypes", dtypes},
      {"noncontig", at::arange(12, at::kDouble).reshape({3, 4}).t()},
      {"offset", at::arange(10, at::kShort).slice(0, 2, 9, 3)},
      {"empty", at::zeros({0, 4}, at::kHalf)},
      {"scalar", at::arange(5, 6, at::kLong).reshape({})},
      {"long_text", std::string(70000, 'z')},
  });
}

}  // namespace

TEST_CASE("a checkpoint tree round-trips exactly", "[checkpoint]") {
  TempDir dir;
  const fs::path file = dir.path / "ckpt.pth";
  const CheckpointValue tree = sample_tree();
  ms::tensor::save_checkpoint(file, tree);
  const CheckpointValue back = ms::tensor::load_checkpoint(file);
  CHECK(back == tree);

  // Spot checks of what == compares, and of what it leaves out (dict flavour, layout).
  CHECK(back.at("tuple").kind() == CheckpointValue::Kind::kTuple);
  CHECK(back.at("tuple").items()[0].as_float() == 0.1);
  CHECK(std::signbit(back.at("tuple").items()[2].as_float()));
  CHECK(back.at("big").items()[1].as_int() == INT64_MIN);
  CHECK(back.at("model").is_ordered_dict());
  CHECK_FALSE(back.at("by_int").is_ordered_dict());
  REQUIRE(back.at("by_int").find(-7) != nullptr);
  CHECK(back.at("by_int").find(0)->at("step").as_tensor().dim() == 0);
  CHECK(back.at("by_int").find("0") == nullptr);
  const at::Tensor& noncontig = back.at("noncontig").as_tensor();
  CHECK(noncontig.is_contiguous());
  CHECK(noncontig.sizes() == at::IntArrayRef({4, 3}));
  CHECK(noncontig[1][2].item<double>() == 9.0);
  CHECK(back.at("offset").as_tensor().sizes() == at::IntArrayRef({3}));
  CHECK(back.at("offset").as_tensor()[2].item<std::int64_t>() == 8);
  CHECK(back.at("empty").as_tensor().numel() == 0);
  CHECK(back.at("model").as_state_dict().at("w").equal(numbers(at::kFloat)));

  // A different element, dtype or float is a different tree.
  CheckpointValue changed = sample_tree();
  changed.set("scalar", at::arange(6, 7, at::kLong).reshape({}));
  CHECK_FALSE(back == changed);
  changed = sample_tree();
  changed.set("scalar", at::arange(5, 6, at::kInt).reshape({}));
  CHECK_FALSE(back == changed);
  changed = sample_tree();
  changed.set("tuple", CheckpointValue::tuple({0.1, 1e300, 0.0, 5e-324, -1.5}));
  CHECK_FALSE(back == changed);
}

TEST_CASE("views of one storage are saved apart and load with their own values", "[checkpoint]") {
  TempDir dir;
  const at::Tensor base = at::arange(20, at::kFloat).reshape({4, 5});
  const CheckpointValue views =
      CheckpointValue::list({base[1], base.slice(0, 2).slice(1, 1, 3), base.t()});
  ms::tensor::save_checkpoint(dir.path / "views.pth", views);
  const CheckpointValue back = ms::tensor::load_checkpoint(dir.path / "views.pth");
  CHECK(back == views);
  CHECK(back.items()[1].as_tensor()[1][0].item<float>() == 16.0f);
}

TEST_CASE("CheckpointValue access is typed", "[checkpoint]") {
  CheckpointValue d = CheckpointValue::dict({{"a", 1}, {2, "b"}});
  d.set("a", 3.5);  // replaces in place
  REQUIRE(d.entries().size() == 2);
  CHECK(d.entries()[0].second.as_float() == 3.5);
  CHECK(d.find(2)->as_string() == "b");
  CHECK(CheckpointValue(4).as_float() == 4.0);
  expect_error([&] { d.at("missing"); }, ErrorCode::kIntegrity, {"missing"});
  expect_error([&] { d.at("a").as_int(); }, ErrorCode::kIntegrity, {"float", "int"});
  expect_error([&] { CheckpointValue("s").items(); }, ErrorCode::kIntegrity, {"str"});
  expect_error([&] { d.as_state_dict(); }, ErrorCode::kIntegrity, {"state dict"});
}

TEST_CASE("a failed checkpoint write leaves the old file", "[checkpoint]") {
  TempDir dir;
  const fs::path file = dir.path / "keep.pth";
  const CheckpointValue old = CheckpointValue::dict({{"epoch", 1}});
  ms::tensor::save_checkpoint(file, old);

  // A file-size limit makes the write fail as a full disk would (EFBIG instead of SIGXFSZ).
  struct rlimit saved {};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto previous = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit low = saved;
  low.rlim_cur = 4096;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &low) == 0);
  try {
    ms::tensor::save_checkpoint(file, CheckpointValue(at::zeros({10000})));
    FAIL("no error thrown");
  } catch (const ms::Error& e) {
    CHECK(e.code() == ErrorCode::kIo);
    CHECK(std::string(e.what()).find(file.string()) != std::string::npos);
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous);
  CHECK(ms::tensor::load_checkpoint(file) == old);
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("bad checkpoint files fail with errors naming them", "[checkpoint]") {
  TempDir dir;
  expect_error([&] { ms::tensor::load_checkpoint(dir.path / "none.pth"); }, ErrorCode::kNotFound,
               {"none.pth"});

  const fs::path good = dir.path / "good.pth";
  ms::tensor::save_checkpoint(good, sample_tree());
  const std::string bytes = ms::read_file(good);
  for (std::size_t cut : {bytes.size() / 2, bytes.size() - 10, std::size_t{3}}) {
    const fs::path truncated = dir.path / ("cut" + std::to_string(cut) + ".pth");
    ms::write_file_atomic(truncated, std::string_view(bytes).substr(0, cut));
    expect_error([&] { ms::tensor::load_checkpoint(truncated); }, ErrorCode::kIntegrity,
                 {truncated.filename().string()});
  }
  const fs::path garbage = dir.path / "garbage.pth";
  ms::write_file_atomic(garbage, std::string(1000, '\x7f'));
  expect_error([&] { ms::tensor::load_checkpoint(garbage); }, ErrorCode::kIntegrity,
               {"garbage.pth"});

  // Zips of torch's layout whose data.pkl holds what a checkpoint may not.
  auto zip_with = [&](const std::string& name, const std::string& pickle) {
    std::string zip;
    {
      caffe2::serialize::PyTorchStreamWriter writer([&zip](const void* data, std::size_t n) {
        zip.append(static_cast<const char*>(data), n);
        return n;
      });
      writer.writeRecord("data.pkl", pickle.data(), pickle.size());
      writer.writeEndOfFile();
    }
    ms::write_file_atomic(dir.path / name, zip);
    return dir.path / name;
  };
  ms::pickle::Writer w(2);
  w.global("argparse", "Namespace");
  w.tuple(0, nullptr);
  w.reduce();
  const fs::path object = zip_with("object.pth", w.finish());
  expect_error([&] { ms::tensor::load_checkpoint(object); }, ErrorCode::kIntegrity,
               {"object.pth", "argparse.Namespace"});
  // l = []; l.append(l)
  const fs::path recursive = zip_with("recursive.pth", std::string("\x80\x02]q\x00h\x00\x61.", 9));
  expect_error([&] { ms::tensor::load_checkpoint(recursive); }, ErrorCode::kIntegrity,
               {"recursive.pth"});
  // A list holding the list below it twice, 40 levels deep: 2^40 values from 400 bytes.
  std::string shared("\x80\x02]q\x00\x30", 6);
  for (int k = 1; k <= 40; ++k) {
    shared += std::string("]q") + static_cast<char>(k) + "(h" + static_cast<char>(k - 1) + "h" +
              static_cast<char>(k - 1) + "e0";
  }
  shared += std::string("h") + static_cast<char>(40) + ".";
  const fs::path doubling = zip_with("shared.pth", shared);
  expect_error([&] { ms::tensor::load_checkpoint(doubling); }, ErrorCode::kIntegrity,
               {"shared.pth", "expands"});
}
