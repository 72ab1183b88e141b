"""The library as a program uses it: `cmake --install` into a temporary prefix, examples/ configured
against that prefix through find_package(ms) and built, then run against a real `ms hub serve`:
it downloads a small model by id and runs its pipeline, and prints what `ms infer` prints for the
same input. The installed `ms` runs the same model (its torch layer comes from the install too).
"""
import json
import os
import re
import shutil
import subprocess
import unittest

from harness import MS_BIN, SOURCE_DIR, TorchTestCase, run_ms
from hub_fixture import HubServer, hub_server_available

TINY_CLS = os.path.join(SOURCE_DIR, "tests", "data", "infer", "tiny", "cls")
BUILD_DIR = os.environ.get("MS_BUILD_DIR") or os.path.dirname(os.path.dirname(MS_BIN or ""))
LIBDIR = os.environ.get("MS_INSTALL_LIBDIR", "lib")
CMAKE = os.environ.get("MS_CMAKE") or shutil.which("cmake")
TOL = 1e-5


def lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


class ExampleTest(TorchTestCase):
    def setUp(self):
        super().setUp()
        if not hub_server_available():
            self.skipTest("this ms is built without the hub server")
        if not CMAKE:
            self.skipTest("no cmake on PATH (set MS_CMAKE)")

    def tool(self, *args, env=None):
        """Runs a build tool; fails the test with its output when it exits non-zero."""
        r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600,
                           env={**os.environ, **(env or {})})
        self.assertEqual(r.returncode, 0, f"{' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}")
        return r

    def install(self):
        prefix = self.path("prefix")
        self.tool(CMAKE, "--install", BUILD_DIR, "--prefix", prefix)
        lib = os.path.join(prefix, LIBDIR)
        for rel in ("bin/ms", f"{LIBDIR}/libms.so", f"{LIBDIR}/libms_torch.so",
                    f"{LIBDIR}/cmake/ms/msConfig.cmake", f"{LIBDIR}/cmake/ms/msConfigVersion.cmake",
                    "include/ms/core/export.h", "include/ms/core/version.h",
                    "include/ms/infer/pipeline.h", "include/ms/hub/client.h"):
            self.assertTrue(os.path.exists(os.path.join(prefix, rel)), f"not installed: {rel}")
        # Only the torch-free modules' headers: a program never compiles against LibTorch. The
        # servers' HTTP front and the libcurl layer are internal (their headers needed httplib's
        # OpenSSL define, and nothing in them is exported).
        for internal in ("models", "http_server", os.path.join("io", "curl.h")):
            self.assertFalse(os.path.exists(os.path.join(prefix, "include", "ms", internal)), internal)
        return prefix, lib

    def test_every_installed_header_compiles_through_the_package(self):
        # One translation unit including them all, built with what ms::ms carries (its include
        # folder, C++17, fmt and nlohmann/json) and nothing else.
        prefix, _ = self.install()
        include = os.path.join(prefix, "include")
        headers = sorted(os.path.relpath(os.path.join(d, f), include)
                         for d, _, files in os.walk(include) for f in files if f.endswith(".h"))
        self.assertGreater(len(headers), 20, headers)
        self.build_program(prefix, "all_headers", "add_library(all_headers OBJECT all.cpp)",
                           {"all.cpp": "".join(f'#include "{h}"\n' for h in headers)})

    def build_program(self, prefix, name, target, sources):
        """Writes `sources` (file name -> text) and a CMakeLists.txt with `target` (an
        add_executable or add_library line for NAME) linking ms::ms alone, configures it
        against the package in `prefix` and builds it; returns the build folder."""
        project = self.path(name)
        os.makedirs(project)
        for file, text in sources.items():
            with open(os.path.join(project, file), "w") as f:
                f.write(text)
        with open(os.path.join(project, "CMakeLists.txt"), "w") as f:
            f.write(f"cmake_minimum_required(VERSION 3.16)\nproject({name} CXX)\n"
                    f"find_package(ms REQUIRED)\n{target}\n"
                    f"target_link_libraries({name} PRIVATE ms::ms)\n")
        build = self.path(name + "-build")
        configure = [CMAKE, "-S", project, "-B", build, f"-DCMAKE_PREFIX_PATH={prefix}"]
        if os.environ.get("MS_CXX_COMPILER"):
            configure.append(f"-DCMAKE_CXX_COMPILER={os.environ['MS_CXX_COMPILER']}")
        self.tool(*configure)
        self.tool(CMAKE, "--build", build)
        return build

    def test_library_calls_out_of_order_are_errors_not_crashes(self):
        # Found by a C++ caller: a server started again after stop() answered its first request
        # with a stopped batcher (SIGSEGV), workers() after stop() crashed too; set_dtype("fp32")
        # after "bf16" gave bf16-rounded results as fp32; run_job wrote duplicate ids its own
        # resume then refused.
        prefix, _ = self.install()
        program = r"""
#include <cstdio>
#include <string>
#include <vector>
#include "ms/core/error.h"
#include "ms/infer/job.h"
#include "ms/infer/model_dir.h"
#include "ms/infer/pipeline.h"
#include "ms/serve/server.h"

// Runs `call`; prints "NAME: ok" or "NAME: <error kind>".
template <typename F> void check(const char* name, F call) {
  try {
    call();
    std::printf("%s: ok\n", name);
  } catch (const ms::Error& e) {
    std::printf("%s: %s\n", name, ms::error_code_name(e.code()));
  }
}

int main(int, char** argv) {
  ms::serve::ServeOptions o;
  o.model = argv[1];
  o.port = 0;
  o.workers = 2;
  ms::serve::Server server(o);
  server.start();
  server.stop();
  std::printf("workers after stop: %zu\n", server.workers());
  check("start after stop", [&] { server.start(); });

  const ms::infer::ModelInfo model = ms::infer::open_model(argv[1], std::nullopt);
  auto pipeline = ms::infer::pipeline_factory().create(model, ms::infer::PipelineOptions{});
  check("bf16", [&] { pipeline->set_dtype("bf16"); });
  check("bf16 again", [&] { pipeline->set_dtype("bf16"); });
  check("fp32 after bf16", [&] { pipeline->set_dtype("fp32"); });

  std::vector<ms::infer::PipelineInput> inputs(3);
  for (int i = 0; i < 3; ++i) {
    inputs[i].id = i == 2 ? 0 : i;
    inputs[i].text = "a good movie";
  }
  ms::infer::JobOptions job;
  job.output = argv[2];
  check("duplicate ids", [&] { ms::infer::run_job(*pipeline, inputs, job); });
}
"""
        build = self.build_program(prefix, "misuse", "add_executable(misuse misuse.cpp)",
                                   {"misuse.cpp": program})
        out = self.path("dup.jsonl")
        r = self.tool(os.path.join(build, "misuse"), TINY_CLS, out)
        self.assertEqual(r.stdout.splitlines(), [
            "workers after stop: 2", "start after stop: usage", "bf16: ok", "bf16 again: ok",
            "fp32 after bf16: usage", "duplicate ids: usage"])
        self.assertFalse(os.path.exists(out) and os.path.getsize(out) > 0, "lines were written")

    def build_example(self, prefix):
        build = self.path("example-build")
        configure = [CMAKE, "-S", os.path.join(SOURCE_DIR, "examples"), "-B", build,
                     f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"]
        if os.environ.get("MS_CMAKE_GENERATOR"):
            configure += ["-G", os.environ["MS_CMAKE_GENERATOR"]]
        if os.environ.get("MS_CXX_COMPILER"):
            configure.append(f"-DCMAKE_CXX_COMPILER={os.environ['MS_CXX_COMPILER']}")
        if os.environ.get("MS_CXX_COMPILER_LAUNCHER"):
            configure.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={os.environ['MS_CXX_COMPILER_LAUNCHER']}")
        self.tool(*configure)
        # The package came from the prefix, not from the build tree.
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            ms_dir = re.search(r"^ms_DIR:PATH=(.*)$", f.read(), re.M).group(1)
        self.assertEqual(os.path.realpath(ms_dir), os.path.realpath(os.path.join(prefix, LIBDIR, "cmake", "ms")))
        self.tool(CMAKE, "--build", build)
        return os.path.join(build, "run_model")

    def test_example_downloads_a_model_and_runs_it_through_the_installed_library(self):
        prefix, lib = self.install()
        with open(os.path.join(prefix, "include", "ms", "core", "version.h")) as f:
            header = f.read()
        version = run_ms("--version").stdout.split()[-1]
        self.assertIn(f'#define MS_VERSION_STRING "{version}"', header)
        major, minor, patch = version.split(".")
        self.assertIn(f"#define MS_VERSION_MAJOR {major}\n", header)
        self.assertIn(f"#define MS_VERSION_MINOR {minor}\n", header)
        self.assertIn(f"#define MS_VERSION_PATCH {patch}\n", header)

        example = self.build_example(prefix)
        # It runs with the installed libms.so.
        ldd = self.tool("ldd", example).stdout
        resolved = re.search(r"libms\.so\.\d+ => (\S+)", ldd)
        self.assertIsNotNone(resolved, ldd)
        self.assertEqual(os.path.dirname(os.path.realpath(resolved.group(1))), os.path.realpath(lib))

        server = HubServer(self.path("hubroot"))
        self.addCleanup(server.stop)
        env = {"MODELSCOPE_ENDPOINT": server.endpoint, "MODELSCOPE_API_TOKEN": server.token("alice"),
               "MODELSCOPE_CACHE": self.path("cache"), "MODELSCOPE_CREDENTIALS_PATH": self.path("cred"),
               "MODELSCOPE_OFFLINE": ""}
        self.assertEqual(run_ms("upload", "alice/tiny-cls", TINY_CLS, "--create", env=env).returncode, 0)
        text = "a very good movie"
        r = self.tool(example, "alice/tiny-cls", text, env=env)
        self.assertIn(f"ms {version} (compiled against {version})", r.stderr)
        # LibTorch came in through the installed torch layer, found beside the installed libms.so.
        torch_layer = re.search(r"torch layer (\S+), device", r.stderr)
        self.assertIsNotNone(torch_layer, r.stderr)
        self.assertEqual(os.path.realpath(torch_layer.group(1)),
                         os.path.realpath(os.path.join(lib, "libms_torch.so")))
        self.assertTrue(os.path.isfile(self.path("cache", "models", "alice", "tiny-cls", "configuration.json")),
                        "the example did not download the model into MODELSCOPE_CACHE")
        got = lines(r.stdout)

        # What `ms infer` prints for the same input, from the build tree and from the install.
        for ms in (MS_BIN, os.path.join(prefix, "bin", "ms")):
            out = subprocess.run([ms, "infer", "--model", "alice/tiny-cls", "--input", text],
                                 capture_output=True, text=True, timeout=300, env={**os.environ, **env})
            self.assertEqual(out.returncode, 0, f"{ms}: {out.stderr}")
            want = lines(out.stdout)
            self.assertEqual(len(got), len(want))
            for g, w in zip(got, want):
                self.assertEqual(g["id"], w["id"])
                self.assertEqual(g["labels"], w["labels"], ms)
                for a, b in zip(g["scores"], w["scores"]):
                    self.assertLess(abs(a - b), TOL, ms)

        # Errors come back as ms::Error, with the CLI's exit code table (4: not found).
        r = subprocess.run([example, "alice/no-such-model", text], capture_output=True, text=True,
                           timeout=120, env={**os.environ, **env})
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("alice/no-such-model", r.stderr)

        # And the transformers reference of the same model (tests/data/infer/tiny, make_tiny_bert.py).
        with open(os.path.join(TINY_CLS, "expected.json"), encoding="utf-8") as f:
            ref = json.load(f)
        probs = ref["probs"][ref["texts"].index(text)]
        want = sorted(zip(probs, ref["labels"]), reverse=True)
        self.assertEqual(got[0]["labels"], [l for _, l in want])
        for (p, _), s in zip(want, got[0]["scores"]):
            self.assertLess(abs(p - s), 1e-4)


if __name__ == "__main__":
    unittest.main()
