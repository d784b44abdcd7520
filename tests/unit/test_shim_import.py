"""The shim's import cost: a container start loads no extraction library.

libarchive and libcrypto (with a dozen more libraries they pull in) are pyminidocker._pmd_extract's
alone, which native.extract imports on the first layer_extract; extraction itself is tested in
tests/integration/test_extract.py.
"""
from __future__ import annotations

import json
import subprocess
import sys

EXTRACTION_LIBS = ("libarchive.so", "libcrypto.so")

CODE = """
import json, os, sys
def mapped():
    with open("/proc/self/maps") as f:
        text = f.read()
    return [lib for lib in LIBS if lib in text]
import pyminidocker.shim as n
at_import = mapped()
r, w = os.pipe()
os.write(w, bytes(1024))  # an empty tar: just the end-of-archive blocks
os.close(w)
res = n.layer_extract(r, sys.argv[1], n.COMPRESS_NONE)
print(json.dumps({"at_import": at_import, "entries": res.entries, "after_extract": mapped()}))
"""


def test_importing_native_loads_no_extraction_library(tmp_path):
    code = CODE.replace("LIBS", repr(EXTRACTION_LIBS))
    out = subprocess.run([sys.executable, "-S", "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": ":".join(sys.path)}).stdout
    seen = json.loads(out)
    assert seen["at_import"] == [], "importing native loaded extraction libraries"
    # The check above sees them once they are there: the first extraction loads them.
    assert seen["entries"] == 0
    assert seen["after_extract"] == list(EXTRACTION_LIBS)
