"""Bash completion offers the store's image and container names where a command takes one
(the store --root names on the line), as Docker's completion does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyminidocker.cli import reference as R
from tests.integration.conftest import module_ctr

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

REPO = Path(__file__).resolve().parents[2]
ctr = module_ctr("completion-names")


def complete(tmp_path: Path, line: str) -> list[str]:
    script = tmp_path / "completion"
    script.write_text(R.bash_completion())
    bin_dir = tmp_path / "bin"  # `pyminidocker` on PATH, as make install puts it
    bin_dir.mkdir(exist_ok=True)
    launcher = bin_dir / "pyminidocker"
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m pyminidocker "$@"\n')
    launcher.chmod(0o755)
    words = line.split(" ")
    code = (f"source {script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)})\n"
            f"COMP_CWORD={len(words) - 1}\n_pyminidocker\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"")
    res = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], capture_output=True,
                         text=True, check=True,
                         env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    return sorted(w for w in res.stdout.splitlines() if w)


def test_image_and_container_names_complete(ctr, tmp_path):
    cid = ctr("create", "--name", "completion-one", "bb", "true").stdout.strip()
    try:
        root = f"--root {ctr.root}"
        assert complete(tmp_path, f"pyminidocker {root} run b") == ["bb", "bb:latest"]
        assert complete(tmp_path, f"pyminidocker {root} rmi bb b") == ["bb", "bb:latest"]
        assert complete(tmp_path, f"pyminidocker {root} rm completion-") == ["completion-one"]
        assert complete(tmp_path, f"pyminidocker {root} start -a {cid[:4]}") == [cid[:12]]
        # not where a name does not go: a new name, the container's command
        assert complete(tmp_path, f"pyminidocker {root} rename completion-one c") == []
        assert complete(tmp_path, f"pyminidocker {root} run bb comp") == []
    finally:
        ctr("rm", "-f", cid)
