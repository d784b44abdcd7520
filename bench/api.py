#!/usr/bin/env python3
"""The Docker Engine API server against dockerd, through the same docker CLI, in the same run.

- `docker run --rm --network none busybox true` through our socket and through dockerd's
  (issue 12's target: ours <= 0.5x dockerd's);
- `docker ps -a` with 50 containers (target: <= dockerd's);
- the server's RSS, all its processes (target, idle: <= 30 MB): before its first client,
  after one request (its worker up), and after the runs once its worker has left;
- 20 concurrent clients each doing run --rm twice (target: no failure).

dockerd is measured only if it is installed: started by the bench with a data-root, exec-root,
pidfile and socket of its own, no bridge and no iptables (it touches nothing of the host's
networking), and stopped at the end. Images come from a local registry (Debian's
docker-registry on 127.0.0.1), so the bench runs offline.
Usage: sudo python3 bench/api.py [--runs 20] [--no-dockerd]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, busybox_image, push_image, start_registry

from pyminidocker.api.server import WORKER_LINGER

DOCKER = shutil.which("docker", path="/usr/local/bin") or shutil.which("docker") or "docker"


def docker(sock: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(sock.parent / "cfg"))
    return subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True,
                          check=check, timeout=300)


def wait_socket(sock: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while docker(sock, "version", check=False).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args[0]} did not come up: {proc.poll()}")
        time.sleep(0.2)


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def rss_mb(pid: int) -> float:
    """The RSS of pid and all its descendants (the API server's worker)."""
    from tests.integration.servers import children_of

    total = 0
    for p in [pid, *children_of(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def interleaved(fns: dict[str, Any], runs: int) -> dict[str, float]:
    """Median seconds of each fn, their runs taken in turn: the host's load (other work on
    a busy machine) weighs on every server alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}


def measure(socks: dict[str, Path], ref: str, runs: int) -> dict[str, dict[str, float]]:
    res: dict[str, dict[str, float]] = {name: {} for name in socks}
    for sock in socks.values():
        docker(sock, "pull", "-q", ref)
        docker(sock, "run", "--rm", "--network", "none", ref, "true")  # warm
    run = {name: (lambda s=sock: docker(s, "run", "--rm", "--network", "none", ref, "true"))
           for name, sock in socks.items()}
    for name, t in interleaved(run, runs).items():
        res[name]["run --rm true (s)"] = t
    ids = {name: [docker(sock, "create", "--network", "none", ref, "true").stdout.strip()
                  for _ in range(50)] for name, sock in socks.items()}
    try:
        ps = {name: (lambda s=sock: docker(s, "ps", "-a")) for name, sock in socks.items()}
        for name, t in interleaved(ps, runs).items():
            res[name]["ps -a, 50 containers (s)"] = t
    finally:
        for name, sock in socks.items():
            docker(sock, "rm", "-f", *ids[name])
    for name, sock in socks.items():
        def client(_: int, sock: Path = sock) -> int:
            fails = 0
            for _ in range(2):
                r = docker(sock, "run", "--rm", "--network", "none", ref, "true", check=False)
                fails += r.returncode != 0
            return fails

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            failures = sum(pool.map(client, range(20)))
        res[name]["20 clients x 2 run --rm: failures"] = failures
        res[name]["20 clients x 2 run --rm: wall (s)"] = time.perf_counter() - t0
        print(f"  {name}: done", file=sys.stderr)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-dockerd", action="store_true", help="measure ours only")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pmd-bench-api-"))
    reg = start_registry(work / "registry")
    procs: list[subprocess.Popen] = []
    results: dict[str, dict[str, float]] = {}
    try:
        ref = f"{reg.host}/bench/busybox:latest"
        push_image(busybox_image(), work, ref)
        ours = work / "pmd" / "docker.sock"
        ours.parent.mkdir()
        (ours.parent / "cfg").mkdir()
        server = subprocess.Popen(
            [sys.executable, "-m", "pyminidocker", "--root", str(work / "store"), "system",
             "service", "--time", "0", f"unix://{ours}"], cwd=REPO, start_new_session=True,
            stderr=subprocess.DEVNULL,
            # the monitor of a --rm container runs `python -m pyminidocker rm` from /: the
            # package must be importable there (as it is once installed)
            env=dict(os.environ, PYTHONPATH=str(REPO)))
        procs.append(server)
        # aiohttp and the engine load with the first client: the idle server's size before
        # one, after one, and after the runs
        deadline = time.monotonic() + 60
        while not ours.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)
        idle_before = rss_mb(server.pid)
        wait_socket(ours, server)
        time.sleep(1)
        idle_start = rss_mb(server.pid)
        socks = {"pyminidocker": ours}
        dockerd = None
        if not args.no_dockerd and shutil.which("dockerd"):
            d = work / "dockerd"
            theirs = d / "docker.sock"
            (d / "cfg").mkdir(parents=True)
            dockerd = subprocess.Popen(
                ["dockerd", "--data-root", str(d / "data"), "--exec-root", str(d / "exec"),
                 "--pidfile", str(d / "pid"), "-H", f"unix://{theirs}", "--bridge", "none",
                 "--iptables=false", "--ip-masq=false", "--ip-forward=false"],
                start_new_session=True, stdout=subprocess.DEVNULL, stderr=d.joinpath(
                    "log").open("w"))
            procs.append(dockerd)
            wait_socket(theirs, dockerd)
            socks["dockerd"] = theirs
        results = measure(socks, ref, args.runs)
        time.sleep(WORKER_LINGER + 2)  # its worker has left
        results["pyminidocker"]["idle RSS, no client yet (MB)"] = idle_before
        results["pyminidocker"]["RSS after one request, worker up (MB)"] = idle_start
        results["pyminidocker"]["idle RSS after the runs (MB)"] = rss_mb(server.pid)
        if dockerd is not None:
            results["dockerd"]["idle RSS after the runs (MB)"] = rss_mb(dockerd.pid)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        reg.close()
        subprocess.run(["umount", "-R", "-l", str(work)], check=False,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    keys = list(results["pyminidocker"])
    print(f"{'':40s}" + "".join(f"{n:>16s}" for n in results) + ("   ratio" if
                                                                   len(results) > 1 else ""))
    for k in keys:
        row = [results[n].get(k) for n in results]
        cells = "".join(f"{v:16.3f}" if v is not None else f"{'-':>16s}" for v in row)
        ratio = ""
        if len(row) > 1 and row[0] is not None and row[1]:
            ratio = f"   {row[0] / row[1]:.2f}x"
        print(f"{k:40s}{cells}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
