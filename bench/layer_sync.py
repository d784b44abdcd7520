"""How to make an extracted layer durable before its rename registers it: syncfs(2) of the
store's filesystem vs an fsync of every extracted file and directory.

Usage (root): python3 bench/layer_sync.py [--root DIR] [--runs N] [--blob BLOB]
Without --blob, a Debian-sized layer is made once from the cached bookworm minbase root of
the fresh-install test (/var/cache/pyminidocker-ci/bookworm, about 200 MB, 8k files).
Each run: `sync`, extract with pmd_layer_extract into a fresh directory under --root (the
store's filesystem), then time the flush; prints the median of each method's extraction and
flush times. syncfs also flushes whatever else is dirty on the filesystem (other processes'
writes): on a shared machine its time depends on them, which the spread shows.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tarfile
import time

from pyminidocker import shim as _native
from pyminidocker.store.layers import fsync_tree, syncfs

BOOKWORM = "/var/cache/pyminidocker-ci/bookworm"


def make_blob(path: str) -> str:
    if not os.path.exists(path):
        with tarfile.open(path + ".tmp", "w:gz", compresslevel=1) as tar:
            tar.add(BOOKWORM, arcname=".")
        os.rename(path + ".tmp", path)
    return path


def one(blob: str, base: str, method: str) -> tuple[float, float]:
    subprocess.run(["sync"], check=True)
    d = os.path.join(base, f"run-{method}")
    shutil.rmtree(d, ignore_errors=True)
    os.mkdir(d)
    fd = os.open(blob, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        _native.layer_extract(fd, d, _native.COMPRESS_GZIP)
        t1 = time.perf_counter()
    finally:
        os.close(fd)
    if method == "syncfs":
        syncfs(d)
    elif method == "fsync":
        fsync_tree(d)
    t2 = time.perf_counter()
    shutil.rmtree(d)
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/var/lib/pmd-bench-layer-sync")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--blob", default="/var/tmp/pmd-bench-bookworm.tar.gz")
    a = ap.parse_args()
    os.makedirs(a.root, exist_ok=True)
    blob = make_blob(a.blob)
    print(f"blob {blob}: {os.path.getsize(blob) / 1e6:.1f} MB compressed")
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in ("none", "syncfs", "fsync")}
    for _ in range(a.runs):
        for m in results:  # interleaved: the machine's load hits every method alike
            results[m].append(one(blob, a.root, m))
    for m, rs in results.items():
        ext = statistics.median(r[0] for r in rs)
        fl = [r[1] for r in rs]
        med = statistics.median(fl)
        print(f"{m:7} extract {ext * 1000:7.0f} ms  flush median {med * 1000:6.0f} ms"
              f"  min {min(fl) * 1000:6.0f}  max {max(fl) * 1000:6.0f}")
    shutil.rmtree(a.root, ignore_errors=True)


if __name__ == "__main__":
    main()
