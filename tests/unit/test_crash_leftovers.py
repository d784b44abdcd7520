"""What a power cut leaves of a --rm container: its config is not fsynced (start latency), so
it may come back empty; its AUTOREMOVE marker makes the store drop it, where any other
unreadable config stays a corrupt record for rm -f (tests/integration/test_durability.py)."""
from __future__ import annotations

from pathlib import Path

from pyminidocker.store import Store
from pyminidocker.store.containers import AUTOREMOVE


def _lost(store: Store, cid: str, marker: bool) -> Path:
    d = Path(store.containers.path(cid))
    (d / "rootfs").mkdir(parents=True)
    (d / "upper" / "etc").mkdir(parents=True)
    (d / "config.json").write_bytes(b"")  # as the cut left it
    if marker:
        (d / AUTOREMOVE).write_bytes(b"")
    return d


def test_an_empty_config_of_a_rm_container_is_dropped_not_reported(tmp_path):
    store = Store(tmp_path / "store")
    rm_one = _lost(store, "a" * 64, marker=True)
    kept = _lost(store, "b" * 64, marker=False)
    assert store.containers.list() == []
    assert list(store.containers.corrupt) == ["b" * 64]  # only the one without the marker
    assert not rm_one.exists() and kept.exists()
    assert sorted(p.name for p in Path(store.containers.dir).iterdir()) == ["b" * 64]
