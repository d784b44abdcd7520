#!/usr/bin/env python3
"""Start latency: `pyminidocker run --rm --network none IMAGE true` and the shim's own
spawn-and-wait, against crun, runc and podman on the same busybox rootfs, in one run.

Median of --runs runs each (after warm-up), round-robin so that noise spreads over all tools.
Also prints the phases of one traced `run` (PYMINIDOCKER_TRACE=1) so you see where time goes.
Not a test. Usage: sudo python3 bench/start.py [--runs 30]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, busybox_image, push_image, start_registry

sys.path.insert(0, str(REPO))
from pyminidocker import shim as n
from pyminidocker.container import defaults as d
from pyminidocker.container.seccomp import Profile

# The command as users run it: the launcher `make install` writes, else the module.
_LAUNCHER = shutil.which("pyminidocker", path="/usr/local/bin")
PMD = [_LAUNCHER] if _LAUNCHER else [sys.executable, "-m", "pyminidocker"]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def oci_bundle(bundle: Path, rootfs_src: Path, runtime: str) -> None:
    """A bundle for crun/runc: a copy of the image's rootfs and the runtime's default spec,
    running /bin/true without a terminal."""
    shutil.copytree(rootfs_src, bundle / "rootfs", symlinks=True)
    sh([runtime, "spec"], cwd=bundle)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    (bundle / "config.json").write_text(json.dumps(spec))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pmd-bench-start-"))
    root = work / "store"
    reg = start_registry(work / "registry")
    mounted_hugetlb = False
    merged = work / "merged"
    try:
        ref = f"{reg.host}/bench/busybox:latest"
        push_image(busybox_image(), work, ref)
        sh([*PMD, "--root", str(root), "pull", "-q", ref], cwd=REPO)
        sh([*PMD, "--root", str(root), "tag", ref, "bb"], cwd=REPO)
        layer = next((root / "layers").iterdir()) / "diff"

        tools: dict[str, list[str] | object] = {
            "pyminidocker run --rm --network none": [*PMD, "--root", str(root), "run", "--rm",
                                                     "--network", "none", "bb", "true"],
            "pyminidocker run --rm (bridge)": [*PMD, "--root", str(root), "run", "--rm", "bb",
                                               "true"],
        }
        # the shim alone, from this Python process, on an overlay of the same layer
        for sub in ("upper", "work", "merged"):
            (work / sub).mkdir()
        n.overlay_mount([layer], merged, work / "upper", work / "work")
        spec_kw = dict(rootfs=str(merged), mounts=d.default_mounts(), dev_setup=True,
                       masked_paths=d.MASKED_PATHS, readonly_paths=d.READONLY_PATHS,
                       hostname="bench", no_new_privs=True,
                       seccomp=Profile.default().compile(d.DEFAULT_CAP_MASK),
                       env=[d.DEFAULT_ENV_PATH], cap_bounding=d.DEFAULT_CAP_MASK,
                       cap_effective=d.DEFAULT_CAP_MASK, cap_permitted=d.DEFAULT_CAP_MASK,
                       cap_inheritable=0, namespaces=d.DEFAULT_NAMESPACES)

        def shim() -> None:
            assert n.spawn(n.SpawnSpec(["/bin/true"], **spec_kw)).wait() == 0

        tools["shim spawn+wait from Python"] = shim
        cg_hugetlb = Path("/sys/fs/cgroup/hugetlb")
        for rt in ("crun", "runc"):
            if not shutil.which(rt):
                continue
            if rt == "crun" and Path("/sys/fs/cgroup/unified").is_dir() and \
                    not os.path.ismount(cg_hugetlb):
                # crun 1.8 refuses this hybrid layout without a hugetlb v1 hierarchy
                cg_hugetlb.mkdir(exist_ok=True)
                subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup",
                                str(cg_hugetlb)], check=False)
                mounted_hugetlb = os.path.ismount(cg_hugetlb)
            bundle = work / f"bundle-{rt}"
            bundle.mkdir()
            oci_bundle(bundle, layer, rt)
            tools[f"{rt} run (ready bundle)"] = [rt, "run", "-b", str(bundle), "@ID"]
        if shutil.which("podman"):
            proot = ["podman", "--root", str(work / "podman"), "--runroot",
                     str(work / "podman-run")]
            if subprocess.run([*proot, "pull", "-q", "--tls-verify=false", ref],
                              capture_output=True, check=False).returncode == 0:
                tools["podman run --rm --network none"] = [
                    *proot, "run", "--rm", "--network", "none", "--ulimit",
                    "nofile=1024:1024", "--ulimit", "nproc=1024:1024", ref, "true"]
                tools["podman run --rm (bridge)"] = [
                    *proot, "run", "--rm", "--ulimit", "nofile=1024:1024", "--ulimit",
                    "nproc=1024:1024", ref, "true"]
        times: dict[str, list[float]] = {k: [] for k in tools}
        failed: set[str] = set()
        for i in range(args.runs + 3):
            for name, tool in tools.items():
                if name in failed:
                    continue
                t = time.perf_counter()
                if callable(tool):
                    tool()
                else:
                    cmd = [a.replace("@ID", f"pmdbench{os.getpid()}{i}") for a in tool]
                    if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      cwd=REPO, check=False).returncode != 0:
                        failed.add(name)
                        continue
                if i >= 3:
                    times[name].append(time.perf_counter() - t)
        base = statistics.median(times["pyminidocker run --rm --network none"])
        print(f"{args.runs} runs each, medians (ratio = tool / pyminidocker run --network "
              "none)\n")
        print(f"{'tool':<40} {'median':>9} {'min':>8} {'ratio':>7}")
        for name, ts in times.items():
            if name in failed or not ts:
                print(f"{name:<40} {'failed':>9}")
                continue
            med = statistics.median(ts)
            print(f"{name:<40} {med * 1e3:7.1f}ms {min(ts) * 1e3:6.1f}ms {med / base:6.2f}x")
        print("\none traced run (PYMINIDOCKER_TRACE=1):")
        res = subprocess.run([*PMD, "--root", str(root), "run", "--rm", "bb", "true"], cwd=REPO,
                             env={**os.environ, "PYMINIDOCKER_TRACE": "1"},
                             capture_output=True, text=True, check=False)
        print(res.stderr)
    finally:
        if os.path.ismount(merged):
            n.umount(merged, n.MNT_DETACH)
        subprocess.run([*PMD, "--root", str(root), "system", "reset"], cwd=REPO,
                       capture_output=True, check=False)  # the bridge and rules it made
        if mounted_hugetlb:
            subprocess.run(["umount", "/sys/fs/cgroup/hugetlb"], check=False)
        reg.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
