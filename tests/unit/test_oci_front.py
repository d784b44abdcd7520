"""pyminidocker-runc's C front (csrc/ocifront.c): what it answers by itself is what the Python
runtime answers (stdout, stderr, exit code, the state left), and every other command line
reaches the Python runtime unchanged. Each case runs the front (pyminidocker-runc) and the
Python runtime it execs (pyminidocker-runc.py) directly, on copies of the same --root."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_oci_runtime import REPO, write_launcher

pytestmark = pytest.mark.skipif(not (REPO / "pyminidocker" / "pmd-runc").exists(),
                                reason="pmd-runc is not built (make build)")

# A stopped container's record as oci/state.py writes it: its init (pid 0) gone.
STOPPED = {"id": "c1", "bundle": "/b", "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z",
           "annotations": {}, "pid": 0, "pid_start": "", "ns_mask": 0, "freezer": None,
           "cgroup": ["c1", "pyminidocker-runc"], "extra_cgroups": [], "cgroup_dirs": [],
           "config": {"process": {"args": ["true"]}}}


@pytest.fixture
def runtimes(tmp_path):
    (tmp_path / "bin").mkdir()
    front = write_launcher(tmp_path / "bin" / "pyminidocker-runc")
    return front, front.with_name(front.name + ".py")


def _run(binary: Path, root: Path, argv: list[str], log: Path | None = None):
    flags = ["--root", str(root)] + (["--log", str(log), "--log-format", "json"] if log else [])
    r = subprocess.run([str(binary), *flags, *argv], capture_output=True, text=True, timeout=30,
                       check=False)
    # the root's path differs between the two copies: the same message names either
    return r.returncode, r.stdout.replace(str(root), "ROOT"), r.stderr.replace(str(root), "ROOT")


def _both(tmp_path: Path, runtimes, argv: list[str], setup=None, log: bool = False):
    """The front's and the Python runtime's answers, each on its own copy of the root."""
    out = []
    for name, binary in zip(("front", "python"), runtimes, strict=True):
        root = tmp_path / name / "root"
        root.mkdir(parents=True)
        if setup:
            setup(root)
        logfile = tmp_path / name / "log.json" if log else None
        res = _run(binary, root, argv, logfile)
        logged = [json.loads(ln)["msg"].replace(str(root), "ROOT")
                  for ln in logfile.read_text().splitlines()] \
            if logfile and logfile.exists() else []
        out.append((res, logged, sorted(str(p.relative_to(root)) for p in root.rglob("*"))))
    return out


def _record(rec: dict, raw: bytes | None = None):
    def setup(root: Path) -> None:
        (root / rec["id"]).mkdir()
        (root / rec["id"] / "state.json").write_bytes(raw if raw is not None
                                                      else json.dumps(rec).encode())
    return setup


@pytest.mark.parametrize("argv", [
    ["delete", "--force", "gone"], ["delete", "-f", "gone"],
])
def test_delete_force_of_a_gone_container_is_answered_alike(tmp_path, runtimes, argv):
    front, python = _both(tmp_path, runtimes, argv, log=True)
    assert front == python
    assert front[0] == (0, "", "") and front[1] == []


@pytest.mark.parametrize("argv, setup", [
    (["delete", "gone"], None),                       # not --force: an error, worded by Python
    (["state", "gone"], None),
    (["start", "gone"], None),
    (["delete", "--force", "../x"], None),            # an invalid id
    (["delete", "--force", "-x"], None),
    (["delete", "--force", "a", "b"], None),
    (["--systemd-cgroup", "delete", "--force", "gone"], None),
    (["delete", "--force", "c1"], _record(STOPPED)),  # a stopped container: removed
    (["delete", "c1"], _record(STOPPED)),
    (["state", "c1"], _record(STOPPED)),
    (["start", "c1"], _record(STOPPED)),
    (["delete", "--force", "c1"], _record(STOPPED, b'{"id": "c1", "pid": [')),  # corrupt
    (["delete", "--force", "c1"], _record(STOPPED, b"\xff" * 70000)),           # hostile
    (["delete", "--force", "c1"], _record({**STOPPED, "config": {"hooks": {"poststop": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo hook >&2; exit 3"]}]}}})),
])
def test_every_other_case_is_the_python_runtimes(tmp_path, runtimes, argv, setup):
    front, python = _both(tmp_path, runtimes, argv, setup=setup, log=True)
    assert front == python


def test_a_delete_force_with_state_left_reaches_python(tmp_path, runtimes):
    # the front alone never removes anything: with the Python runtime gone, a container that
    # exists is an exec error, and its record stays
    front, python = runtimes
    python.unlink()
    root = tmp_path / "root"
    root.mkdir()
    _record(STOPPED)(root)
    code, out, err = _run(front, root, ["delete", "--force", "c1"])
    assert (code, out) == (255, "")
    assert err == f"pyminidocker-runc: cannot run {python}: No such file or directory\n"
    assert (root / "c1" / "state.json").exists()


def test_the_front_answers_a_gone_delete_force_without_python(tmp_path, runtimes):
    # containerd's last call for each container: no interpreter started (none to start here)
    front, python = runtimes
    python.unlink()
    root = tmp_path / "root"
    root.mkdir()
    assert _run(front, root, ["delete", "--force", "gone"]) == (0, "", "")
    # containerd's flags, and the default root
    assert subprocess.run([str(front), "--log", str(tmp_path / "log"), "--log-format", "text",
                           "delete", "-f", "never-was-here"], capture_output=True,
                          check=False).returncode == 0
    assert not (tmp_path / "log").exists()


@pytest.mark.parametrize("root", ["relative/root", "/tmp/../tmp/x", "/tmp/./x", ""])
def test_a_root_the_kernel_resolves_unlike_abspath_is_deferred(tmp_path, runtimes, root):
    front, python = runtimes
    python.unlink()
    r = subprocess.run([str(front), "--root", root, "delete", "--force", "gone"],
                       capture_output=True, text=True, check=False, cwd=tmp_path)
    assert r.returncode == 255 and "cannot run" in r.stderr


def test_a_stopped_container_is_removed_through_the_front(tmp_path, runtimes):
    front, _ = runtimes
    root = tmp_path / "root"
    root.mkdir()
    _record(STOPPED)(root)
    assert _run(front, root, ["delete", "--force", "c1"]) == (0, "", "")
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("value, said", [
    ("!32", "cannot start container: Broken pipe"),   # the exchange failed once connected
    ("", "start failed"),                              # the holder closed without a reply
    ("zz", "start failed"),
    ("45" + b"no such file".hex(), "no such file"),  # an "E" reply: its text
])
def test_a_reply_the_front_passes_on_is_worded_by_python(tmp_path, runtimes, value, said):
    _, python = runtimes
    root = tmp_path / "root"
    root.mkdir()
    _record(STOPPED)(root)
    r = subprocess.run([str(python), "--root", str(root), "start", "c1"], capture_output=True,
                       text=True, timeout=30, check=False,
                       env={**os.environ, "PMD_RUNC_START_REPLY": value})
    assert (r.returncode, r.stdout, r.stderr.strip()) == (1, "", said)
