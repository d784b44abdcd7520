"""The package's code in one file, which pyminidocker/__init__.py serves imports from.

Why: a `pyminidocker run` imports about 25 of the package's modules, and the path finder pays
for each before its code is even read: a stat of the package directory, the finder's lookups,
then the .pyc's open, fstat, read and the source's stat, in Python-level importlib code. About
60 us a module on this host, 1.3-1.5 ms of every container start (`bench/start_ab.py` with
and without the file). Served from here, a module is one dict lookup, one stat of its source
(so an edited module is never served stale) and one pread of its code.

The file: pyminidocker/__pycache__/codecache.<cache tag>.bin (one per interpreter version, as
.pyc files are), written whole (a temporary file renamed over it), made by `make build` and
`make install` (`python -m pyminidocker.codecache [PACKAGE_DIR]`; `make uninstall` removes it):

    magic   16 bytes: importlib's MAGIC_NUMBER, 4 zero bytes, the index's length (8, little)
    index   marshal: {module name: (is_package, path relative to the package directory,
            the source's st_mtime_ns, its st_size, offset of its code after the index,
            length of its code)}
    code    each module's code object, marshalled, compiled from the source the index names

A module whose source changed since (another mtime or size), a file made by another
interpreter, one that cannot be read, or an interpreter run with -O, and the usual import
machinery serves it instead, from the .py and its .pyc.
"""
from __future__ import annotations

import marshal
import os
import sys
from importlib.util import MAGIC_NUMBER

from pyminidocker import _HEAD, _cache_path

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def path_of(package_dir: str) -> str:
    return _cache_path(package_dir)  # the reader's own rule: one place names the file


def write(package_dir: str = PACKAGE_DIR) -> str:
    """(Re)writes the file for the package in package_dir; returns its path."""
    index: dict[str, tuple[bool, str, int, int, int, int]] = {}
    blobs: list[bytes] = []
    offset = 0
    top = os.path.basename(package_dir.rstrip("/"))
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, package_dir)
            parts = [top, *rel[:-3].split(os.sep)]
            is_package = parts[-1] == "__init__"
            module = ".".join(parts[:-1] if is_package else parts)
            st = os.stat(path)
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec", dont_inherit=True)
            blob = marshal.dumps(code)
            index[module] = (is_package, rel, st.st_mtime_ns, st.st_size, offset, len(blob))
            blobs.append(blob)
            offset += len(blob)
    head = marshal.dumps(index)
    out = path_of(package_dir)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = f"{out}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC_NUMBER + bytes(_HEAD - len(MAGIC_NUMBER) - 8)
                    + len(head).to_bytes(8, "little"))
            f.write(head)
            for blob in blobs:
                f.write(blob)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def remove(package_dir: str = PACKAGE_DIR) -> None:
    """Removes the file (pip uninstall does not know it)."""
    try:
        os.unlink(path_of(package_dir))
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    if sys.argv[1:] == ["--remove"]:
        remove()
    elif len(sys.argv) <= 2 and not sys.argv[1:2] == ["-h"]:
        print(write(*sys.argv[1:]))
    else:
        sys.exit("usage: python3 -m pyminidocker.codecache [PACKAGE_DIR | --remove]")
