"""The engine API (pyminidocker.engine) driven as a Python program drives it: typed records
back, typed errors out, nothing printed, no exit; the CLI's view of the same store agrees."""
from __future__ import annotations

import os

import pytest

from pyminidocker.engine import CreateOptions, Engine, Progress, PullResult
from pyminidocker.errors import Conflict, NotFound, PmdError, StartError, UsageError
from pyminidocker.store.containers import ContainerRecord
from pyminidocker.store.images import ImageRecord
from tests.integration.conftest import free_subnet, module_ctr

ctr = module_ctr("engine")


@pytest.fixture
def eng(ctr):
    return Engine(ctr.root)


def test_pull_reports_progress_and_returns_typed_records(pmd, root, single, capfd):
    eng = Engine(root)
    events: list[Progress] = []
    res = eng.pull(single.ref, progress=events.append)
    assert isinstance(res, PullResult) and res.fresh
    assert res.image_id == single.image.id_hex
    assert {e.status for e in events} >= {"Pull complete"}
    again = eng.pull(single.ref)
    assert not again.fresh and again.image_id == res.image_id
    rec = eng.image(single.ref)
    assert isinstance(rec, ImageRecord) and rec.id == res.image_id
    assert [r.id for r in eng.images()] == [res.image_id]
    assert eng.image_size(rec) > 0
    doc = eng.inspect_image(rec)
    assert doc["Id"] == "sha256:" + res.image_id and doc["RootFS"]["Layers"]
    eng.tag(single.ref, "mine:v1")
    assert eng.image("mine:v1").id == rec.id
    assert eng.remove_image("mine:v1") == [("Untagged", "mine:v1")]
    done = eng.remove_image(single.ref)
    assert done[0] == ("Untagged", f"{single.host}/{single.repo}:{single.tag}")
    assert ("Deleted", "sha256:" + rec.id) in done
    assert eng.images() == []
    with pytest.raises(NotFound):
        eng.image(single.ref)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # the engine never prints
    pmd("images", "-q")  # the store is as the CLI expects it (leak check reads pmd's roots)


def test_container_lifecycle_attached(eng, ctr, tmp_path, capfd):
    rec = eng.create(CreateOptions(image="bb", cmd=["sh", "-c", "echo out; echo err >&2; "
                                                    "exit 3"], name="eng-a", network="none"))
    try:
        assert isinstance(rec, ContainerRecord) and rec.state.status == "created"
        out_path = tmp_path / "out"
        with open(out_path, "wb") as out:
            code = eng.start(rec, attach=True, stdio=(-1, out.fileno(), out.fileno()))
        assert code == 3
        assert sorted(out_path.read_text().split()) == ["err", "out"]
        rec = eng.container("eng-a")
        assert (rec.state.status, rec.state.exit_code) == ("exited", 3)
        assert eng.wait(rec) == 3
        logs = list(eng.logs(rec))
        assert sorted((r["stream"], r["log"]) for r in logs) == [("stderr", "err\n"),
                                                                ("stdout", "out\n")]
        assert [r["log"] for r in eng.logs(rec, tail=0)] == []
        assert rec.id in [r.id for r in eng.containers()]
        assert rec.id not in [r.id for r in eng.containers(all=False)]
        doc = eng.inspect_container(rec)
        assert doc["State"]["ExitCode"] == 3 and doc["Name"] == "/eng-a"
        eng.rename(rec, "eng-b")
        assert eng.container("eng-b").id == rec.id
        with pytest.raises(NotFound):
            eng.container("eng-a")
    finally:
        eng.remove(eng.container(rec.id))
    with pytest.raises(NotFound):
        eng.container(rec.id)
    assert capfd.readouterr() == ("", "")
    assert ctr("ps", "-a", "-q").stdout == ""


def test_container_detached_exec_stop(eng, ctr, tmp_path):
    rec = eng.create(CreateOptions(image="bb", cmd=["sleep", "60"], network="none"))
    try:
        assert eng.start(rec, attach=False) is None
        rec = eng.container(rec.id)
        assert rec.state.status == "running"
        with open(tmp_path / "exec", "wb") as out:
            assert eng.exec(rec, ["sh", "-c", "echo $((6*7))"],
                            stdio=(-1, out.fileno(), out.fileno())) == 0
        assert (tmp_path / "exec").read_text() == "42\n"
        with pytest.raises(StartError) as e:
            eng.exec(rec, ["/nonexistent"], stdio=(-1, -1, -1))
        assert e.value.exit_code == 127
        with pytest.raises(Conflict):
            eng.remove(rec)  # running, not forced
        eng.stop(rec, timeout=1)
        assert eng.container(rec.id).state.status == "exited"
        with pytest.raises(Conflict):
            eng.kill(eng.container(rec.id))
    finally:
        eng.remove(eng.container(rec.id), force=True)


def test_prune_and_bad_input_are_typed_errors(eng, ctr):
    with pytest.raises(NotFound):
        eng.create(CreateOptions(image="sha256:" + "0" * 64))
    with pytest.raises(UsageError):
        eng.exec(eng.create(CreateOptions(image="bb", network="none")), [])
    with pytest.raises(NotFound):
        eng.container("no-such-container")
    removed = eng.prune_containers()
    assert len(removed) == 1 and eng.containers() == []


def test_networks(eng, ctr):
    net = eng.create_network(f"engnet{os.getpid()}", subnet=free_subnet(), labels={"a": "b"})
    try:
        assert net.name in [n.name for n in eng.networks()]
        doc = eng.inspect_network(net.name)
        assert doc["Id"] == net.id and doc["Labels"] == {"a": "b"}
        with pytest.raises(PmdError):
            eng.create_network(net.name)
    finally:
        eng.remove_network(net.name)
    with pytest.raises(NotFound):
        eng.inspect_network(net.name)
    assert eng.prune_networks() == []


def test_version_and_info(eng):
    assert eng.version()["Version"]
    info = eng.info()
    assert info["DockerRootDir"] == str(eng.config.root)
    assert info["Images"] == 1  # bb

