"""Lifecycle under load: many containers at once, many create/start/rm cycles; afterwards the
host has no mount, cgroup, process or file of theirs left (checked here, not assumed)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import store_with_bb


def _host_leftovers(root: Path, ids: set[str]) -> list[str]:
    """What is left of the containers whose ids (or 12-hex prefixes) are given: mounts of the
    store, their cgroups (v1 or v2), their records, staging debris, processes of the store."""
    out = []
    mounts = Path("/proc/self/mountinfo").read_text()
    out += [line for line in mounts.splitlines() if str(root) in line]
    for cg in [*Path("/sys/fs/cgroup").glob("*/pyminidocker/*"),
               *Path("/sys/fs/cgroup").glob("pyminidocker/*")]:
        if cg.is_dir() and any(cg.name.startswith(i) for i in ids):
            out.append(str(cg))
    cdir = root / "containers"
    if cdir.is_dir():
        out += [str(p) for p in cdir.iterdir()]
    staging = root / "staging"
    if staging.is_dir():
        out += [str(p) for p in staging.iterdir()]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(root).encode() in cmd:
                out.append(f"process {pid}: {cmd[:80]!r}")
    return out


@pytest.fixture(scope="module")
def bb(request, tmp_path_factory, publish, pmd_factory):
    return store_with_bb("load-bb", request, tmp_path_factory, publish, pmd_factory)


def test_fifty_containers_at_once(bb):
    procs = [subprocess.Popen(bb.argv("run", "--rm", "--name", f"c{i}", "bb", "sh", "-c",
                                      f"sleep 0.5; echo {i} $HOSTNAME"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=bb.env(), cwd=str(Path(__file__).parents[2]))
             for i in range(50)]
    results = [(p.communicate(timeout=300), p.returncode) for p in procs]
    ids = set()
    for i, ((out, err), rc) in enumerate(results):
        assert rc == 0, err
        n, hostname = out.split()
        assert n == str(i)
        ids.add(hostname)  # the first 12 hex of the container's id
    assert len(ids) == 50
    assert bb("ps", "-a", "-q").stdout == ""
    assert _host_leftovers(bb.root, ids) == []


def test_three_hundred_create_start_rm_cycles(bb):
    """Through the library (what each CLI verb calls), so that 300 cycles take seconds."""
    from pyminidocker.container.runtime import CreateOptions, Runtime
    from pyminidocker.store import Store

    rt = Runtime(Store(bb.root))
    devnull = os.open(os.devnull, os.O_RDWR)
    ids = set()
    try:
        for i in range(300):
            rec = rt.create(CreateOptions(image="bb", cmd=["true"], name=f"cycle{i}",
                                          memory=64 << 20, pids_limit=50))
            ids.add(rec.id)
            assert rt.start(rec, attach=True, stdio=(devnull, devnull, devnull)) == 0
            rt.remove(rt.get(rec.id))
    finally:
        os.close(devnull)
    assert rt.list() == []
    assert _host_leftovers(bb.root, ids) == []


def _gone(pids: set[int]) -> list[int]:
    """Those of pids that still run (not zombies: an orphan's zombie waits for init)."""
    left = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2:].split()[0] not in (b"Z", b"X"):
            left.append(pid)
    return left


def test_fifty_detached_with_volumes_and_restart_policies(bb):
    """50 detached containers at once, each with an anonymous and a shared named volume, a
    healthcheck and a restart policy that restarts it once; after rm -f -v and volume prune
    nothing is left: no volume, monitor, health check, mount, cgroup or record."""
    procs = [subprocess.Popen(bb.argv("run", "-d", "--name", f"v{i}", "--restart", "on-failure:1",
                                      "--health-cmd", "test -e /anon/x",
                                      "--health-interval", "1s",
                                      "-v", "/anon", "-v", "shared:/shared", "bb", "sh", "-c",
                                      f"echo {i} >> /shared/runs; echo x > /anon/x; sleep 3; "
                                      "exit 1"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=bb.env(), cwd=str(Path(__file__).parents[2]))
             for i in range(50)]
    ids = set()
    try:
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            ids.add(out.strip())
        import json
        import time

        monitors = set()
        deadline = time.monotonic() + 120
        while True:
            docs = json.loads(bb("inspect", *sorted(ids)).stdout)
            monitors |= {d["State"]["Pid"] for d in docs}
            if all(d["State"]["Status"] == "exited" for d in docs) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert [d["RestartCount"] for d in docs] == [1] * 50
        # the monitor ran the healthcheck while each run lasted
        assert all(d["State"]["Health"]["Log"] for d in docs), [d["State"]["Health"] for d in docs]
        runs = (bb.root / "volumes/shared/_data/runs").read_text().split()
        assert sorted(runs) == sorted([str(i) for i in range(50)] * 2)  # each ran twice
        vols = bb("volume", "ls", "-q").stdout.split()
        assert len(vols) == 51 and "shared" in vols
        bb("rm", "-f", "-v", *sorted(ids))
        assert bb("volume", "ls", "-q").stdout.split() == ["shared"]
        bb("volume", "prune", "-f")
        assert bb("volume", "ls", "-q").stdout == ""
        assert list((bb.root / "volumes").iterdir()) == []
        assert _host_leftovers(bb.root, ids) == []
        assert _gone(monitors) == []
    except BaseException:  # a failure here must not leave 50 containers to the next test
        bb("rm", "-f", "-v", *sorted(ids), check=False)
        bb("volume", "prune", "-f", check=False)
        raise


def test_three_hundred_cycles_with_volumes(bb):
    """300 create/start/rm -v cycles, each with an anonymous volume, a named one (ten
    shared names) and a --mount tmpfs; then volume prune: nothing is left."""
    from pyminidocker.container.runtime import CreateOptions, Runtime
    from pyminidocker.store import Store

    store = Store(bb.root)
    rt = Runtime(store)
    devnull = os.open(os.devnull, os.O_RDWR)
    ids = set()
    try:
        for i in range(300):
            rec = rt.create(CreateOptions(
                image="bb", cmd=["sh", "-c", "echo . >> /n/f; echo y > /a/y"], name=f"vc{i}",
                volumes=["/a", f"n{i % 10}:/n"], mounts=["type=tmpfs,dst=/t"],
                network="none"))
            ids.add(rec.id)
            assert rt.start(rec, attach=True, stdio=(devnull, devnull, devnull)) == 0
            rt.remove(rt.get(rec.id), volumes=True)
    finally:
        os.close(devnull)
    assert rt.list() == []
    assert sorted(v.name for v in store.volumes.all()) == [f"n{i}" for i in range(10)]
    assert (bb.root / "volumes/n3/_data/f").read_text() == ".\n" * 30
    bb("volume", "prune", "-f")
    assert list((bb.root / "volumes").iterdir()) == []
    assert _host_leftovers(bb.root, ids) == []
