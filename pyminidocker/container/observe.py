"""What a container is doing, read from the kernel and its layer: top (its processes), diff (its
changes to the image), stats (its cgroup's counters: sample() for the engine's stats,
cgroup_usage() for the OCI runtime's events). Nothing here changes a container.
"""
from __future__ import annotations

import os
import time

from pyminidocker.container.cgroups import keyed, read_control
from pyminidocker.errors import Conflict, PmdError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.container.cgroups import Cgroup
    from pyminidocker.store.containers import ContainerRecord


def top(pids: list[int], ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
    """`top`: the host's `ps` (ps_args, default -ef, as Docker runs it) filtered to the
    container's processes: (titles, rows). Raises PmdError when ps fails or has no PID
    column."""
    import subprocess

    res = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True,
                         check=False)
    if res.returncode != 0:
        raise PmdError(f"ps: {res.stderr.strip() or 'failed'}")
    lines = res.stdout.splitlines()
    if not lines:
        return [], []
    titles = lines[0].split()
    if "PID" not in titles:
        raise PmdError("Couldn't find PID field in ps output")
    at = titles.index("PID")
    want = set(pids)
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > at and fields[at].isdigit() and int(fields[at]) in want:
            rows.append(fields)
    return titles, rows


def changes(upper: str, lowers: list[str],
            skip: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, str]]:
    """`diff`: ("A"|"C"|"D", path) for each change in the container's upper layer against the
    image's layers (lowers, top first), sorted by path as Docker prints them. A whiteout (a 0:0
    character device) is a deletion; a directory that holds changes is changed (C) if the
    image has it, else added; skip: paths the engine itself makes (mount points)."""
    def in_image(rel: str) -> bool:
        for lower in lowers:
            p = os.path.join(lower, rel)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            except OSError:
                return False
            return not (st.st_mode & 0o170000 == 0o020000 and st.st_rdev == 0)
        return False

    out: list[tuple[str, str]] = []
    for top_dir, dirs, files, dfd in os.fwalk(upper):
        rel_dir = os.path.relpath(top_dir, upper)
        for name in dirs + files:
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            if "/" + rel in skip:
                continue
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if st.st_mode & 0o170000 == 0o020000 and st.st_rdev == 0:
                out.append(("D", "/" + rel))
            else:
                out.append(("C" if in_image(rel) else "A", "/" + rel))
    return sorted(out, key=lambda c: c[1])


def _read(path: str) -> str:
    """A control or /proc file's text; "" for one that is gone (a container that exited
    meanwhile)."""
    return read_control(path) or ""


def sample(rec: ContainerRecord, cg: Any) -> dict[str, Any]:
    """One reading of the container's counters: cpu_ns (its CPU time), system_ns (the
    host's), mem_usage and mem_limit (bytes, Docker's usage: without inactive file pages),
    net_rx/net_tx (bytes of its interfaces but lo), blk_read/blk_write, pids. Raises
    Conflict for a container that is not running."""
    if rec.state.status != "running":
        raise Conflict(f"Container {rec.id} is not running")
    d = cg.dirs
    s: dict[str, Any] = {"time": time.monotonic()}
    if cg.version == "v2":
        base = d[""]
        s["cpu_ns"] = keyed(_read(os.path.join(base, "cpu.stat"))).get("usage_usec", 0) * 1000
        usage = int(_read(os.path.join(base, "memory.current")) or 0)
        inactive = keyed(_read(os.path.join(base, "memory.stat"))).get("inactive_file", 0)
        limit_s = _read(os.path.join(base, "memory.max")).strip()
        limit = int(limit_s) if limit_s.isdigit() else 0
        s["pids"] = int(_read(os.path.join(base, "pids.current")) or 0)
        io = _read(os.path.join(base, "io.stat"))
        rd = sum(int(f.split("=")[1]) for f in io.split() if f.startswith("rbytes="))
        wr = sum(int(f.split("=")[1]) for f in io.split() if f.startswith("wbytes="))
    else:
        acct = d.get("cpuacct") or d.get("cpu") or ""
        s["cpu_ns"] = int(_read(os.path.join(acct, "cpuacct.usage")).strip() or 0)
        mem = d.get("memory", "")
        usage = int(_read(os.path.join(mem, "memory.usage_in_bytes")).strip() or 0)
        inactive = keyed(_read(os.path.join(mem, "memory.stat"))).get("total_inactive_file", 0)
        limit = int(_read(os.path.join(mem, "memory.limit_in_bytes")).strip() or 0)
        s["pids"] = int(_read(os.path.join(d.get("pids", ""), "pids.current")).strip() or 0)
        rd = wr = 0  # containers get no blkio cgroup of their own on v1: no block I/O counts
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    s["mem_usage"] = max(0, usage - inactive)
    s["mem_limit"] = min(limit, total) if limit else total
    s["blk_read"], s["blk_write"] = rd, wr
    stat = _read("/proc/stat").splitlines()
    ticks = sum(int(x) for x in stat[0].split()[1:8]) if stat else 0
    s["system_ns"] = ticks * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))
    s["online_cpus"] = os.cpu_count() or 1
    rx = tx = 0
    for line in _read(f"/proc/{rec.state.pid}/net/dev").splitlines()[2:]:
        name, _, data = line.partition(":")
        fields = data.split()
        if name.strip() != "lo" and len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    s["net_rx"], s["net_tx"] = rx, tx
    return s


def cpu_percent(before: dict[str, Any], after: dict[str, Any]) -> float:
    """Docker's CPU %: the container's share of the host's CPU time between two readings,
    times the number of CPUs."""
    cpu = after["cpu_ns"] - before["cpu_ns"]
    system = after["system_ns"] - before["system_ns"]
    if cpu <= 0 or system <= 0:
        return 0.0
    return cpu / system * after["online_cpus"] * 100.0


def cgroup_usage(cg: Cgroup) -> dict[str, int | None]:
    """Current usage: memory_usage and memory_limit (bytes), pids, cpu_usage_ns; None where
    the controller is absent. An unlimited memory limit reads as None. Raises PmdError for a
    control file that is there but cannot be read."""
    def num(path: str | None, name: str) -> int | None:
        text = read_control(os.path.join(path, name)) if path else None
        text = (text or "").strip()
        return int(text) if text.isdigit() else None

    if cg.version == "v2":
        d = cg.dirs[""]
        usage = keyed(read_control(os.path.join(d, "cpu.stat"))).get("usage_usec")
        limit = num(d, "memory.max")
        return {
            "memory_usage": num(d, "memory.current"),
            "memory_limit": limit,
            "pids": num(d, "pids.current"),
            "cpu_usage_ns": usage * 1000 if usage is not None else None,
        }
    mem = cg.controller_dir("memory")
    limit = num(mem, "memory.limit_in_bytes")
    return {
        "memory_usage": num(mem, "memory.usage_in_bytes"),
        # v1 says "unlimited" with PAGE_COUNTER_MAX pages' worth of bytes.
        "memory_limit": limit if limit is not None and limit < 1 << 62 else None,
        "pids": num(cg.controller_dir("pids"), "pids.current"),
        "cpu_usage_ns": num(cg.controller_dir("cpuacct"), "cpuacct.usage"),
    }
