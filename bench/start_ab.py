#!/usr/bin/env python3
"""Before and after: `python -m pyminidocker --root R run --rm --network none IMAGE true` of
several checkouts, in the same rounds, so that a change is measured on one host load.

Each checkout gets a fresh store of its own (its own on-disk format) with busybox pulled from a
local registry (the tests' fixtures, as bench/start.py); each round runs every checkout once,
in a shuffled order, so that none is always first. Wall time and the child's CPU time
(RUSAGE_CHILDREN), median of --runs after --warmup rounds. Build each checkout first: a stale
.pyc is compiled again at every run.
Not a test. Usage: sudo .venv/bin/python bench/start_ab.py DIR [DIR...] [--runs 150]
e.g. git worktree add --detach /tmp/base 9edd807 && (cd /tmp/base && ln -s $PWD/.venv && make)
"""
from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import busybox_image, push_image, start_registry


def one_run(checkout: str, root: Path, ref: str) -> tuple[float, float]:
    """(wall ms, CPU ms) of one `run --rm` of checkout's CLI."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pyminidocker", "--root", str(root), "run", "--rm",
                    "--network", "none", ref, "true"], cwd=checkout, check=True)
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkouts", nargs="+", metavar="DIR")
    ap.add_argument("--runs", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    checkouts = [str(Path(d).resolve()) for d in args.checkouts]
    work = Path(tempfile.mkdtemp(prefix="pmd-bench-ab-"))
    reg = start_registry(work / "registry")
    try:
        ref = f"{reg.host}/bench/busybox:latest"
        push_image(busybox_image(), work, ref)
        roots = {d: work / f"store{i}" for i, d in enumerate(checkouts)}
        for d, root in roots.items():
            subprocess.run([sys.executable, "-m", "pyminidocker", "--root", str(root), "pull",
                            "-q", ref], cwd=d, check=True, capture_output=True)
        times: dict[str, list[tuple[float, float]]] = {d: [] for d in checkouts}
        for i in range(args.warmup + args.runs):
            for d in random.sample(checkouts, len(checkouts)):
                t = one_run(d, roots[d], ref)
                if i >= args.warmup:
                    times[d].append(t)
        print(f"{'checkout':50} {'runs':>5} {'wall ms':>8} {'cpu ms':>8}  (medians)")
        for d, ts in times.items():
            print(f"{d:50} {len(ts):5} {statistics.median(w for w, _ in ts):8.1f} "
                  f"{statistics.median(c for _, c in ts):8.1f}")
    finally:
        reg.close()
        shutil.rmtree(work, ignore_errors=True)  # run --rm leaves no mount in the stores
    return 0


if __name__ == "__main__":
    sys.exit(main())
