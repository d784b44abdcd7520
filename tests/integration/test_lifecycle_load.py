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
