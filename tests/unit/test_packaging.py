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


def test_setuptools_reads_pyproject_without_a_deprecation():
    """Deprecated forms (the license table, before PEP 639's SPDX string) become errors at a
    date setuptools announces: a fresh venv gets the newest setuptools, so the build would break
    on a fresh machine from that day. pyproject.toml's minimum is the version that reads it."""
    import warnings

    from setuptools import __version__
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution
    from setuptools.warnings import SetuptoolsDeprecationWarning

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    minimum = next(r for r in meta["build-system"]["requires"] if r.startswith("setuptools>="))
    assert int(__version__.split(".")[0]) >= int(minimum.removeprefix("setuptools>="))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SetuptoolsDeprecationWarning)
        apply_configuration(Distribution(), ROOT / "pyproject.toml")
