"""What `pip install .` (and so `make install`) puts in the wheel: every package of the source
tree, as pyproject.toml lists them by hand (setuptools installs no package it is not told of,
and a missing one fails only at its first import, on the installed copy)."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_lists_every_package_of_the_tree():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    tree = {".".join(p.parent.relative_to(ROOT).parts)
            for p in (ROOT / "pyminidocker").rglob("__init__.py") if "__pycache__" not in p.parts}
    assert tree - listed == set()
    assert listed - tree == set()
