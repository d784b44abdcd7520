"""The package's layering, from its import graph (tools/importgraph.py reads the source): no
import cycle; each floor imports only its own and those below (ground floor < store < image,
network < container < engine < cli, api, oci); the CLI reaches the engine only through the
engine API. Imports under TYPE_CHECKING do not count: they never run.

The KNOWN_* sets are what the front ends merged in parallel still do (each says who and why):
they may shrink, never grow. A new entry is a design decision, not a way to make this pass."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import importgraph as G  # noqa: E402

KNOWN_UPWARD = {
    ("pyminidocker.cli.system", "pyminidocker.api.server"),          # `system service`
    ("pyminidocker.oci.main", "pyminidocker.cli.args"),              # the shared flag parser
}
# what the CLI imports besides the engine API, errors and its own modules
KNOWN_CLI = {
    ("pyminidocker.benchmark", "pyminidocker.shim"),                 # bench: the shim alone
    ("pyminidocker.cli.bench", "pyminidocker.benchmark"),
    ("pyminidocker.cli.system", "pyminidocker.api.server"),          # `system service`
}
# humanize: Docker's sizes/times/status text, shared by both front ends (api round 2);
# engine.filters: Docker's --filter semantics, one implementation for both front ends' lists
CLI_MAY_IMPORT = {"pyminidocker", "pyminidocker.cli", "pyminidocker.engine", "pyminidocker.errors",
                  "pyminidocker.humanize", "pyminidocker.engine.filters"}


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return G.graph(ROOT)


def test_the_graph_sees_every_module_and_lazy_imports(edges):
    assert "pyminidocker.engine" in edges and "pyminidocker.cli.containers" in edges
    # a function-level import counts; a TYPE_CHECKING one does not
    assert "pyminidocker.container.runtime" in edges["pyminidocker.engine"]
    assert "pyminidocker.store.containers" not in edges["pyminidocker.cli.containers"]


def test_no_new_import_cycle(edges):
    assert G.cycles(edges) == []


def test_cycles_are_found():
    assert G.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert G.cycles({"a": {"b"}, "b": set()}) == []


def test_floors_import_only_downward(edges):
    assert set(G.upward(edges)) - KNOWN_UPWARD == set()
    # the store and the ground floor never import the image, container or network code
    for a, b in G.upward(edges):
        if (a, b) not in KNOWN_UPWARD:
            pytest.fail(f"{a} imports {b}")


def test_the_named_rules(edges):
    def deps_of(floor: str) -> set[str]:
        return {G.floor_of(b) for a, bs in edges.items() if G.floor_of(a) == floor
                for b in bs if (a, b) not in KNOWN_UPWARD} - {floor}

    assert deps_of("ground") == set()
    assert deps_of("store") <= {"ground"}
    assert deps_of("image") <= {"ground", "store"}
    assert deps_of("network") <= {"ground", "store"}
    assert deps_of("container") <= {"ground", "store", "network"}


def test_the_cli_goes_through_the_engine(edges):
    odd = {(a, b) for a, bs in edges.items() if G.floor_of(a) == "cli" for b in bs
           if not b.startswith("pyminidocker.cli.") and b not in CLI_MAY_IMPORT}
    assert odd - KNOWN_CLI == set()
    assert KNOWN_CLI - odd == set(), "an exception that is gone: take it off the list"
    # the commands this issue moved onto the engine import nothing else at all
    for m in ("main", "containers", "images", "network", "system", "output"):
        extra = {b for b in edges[f"pyminidocker.cli.{m}"]
                 if not b.startswith("pyminidocker.cli.") and b not in CLI_MAY_IMPORT}
        assert extra <= {b for a, b in KNOWN_CLI if a == f"pyminidocker.cli.{m}"}, m


def test_the_tool_prints_dot_and_the_floor_graph(capsys):
    assert G.main(["--dot", str(ROOT)]) in (0, 1)
    out = capsys.readouterr().out
    assert out.startswith("digraph pyminidocker {") and '"pyminidocker.engine" ->' in out
    G.main(["--layers", str(ROOT)])
    floors = dict(line.split(" -> ") for line in capsys.readouterr().out.splitlines())
    assert "engine" not in floors["store"] and "cli" not in floors["engine"]
