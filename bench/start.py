#!/usr/bin/env python3
"""`make bench`'s start latency: `pyminidocker bench start` on a busybox image served by a
local registry (Debian's docker-registry on 127.0.0.1, as the tests use), so it runs offline.

The measurement itself is pyminidocker.benchmark's (ours, crun, runc, podman, docker where
present; interleaved; median, p95, min, ratio; our phases; a PNG).
Usage: sudo python3 bench/start.py [--runs 30] [--output start.png] [--network bridge]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, busybox_image, push_image, start_registry

from pyminidocker import benchmark


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--output", default="bench-start.png", help="the PNG (default: %(default)s)")
    ap.add_argument("--network", choices=["none", "bridge"], default="none",
                    help="bridge: a network of the benchmark's own (never the host's pmd0)")
    args = ap.parse_args()
    os.chdir(REPO)  # our CLI runs as `python -m pyminidocker` from the clone
    work = Path(tempfile.mkdtemp(prefix="pmd-bench-store-"))
    reg = start_registry(work / "registry")
    root = work / "store"
    pmd = [*benchmark.pmd_command(), "--root", str(root)]
    network = "none"
    try:
        ref = f"{reg.host}/bench/busybox:latest"
        push_image(busybox_image(), work, ref)
        subprocess.run([*pmd, "pull", "-q", ref], cwd=REPO, check=True, capture_output=True)
        if args.network == "bridge":
            network = f"pmdbench{os.getpid()}"
            subprocess.run([*pmd, "network", "create", network], check=True, capture_output=True)
        benchmark.bench_start(str(root), ref, ["true"], args.runs, args.output, sys.stdout,
                              network=network)
    finally:
        if network != "none":  # with its bridge and rules; nothing else of the host
            subprocess.run([*pmd, "network", "rm", network], capture_output=True, check=False)
        reg.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
