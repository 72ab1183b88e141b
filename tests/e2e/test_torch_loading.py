"""End-to-end: LibTorch is loaded only by commands that need it, and its absence is reported clearly."""
import glob
import os
import resource
import subprocess
import unittest

from harness import MS_BIN, MsTestCase, run_ms


def loaded_libraries(result):
    """Shared objects the dynamic loader initialised, from LD_DEBUG=libs output on stderr."""
    return [line.split("calling init:")[1].strip() for line in result.stderr.splitlines()
            if "calling init:" in line]


class TorchLoadingTest(MsTestCase):
    def run_traced(self, *args, **kw):
        r = run_ms(*args, env={"LD_DEBUG": "libs"}, **kw)
        return r, loaded_libraries(r)

    def assertNoTorch(self, libs):
        torch_libs = [l for l in libs if "libtorch" in l or "libc10" in l or "libms_torch" in l]
        self.assertEqual(torch_libs, [], "LibTorch was loaded")

    def test_version_help_config_list_do_not_load_torch(self):
        p = self.write("c.json", '{"task": "x"}')
        for args in (["--version"], ["--help"], ["config", "show", p], ["list"], ["list", "url_schemes"],
                     ["config", "show", self.path("missing.json")]):
            with self.subTest(args=args):
                r, libs = self.run_traced(*args)
                self.assertGreater(len(libs), 0, "LD_DEBUG produced no trace; the check would be vacuous")
                self.assertNoTorch(libs)

    def test_env_loads_torch(self):
        # The positive control: the same trace does see LibTorch when a command needs it.
        r, libs = self.run_traced("env", "--json")
        self.assertExit(r, 0)
        self.assertTrue(any("libtorch_cpu" in l or "libtorch.so" in l for l in libs), libs)
        self.assertTrue(any("libms_torch" in l for l in libs), libs)

    def test_missing_torch_layer_exits_6_with_a_clear_message(self):
        # Named by the variable (it said "built without LibTorch", hinting at a rebuild).
        r = run_ms("env", "--json", env={"MS_TORCH_LAYER": self.path("nowhere", "libms_torch.so")})
        self.assertExit(r, 6)
        self.assertOneLineError(r, "MS_TORCH_LAYER names the torch layer " + self.path("nowhere", "libms_torch.so")
                                + ", which does not exist")
        self.assertIn("hint: point MS_TORCH_LAYER at a libms_torch.so, or unset it", r.stderr)
        report = self.json_out(r)  # the report is still printed
        self.assertFalse(report["libtorch"]["available"])

    def test_torch_registries_are_listed_without_loading_torch(self):
        r, libs = self.run_traced("list")
        self.assertIn("pipelines", r.stdout.split())
        self.assertNoTorch(libs)
        r = run_ms("list", "pipelines", env={"MS_TORCH_LAYER": self.path("nowhere", "libms_torch.so")})
        self.assertExit(r, 6)
        self.assertOneLineError(r, "MS_TORCH_LAYER names")

    def test_library_without_entry_point_is_rejected(self):
        lib_dir = os.path.join(os.path.dirname(os.path.dirname(MS_BIN)), "lib")
        candidates = glob.glob(os.path.join(lib_dir, "libms.so*"))
        self.assertTrue(candidates, f"no libms.so in {lib_dir}")
        r = run_ms("env", env={"MS_TORCH_LAYER": candidates[0]})
        self.assertExit(r, 6)
        self.assertOneLineError(r, "not an ms torch layer")

    def test_unloadable_library_names_the_loader_error(self):
        p = self.write("libms_torch.so", "this is not an ELF file")
        r = run_ms("env", env={"MS_TORCH_LAYER": p})
        self.assertExit(r, 6)
        self.assertOneLineError(r, "cannot load the torch layer")

    def test_an_address_space_too_small_for_libtorch_is_out_of_memory(self):
        # Under `ulimit -v 300000` the loader cannot map LibTorch: it said "install LibTorch"
        # (exit 6), though nothing was missing.
        if not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(MS_BIN)), "lib",
                                           "libms_torch.so")):
            self.skipTest("this ms has no torch layer")
        # 200 MiB fails the mapping; 800 MiB let LibTorch's OpenBLAS spin for ever as it loaded
        # (now refused before the load). The timeout bounds a hang, it times nothing.
        for mib in (200, 800):
            limit = mib * 1024 * 1024
            r = subprocess.run([MS_BIN, "env"], capture_output=True, text=True, timeout=120,
                               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS,
                                                                     (limit, limit)))
            self.assertExit(r, 74)
            self.assertOneLineError(r, "cannot load the torch layer", "out of memory")
            self.assertIn("ulimit -v", r.stderr)

    def test_threads_default_to_all_cores_and_can_be_overridden(self):
        env = self.json_out(run_ms("env", "--json", env={"OMP_NUM_THREADS": ""}))
        self.assertEqual(env["libtorch"]["threads"], os.cpu_count())
        env = self.json_out(run_ms("env", "--json", "--threads", "1"))
        self.assertEqual(env["libtorch"]["threads"], 1)
        env = self.json_out(run_ms("env", "--json", env={"OMP_NUM_THREADS": "1"}))
        self.assertEqual(env["libtorch"]["threads"], 1)


if __name__ == "__main__":
    unittest.main()
