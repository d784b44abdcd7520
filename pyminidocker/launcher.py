"""Writes the `pyminidocker` command that `make install` puts on the PATH.

The command pip generates starts Python with its site machinery, which imports whatever every
installed package's .pth files ask for (certifi, setuptools' distutils shim, ...) before the
engine's first line runs: 3 ms on a plain host, 25-40 ms on some. The launcher written here
starts the interpreter with -S and puts back only the two directories packages are installed
in, as they were when it was written, so a container's start pays for nothing it does not use.

    python3 -m pyminidocker.launcher /usr/local/bin/pyminidocker
    python3 -m pyminidocker.launcher /usr/local/bin/pyminidocker-runc pyminidocker.oci.main

pyminidocker-runc is the C front pmd-runc (csrc/ocifront.c, built next to this module), with
the launcher beside it as pyminidocker-runc.py: the front answers the calls that need no Python
(the `start` of a container without hooks, a `delete --force` of a container that is gone) and
execs that launcher for every other.
"""
from __future__ import annotations

import os
import shutil
import sys
import sysconfig

RUNC_MODULE = "pyminidocker.oci.main"

TEMPLATE = """#!{python} -S
# Written by `python3 -m pyminidocker.launcher` (make install): -S skips site's .pth imports.
import gc, sys
gc.set_threshold(50_000)  # see pyminidocker/__main__.py
sys.path[1:1] = {paths!r}
from {module} import command
command()
"""


def write(path: str, module: str = "pyminidocker.cli.main") -> None:
    paths = list(dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]))
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(TEMPLATE.format(python=sys.executable, paths=paths, module=module))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def write_runc(path: str) -> None:
    """pyminidocker-runc at path: the C front, and at path + ".py" the launcher it execs."""
    write(path + ".py", RUNC_MODULE)
    tmp = f"{path}.tmp"
    shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pmd-runc"), tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python3 -m pyminidocker.launcher PATH [MODULE]")
    if sys.argv[2:] == [RUNC_MODULE]:
        write_runc(sys.argv[1])
    else:
        write(*sys.argv[1:])
