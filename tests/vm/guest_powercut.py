"""The guest side of the power-cut test (tests/vm/test_power_cut.py), run inside the VM.

`loop`: serve a registry on 127.0.0.1 (Debian's docker-registry), push two busybox images to it,
pull the first, print PMD-LOOP-START, then loop until the power goes: pulls and `rmi` of the
second image, `run -d`, `run --rm`, `create`, `start`, `stop`, `rm -f`, leaving a few containers
of each kind (running, stopped, exited, created) so that a cut finds records in every state.

`check`: what an operator does after the power comes back: `ps -a`, `images`, `run --rm`, `rm -f`
of everything, `system check --full`. Prints each command's exit code and output; then, for the record,
every JSON file of the store that does not parse (the files a cut broke). Exit code: the number of
failed commands.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration import images as I
from tests.integration import servers as S

ROOT = "/var/lib/pmd-powercut"
STATE = Path("/var/lib/pmd-powercut-test")
IMG = "127.0.0.1:{port}/pc/busybox:v1"


def pmd(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyminidocker", "--root", ROOT, *args],
                          check=False, capture_output=True, text=True, timeout=timeout)


def say(msg: str) -> None:
    print(msg, flush=True)


def must(*args: str) -> str:
    say(f"PMD-DO {args[0]}")  # the host reports what a cut interrupted (the last one)
    res = pmd(*args)
    if res.returncode != 0:
        say(f"FAILED before the cut: {' '.join(args)} rc={res.returncode}\n{res.stdout}{res.stderr}")
        sys.exit(3)
    return res.stdout


def loop() -> int:
    reg = S.start_registry(STATE / "registry")
    host = reg.host
    base = I.make_layer(I.base_entries())
    extra = I.make_layer(I.base_entries(extra=b"second image"))
    for tag, layers in (("v1", [base]), ("v2", [base, extra])):
        lay = I.write_layout(STATE / f"layout-{tag}", {tag: I.build_image(layers)})
        I.push(lay, f"{host}/pc/busybox:{tag}")
    img, img2 = f"{host}/pc/busybox:v1", f"{host}/pc/busybox:v2"
    (STATE / "image").write_text(img)
    must("pull", img)
    say("PMD-LOOP-START")
    t0 = time.monotonic()
    i = 0
    while True:
        i += 1
        if i % 4 == 1:
            must("pull", img2)
        if i % 4 == 3:
            must("rmi", "-f", img2)
        must("run", "-d", "--name", f"d{i}", img, "sleep", "1000")
        must("run", "--rm", img, "true")
        must("create", "--name", f"c{i}", img, "true")
        must("start", f"c{i}")
        if i > 1:
            must("stop", "-t", "1", f"d{i - 1}")
        if i > 2:
            must("rm", "-f", f"d{i - 2}", f"c{i - 2}")
        say(f"PMD-ITER {i} {time.monotonic() - t0:.1f}s")


def broken_json() -> list[str]:
    """Every JSON file under the store that is empty or does not parse, with its size."""
    out = []
    for path in sorted(Path(ROOT).rglob("*.json")):
        if not path.is_file() or "/diff/" in str(path) or "/rootfs/" in str(path):
            continue
        try:
            json.loads(path.read_bytes())
        except ValueError as e:
            out.append(f"{path} ({path.stat().st_size} bytes): {e}")
    return out


def check() -> int:
    img = (STATE / "image").read_text().strip()
    failed = 0
    for label, args in (("ps", ["ps", "-a"]), ("images", ["images"]),
                        ("run", ["run", "--rm", img, "true"]), ("ids", ["ps", "-aq"])):
        res = pmd(*args)
        say(f"PMD-CHECK {label} rc={res.returncode}\n{res.stdout}{res.stderr}".rstrip())
        failed += res.returncode != 0
        if label == "ids" and res.returncode == 0 and res.stdout.split():
            rm = pmd("rm", "-f", *res.stdout.split())
            say(f"PMD-CHECK rm rc={rm.returncode}\n{rm.stdout}{rm.stderr}".rstrip())
            failed += rm.returncode != 0
    left = pmd("ps", "-aq")
    if left.stdout.strip():
        say(f"PMD-CHECK left containers: {left.stdout.split()}")
        failed += 1
    res = pmd("system", "check", "--full")  # its layers rehashed too
    say(f"PMD-CHECK system-check rc={res.returncode}\n{res.stdout}{res.stderr}".rstrip())
    failed += res.returncode != 0
    for line in broken_json():
        say(f"PMD-BROKEN {line}")
    say(f"PMD-FAILED {failed}")
    return failed


if __name__ == "__main__":
    sys.exit({"loop": loop, "check": check}[sys.argv[1]]())
