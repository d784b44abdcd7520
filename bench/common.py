"""What the benchmarks and the demo share: a local registry and images pushed to it.

The registry (Debian's docker-registry on 127.0.0.1) and the image builders come from the test
fixtures (tests/integration/servers.py, images.py), so the demo and the benchmarks use exactly
what the tests use; images are pushed with skopeo, never with pyminidocker itself.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration import images as I  # noqa: E402
from tests.integration.servers import start_registry  # noqa: E402

CACHE = Path(os.environ.get("PMD_BENCH_CACHE", "/var/cache/pyminidocker-bench"))


busybox_image = I.busybox_image


def push_image(img: I.Image, workdir: Path, ref: str) -> str:
    layout = I.write_layout(workdir / f"layout-{img.id_hex[:12]}", {"latest": img})
    return I.push(layout, ref, src_tag="latest")


def debian_minbase_blob() -> Path:
    """A gzip layer of a Debian bookworm minbase made with debootstrap and slimmed like
    debian:bookworm-slim (no apt lists, docs, man pages or locales); cached across runs."""
    CACHE.mkdir(parents=True, exist_ok=True)
    blob = CACHE / "bookworm-minbase.tar.gz"
    if blob.exists():
        return blob
    rootfs = CACHE / "bookworm-minbase"
    if not (rootfs / "bin").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs),
                        "http://deb.debian.org/debian"], check=True,
                       stdout=subprocess.DEVNULL)
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                    "usr/share/man", "usr/share/locale", "usr/share/info"):
            p = rootfs / sub
            if p.exists():
                shutil.rmtree(p)
                p.mkdir()
    tmp = blob.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        tar = subprocess.Popen(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs),
                                "-cf", "-", "."], stdout=subprocess.PIPE)
        subprocess.run(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=out, check=True)
        assert tar.wait() == 0
    tmp.rename(blob)
    return blob


def blob_image(blob: Path) -> I.Image:
    """An image whose single layer is an existing gzip blob (no re-compression)."""
    import gzip

    data = blob.read_bytes()
    tar = gzip.decompress(data)
    layer = I.Layer([], "gzip", tar, data, I.sha256(data), I.sha256(tar), I.OCI_LAYER["gzip"])
    return I.build_image([layer])


def median_time(fn, runs: int, setup=None) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


__all__ = [
    "CACHE",
    "REPO",
    "I",
    "blob_image",
    "busybox_image",
    "debian_minbase_blob",
    "median_time",
    "push_image",
    "run",
    "start_registry",
]
