"""The Engine's parts (pyminidocker/engine/): the start path loads only the core, and every
other method is found on first use, under one name only."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pyminidocker.engine as E

PARTS = {p: getattr(importlib.import_module(f"pyminidocker.engine.{p}"), p.capitalize())
         for p in E._PARTS}


def _own(cls: type) -> set[str]:
    """The names cls defines itself (the core also holds the parts' once they are loaded)."""
    return {k for k, v in vars(cls).items() if not k.startswith("__") and
            getattr(getattr(v, "fget", v), "__qualname__", cls.__name__).startswith(cls.__name__)}


def test_no_method_is_defined_twice():
    seen: dict[str, str] = {k: "core" for k in _own(E.EngineCore)}
    for part, cls in PARTS.items():
        for name in _own(cls):
            assert name not in seen, f"{name} in {part} and {seen[name]}"
            seen[name] = part


def test_the_typed_engine_has_every_part_as_a_base():
    src = Path(E.__file__).read_text()
    bases = src.split("class Engine(", 1)[1].split(")", 1)[0]
    assert sorted(b.strip() for b in bases.split(",")) == sorted(c.__name__ for c in PARTS.values())


def test_a_parts_method_is_found_on_first_use(tmp_path):
    code = ("import sys; from pyminidocker.engine import Engine; "
            f"e = Engine({str(tmp_path)!r}); "
            "assert 'pyminidocker.engine.images' not in sys.modules; "
            "print(e.volumes(), e.images(), type(Engine.__dict__['images']).__name__); "
            "e.no_such_method")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert res.stdout.split() == ["[]", "[]", "function"], res.stderr
    assert "AttributeError: 'EngineCore' object has no attribute 'no_such_method'" in res.stderr
