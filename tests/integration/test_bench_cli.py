"""`pyminidocker bench start` and `bench pull` as a user runs them: a short run (2 timed runs
each) prints the table with every engine present or a line saying it is skipped, our phases,
and writes a valid PNG; nothing is left behind (containers, bundles, mounts, runc state)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration import images as I
from tests.integration.conftest import module_ctr

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

ctr = module_ctr("bench-busybox")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TIME = r"\s+\d+\.(\d ms|\d\d s)"  # ms below a second, seconds above (a busy machine)
ROW = TIME * 3 + r"\s+\d+\.\d\dx"


def mounts() -> list[str]:
    """The mounts of a benchmark (other tests on this machine mount elsewhere)."""
    with open("/proc/self/mountinfo") as f:
        return sorted(p for p in (line.split()[4] for line in f) if "/pmd-bench-" in p)


def scratch() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("pmd-bench-")}


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 300


def assert_anchor(out: str, name: str, tool: str) -> None:
    """An anchor has a row of numbers where it is installed, a line saying it is skipped
    where it is not."""
    if shutil.which(tool):
        assert re.search(re.escape(name) + ROW, out), out
    else:
        assert f"skipped: {tool} is not installed" in out


def test_bench_start_prints_the_table_our_phases_and_writes_a_png(ctr, tmp_path):
    png = tmp_path / "start.png"
    before_mounts, before_tmp = mounts(), scratch()
    res = ctr("bench", "start", "-n", "2", "-o", str(png), "bb", timeout=600)
    out = res.stdout
    assert re.search(r"engine\s+median\s+p95\s+min\s+ratio", out)
    assert re.search(r"pyminidocker run --rm --network none" + ROW, out), out
    assert re.search(r"pyminidocker run --rm --network none.*\s1\.00x", out)
    for name, tool in (("crun run (ready bundle)", "crun"), ("runc run (ready bundle)", "runc"),
                       ("podman run --rm --network none", "podman")):
        assert_anchor(out, name, tool)
    assert re.search(r"docker run --rm --network none" + ROW, out) or "skipped: docker" in out
    phases = out.split("our phases", 1)[1]
    for phase in ("interpreter + imports", "spawn (clone to execve)", "child: mounts",
                  "parsing and the rest", "sum"):
        assert re.search(re.escape(phase) + r"\s+\d+\.\d\d ms", phases), phases
    assert f"wrote {png}" in out
    assert_png(png)
    assert mounts() == before_mounts and scratch() == before_tmp
    assert ctr("ps", "-a", "-q").stdout == ""
    if shutil.which("runc"):
        runc = subprocess.run(["runc", "list", "-q"], capture_output=True, text=True, check=True)
        assert "pmdbench" not in runc.stdout


def test_bench_start_errors_are_one_line(ctr):
    res = ctr("bench", "start", "-n", "2", "no-such-image", check=False)
    assert res.returncode == 125 and len(res.stderr.strip().splitlines()) == 1
    assert "no-such-image" in res.stderr and "pull it first" in res.stderr
    res = ctr("bench", "start", "-n", "0", check=False)
    assert res.returncode == 125
    assert res.stderr.strip() == 'Error: invalid argument "0" for "-n, --runs" flag: at least 1'
    res = ctr("bench", check=False)
    assert res.returncode == 125 and "requires a command" in res.stderr


def test_bench_pull_prints_a_table_per_image_and_writes_a_png(publish, pmd, tmp_path):
    pushed = publish(I.busybox_image(), "bench-pull", "v1")
    ref = f"{pushed.host}/{pushed.repo}:{pushed.tag}"
    png = tmp_path / "pull.png"
    before_mounts, before_tmp = mounts(), scratch()
    res = pmd("bench", "pull", "-n", "2", "-o", str(png), ref, timeout=600)
    out = res.stdout
    assert re.search(r"pyminidocker pull" + ROW, out), out
    assert re.search(r"pyminidocker pull.*\s1\.00x", out)
    if shutil.which("skopeo") and shutil.which("umoci"):
        assert re.search(r"skopeo copy \+ umoci unpack" + ROW, out), out
        if shutil.which("bsdtar"):
            assert re.search(r"bsdtar -xpf \(local blobs, floor\)" + ROW, out), out
    assert_anchor(out, "podman pull", "podman")
    assert_png(png)
    assert mounts() == before_mounts and scratch() == before_tmp


def test_bench_start_names_each_anchor_it_skips(ctr, tmp_path):
    """With no anchor on PATH (only what the benchmark itself runs: cp, rm, tar), each one
    has its line and the table has ours alone."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cp", "rm", "tar", "sh"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    res = ctr("bench", "start", "-n", "1", "bb", env={"PATH": str(bin_dir)}, timeout=300)
    for tool in ("crun", "runc", "podman", "docker"):
        assert f"skipped: {tool} is not installed\n" in res.stdout
    table = res.stdout.split("ratio\n", 1)[1].split("\n\n", 1)[0]
    assert [line.split("  ")[0] for line in table.splitlines()] == [
        "pyminidocker run --rm --network none"]
