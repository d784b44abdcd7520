"""The README's main job stays true: `make demo` (bench/demo.py) runs from start to end."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_offline_demo_runs():
    res = subprocess.run([sys.executable, "bench/demo.py"], cwd=REPO, capture_output=True,
                         text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Status: Downloaded newer image for 127.0.0.1:" in res.stdout
    assert "hello from " in res.stdout and "Deleted: sha256:" in res.stdout
    assert "hello-from-the-host" in res.stdout.split("$ pyminidocker logs web", 1)[1]
    bridges = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"],
                             capture_output=True, text=True, check=True).stdout
    assert " pmd0:" not in bridges, "the demo leaves no bridge behind"
    assert res.stdout.rstrip().endswith("demo complete")
