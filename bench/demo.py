#!/usr/bin/env python3
"""The offline demo: a local registry, an image built from busybox-static, pull, run.

Starts Debian's docker-registry on 127.0.0.1 (random port), builds a busybox image in Python
and pushes it with skopeo, then uses pyminidocker to pull it, list it, inspect it and run a
container from it. Leaves nothing behind and touches nothing it did not make: its containers run
on a network of its own, whose bridge and firewall rules `network rm` removes (the engine's
chains go with the last network that has rules in them, so another store's bridges and rules
stay); the registry is stopped and the demo's store (in a temporary directory unless --root is
given) is removed.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, busybox_image, push_image, start_registry

from tests.integration.servers import send_when_listening


def pmd(root: Path, *args: str, check: bool = True) -> int:
    cmd = [sys.executable, "-m", "pyminidocker", "--root", str(root), *args]
    print(f"\n$ pyminidocker {shlex.join(args)}", flush=True)
    res = subprocess.run(cmd, cwd=REPO, check=False)
    if check and res.returncode != 0:
        raise SystemExit(f"demo failed: pyminidocker {shlex.join(args)} exited "
                         f"{res.returncode}")
    return res.returncode


def _say_hello(port: int) -> None:
    print(f"\n$ echo hello-from-the-host | nc 127.0.0.1 {port}", flush=True)
    send_when_listening("127.0.0.1", port, b"hello-from-the-host\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="store to use (default: a temporary one, removed after)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pmd-demo-"))
    root = Path(args.root) if args.root else work / "store"
    reg = start_registry(work / "registry")
    try:
        ref = f"{reg.host}/demo/busybox:latest"
        print(f"registry on {reg.host}; building a busybox image and pushing it with skopeo")
        push_image(busybox_image(), work, ref)
        pmd(root, "pull", ref)
        pmd(root, "images")
        net = f"demo-{os.urandom(3).hex()}"
        pmd(root, "network", "create", net)
        pmd(root, "run", "--rm", "--network", net, ref, "sh", "-c",
            "echo hello from $(hostname); id; cat /etc/os-release 2>/dev/null || uname -sr")
        pmd(root, "run", "-d", "--name", "web", "--network", net, "-p", "127.0.0.1:18080:7000", ref,
            "sh", "-c", "echo listening; nc -l -p 7000")
        pmd(root, "ps")
        pmd(root, "port", "web")
        _say_hello(18080)
        pmd(root, "wait", "web")
        pmd(root, "logs", "web")
        pmd(root, "rm", "web")
        pmd(root, "rmi", ref)
        pmd(root, "network", "rm", net)
    finally:
        reg.close()
        if not args.root:
            shutil.rmtree(work, ignore_errors=True)
    print("\ndemo complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
