"""Spawn-and-wait latency of the C shim from Python: median of N runs per configuration.

    python3 bench/spawn.py [N]      (root; builds a busybox rootfs in a temp dir)

Not a timed test: it prints where the time goes as namespaces and mounts are added.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from pyminidocker import shim as n
from pyminidocker.container import spec as d
from pyminidocker.container.seccomp import Profile


def build_rootfs(root: str) -> None:
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy2("/bin/busybox", os.path.join(root, "bin/busybox"))
    for a in ("sh", "true"):
        os.symlink("busybox", os.path.join(root, "bin", a))


def measure_all(configs, runs: int):
    """Round-robin over the configurations, so that load from elsewhere (and the kernel's
    deferred namespace teardown) spreads over all of them alike. Returns, per configuration,
    (median ms, min ms, {phase: median ms})."""
    times: list[list[float]] = [[] for _ in configs]
    phases: list[dict[str, list[float]]] = [{} for _ in configs]
    for i in range(runs + 3):
        for j, (_, make) in enumerate(configs):
            spec = make()
            t0 = time.perf_counter()
            proc = n.spawn(spec)
            rc = proc.wait()
            dt = time.perf_counter() - t0
            assert rc == 0, rc
            if i >= 3:  # warm-up
                times[j].append(dt)
                for k, v in proc.trace().items():
                    phases[j].setdefault(k, []).append(v)
    return [(statistics.median(t) * 1e3, min(t) * 1e3,
             {k: statistics.median(v) for k, v in ph.items()})
            for t, ph in zip(times, phases)]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    tmp = tempfile.mkdtemp(prefix="pmd-bench-")
    root = os.path.join(tmp, "rootfs")
    build_rootfs(root)
    full = {"rootfs": root, "mounts": d.default_mounts(), "dev_setup": True,
            "masked_paths": d.MASKED_PATHS, "readonly_paths": d.READONLY_PATHS,
            "hostname": "bench", "seccomp": Profile.default().compile(d.DEFAULT_CAP_MASK),
            "no_new_privs": True,
            "env": [d.DEFAULT_ENV_PATH], "cap_bounding": d.DEFAULT_CAP_MASK,
            "cap_effective": d.DEFAULT_CAP_MASK, "cap_permitted": d.DEFAULT_CAP_MASK,
            "cap_inheritable": d.DEFAULT_CAP_MASK}
    ns = d.DEFAULT_NAMESPACES
    configs = [
        ("fork+exec, no namespaces", lambda: n.SpawnSpec(["/bin/true"])),
        ("pid+mnt+uts, pivot_root, no mounts",
         lambda: n.SpawnSpec(["/bin/true"], rootfs=root,
                             namespaces=n.CLONE_NEWPID | n.CLONE_NEWNS | n.CLONE_NEWUTS)),
        ("pid+mnt+uts, full container setup",
         lambda: n.SpawnSpec(["/bin/true"], namespaces=n.CLONE_NEWPID | n.CLONE_NEWNS
                             | n.CLONE_NEWUTS, **full)),
        ("+ipc, full container setup",
         lambda: n.SpawnSpec(["/bin/true"], namespaces=ns & ~n.CLONE_NEWNET, **full)),
        ("+ipc +net (Docker's set), full setup",
         lambda: n.SpawnSpec(["/bin/true"], namespaces=ns, **full)),
        ("the same, seccomp unconfined",
         lambda: n.SpawnSpec(["/bin/true"], namespaces=ns, **{**full, "seccomp": b""})),
        ("net only, no mounts",
         lambda: n.SpawnSpec(["/bin/true"], namespaces=n.CLONE_NEWNET)),
        ("ipc only, no mounts",
         lambda: n.SpawnSpec(["/bin/true"], namespaces=n.CLONE_NEWIPC)),
    ]
    print(f"median (min) of {runs} spawn+wait of /bin/true, ms; spec built outside the timing")
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        t.append(time.perf_counter() - t0)
    print(f"  {'subprocess.run, for scale':40s} {statistics.median(t) * 1e3:7.3f}")
    for (name, _), (med, lo, ph) in zip(configs, measure_all(configs, runs)):
        detail = " ".join(f"{k}={v:.3f}" for k, v in ph.items())
        print(f"  {name:40s} {med:7.3f} ({lo:.3f})  {detail}")
    print("phases (median ms, until execve): start = clone until the child runs (namespace "
          "creation), process = cgroups/stdio/hostname, mounts, pivot = pivot_root + "
          "masked/ro paths, confine = rlimits/seccomp/ids/caps; the rest is exec + wait")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
