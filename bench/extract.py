"""Layer extraction throughput: pmd_layer_extract vs `bsdtar -xpf` on the same blob.

Usage (root): python3 bench/extract.py BLOB [BLOB...]   (.tar, .tgz/.tar.gz, .tar.zst)
Each run extracts into a fresh directory next to the blob after `sync`; prints the median
of --runs wall-clock times for both and the ratio.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from pyminidocker import _native


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


def run_bsdtar(blob: str, base: str) -> float:
    d = fresh(base)
    t = time.perf_counter()
    subprocess.run(["bsdtar", "-xpf", blob, "-C", d], check=True)
    elapsed = time.perf_counter() - t
    shutil.rmtree(d)
    return elapsed


def run_pmd(blob: str, base: str) -> float:
    d = fresh(base)
    fd = os.open(blob, os.O_RDONLY)
    try:
        t = time.perf_counter()
        _native.layer_extract(fd, d, kind_of(blob))
        elapsed = time.perf_counter() - t
    finally:
        os.close(fd)
    shutil.rmtree(d)
    return elapsed


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
        b, p = statistics.median(bsd), statistics.median(pmd)
        print(f"{os.path.basename(blob)}: bsdtar {b:.3f}s  pmd {p:.3f}s  ratio {p / b:.2f}")


if __name__ == "__main__":
    main()
