"""A store written before the move to the typed engine core (hand-written records, as the flat
layout of 3d7fb35 wrote them) is read back whole by the engine, and written back unchanged
but for what was changed: the on-disk formats did not move with the code."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from pyminidocker.engine import Engine
from pyminidocker.store.containers import HostConfig

IMAGE_CONFIG = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
    "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
}).encode()
IMAGE_ID = hashlib.sha256(IMAGE_CONFIG).hexdigest()
CHAIN = "sha256:" + "1" * 64  # a bottom layer's chain-id is its diff-id
CID = "c" * 64
# the host config as create wrote it then: a dict of these keys, one unknown to us (a newer
# engine's) that must survive a round trip
OLD_HOST = {
    "binds": ["/srv:/srv:ro"], "tmpfs": ["/run:size=64k"], "read_only": True,
    "memory": 67108864, "cpus": 1.5, "pids_limit": 64, "network": "none", "ports": [],
    "privileged": False, "cap_add": ["NET_ADMIN"], "cap_drop": ["MKNOD"],
    "no_new_privs": True, "seccomp": None, "security_opt": ["no-new-privileges"],
    "auto_remove": False, "image_env": ["PATH=/bin"], "restart": {"Name": "always"},
}


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    img = root / "images" / IMAGE_ID
    key = "sha256:" + IMAGE_ID
    _write(img / "images.json", {
        "id": IMAGE_ID, "digest": "sha256:" + "d" * 64,
        "names": ["docker.io/library/old:v1"], "layer": CHAIN,
        "big-data-names": [key, "manifest"],
        "big-data-sizes": {key: len(IMAGE_CONFIG), "manifest": 2},
        "big-data-digests": {key: key, "manifest": "sha256:" + "e" * 64},
        "created": "2024-01-02T03:04:05Z", "loaded": "2024-01-03T00:00:00Z"})
    (img / ("=" + base64.b64encode(key.encode()).decode())).write_bytes(IMAGE_CONFIG)
    (img / "manifest").write_bytes(b"{}")
    layer = root / "layers" / CHAIN.removeprefix("sha256:")
    (layer / "diff").mkdir(parents=True)
    _write(layer / "layer.json", {
        "id": CHAIN, "parent": None, "diff_id": CHAIN, "compressed_digest": "sha256:" + "2" * 64,
        "compressed_size": 100, "uncompressed_size": 300,
        "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
        "created": "2024-01-03T00:00:00Z"})
    ctr = root / "containers" / CID
    _write(ctr / "config.json", {
        "id": CID, "name": "oldie", "image": IMAGE_ID, "image_name": "old:v1",
        "created": "2024-01-04T00:00:00.000000000Z", "argv": ["sh"], "env": ["A=1"],
        "cwd": "/", "user": "", "hostname": "cccccccccccc", "tty": False,
        "open_stdin": False, "entrypoint": None, "cmd": ["sh"], "host": OLD_HOST,
        "labels": {"k": "v"}})
    _write(ctr / "state.json", {
        "status": "exited", "pid": 0, "pid_start": "", "monitor_pid": 0, "monitor_start": "",
        "exit_code": 3, "oom_killed": False, "error": "", "started_at": "2024-01-04T00:00:01Z",
        "finished_at": "2024-01-04T00:00:02Z", "ip": "", "ports": [], "extra_networks": {}})
    _write(root / "networks" / "mine.json", {
        "name": "mine", "id": "f" * 64, "bridge": "pmd-mine", "subnet": "10.99.0.0/24",
        "gateway": "10.99.0.1", "created": "2024-01-01T00:00:00Z", "driver": "bridge",
        "internal": False, "labels": {}})
    return root


def test_an_old_store_reads_back_whole(old_store):
    eng = Engine(old_store)
    [img] = eng.images()
    assert (img.id, img.names, img.layer) == (IMAGE_ID, ["docker.io/library/old:v1"], CHAIN)
    assert eng.image("old:v1").id == IMAGE_ID
    assert eng.image_config(img)["config"]["Cmd"] == ["sh"]
    assert eng.image_size(img) == 300
    [rec] = eng.containers()
    assert (rec.id, rec.name, rec.state.status, rec.state.exit_code) == (CID, "oldie", "exited", 3)
    host = rec.host
    assert isinstance(host, HostConfig)
    assert (host.network, host.binds, host.memory, host.cpus, host.pids_limit) == (
        "none", ["/srv:/srv:ro"], 67108864, 1.5, 64)
    assert (host.read_only, host.no_new_privs, host.cap_add, host.networks) == (
        True, True, ["NET_ADMIN"], [])
    assert host.extra == {"restart": {"Name": "always"}}
    assert host.get("restart") == {"Name": "always"} and host["network"] == "none"
    assert [n.name for n in eng.networks()] == ["mine"]
    assert eng.corrupt_images() == [] and eng.corrupt_containers() == []


def test_an_old_container_record_is_written_back_with_the_same_keys(old_store):
    eng = Engine(old_store)
    eng.rename(eng.container("oldie"), "renamed")
    written = json.loads((old_store / "containers" / CID / "config.json").read_text())
    assert written["name"] == "renamed"
    # the same host object, plus the one key the old engine had not written yet
    assert written["host"] == {**OLD_HOST, "networks": []}


def test_the_aliases_of_an_old_record_are_its_networks_aliases(old_store):
    """Before aliases were per network, "aliases" was one list, for the container's own
    network (--network-alias): it is read as that network's, and written back so."""
    cfg = old_store / "containers" / CID / "config.json"
    data = json.loads(cfg.read_text())
    data["host"] = {**OLD_HOST, "network": "mine", "aliases": ["www", "web"]}
    cfg.write_text(json.dumps(data))
    eng = Engine(old_store)
    rec = eng.container("oldie")
    assert rec.host.aliases("mine") == ["www", "web"] and rec.host.aliases("other") == []
    assert "aliases" not in rec.host.extra
    doc = eng.inspect_container(rec)
    assert doc["NetworkSettings"]["Networks"]["mine"]["Aliases"] == ["www", "web", CID[:12]]
    eng.rename(rec, "renamed")
    written = json.loads(cfg.read_text())["host"]
    assert written["network_aliases"] == {"mine": ["www", "web"]} and "aliases" not in written
    assert Engine(old_store).container("renamed").host.aliases("mine") == ["www", "web"]


def test_a_host_config_that_is_not_an_object_is_a_corrupt_record(old_store):
    cfg = old_store / "containers" / CID / "config.json"
    data = json.loads(cfg.read_text())
    data["host"] = ["not", "an", "object"]
    cfg.write_text(json.dumps(data))
    eng = Engine(old_store)
    assert eng.containers() == []
    assert "corrupt record" in eng.corrupt_containers()[0]


def test_host_config_round_trips_through_json():
    h = HostConfig.from_json(OLD_HOST)
    assert h.to_json() == {**OLD_HOST, "networks": []}
    h["ulimits"] = ["nofile=10"]  # a key it does not know, by the dict-era spelling
    h["network"] = "bridge"
    assert (h.network, h.extra["ulimits"], "ulimits" in h, "nope" in h) == (
        "bridge", ["nofile=10"], True, False)
    with pytest.raises(TypeError):
        HostConfig.from_json("bridge")  # type: ignore[arg-type]
