"""The store's pure logic: chain-ids, big-data names, image records, names moving, cleanup."""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from pyminidocker.errors import Conflict, NotFound, StoreError
from pyminidocker.record import atomic_write
from pyminidocker.store import Store
from pyminidocker.store.files import FileLock
from pyminidocker.store.images import ImageRecord, big_data_name
from pyminidocker.store.layers import LayerRecord, chain_ids, tree_digest

A = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
B = "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1"
C = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def test_chain_ids_follow_the_image_spec():
    # values computed independently with `printf '%s %s' A B | sha256sum`
    assert chain_ids([A]) == [A]
    assert chain_ids([A, B, C]) == [
        A,
        "sha256:906c0a6c8fb2afb4589eead4edcfc9c10a7f414e9c130d1a071907e9c967af39",
        "sha256:9af59f545f8a08927f7b85f87f3f3faa613dac3febd27c4ecbb11fbf5d0138a1",
    ]
    assert chain_ids([]) == []


@pytest.mark.parametrize("key,name", [
    ("manifest", "manifest"),
    ("config.v1", "config.v1"),
    ("sha256:" + "a" * 64, "=" + base64.b64encode(b"sha256:" + b"a" * 64).decode()),
    ("Manifest", "=TWFuaWZlc3Q="),
    ("with/slash?", "=" + base64.b64encode(b"with/slash?").decode().replace("/", "_")),
])
def test_big_data_names(key, name):
    assert big_data_name(key) == name
    assert "/" not in big_data_name(key)


@pytest.mark.parametrize("n", range(8))
def test_big_data_names_are_standard_base64_of_every_length(n):
    key = "\u00e9Z:/?" * n + "x" * (n % 3)
    assert big_data_name(key) == "=" + base64.b64encode(key.encode()).decode().replace("/", "_")


def test_big_data_name_never_contains_a_slash():
    assert "/" not in big_data_name("\xff\xff\xff" * 3)


def _image(store: Store, image_id: str, names: list[str], layer: str | None = None) -> ImageRecord:
    rec = ImageRecord(id=image_id, digest="sha256:" + "d" * 64, names=names, layer=layer,
                      created="2024-01-02T03:04:05.123456789Z")
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": []}}).encode()
    with store.lock():
        store.images.add(rec, {rec.config_key: config, "manifest": b"{}"})
    return rec


def test_image_record_layout(tmp_path):
    store = Store(tmp_path)
    rec = _image(store, "1" * 64, ["docker.io/library/busybox:latest"])
    d = tmp_path / "images" / ("1" * 64)
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["images.json", "manifest", big_data_name("sha256:" + "1" * 64)])
    meta = json.loads((d / "images.json").read_text())
    assert meta["id"] == rec.id
    assert meta["names"] == ["docker.io/library/busybox:latest"]
    assert meta["big-data-names"] == ["sha256:" + "1" * 64, "manifest"]
    assert meta["big-data-sizes"]["manifest"] == 2
    assert meta["big-data-digests"]["manifest"].startswith("sha256:")
    assert meta["created"] == "2024-01-02T03:04:05.123456789Z" and meta["loaded"]
    assert store.images.config(store.images.get(rec.id))["rootfs"]["type"] == "layers"


def test_lookup_by_name_id_and_prefix(tmp_path):
    store = Store(tmp_path)
    _image(store, "ab" + "1" * 62, ["docker.io/library/busybox:latest"])
    _image(store, "ac" + "2" * 62, ["127.0.0.1:5000/x/y:v1"])
    assert store.images.lookup("busybox").id.startswith("ab")
    assert store.images.lookup("busybox:latest").id.startswith("ab")
    assert store.images.lookup("127.0.0.1:5000/x/y:v1").id.startswith("ac")
    assert store.images.lookup("ab1").id.startswith("ab")
    assert store.images.lookup("sha256:ac2").id.startswith("ac")
    with pytest.raises(Conflict):
        store.images.lookup("a")
    with pytest.raises(NotFound) as e:
        store.images.lookup("nope:1")
    assert isinstance(e.value, LookupError)
    assert "No such image: nope:1" in str(e.value)


def test_a_name_moves_between_images(tmp_path):
    store = Store(tmp_path)
    old = _image(store, "1" * 64, ["docker.io/library/busybox:latest", "docker.io/library/b:1"])
    new = _image(store, "2" * 64, ["docker.io/library/busybox:latest"])
    assert store.images.get(old.id).names == ["docker.io/library/b:1"]
    assert store.images.get(new.id).names == ["docker.io/library/busybox:latest"]
    with store.lock():
        store.images.set_names(store.images.get(old.id), ["docker.io/library/busybox:latest"])
    assert store.images.get(new.id).names == []


def _layer(store: Store, chain: str, parent: str | None) -> None:
    staging = Path(store.layers.prepare(chain))
    (staging / "diff" / "f").write_text(chain)
    rec = LayerRecord(id=chain, parent=parent, diff_id=chain, compressed_digest=chain,
                      compressed_size=1, uncompressed_size=2, media_type="x", created="now")
    with store.lock():
        assert store.layers.commit(staging, rec)


def test_layers_commit_chain_and_unused(tmp_path):
    store = Store(tmp_path)
    a, b, c = chain_ids([A, B, C])
    _layer(store, a, None)
    _layer(store, b, a)
    _layer(store, c, b)
    layer_dir = tmp_path / "layers" / c.removeprefix("sha256:")
    assert sorted(p.name for p in layer_dir.iterdir()) == ["diff", "layer.json", "merged", "work"]
    assert [r.id for r in store.layers.chain(c)] == [c, b, a]
    _image(store, "1" * 64, ["docker.io/library/x:1"], layer=b)
    assert store.images.unused_layers() == [c]
    # committing a layer whose parent is missing is refused
    staging = store.layers.prepare("sha256:" + "e" * 64)
    rec = LayerRecord(id="sha256:" + "e" * 64, parent="sha256:" + "f" * 64, diff_id=A,
                      compressed_digest=A, compressed_size=0, uncompressed_size=0,
                      media_type="x", created="now")
    with store.lock(), pytest.raises(StoreError):
        store.layers.commit(staging, rec)


def test_cleanup_removes_debris_of_dead_owners_only(tmp_path):
    store = Store(tmp_path)
    store.ensure()
    live = Path(store.layers.prepare(A))
    dead = Path(store.layers.prepare(B))
    holder = store.layer_lock(A)
    assert holder.acquire(blocking=False)
    try:
        (tmp_path / "staging" / "dead-x.123").mkdir()
        Store(tmp_path).ensure()  # a new command starting
        assert live.exists()
        assert not dead.exists()
        assert not (tmp_path / "staging" / "dead-x.123").exists()
    finally:
        holder.release()


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write(tmp_path / "f", b"one")
    atomic_write(tmp_path / "f", b"two")
    assert os.listdir(tmp_path) == ["f"]
    assert (tmp_path / "f").read_bytes() == b"two"


def test_file_lock_is_exclusive(tmp_path):
    a, b = FileLock(tmp_path / "l"), FileLock(tmp_path / "l")
    assert a.acquire(blocking=False)
    assert not b.acquire(blocking=False)
    a.release()
    assert b.acquire(blocking=False)
    b.release()


def test_the_store_root_is_made_private_and_a_foreign_one_refused(tmp_path):
    from pyminidocker.config import Config
    from pyminidocker.errors import UsageError

    root = tmp_path / "store"
    root.mkdir(mode=0o777)
    os.chmod(root, 0o777)  # made beforehand, world-writable
    Store(root).ensure()
    assert root.stat().st_mode & 0o777 == 0o700
    if os.geteuid() != 0:
        return  # the rest needs chown
    link = tmp_path / "link"
    link.symlink_to(root)
    os.lchown(link, 65534, 65534)
    with pytest.raises(UsageError, match="reached through a symlink owned by uid 65534"):
        Store(link).ensure()
    with pytest.raises(UsageError, match="owned by uid 65534"):
        Config.load(link)
    os.chown(root, 65534, 65534)
    with pytest.raises(UsageError, match="is a directory owned by uid 65534"):
        Store(root).ensure()


def test_a_bad_engine_config_value_is_named(tmp_path):
    from pyminidocker.config import Config
    from pyminidocker.errors import UsageError

    for text, key in [('{"max-concurrent-downloads": "many"}', "max-concurrent-downloads"),
                      ('{"insecure-registries": "r:5000"}', "insecure-registries"),
                      ('{"insecure-registries": [1]}', "insecure-registries"),
                      ('{"default-bridge": "a/b"}', "default-bridge"),
                      ('{"default-subnet": 10}', "default-subnet")]:
        (tmp_path / "config.json").write_text(text)
        with pytest.raises(UsageError, match=f"invalid engine config .*: {key}"):
            Config.load(tmp_path)
    (tmp_path / "config.json").write_text('{"max-concurrent-downloads": 5}')
    assert Config.load(tmp_path).max_concurrent_downloads == 5


def test_json_records_may_start_with_a_bom():
    from pyminidocker import record

    assert record.loads(b'\xef\xbb\xbf{"a": "\xc3\xa9"}') == {"a": "\u00e9"}
    assert record.loads('{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError):
        record.loads(b"\xef\xbb\xbf")


def test_a_layer_flush_that_fails_is_a_store_error(tmp_path):
    store = Store(tmp_path / "store")
    store.ensure()
    with pytest.raises(StoreError, match="cannot flush an extracted layer"):
        store.layers.flush(str(tmp_path / "not-there"))


def test_tree_digest_sees_contents_modes_links_and_xattrs_not_times(tmp_path):
    top = tmp_path / "diff"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "passwd").write_bytes(b"root:x:0:0\n")
    (top / "sh").symlink_to("bin/busybox")
    first = tree_digest(str(top))
    assert first.startswith("sha256:") and tree_digest(str(top)) == first
    os.utime(top / "etc" / "passwd", (1, 1))
    assert tree_digest(str(top)) == first  # times are not content
    changes = [
        lambda: (top / "etc" / "passwd").write_bytes(b"root:x:0:1\n"),  # same size
        lambda: os.chmod(top / "etc" / "passwd", 0o600),
        lambda: ((top / "sh").unlink(), (top / "sh").symlink_to("bin/dash")),
        lambda: os.setxattr(top / "etc", "trusted.overlay.opaque", b"y"),  # an opaque dir
        lambda: (top / "etc" / "group").write_bytes(b""),  # a new empty file
    ]
    seen = {first}
    for change in changes:
        change()
        digest = tree_digest(str(top))
        assert digest not in seen
        seen.add(digest)
