"""cffi builders for pyminidocker's C shim (API mode): two modules from one header.

The cdef is csrc/pmd.h: the header is written so that cffi can parse it, and the C sources
include it after the system headers, so the compiler checks that both agree.

pyminidocker._pmd is the shim but for layer extraction and links libc alone; its cdef is the
whole header without the prototypes of the "layer extraction" section. Those are
pyminidocker._pmd_extract: extract.c with libarchive and libcrypto, which drag in thirteen
more libraries (several ms to load) that a container start never needs, so only extraction loads
them. The extract module includes the core's cdef, so the extraction's structs and constants
are the core's: Python reads and allocates them without loading the extraction.

Imports nothing of the package, so setuptools can run it before the package exists.
"""
import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
HEADER = (HERE / "pmd.h").read_text()

_section = re.search(r"^/\* ---- layer extraction .*?(?=^/\* ---- |\Z)", HEADER, re.M | re.S)
if _section is None:
    raise RuntimeError("pmd.h: no layer extraction section")
EXTRACT_PROTOTYPES = re.findall(r"^int pmd_\w+\([^;]*\);$", _section.group(), re.M)
if not EXTRACT_PROTOTYPES:
    raise RuntimeError("pmd.h: no prototype in the layer extraction section")
CORE_CDEF = HEADER
for _p in EXTRACT_PROTOTYPES:
    CORE_CDEF = CORE_CDEF.replace(_p, "")


def _sources(*names: str) -> list[str]:
    return [f"{HERE.name}/{n}" for n in names]


# error.c goes into both: its symbols are hidden, so each module has its own copy.
EXTRACT_SOURCES = _sources("extract.c", "error.c")
# monitor_main.c and ocifront.c are the mains of the pmd-monitor and pmd-runc executables, built
# by setup.py, not part of a module.
CORE_SOURCES = _sources(*sorted(p.name for p in HERE.glob("*.c")
                                if p.name not in ("extract.c", "monitor_main.c", "ocifront.c")))

# What the sources include: setuptools rebuilds a module only when one of its inputs is newer.
HEADERS = _sources("pmd.h", "pmd_sys.h", "specio.h", "jsonlog.h")
PRELUDE = '#include "pmd_sys.h"\n#include "pmd.h"\n'
COMPILE_ARGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                "-D_GNU_SOURCE", "-fvisibility=hidden"]

core = FFI()
core.cdef(CORE_CDEF)
core.set_source("pyminidocker._pmd", PRELUDE, sources=CORE_SOURCES, depends=HEADERS,
                include_dirs=[HERE.name], extra_compile_args=COMPILE_ARGS)

extract = FFI()
extract.include(core)
extract.cdef("\n".join(EXTRACT_PROTOTYPES))
extract.set_source("pyminidocker._pmd_extract", PRELUDE, sources=EXTRACT_SOURCES, depends=HEADERS,
                   include_dirs=[HERE.name], libraries=["archive", "crypto"],
                   extra_compile_args=COMPILE_ARGS)

if __name__ == "__main__":
    core.compile(verbose=True)
    extract.compile(verbose=True)
