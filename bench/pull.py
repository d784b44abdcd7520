#!/usr/bin/env python3
"""Pull throughput: pyminidocker against skopeo+umoci, podman and bsdtar, in one run.

Starts Debian's docker-registry on 127.0.0.1, pushes (with skopeo) a Debian bookworm minbase
image made with debootstrap (~50 MB gzip) and a busybox image, then times, with a fresh store
each run, `pyminidocker pull` and the anchors that are installed:
  - `skopeo copy docker://… oci:DIR` + `umoci unpack` (download + unpack, as a pipeline would)
  - `podman pull` (into a throwaway --root)
  - `bsdtar -xpf BLOB` of the same layer from a local file (the extraction floor)
and prints medians and ratios. Not a test: machines are noisy, read the medians.

Usage: sudo python3 bench/pull.py [--runs N] [--dir /dev/shm]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO,
    blob_image,
    busybox_image,
    debian_minbase_blob,
    median_time,
    push_image,
    run,
    start_registry,
)

# The command as users run it: the launcher `make install` writes, else the module.
_LAUNCHER = shutil.which("pyminidocker", path="/usr/local/bin")
PMD = [_LAUNCHER] if _LAUNCHER else [sys.executable, "-m", "pyminidocker"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", help="where the stores and unpacked trees go (default: /tmp); "
                    "e.g. /dev/shm to take the disk out of the measurement")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pmd-bench-pull-", dir=args.dir))
    reg = start_registry(work / "registry")
    try:
        blob = debian_minbase_blob()
        images = {
            "debian": push_image(blob_image(blob), work, f"{reg.host}/bench/debian:latest")
            and f"{reg.host}/bench/debian:latest",
            "busybox": push_image(busybox_image(), work, f"{reg.host}/bench/busybox:latest")
            and f"{reg.host}/bench/busybox:latest",
        }
        print(f"debian layer: {blob.stat().st_size / 1e6:.1f} MB gzip; {args.runs} runs each, "
              "fresh store every run; medians\n")
        rows = []
        for name, ref in images.items():
            root = work / "store"

            def fresh() -> None:
                shutil.rmtree(root, ignore_errors=True)

            def pmd_pull() -> None:
                run([*PMD, "--root", str(root), "pull", "-q", ref], cwd=REPO)

            t_pmd, _ = median_time(pmd_pull, args.runs, fresh)
            fresh()
            rows.append((name, "pyminidocker pull", t_pmd))
            if shutil.which("skopeo") and shutil.which("umoci"):
                oci = work / "oci"
                bundle = work / "bundle"

                def clean() -> None:
                    shutil.rmtree(oci, ignore_errors=True)
                    shutil.rmtree(bundle, ignore_errors=True)

                def skopeo_umoci() -> None:
                    run(["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
                         f"docker://{ref}", f"oci:{oci}:latest"])
                    run(["umoci", "unpack", "--image", f"{oci}:latest", str(bundle)])

                t, _ = median_time(skopeo_umoci, args.runs, clean)
                clean()
                rows.append((name, "skopeo copy + umoci unpack", t))
            if shutil.which("podman"):
                proot = work / "podman"

                def pclean() -> None:
                    subprocess.run(["podman", "--root", str(proot), "--runroot",
                                    str(work / "podman-run"), "rmi", "-a", "-f"],
                                   capture_output=True, check=False)
                    shutil.rmtree(proot, ignore_errors=True)

                def podman_pull() -> None:
                    run(["podman", "--root", str(proot), "--runroot", str(work / "podman-run"),
                         "pull", "-q", "--tls-verify=false", ref])

                t, _ = median_time(podman_pull, args.runs, pclean)
                pclean()
                rows.append((name, "podman pull", t))
            if name == "debian" and shutil.which("bsdtar"):
                dest = work / "bsdtar"

                def bclean() -> None:
                    shutil.rmtree(dest, ignore_errors=True)
                    dest.mkdir()

                t, _ = median_time(lambda: run(["bsdtar", "-xpf", str(blob), "-C", str(dest)]),
                                   args.runs, bclean)
                shutil.rmtree(dest, ignore_errors=True)
                rows.append((name, "bsdtar -xpf (local blob, floor)", t))
        print(f"{'image':<8} {'tool':<34} {'median':>9} {'vs pyminidocker':>16}")
        base = {n: t for n, tool, t in rows if tool == "pyminidocker pull"}
        for name, tool, t in rows:
            print(f"{name:<8} {tool:<34} {t * 1000:7.0f}ms {t / base[name]:15.2f}x")
    finally:
        reg.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
