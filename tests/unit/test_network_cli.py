"""`network create|ls|inspect|rm|prune` in-process (Env injects the streams); host state is
replaced by a no-op, host routes by an empty list."""
from __future__ import annotations

import io
import json

import pytest

from pyminidocker.cli.main import Env, main
from pyminidocker.network import ipam, networks
from tests.unit.conftest import containers_exist


@pytest.fixture
def run(root, monkeypatch):
    monkeypatch.setattr(networks, "host_routes", lambda exclude=(): [])
    monkeypatch.setattr(networks, "remove_network_host_state", lambda net: None)

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        rc = main(["--root", str(root), "network", *args],
                  Env(stdout=out, stderr=err, stdin=io.StringIO(stdin)))
        return rc, out.getvalue(), err.getvalue()

    return run


def test_network_commands(run):
    rc, out, _ = run("create", "--subnet", "10.3.0.0/24", "--label", "a=b", "web")
    assert rc == 0 and len(out.strip()) == 64
    nid = out.strip()
    assert run("create", "--subnet", "10.3.0.128/25", "other") == \
        (1, "", "Error: Pool overlaps with other one on this address space\n")
    assert run("create", "--subnet", "10.3.0.0/99", "bad")[0] == 125
    rc, out, _ = run("create", "auto")
    assert rc == 0

    rc, out, _ = run("ls")
    lines = out.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    # Docker lists its predefined networks too, all by name (issue 10, point 10)
    assert [line.split()[1] for line in lines[1:]] == ["auto", "bridge", "host", "none", "web"]
    assert run("ls", "-q")[1].split()[4] == nid[:12]

    rc, out, err = run("inspect", "web", "nope")
    doc = json.loads(out)
    assert rc == 1 and err == "Error: No such network: nope\n"
    assert doc[0]["Id"] == nid and doc[0]["Labels"] == {"a": "b"}
    assert doc[0]["IPAM"]["Config"][0]["Subnet"] == "10.3.0.0/24"


def test_network_rm_and_prune(run, root):
    from pyminidocker.store import Store

    run("create", "--subnet", "10.4.0.0/24", "busy")
    run("create", "--subnet", "10.5.0.0/24", "idle")
    run("create", "--subnet", "10.6.0.0/24", "gone")
    containers_exist(root, "c" * 64)
    ipam.allocate(Store(root), "busy", "c" * 64)
    rc, out, err = run("rm", "busy", "gone")
    assert rc == 1 and out == "gone\n" and "has active endpoints" in err
    assert run("prune", stdin="n\n")[0] == 0
    assert "idle" in run("ls")[1]
    rc, out, _ = run("prune", "-f")
    assert rc == 0 and out == "Deleted Networks:\nidle\n"
    assert [line.split()[1] for line in run("ls")[1].splitlines()[1:]] == \
        ["bridge", "busy", "host", "none"]


@pytest.mark.parametrize("name", ["", "x" * 300, "a\u00e9", "../host"])
def test_network_inspect_bad_name_is_not_found(run, name):
    # "" is a prefix of every id: it once matched the predefined "host" network
    rc, out, err = run("inspect", name)
    assert rc == 1 and json.loads(out) == []
    assert err == f"Error: No such network: {name}\n"
