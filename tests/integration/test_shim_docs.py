"""docs/shim.md's examples run as written, and examples/sandbox.py does what it says.

The doc's ```python blocks run in order in one fresh Python process (a later block uses what an
earlier one made), so a change to the public shim API that breaks the documentation fails here.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="needs /bin/busybox (static)"),
]


def python_blocks(text: str) -> list[str]:
    return [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]


def mounts(under: str) -> list[str]:
    """Mounts below the scratch directories (other tests on this machine mount elsewhere)."""
    with open("/proc/self/mountinfo") as f:
        return sorted(p for p in (line.split()[4] for line in f) if under in p)


def links() -> set[str]:
    """The links the examples make."""
    return {n for n in os.listdir("/sys/class/net") if n.startswith("pmddoc")}


def scratch(prefix: str) -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(prefix)}


def run_python(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False, **kw)


def test_every_example_in_docs_shim_md_runs():
    blocks = python_blocks((REPO / "docs" / "shim.md").read_text())
    assert len(blocks) >= 8, "the page documents each area with an example"
    # each block is compiled under its own name, so a failure says which one it was
    program = "\n".join(
        f"exec(compile({code!r}, 'docs/shim.md example {i + 1}', 'exec'))"
        for i, code in enumerate(blocks))
    before_tmp = scratch("shim-doc-")
    res = run_python(["-c", program])
    assert res.returncode == 0, res.stderr[-3000:]
    assert mounts("/shim-doc-") == [] and links() == set()
    assert scratch("shim-doc-") == before_tmp


def test_the_shim_api_is_typed_and_declared():
    from pyminidocker import shim

    assert (REPO / "pyminidocker" / "py.typed").exists()
    assert '"py.typed"' in (REPO / "pyproject.toml").read_text()
    missing = [name for name in shim.__all__ if not hasattr(shim, name)]
    assert missing == []
    undocumented = [name for name in shim.__all__ if callable(getattr(shim, name))
                    and not getattr(shim, name).__doc__]
    assert undocumented == []
    documented = (REPO / "docs" / "shim.md").read_text()
    assert all(f"`{name}" in documented or name.isupper() for name in shim.__all__ if
               callable(getattr(shim, name)) and name not in ("ExtractResult", "MonitorInfo",
                                                              "Process", "wait", "spec_write"))
    assert isinstance(shim.API_VERSION, tuple) and shim.API_VERSION >= (1, 0)


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "hostname", "cat", "grep", "touch", "ls", "ip"):
        (root / "bin" / applet).symlink_to("busybox")
    return root


def test_sandbox_example_runs_a_rootfs_confined_and_leaves_it_untouched(rootfs):
    before = sorted(p.name for p in rootfs.rglob("*"))
    before_tmp = scratch("sandbox-")
    script = ("hostname; echo pid $$; grep CapEff /proc/self/status; touch /made-here; "
              "ip -o link | grep -c ': '; exit 7")
    res = run_python([str(REPO / "examples" / "sandbox.py"), str(rootfs), "sh", "-c", script])
    assert res.returncode == 7, res.stderr
    lines = res.stdout.split("\n")
    assert lines[:3] == ["sandbox", "pid 1", "CapEff:\t00000000a80425fb"]
    assert lines[3] == "1"  # lo alone: a network namespace of its own
    assert sorted(p.name for p in rootfs.rglob("*")) == before  # the overlay took the write
    assert mounts("/sandbox-") == []
    assert scratch("sandbox-") == before_tmp


def test_sandbox_example_errors_are_one_line(rootfs, tmp_path):
    res = run_python([str(REPO / "examples" / "sandbox.py"), str(rootfs), "no-such-command"])
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "sandbox: [Errno 2] exec: No such file or directory: 'no-such-command'"]
    res = run_python([str(REPO / "examples" / "sandbox.py"), str(tmp_path / "missing")])
    assert res.returncode == 1 and res.stderr.startswith("usage: sandbox.py ROOTFS")
