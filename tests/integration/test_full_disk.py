"""A full disk wedges nothing: with the store on a small ext4 filesystem that a container fills
(its upper layer is on the store's filesystem), listing, inspecting, reading logs, stopping and
removing still work, the exit code is kept, and what needs space fails with one clear line."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import remove_leftovers, store_with_bb


@pytest.fixture(scope="module")
def disk(request, tmp_path_factory, publish, pmd_factory):
    """A store on its own 48 MiB ext4 (a loop device, no blocks reserved for root: the
    container's root fills it all), unmounted, with its loop device, at the module's end."""
    base = tmp_path_factory.mktemp("full-disk")
    image, mnt = base / "fs.img", base / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(48 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)

    def unmount() -> None:  # after the store's reset (a finalizer added later runs first)
        subprocess.run(["umount", str(mnt)], check=True)  # a loop mount frees its device,
        deadline = time.monotonic() + 10  # a moment later
        while str(image) in (left := subprocess.run(["losetup", "-a"], check=True,
                                                    capture_output=True, text=True).stdout):
            assert time.monotonic() < deadline, f"the loop device is left: {left}"
            time.sleep(0.1)

    request.addfinalizer(unmount)
    (mnt / "store").mkdir()
    run = store_with_bb("ctr-full-disk", request, tmp_path_factory, publish, pmd_factory,
                        root=mnt / "store")
    yield run
    assert remove_leftovers(run) == [], "containers left behind by the tests"


def _free(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(path) -> None:
    """Write path until the filesystem has not a block left."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
                os.fsync(f.fileno())  # delayed allocation: ENOSPC shows at the write
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    assert _free(path) < 16 << 10


def _status(run, cid: str) -> str:
    return run("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout.strip()


def test_a_full_disk_leaves_the_engine_usable(disk, single):
    run = disk
    # on the default bridge: its address and veth must not be lost to the full disk
    sleeper = run("run", "-d", "bb", "sleep", "1000").stdout.strip()
    waiting = run("create", "--network", "none", "bb", "sleep", "1000").stdout.strip()
    # it fills the disk, and exits 3 once told to: when not a block is left for its monitor
    filler = run("run", "-d", "--network", "none", "bb", "sh", "-c",
                 "trap 'exit 3' USR1; dd if=/dev/zero of=/fill bs=64k; "
                 "while :; do sleep 0.05; done").stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while _free(run.root) > 64 << 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _free(run.root) < 64 << 10, "the container did not fill the disk"
        _fill(run.root.parent / "ballast")  # and the last blocks it left, from the host
        assert run("kill", "-s", "USR1", filler).stdout.strip() == filler
        while not _status(run, filler).startswith("Exited") and time.monotonic() < deadline:
            time.sleep(0.1)
        # listing writes nothing (no state.json rewritten on a disk where nothing fits)
        ps = run("ps", "-a")
        assert ps.stderr == ""
        lines = {line.split()[0]: line for line in ps.stdout.splitlines()[1:]}
        assert "Exited (3)" in lines[filler[:12]], ps.stdout  # the exit code is kept
        assert "Up " in lines[sleeper[:12]], ps.stdout
        state = json.loads(run("inspect", filler).stdout)[0]["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 3)
        assert run("logs", filler).returncode == 0
        # what needs space says so, in one line, and leaves nothing behind; exit codes as
        # Docker's CLI: create and pull return the daemon's error as it is (1), run wraps it (125)
        for argv, code in ((("create", "--network", "none", "bb", "true"), 1),
                           (("run", "--rm", "--network", "none", "bb", "true"), 125),
                           (("pull", "-q", f"{single.host}/{single.repo}:{single.tag}"), 1)):
            res = run(*argv, check=False)
            assert res.returncode == code, (argv, res.returncode, res.stderr)
            assert len(res.stderr.strip().splitlines()) == 1, res.stderr
            assert "no space left on device" in res.stderr, res.stderr
        # a start that cannot record itself does not leave a process that ps calls Created
        res = run("start", waiting, check=False)
        assert res.returncode == 1 and "no space left on device" in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert _status(run, waiting) == "Created"
        assert not [p for p in Path("/sys/fs/cgroup").glob(f"*/pyminidocker/{waiting}")], \
            "its process runs on (or its cgroup is left)"
        assert sorted(run("ps", "-a", "-q", "--no-trunc").stdout.split()) == \
            sorted([sleeper, filler, waiting])
        # stopping and removing work on the full disk
        assert run("stop", "-t", "1", sleeper).stdout.strip() == sleeper
        assert _status(run, sleeper).startswith("Exited (137)")
        assert run("rm", "-f", filler, sleeper, waiting).returncode == 0
        assert run("ps", "-a", "-q").stdout == ""
        assert _free(run.root) > 16 << 20  # the filler's layer went with it
        check = run("system", "check", check=False)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        run("rm", "-f", filler, sleeper, waiting, check=False)
