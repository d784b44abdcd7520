"""pyminidocker.record against the standard library's dataclasses, which type checkers see in
its place: the same class body must behave the same under both."""
from __future__ import annotations

import dataclasses

import pytest

from pyminidocker import record


def _classes(mod):
    @mod.dataclass
    class Inner:
        a: int
        tags: list[str] = mod.field(default_factory=list)

    @mod.dataclass
    class Outer:
        name: str
        inner: Inner = mod.field(default_factory=lambda: Inner(1))
        opt: str | None = None
        extra: dict[str, int] = mod.field(default_factory=dict)

    @mod.dataclass(frozen=True)
    class Frozen:
        x: int
        y: str = "y"

        def __post_init__(self):
            if self.x < 0:
                raise ValueError("negative")

    return Inner, Outer, Frozen


@pytest.mark.parametrize("mod", [record, dataclasses], ids=["record", "dataclasses"])
def test_same_behaviour(mod):
    Inner, Outer, Frozen = _classes(mod)
    o = Outer("n")
    assert (o.name, o.inner.a, o.inner.tags, o.opt, o.extra) == ("n", 1, [], None, {})
    o2 = Outer("n")
    o2.inner.tags.append("t")
    assert o.inner.tags == [] and o != o2  # a fresh default per instance
    assert Outer("n", Inner(2, ["a"]), "o") == Outer(name="n", inner=Inner(a=2, tags=["a"]),
                                                    opt="o")
    assert mod.asdict(Outer("n", Inner(2, ["a"]))) == {
        "name": "n", "inner": {"a": 2, "tags": ["a"]}, "opt": None, "extra": {}}
    d = mod.asdict(o)
    d["inner"]["tags"].append("x")
    assert o.inner.tags == []  # asdict copies
    f = Frozen(1)
    assert repr(f) .endswith("Frozen(x=1, y='y')")
    assert mod.replace(f, y="z") == Frozen(1, "z")
    assert hash(Frozen(1)) == hash(Frozen(1)) and len({Frozen(1), Frozen(1), Frozen(2)}) == 2
    with pytest.raises(AttributeError):
        f.x = 2
    with pytest.raises(ValueError):
        Frozen(-1)
    with pytest.raises(TypeError):
        Frozen()
    with pytest.raises(TypeError):
        Frozen(1, x=2)
    with pytest.raises(TypeError):
        Frozen(1, z=2)
    with pytest.raises(TypeError):
        hash(o)  # mutable with eq: unhashable
    assert not hasattr(Outer, "extra")  # no class attribute for a default_factory
    assert Outer.opt is None


def test_no_dataclasses_import():
    """The point of the module: importing it (and the shim's wrapper) stays off dataclasses."""
    import subprocess
    import sys

    code = ("import sys, pyminidocker.record, pyminidocker.shim; "
            "print('dataclasses' in sys.modules, 'inspect' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": ":".join(sys.path)}).stdout
    assert out.split() == ["False", "False"]
