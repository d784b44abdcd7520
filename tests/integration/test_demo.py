"""The README's main job stays true: `make demo` (bench/demo.py) runs from start to end."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import remove_leftovers, store_with_bb

REPO = Path(__file__).resolve().parents[2]


def _bridges() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True,
                         text=True, check=True).stdout
    return {line.split(":")[1].strip() for line in out.splitlines()}


def _engine_rules() -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return sorted(line for line in out.splitlines() if "PMD" in line)


@pytest.fixture
def other_store(request, tmp_path_factory, publish, pmd_factory):
    """Another store of the engine with a container running on a network of its own: a bridge
    and firewall rules on the host that the demo did not make."""
    run = store_with_bb("demo-other", request, tmp_path_factory, publish, pmd_factory)
    run("network", "create", "keepnet")
    cid = run("run", "-d", "--network", "keepnet", "bb", "sleep", "120").stdout.strip()
    yield run
    run("rm", "-f", cid)
    run("network", "rm", "keepnet")
    assert remove_leftovers(run) == []


def test_the_offline_demo_runs(other_store):
    before_bridges, before_rules = _bridges(), _engine_rules()
    assert before_rules, "the other store's network has rules"
    _run_demo()
    assert _bridges() == before_bridges, "the demo removes its bridge and only its bridge"
    assert _engine_rules() == before_rules, "the demo removes its rules and only its rules"


def test_the_demo_leaves_no_chain_it_made():
    """With no engine state on the host beforehand, nothing of the engine is left after."""
    if _engine_rules():
        pytest.skip("the engine's chains are on this host already")
    _run_demo()
    assert _engine_rules() == []


def _run_demo():
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
