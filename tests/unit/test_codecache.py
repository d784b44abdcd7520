"""The code cache (pyminidocker/codecache.py, served by pyminidocker/__init__.py): the package's
modules come from it, and from their own .py whenever the cache cannot be trusted. Each test
runs a fresh interpreter on a copy of the package, so that nothing here imports through the
cache of the checkout under test."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHED = "_CodeCache"
NAME = "(lambda loader: type(loader).__qualname__)"


@pytest.fixture
def pkg(tmp_path):
    """A copy of the package (sources with their mtimes, the built C modules) and its cache."""
    shutil.copytree(REPO / "pyminidocker", tmp_path / "pyminidocker",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _python(tmp_path, "-m", "pyminidocker.codecache")
    return tmp_path


def _python(root: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    r = subprocess.run([sys.executable, *args], cwd=root, env={**env, "PYTHONPATH": str(root),
                       "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _loader_of(root: Path, module: str, *flags: str) -> str:
    return _python(root, *flags, "-c", f"import {module} as m; "
                   f"print({NAME}(m.__spec__.loader), m.__file__)").split()


def cache_file(root: Path) -> Path:
    return root / "pyminidocker" / "__pycache__" / \
        f"codecache.{sys.implementation.cache_tag}.bin"


def test_modules_come_from_the_cache_and_name_their_sources(pkg):
    assert cache_file(pkg).exists()
    loader, file = _loader_of(pkg, "pyminidocker.container.runtime")
    assert (loader, file) == (CACHED, str(pkg / "pyminidocker" / "container" / "runtime.py"))
    # a traceback names the source's file and line, as from a .pyc
    out = _python(pkg, "-c", "import traceback\nfrom pyminidocker.errors import UsageError\n"
                  "from pyminidocker.container import spec\ntry:\n"
                  "    spec.parse_signal('NOPE')\nexcept UsageError:\n"
                  "    print(traceback.format_exc())")
    assert str(pkg / "pyminidocker" / "container" / "spec.py") in out
    assert "def parse_signal" not in out and "raise UsageError" in out  # the line, read back


def test_python_dash_m_runs_a_module_from_the_cache(pkg):
    out = _python(pkg, "-m", "pyminidocker.oci.main", "--version")
    assert out.startswith("pyminidocker-runc version ")
    # what runpy does for -m: the spec and the code, from the cache's loader
    out = _python(pkg, "-c", "import runpy; name, spec, code = runpy._get_module_details("
                  f"'pyminidocker.oci.main'); print({NAME}(spec.loader), code.co_filename)")
    assert out.split() == [CACHED, str(pkg / "pyminidocker" / "oci" / "main.py")]


def test_an_edited_module_is_read_from_its_source(pkg):
    path = pkg / "pyminidocker" / "trace.py"
    path.write_text(path.read_text() + "\nEDITED = 'yes'\n")
    out = _python(pkg, "-c", "import pyminidocker.trace as t, pyminidocker.errors as e; "
                  f"print({NAME}(t.__spec__.loader), t.EDITED, {NAME}(e.__spec__.loader))")
    assert out.split() == ["SourceFileLoader", "yes", CACHED]


def test_a_cache_made_by_another_interpreter_is_not_used(pkg):
    data = bytearray(cache_file(pkg).read_bytes())
    data[0] ^= 0xFF  # another MAGIC_NUMBER
    cache_file(pkg).write_bytes(bytes(data))
    assert _loader_of(pkg, "pyminidocker.errors")[0] == "SourceFileLoader"


def test_a_damaged_cache_falls_back_to_the_sources(pkg):
    with open(cache_file(pkg), "r+b") as f:  # the index intact, the code cut short
        f.truncate(os.path.getsize(cache_file(pkg)) // 2)
    out = _python(pkg, "-c", "import pyminidocker.cli.main, pyminidocker.oci.main, "
                  "pyminidocker.api.routes; print('imported')")
    assert out.strip() == "imported"
    cache_file(pkg).write_bytes(b"garbage")  # not even an index
    assert _loader_of(pkg, "pyminidocker.errors")[0] == "SourceFileLoader"


def test_no_cache_under_dash_o(pkg):
    # compiled without -O: its asserts would run where -O drops them
    assert _loader_of(pkg, "pyminidocker.errors", "-O")[0] == "SourceFileLoader"


def test_remove(pkg):
    _python(pkg, "-m", "pyminidocker.codecache", "--remove")
    assert not cache_file(pkg).exists()
    assert _loader_of(pkg, "pyminidocker.errors")[0] == "SourceFileLoader"
