"""Layer extraction throughput: pmd_layer_extract vs `bsdtar -xpf` on the same blob.

Usage (root): python3 bench/extract.py BLOB [BLOB...]   (.tar, .tgz/.tar.gz, .tar.zst)
Each run extracts into a fresh directory next to the blob after `sync`; prints the median
of --runs wall-clock times and of CPU times (user+sys, all threads) for both, and the ratios.
CPU time is the steadier number on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

from pyminidocker import shim as _native


def kind_of(path: str) -> int:
    if path.endswith((".tgz", ".gz")):
        return _native.COMPRESS_GZIP
    if path.endswith(".zst"):
        return _native.COMPRESS_ZSTD
    return _native.COMPRESS_NONE


def fresh(base: str) -> str:
    d = tempfile.mkdtemp(dir=base, prefix="bench-")
    subprocess.run(["sync"], check=True)
    return d


def cpu(who: int) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def run_bsdtar(blob: str, base: str) -> tuple[float, float]:
    d = fresh(base)
    c, t = cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(["bsdtar", "-xpf", blob, "-C", d], check=True)
    elapsed, used = time.perf_counter() - t, cpu(resource.RUSAGE_CHILDREN) - c
    shutil.rmtree(d)
    return elapsed, used


def run_pmd(blob: str, base: str) -> tuple[float, float]:
    d = fresh(base)
    fd = os.open(blob, os.O_RDONLY)
    try:
        c, t = cpu(resource.RUSAGE_SELF), time.perf_counter()
        _native.layer_extract(fd, d, kind_of(blob))
        elapsed, used = time.perf_counter() - t, cpu(resource.RUSAGE_SELF) - c
    finally:
        os.close(fd)
    shutil.rmtree(d)
    return elapsed, used


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("blobs", nargs="+")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    for blob in args.blobs:
        base = os.path.dirname(os.path.abspath(blob))
        bsd, pmd = [], []
        for _ in range(args.runs):  # interleaved, so drift hits both alike
            bsd.append(run_bsdtar(blob, base))
            pmd.append(run_pmd(blob, base))
        bw, pw = (statistics.median(r[0] for r in runs) for runs in (bsd, pmd))
        bc, pc = (statistics.median(r[1] for r in runs) for runs in (bsd, pmd))
        print(f"{os.path.basename(blob)}: wall bsdtar {bw:.3f}s pmd {pw:.3f}s ratio {pw / bw:.2f}"
              f" | cpu bsdtar {bc:.3f}s pmd {pc:.3f}s ratio {pc / bc:.2f}")


if __name__ == "__main__":
    main()
