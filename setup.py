"""Build: the cffi modules (csrc/build_ffi.py) and the pmd-monitor and pmd-runc executables next
to it.

pmd-monitor watches detached containers (csrc/monitor_main.c); it is linked from the shim's own
spawn and log sources, so it clones containers and writes their json-file log exactly as the
module does, but without libarchive or Python. It is built by the same compiler setuptools
uses for the extensions, into the directory they go to (the package in the source tree for
`build_ext --inplace`, build/lib for a wheel), so it always sits in the package directory, where
pyminidocker/native/monitor.py looks for it.

pmd-runc is pyminidocker-runc's front (csrc/ocifront.c): installed as the command, it answers
the calls that need no Python and execs the Python runtime for the rest.
"""
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext

MONITOR = "pmd-monitor"
MONITOR_SOURCES = ["csrc/monitor_main.c", "csrc/jsonlog.c", "csrc/specio.c", "csrc/spawn.c",
                   "csrc/mount.c", "csrc/confine.c", "csrc/error.c"]
FRONT = "pmd-runc"
FRONT_SOURCES = ["csrc/ocifront.c"]
MONITOR_CFLAGS = ["-Os", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                  "-D_GNU_SOURCE", "-fno-asynchronous-unwind-tables", "-ffunction-sections",
                  "-fdata-sections", "-fno-stack-protector", "-U_FORTIFY_SOURCE",
                  "-D_FORTIFY_SOURCE=2"]
MONITOR_LDFLAGS = ["-Wl,--gc-sections", "-Wl,-O1", "-Wl,--as-needed", "-Wl,-z,norelro", "-s"]


class BuildExtWithMonitor(build_ext):
    def run(self):
        super().run()
        self.build_executable(MONITOR, MONITOR_SOURCES, ["csrc/pmd.h", "csrc/pmd_sys.h",
                                                         "csrc/specio.h", "csrc/jsonlog.h"])
        # static: no dynamic loader on a call that is over in a millisecond (0.3 ms less on
        # each call it passes on to Python)
        self.build_executable(FRONT, FRONT_SOURCES, [], ["-static"])
        self.build_syscall_tables()

    def build_syscall_tables(self):
        """pyminidocker/container/syscalls.json, from the kernel headers (csrc/gen_syscalls.py)."""
        import importlib.util

        spec = importlib.util.spec_from_file_location("gen_syscalls", "csrc/gen_syscalls.py")
        gen = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gen)
        out_dir = os.path.join(self.monitor_dir(), "container")
        os.makedirs(out_dir, exist_ok=True)
        gen.generate(os.path.join(out_dir, "syscalls.json"), self.compiler.compiler[0])

    def monitor_dir(self):
        if self.inplace:
            return self.get_finalized_command("build_py").get_package_dir("pyminidocker")
        return os.path.join(self.build_lib, "pyminidocker")

    def build_executable(self, name, sources, headers, ldflags=()):
        out_dir = self.monitor_dir()
        os.makedirs(out_dir, exist_ok=True)
        target = os.path.join(out_dir, name)
        deps = [*sources, *headers]
        # In place (make build), skip an up-to-date binary; a fresh build dir always builds it.
        if self.inplace and not self.force and os.path.exists(target) and all(
                os.path.getmtime(d) <= os.path.getmtime(target) for d in deps):
            return
        # The extension's compiler, with our flags last so that -Os wins over Python's -O3.
        objects = self.compiler.compile(sources, output_dir=os.path.join(self.build_temp, name),
                                        include_dirs=["csrc"], extra_postargs=MONITOR_CFLAGS)
        self.compiler.link_executable(objects, name, output_dir=out_dir,
                                      extra_postargs=[*MONITOR_LDFLAGS, *ldflags])

    def get_outputs(self):
        return [*super().get_outputs(), os.path.join(self.monitor_dir(), MONITOR),
                os.path.join(self.monitor_dir(), FRONT),
                os.path.join(self.monitor_dir(), "container", "syscalls.json")]


setup(cffi_modules=["csrc/build_ffi.py:core", "csrc/build_ffi.py:extract"],
      cmdclass={"build_ext": BuildExtWithMonitor})
