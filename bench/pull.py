#!/usr/bin/env python3
"""`make bench`'s pull time: `pyminidocker bench pull` on a busybox image and a Debian bookworm
minbase image (~50 MB gzip, made with debootstrap and cached) served by a local registry
(Debian's docker-registry on 127.0.0.1, as the tests use), so it runs offline.

The measurement itself is pyminidocker.benchmark's (ours, skopeo copy + umoci unpack, podman,
docker where present, and bsdtar -xpf of the same blobs as the floor; a fresh store each run).
Usage: sudo python3 bench/pull.py [--runs N] [--dir /dev/shm] [--output pull.png]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, blob_image, busybox_image, debian_minbase_blob, push_image, start_registry

from pyminidocker import benchmark


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", help="where the stores and unpacked trees go (default: /tmp); "
                    "e.g. /dev/shm to take the disk out of the measurement")
    ap.add_argument("--output", default="bench-pull.png", help="the PNG (default: %(default)s)")
    args = ap.parse_args()
    os.chdir(REPO)  # our CLI runs as `python -m pyminidocker` from the clone
    work = Path(tempfile.mkdtemp(prefix="pmd-bench-registry-"))
    reg = start_registry(work / "registry")
    try:
        refs = [f"{reg.host}/bench/busybox:latest", f"{reg.host}/bench/debian:latest"]
        push_image(busybox_image(), work, refs[0])
        push_image(blob_image(debian_minbase_blob()), work, refs[1])
        benchmark.bench_pull(refs, args.runs, args.output, sys.stdout, args.dir)
    finally:
        reg.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
