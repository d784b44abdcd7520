"""cffi builder for pyminidocker's C shim (API mode).

The cdef is csrc/pmd.h verbatim: the header is written so that cffi can parse it, and the C
sources include it after the system headers, so the compiler checks that both agree.
Imports nothing of the package, so setuptools can run it before the package exists.
"""
import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
# monitor_main.c is the pmd-monitor executable's main(), built by setup.py, not part of the module.
SOURCES = sorted(str(p.relative_to(HERE.parent)) for p in HERE.glob("*.c")
                 if p.name != "monitor_main.c")

ffibuilder = FFI()
ffibuilder.cdef((HERE / "pmd.h").read_text())
ffibuilder.set_source(
    "pyminidocker._pmd",
    '#include "pmd_sys.h"\n#include "pmd.h"\n',
    sources=SOURCES,
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    libraries=["archive", "crypto"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-D_GNU_SOURCE", "-fvisibility=hidden"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
