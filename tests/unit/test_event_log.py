"""The event log (store/events.py): appends, the bound, a reader that follows rotations,
Docker's filters, and the CLI's default line."""
from __future__ import annotations

import os
import time

from pyminidocker import store
from pyminidocker.cli.events import line
from pyminidocker.store import events as E
from pyminidocker.store.files import iso_ns


def test_a_reader_from_now_sees_only_what_follows_and_follows_rotations(tmp_path, monkeypatch):
    root = str(tmp_path)
    E.emit(root, "volume", "create", "before")
    reader = E.Reader(root)
    assert reader.read() == []
    monkeypatch.setattr(store, "EVENT_LOG_MAX", 2000)
    for i in range(40):  # a line is ~180 bytes: several rotations
        E.emit(root, "volume", "create", f"v{i}", {"driver": "local"})
        if i % 7 == 0:
            assert all(ev["Actor"]["ID"].startswith("v") for ev in reader.read())
    seen = reader.read()
    assert seen[-1]["Actor"]["ID"] == "v39"
    assert os.path.getsize(tmp_path / E.LOG) <= 2000 + 200
    assert os.path.exists(tmp_path / (E.LOG + ".1"))  # the bound keeps the previous file
    reader.close()


def test_since_replays_the_rotated_file_first_and_filters(tmp_path, monkeypatch):
    root = str(tmp_path)
    monkeypatch.setattr(store, "EVENT_LOG_MAX", 1000)  # a line is ~340 bytes: rotations
    t0 = time.time()
    for i in range(6):
        E.emit(root, "container", "create", f"{i:064x}", {"image": "busybox", "name": f"c{i}",
                                                          "team": "a" if i % 2 else "b"})
    ids = [ev["Actor"]["Attributes"]["name"] for ev in E.Reader(root, since=t0).read()]
    assert os.path.exists(tmp_path / (E.LOG + ".1"))
    # the newest, oldest first, across the two files; the oldest are gone with the bound
    assert len(ids) >= 3 and ids == [f"c{i}" for i in range(6)][-len(ids):]
    assert E.Reader(root, since=time.time() + 5).read() == []
    labelled = E.Reader(root, since=0, filters={"label": ["team=a"]}).read()
    assert {ev["Actor"]["Attributes"]["team"] for ev in labelled} == {"a"}


def test_filters_are_dockers():
    ev = {"Type": "container", "Action": "exec_start: sh -c true", "scope": "local",
          "Actor": {"ID": "ab" * 32, "Attributes": {"image": "busybox", "name": "web",
                                                    "k": "v"}}}
    yes = [{"container": ["web"]}, {"container": ["abab"]}, {"image": ["busybox:latest"]},
           {"event": ["exec_start"]}, {"label": ["k"], "type": ["container"]},
           {"label": ["k=v"]}, {"container": ["nope", "web"]}, {"scope": ["local"]}]
    no = [{"container": ["db"]}, {"type": ["image"]}, {"label": ["k=w"]}, {"volume": ["web"]},
          {"event": ["exec"]}, {"image": ["alpine"]}, {"scope": ["swarm"]}]
    assert all(E.matches(ev, f) for f in yes)
    assert not any(E.matches(ev, f) for f in no)
    net = {"Type": "network", "Action": "connect",
           "Actor": {"ID": "cd" * 32, "Attributes": {"container": "ab" * 32, "name": "n1"}}}
    assert E.matches(net, {"container": ["abab"]}) and E.matches(net, {"network": ["n1"]})


def test_an_unwritable_log_does_not_fail_the_operation(tmp_path):
    (tmp_path / E.LOG).mkdir()  # open(2) fails with EISDIR
    E.emit(str(tmp_path), "volume", "create", "v")


def test_the_default_line(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        ev = {"Type": "container", "Action": "start", "timeNano": 1_796_365_800_000_000_123,
              "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "busybox"}}}
        assert line(ev) == ("2026-12-04T06:30:00.000000123Z container start abc "
                            "(image=busybox, name=web)")
        ev["Actor"]["Attributes"] = {}
        assert line(ev).endswith("container start abc")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_iso_ns_reads_the_stores_times():
    from datetime import UTC, datetime

    from pyminidocker.store.files import now_iso

    for stamp in ("2026-12-04T06:30:00.000000123Z", "2024-02-29T23:59:59Z",
                  "1970-01-01T00:00:00Z", "2000-03-01T00:00:00.5Z", now_iso()):
        whole = datetime.fromisoformat(stamp[:19]).replace(tzinfo=UTC).timestamp()
        frac = stamp[20:-1] if "." in stamp else ""
        assert iso_ns(stamp) == int(whole) * 10**9 + int((frac + "0" * 9)[:9])
    assert iso_ns("yesterday") is None and iso_ns("2026-12-04") is None


def test_an_event_can_carry_the_time_it_happened(tmp_path):
    E.emit(str(tmp_path), "container", "die", "c", {"exitCode": "3"},
           at="2026-12-04T06:30:00.000000123Z")
    ev = E.Reader(str(tmp_path), since=0).read()[0]
    assert ev["timeNano"] == 1_796_365_800_000_000_123 and ev["time"] == 1_796_365_800
