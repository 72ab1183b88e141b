"""Optional parts never turn themselves off: configuring with an option ON whose library is missing
fails, naming the option and the Debian package to install; with the option OFF the same machine
configures. A missing library is simulated with CMAKE_DISABLE_FIND_PACKAGE_<Name> (CMake packages
and modules) or an empty pkg-config search path (pkg-config modules).
"""
import os
import shutil
import subprocess
import unittest

from harness import MsTestCase, SOURCE_DIR

CMAKE = os.environ.get("MS_CMAKE") or shutil.which("cmake")
# The parts not under test stay off: each configure then stops at the part under test, quickly.
BASE = ["-DMS_BUILD_TESTS=OFF", "-DMS_WITH_TORCH=OFF"]
NO_PKG_CONFIG = {"PKG_CONFIG_LIBDIR": os.devnull, "PKG_CONFIG_PATH": ""}


class BuildOptionsTest(MsTestCase):
    def setUp(self):
        super().setUp()
        if not CMAKE:
            self.skipTest("no cmake on PATH (set MS_CMAKE)")

    def configure(self, *args, env=None):
        build = self.path(f"build-{len(os.listdir(self.tmp))}")
        return subprocess.run([CMAKE, "-S", SOURCE_DIR, "-B", build, *BASE, *args], capture_output=True,
                              text=True, timeout=300, env={**os.environ, **(env or {})})

    def assertFailsNaming(self, result, option, package):
        out = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, out)
        message = " ".join(out.split())  # CMake wraps long messages
        self.assertIn(f"{option} is ON but", message)
        self.assertIn(package, message)
        self.assertIn(f"-D{option}=OFF", message)

    def test_missing_libraries_fail_configuration_naming_package_and_option(self):
        cases = [
            ("MS_WITH_PNG", "libpng-dev", ["-DCMAKE_DISABLE_FIND_PACKAGE_PNG=ON"], None),
            ("MS_WITH_HUB_SERVER", "libsqlite3-dev", ["-DCMAKE_DISABLE_FIND_PACKAGE_SQLite3=ON"], None),
            ("MS_WITH_HUB_SERVER", "libcpp-httplib-dev", [], NO_PKG_CONFIG),
            ("MS_WITH_ZIP", "libzip-dev", ["-DMS_WITH_HUB_SERVER=OFF"], NO_PKG_CONFIG),
            ("MS_WITH_JPEG", "libturbojpeg0-dev", ["-DMS_WITH_HUB_SERVER=OFF", "-DMS_WITH_ZIP=OFF"],
             NO_PKG_CONFIG),
            ("MS_WITH_PARQUET_CODECS", "libsnappy-dev",
             ["-DMS_WITH_HUB_SERVER=OFF", "-DMS_WITH_ZIP=OFF", "-DMS_WITH_JPEG=OFF"], NO_PKG_CONFIG),
            ("MS_WITH_TORCH", "libtorch-dev", ["-DMS_WITH_TORCH=ON", "-DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON"],
             None),
            ("MS_WITH_ONNX", "libonnx-dev", ["-DMS_WITH_TORCH=ON", "-DCMAKE_DISABLE_FIND_PACKAGE_ONNX=ON"],
             None),
            # libFuzzer needs clang: with gcc the message names the packages that bring it.
            ("MS_FUZZ", "libclang-rt-14-dev",
             ["-DMS_FUZZ=ON", "-DCMAKE_C_COMPILER=gcc", "-DCMAKE_CXX_COMPILER=g++"], None),
        ]
        for option, package, args, env in cases:
            with self.subTest(option=option, package=package):
                self.assertFailsNaming(self.configure(*args, env=env), option, package)

    def test_turning_the_options_off_configures_without_the_libraries(self):
        r = self.configure("-DCMAKE_DISABLE_FIND_PACKAGE_PNG=ON", "-DCMAKE_DISABLE_FIND_PACKAGE_SQLite3=ON",
                           "-DMS_WITH_PNG=OFF", "-DMS_WITH_HUB_SERVER=OFF", "-DMS_WITH_ZIP=OFF",
                           "-DMS_WITH_JPEG=OFF", "-DMS_WITH_PARQUET_CODECS=OFF", env=NO_PKG_CONFIG)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
