#!/usr/bin/env python3
"""The import graph of the pyminidocker package, from its source (stdlib ast, nothing run).

An edge A -> B means module A imports B when it runs: at load time or inside a function (a lazy
import is still a dependency). Imports under `if TYPE_CHECKING:` are left out: they cost nothing
at run time and exist for the type checker only.

Usage: tools/importgraph.py [--dot] [--layers] [ROOT]
  (default) one line per module: "module -> imported, ..."
  --dot     Graphviz DOT text (pipe to `dot -Tsvg`), modules grouped by folder
  --layers  the folder-level graph (ground floor, store, image, container, network, engine, ...)
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "pyminidocker"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """The pyminidocker modules `tree` imports outside `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the else branch runs
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # submodules, if they are
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (only names that are modules of it)."""
    src = root / PACKAGE
    paths = {module_name(root, p): p for p in sorted(src.rglob("*.py"))}
    edges: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(), str(path))
        deps = _imports(tree, name, path.name == "__init__.py")
        edges[name] = {d for d in deps if d in paths and d != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return sorted(out)


# The floors, bottom up: a module may import its own floor's modules and those below (image
# and network share a floor and do not import each other). The ground floor is the package's
# leaves and the C shim's wrappers (native); the shim's public face (shim: native's names and
# the engine's default seccomp profile) sits beside the engine; the front ends (cli, api,
# oci) sit on the engine; the entry points (python -m, the launcher) on top.
FLOORS = {
    "ground": 0, "store": 1, "image": 2, "network": 2, "container": 3, "engine": 4,
    "cli": 5, "api": 5, "oci": 5, "entry": 6,
}
# top-level modules that are not ground floor
_TOP = {"engine": "engine", "dockerjson": "engine", "shim": "engine", "benchmark": "cli",
        "__main__": "entry", "launcher": "entry"}


def floor_of(module: str) -> str:
    """The floor (layer) of a module: its folder under the package, or _TOP's, or "ground"."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in FLOORS:
        return parts[1]
    return _TOP.get(parts[-1], "ground") if len(parts) == 2 else "ground"


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The edges that break the floors: to a higher floor, or sideways between two folders of
    one floor (image <-> network)."""
    out = []
    for a in sorted(edges):
        for b in sorted(edges[a]):
            fa, fb = floor_of(a), floor_of(b)
            if fa != fb and FLOORS[fb] >= FLOORS[fa]:
                out.append((a, b))
    return out


def layer_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, deps in edges.items():
        for b in deps:
            fa, fb = floor_of(a), floor_of(b)
            if fa != fb:
                out.setdefault(fa, set()).add(fb)
    return out


def dot(edges: dict[str, set[str]]) -> str:
    lines = ["digraph pyminidocker {", "  rankdir=BT; node [shape=box, fontsize=10];"]
    floors: dict[str, list[str]] = {}
    for m in edges:
        floors.setdefault(floor_of(m), []).append(m)
    for f, mods in sorted(floors.items()):
        lines.append(f'  subgraph "cluster_{f}" {{ label="{f}";')
        lines.extend(f'    "{m}";' for m in sorted(mods))
        lines.append("  }")
    for a in sorted(edges):
        lines.extend(f'  "{a}" -> "{b}";' for b in sorted(edges[a]))
    lines.append("}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1]
    edges = graph(root)
    if "--dot" in argv:
        print(dot(edges))
    elif "--layers" in argv:
        for f, deps in sorted(layer_edges(edges).items(), key=lambda kv: FLOORS.get(kv[0], 9)):
            print(f"{f} -> {', '.join(sorted(deps, key=lambda d: FLOORS.get(d, 9)))}")
    else:
        for m in sorted(edges):
            print(f"{m} -> {', '.join(sorted(edges[m]))}")
    found = cycles(edges)
    for c in found:
        print("cycle: " + " -> ".join(c), file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
