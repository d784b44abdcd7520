#!/usr/bin/env python3
"""OCI runtime start latency: `pyminidocker-runc run` against `crun run` and `runc run` on the
same prepared busybox bundle (runc's default spec, /bin/true, no terminal), in one run.

Median of --runs runs each after a warm-up, round-robin so that noise spreads over all of them;
ratios to crun and runc. pyminidocker-runc is started as `make install` starts it: through the
launcher (python -S), written here for this checkout.
--verbs times each call containerd's shim makes (create, start, state, delete, delete --force
of a gone container) by ours and by runc: the calls `ctr run --rm` is made of.
--against DIR also times the pyminidocker-runc of another checkout, in the same runs: before and
after a change (build it first: with PYTHONDONTWRITEBYTECODE a stale .pyc is compiled again at
every call). --python PATH also times this checkout's under another interpreter of the same
minor version (CPython's start is most of each call: a PGO/LTO build starts faster).
Not a test. Usage: sudo .venv/bin/python bench/oci.py [--runs 30] [--ctr] [--verbs] [--against DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUSYBOX = Path("/bin/busybox")


def launcher(path: Path, repo: Path = REPO, python: str = sys.executable) -> Path:
    """What pyminidocker.launcher writes, with a checkout on the path (not installed): the C
    front at path and the Python launcher it execs at path.py, for a checkout that has the
    front (pyminidocker/pmd-runc), else the Python launcher alone at path."""
    front = repo / "pyminidocker" / "pmd-runc"
    script = path.with_name(path.name + ".py") if front.exists() else path
    paths = [str(repo), sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    script.write_text(f"#!{python} -S\nimport gc, sys\ngc.set_threshold(50_000)\n"
                    f"sys.path[1:1] = {list(dict.fromkeys(paths))!r}\n"
                    "from pyminidocker.oci.main import command\ncommand()\n")
    script.chmod(0o755)
    if front.exists():
        shutil.copy(front, path)
    return path


def bundle(d: Path) -> Path:
    (d / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, d / "rootfs" / "bin" / "busybox")
    (d / "rootfs" / "bin" / "true").symlink_to("busybox")
    subprocess.run(["runc", "spec", "-b", str(d)], check=True)
    cfg = json.loads((d / "config.json").read_text())
    cfg["process"].update(terminal=False, args=["/bin/true"])
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def ctr_bench(tmp: Path, ours: dict[str, str], runs: int) -> None:
    """`ctr run --rm` through pyminidocker-runc and through runc, with a containerd of its own
    (the test's: tests/integration/test_oci_clients.py)."""
    sys.path.insert(0, str(REPO))
    from tests.integration.test_oci_clients import (
        IMAGE,
        NAMESPACE,
        Containerd,
        image_tar,
        remove_cgroup_parent,
    )

    (tmp / "containerd").mkdir()
    d = Containerd(tmp / "containerd")
    try:
        d.ctr("image", "import", "--base-name", IMAGE.rsplit(":", 1)[0], str(image_tar(tmp)))
        binaries = {**ours, "runc": shutil.which("runc") or "runc"}
        times: dict[str, list[float]] = {name: [] for name in binaries}
        for i in range(runs + 2):
            for name, binary in binaries.items():
                t0 = time.perf_counter()
                d.ctr("run", "--runc-binary", binary, "--rm", IMAGE, f"b{i}", "true")
                if i >= 2:
                    times[name].append((time.perf_counter() - t0) * 1000)
        med = {t: statistics.median(v) for t, v in times.items()}
        for t, m in med.items():
            print(f"ctr run --rm via {t:24} {m:8.1f} ms median, {m / med['runc']:.2f}x runc")
        print(f"ctr run --rm: goal pyminidocker-runc <= 1.0x runc; {runs} runs each")
    finally:
        d.ctr("image", "rm", IMAGE, check=False)
        d.stop()
        # what the runtimes made for containerd's namespace, as the test's fixture removes it
        remove_cgroup_parent(NAMESPACE)
        shutil.rmtree(f"/run/containerd/runc/{NAMESPACE}", ignore_errors=True)


VERBS = (("create", ["create", "--bundle", "{bundle}", "{id}"]), ("start", ["start", "{id}"]),
         ("state", ["state", "{id}"]), ("delete", ["delete", "{id}"]),
         ("delete --force", ["delete", "--force", "{id}"]))


def _wait_stopped(cmd: list[str], cid: str) -> None:
    """Until the container's `true` has exited (not timed: a loaded host may take a while)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run([*cmd, "state", cid], capture_output=True, text=True, check=True)
        if json.loads(out.stdout)["status"] == "stopped":
            return
        time.sleep(0.01)


def verbs_bench(tools: dict[str, list[str]], b: Path, runs: int) -> None:
    """Median and minimum of each verb, round-robin between the runtimes (the minimum is what
    a busy host lets through least disturbed)."""
    times: dict[tuple[str, str], list[float]] = {}
    for i in range(runs + 2):
        for name, cmd in tools.items():
            for verb, argv in VERBS:
                if verb == "delete":
                    _wait_stopped(cmd, f"v{i}")
                argv = [a.format(bundle=b, id=f"v{i}") for a in argv]
                t0 = time.perf_counter()
                subprocess.run([*cmd, *argv], check=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)
                if i >= 2:
                    times.setdefault((name, verb), []).append((time.perf_counter() - t0) * 1000)
    print(f"{'runtime':20} {'verb':16} {'median ms':>10} {'min ms':>8}")
    for (name, verb), v in times.items():
        print(f"{name:20} {verb:16} {statistics.median(v):10.1f} {min(v):8.1f}")
    for name in tools:
        total = sum(statistics.median(v) for (n, _), v in times.items() if n == name)
        print(f"{name:20} {'sum of medians':16} {total:10.1f}")


def _drop_unusable(tools: dict[str, list[str]], b: Path) -> None:
    """crun 1.8 refuses a hybrid cgroup host whose v2 hierarchy has a controller (hugetlb when
    v1 does not mount it): say so and go on with the others rather than fail."""
    r = subprocess.run([*tools["crun"], "run", "--bundle", str(b), "probe"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if r.returncode != 0:
        print(f"crun left out: it cannot run here: {r.stderr.strip()}\n"
              "  (crun 1.8 wants the hugetlb controller mounted as v1; around the run:\n"
              "   mkdir -p /sys/fs/cgroup/hugetlb && "
              "mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb\n"
              "   and right after: umount /sys/fs/cgroup/hugetlb; rmdir /sys/fs/cgroup/hugetlb)")
        del tools["crun"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--ctr", action="store_true",
                    help="also `ctr run --rm` through each (needs containerd)")
    ap.add_argument("--verbs", action="store_true",
                    help="also each call containerd makes, ours and runc's")
    ap.add_argument("--against", type=Path, default=None,
                    help="another checkout whose pyminidocker-runc runs alongside (built)")
    ap.add_argument("--python", default="",
                    help="also this checkout's pyminidocker-runc under this interpreter")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pmd-oci-bench-"))
    try:
        b = bundle(tmp / "bundle")
        ours = {"pyminidocker-runc": str(launcher(tmp / "pyminidocker-runc"))}
        if args.against:
            ours[f"pmd@{args.against.name}"] = str(
                launcher(tmp / "pyminidocker-runc-against", args.against.resolve()))
        if args.python:
            ours[f"pmd@{args.python}"] = str(
                launcher(tmp / "pyminidocker-runc-python", python=args.python))
        tools = {
            **{name: [path, "--root", str(tmp / f"{name}-state")] for name, path in ours.items()},
            "crun": ["crun", "--root", str(tmp / "crun-state")],
            "runc": ["runc", "--root", str(tmp / "runc-state")],
        }
        _drop_unusable(tools, b)
        times: dict[str, list[float]] = {t: [] for t in tools}
        for i in range(args.runs + 2):
            for name, cmd in tools.items():
                t0 = time.perf_counter()
                subprocess.run([*cmd, "run", "--bundle", str(b), f"bench{i}"], check=True,
                               stdin=subprocess.DEVNULL)
                if i >= 2:  # warm-up: page cache, the cgroup parents
                    times[name].append((time.perf_counter() - t0) * 1000)
        med = {t: statistics.median(v) for t, v in times.items()}
        print(f"{'runtime':20} {'median ms':>10} {'p90 ms':>8}")
        for t, v in times.items():
            p90 = sorted(v)[int(len(v) * 0.9) - 1]
            print(f"{t:20} {med[t]:10.1f} {p90:8.1f}")
        for name in ours:
            if "crun" in med:
                print(f"{name} / crun = {med[name] / med['crun']:.2f}x (goal <= 1.5x)")
            print(f"{name} / runc = {med[name] / med['runc']:.2f}x (goal <= 1.0x)")
        print(f"{args.runs} runs each")
        if args.verbs:
            verbs_bench({t: tools[t] for t in (*ours, "runc")}, b, max(args.runs // 2, 5))
        if args.ctr:
            ctr_bench(tmp, ours, max(args.runs // 3, 5))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
