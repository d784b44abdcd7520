"""A broken record never blocks the rest of the store: what a power cut or a full disk leaves
(an empty or garbled file) is named, listed around, and removable."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import free_subnet, module_ctr

ctr = module_ctr("ctr-durability")


def test_a_corrupt_container_config_blocks_nothing_else(ctr):
    good = ctr("create", "--network", "none", "--name", "good", "bb", "true").stdout.strip()
    bad = ctr("create", "--network", "none", "--name", "bad", "bb", "true").stdout.strip()
    (ctr.root / "containers" / bad / "config.json").write_bytes(b"")  # as a power cut leaves it
    try:
        ps = ctr("ps", "-a", "--format", "json")
        assert ps.returncode == 0
        assert "good" in ps.stdout and "bad" not in ps.stdout
        warnings = ps.stderr.strip().splitlines()
        assert len(warnings) == 1 and bad[:12] in warnings[0] and "corrupt" in warnings[0]
        # another container still runs, and is named and removed
        assert ctr("run", "--rm", "--network", "none", "bb", "echo", "ok").stdout == "ok\n"
        ins = ctr("inspect", bad[:12], check=False)
        assert ins.returncode == 1 and "corrupt record" in ins.stderr
        assert len(ins.stderr.strip().splitlines()) == 1
        assert ctr("rm", bad[:12], check=False).returncode == 1  # without -f: refused
        assert ctr("rm", "-f", bad[:12]).returncode == 0
        assert not (ctr.root / "containers" / bad).exists()
        assert ctr("ps", "-a").stderr == ""
    finally:
        ctr("rm", "-f", good, bad, check=False)


def test_a_lost_state_reads_as_exited_with_its_code_unknown(ctr):
    cid = ctr("create", "--network", "none", "bb", "true").stdout.strip()
    try:
        (ctr.root / "containers" / cid / "state.json").write_bytes(b"{\"status\": ")
        line = ctr("ps", "-a").stdout.splitlines()[1]
        assert cid[:12] in line and "Exited (-1)" in line
        assert ctr("start", "-a", cid).returncode == 0  # and it starts again
        assert "Exited (0)" in ctr("ps", "-a").stdout.splitlines()[1]
    finally:
        ctr("rm", "-f", cid)


def test_an_image_id_that_is_not_here_is_not_pulled(ctr):
    missing = "sha256:" + "ab" * 32
    res = ctr("run", "--rm", "--network", "none", missing, "true", check=False)
    assert res.returncode == 125
    assert res.stderr.strip() == f"Error: No such image: {missing}", res.stderr
    assert "docker.io/library/sha256" not in res.stderr + res.stdout


def test_a_corrupt_image_record_blocks_nothing_else(ctr):
    # a second image record beside bb's, garbled as a power cut or a bad disk leaves one
    images = ctr.root / "images"
    (good,) = [p for p in images.iterdir() if not p.name.startswith(".")]
    fake = images / ("f" * 64)
    fake.mkdir()
    (fake / "images.json").write_bytes(b"\x00garbage")
    try:
        res = ctr("images")
        assert res.returncode == 0 and "bb" in res.stdout
        warnings = res.stderr.strip().splitlines()
        assert len(warnings) == 1 and "ffffffffffff" in warnings[0] and "corrupt" in warnings[0]
        assert ctr("run", "--rm", "--network", "none", "bb", "echo", "ok").stdout == "ok\n"
        assert ctr("rmi", "ffffffffffff", check=False).returncode == 1
        assert ctr("rmi", "-f", "ffffffffffff").stdout == f"Deleted: sha256:{'f' * 64}\n"
        assert not fake.exists() and (good / "images.json").exists()
        assert ctr("images").stderr == ""
    finally:
        if fake.exists():
            shutil.rmtree(fake)


def _rules_of(bridge: str) -> list[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if f"pmd:{bridge}:" in line]


def test_a_corrupt_network_record_blocks_nothing_else(ctr):
    ctr("network", "create", "--subnet", free_subnet(), "n-good")
    ctr("network", "create", "--subnet", free_subnet(), "n-bad")
    try:
        # used once, so that it has a bridge and rules on the host
        ctr("run", "--rm", "--network", "n-bad", "bb", "true")
        record = ctr.root / "networks" / "n-bad.json"
        bridge = json.loads(record.read_text())["bridge"]
        assert Path(f"/sys/class/net/{bridge}").exists() and _rules_of(bridge)
        record.write_bytes(record.read_bytes()[:-20])  # a torn write
        ls = ctr("network", "ls")
        assert ls.returncode == 0 and "n-good" in ls.stdout and "n-bad" not in ls.stdout
        warnings = ls.stderr.strip().splitlines()
        assert len(warnings) == 1 and "n-bad" in warnings[0] and "corrupt" in warnings[0]
        assert ctr("run", "--rm", "--network", "n-good", "bb", "true").returncode == 0
        ins = ctr("network", "inspect", "n-bad", check=False)
        assert ins.returncode == 1 and "corrupt record" in ins.stderr
        res = ctr("run", "--rm", "--network", "n-bad", "bb", "true", check=False)
        assert res.returncode != 0 and "corrupt record" in res.stderr
        assert "None" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert ctr("network", "rm", "n-bad", check=False).returncode == 1  # without -f
        assert ctr("network", "rm", "-f", "n-bad").stdout == "n-bad\n"
        assert not record.exists()
        assert not Path(f"/sys/class/net/{bridge}").exists() and _rules_of(bridge) == []
        assert ctr("network", "ls").stderr == ""
        assert ctr("network", "rm", "-f", "n-bad").returncode == 0  # -f: not there is fine
    finally:
        ctr("network", "rm", "-f", "n-good", "n-bad", check=False)


def test_a_corrupt_ipam_record_is_rebuilt_from_the_running_containers(ctr):
    ctr("network", "create", "--subnet", free_subnet(), "n-ipam")
    ids = []
    try:
        ids.append(ctr("run", "-d", "--network", "n-ipam", "bb", "sleep", "60").stdout.strip())
        (ctr.root / "networks" / "ipam" / "n-ipam.json").write_bytes(b"")  # a power cut
        res = ctr("run", "-d", "--network", "n-ipam", "bb", "sleep", "60", check=False)
        assert res.returncode == 0, res.stderr
        assert "failed to create task" not in res.stderr
        ids.append(res.stdout.strip())
        # on a user network the address is in Networks only (Docker's top-level is "")
        ips = [json.loads(ctr("inspect", i).stdout)[0]["NetworkSettings"]["Networks"]["n-ipam"]
               ["IPAddress"] for i in ids]
        assert ips[0] and ips[1] and ips[0] != ips[1]  # the running one kept its address
        ins = json.loads(ctr("network", "inspect", "n-ipam").stdout)[0]
        assert sorted(ins["Containers"]) == sorted(ids)
    finally:
        ctr("rm", "-f", *ids, check=False)
        ctr("network", "rm", "-f", "n-ipam", check=False)


def test_a_corrupt_layer_record_blocks_nothing(ctr):
    (top,) = [p for p in (ctr.root / "images").iterdir() if not p.name.startswith(".")]
    layer = json.loads((top / "images.json").read_text())["layer"]
    record = ctr.root / "layers" / layer.removeprefix("sha256:") / "layer.json"
    saved = record.read_bytes()
    record.write_bytes(b"\x00" * len(saved))  # what a power cut can leave of a file
    try:
        res = ctr("images")
        assert res.returncode == 0 and "bb" in res.stdout
        warnings = res.stderr.strip().splitlines()
        assert len(warnings) == 1 and layer[7:19] in warnings[0] and "corrupt" in warnings[0]
        res = ctr("run", "--rm", "--network", "none", "bb", "echo", "ok", check=False)
        assert res.stdout == "ok\n", res.stderr
    finally:
        record.write_bytes(saved)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kill_9_of_run_at_any_moment_leaks_no_address_and_no_rule(ctr):
    ctr("network", "create", "--subnet", free_subnet().replace(".0/24", ".0/29"), "n29")
    bridge = json.loads((ctr.root / "networks" / "n29.json").read_text())["bridge"]
    try:
        for delay in (0.0, 0.03, 0.08, 0.15, 0.3, 0.45):  # parsing ... a running container
            p = subprocess.Popen(
                ctr.argv("run", "--rm", "--network", "n29", "-p", f"{_free_port()}:80", "bb",
                         "sleep", "30"),
                env=ctr.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.kill()
            p.wait()
        # ps tells the truth: a container it does not show as running has no process left
        left = ctr("ps", "-aq").stdout.split()
        for doc in json.loads(ctr("inspect", *left).stdout) if left else []:
            procs = [p for f in Path("/sys/fs/cgroup").glob(f"*/pyminidocker/{doc['Id']}/"
                                                             "cgroup.procs")
                     for p in f.read_text().split()]
            assert doc["State"]["Running"] or procs == [], (doc["State"], procs)
        # whatever the kills left is removed as a user would: what ps -a shows
        if left:
            ctr("rm", "-f", *left)
        # the /29 has 5 addresses: all of them are free again
        ids = [ctr("run", "-d", "--network", "n29", "bb", "sleep", "30").stdout.strip()
               for _ in range(5)]
        ctr("rm", "-f", *ids)
        assert json.loads(ctr("network", "inspect", "n29").stdout)[0]["Containers"] == {}
        assert [r for r in _rules_of(bridge) if ":port:" in r] == []
        assert ctr("network", "rm", "n29").returncode == 0
        assert _rules_of(bridge) == []
    finally:
        ctr("rm", "-f", *ctr("ps", "-aq").stdout.split(), check=False)
        ctr("network", "rm", "-f", "n29", check=False)


def test_rm_f_racing_stop_says_nothing_internal(ctr):
    for _ in range(3):
        cid = ctr("run", "-d", "--network", "none", "bb", "sleep", "30").stdout.strip()
        stop = subprocess.Popen(ctr.argv("stop", "-t", "1", cid), env=ctr.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rm = ctr("rm", "-f", cid, check=False)
        _, err = stop.communicate(timeout=60)
        assert rm.returncode == 0, rm.stderr
        assert "No such file" not in rm.stderr + err and "/containers/" not in rm.stderr + err
        assert stop.returncode == 0 or err.startswith("Error: No such container"), err
        assert not (ctr.root / "containers" / cid).exists()


def _stopped(ctr, cid: str) -> None:
    ctr("kill", cid)
    assert ctr("wait", cid).returncode == 0


def test_rm_f_of_a_container_that_stops_between_look_and_kill(ctr, monkeypatch):
    """The race window (a few microseconds between rm's look at the state and its kill) is
    opened wide: the first look is the one taken while it still ran."""
    from pyminidocker.container.runtime import Runtime
    from pyminidocker.store import Store

    cid = ctr("run", "-d", "--network", "none", "bb", "sleep", "30").stdout.strip()
    rt = Runtime(Store(ctr.root))
    running = rt.get(cid)
    assert running.state.status == "running"
    _stopped(ctr, cid)
    real, looks = Runtime.refresh, []

    def late_refresh(self, rec):
        looks.append(rec.id)
        return running if len(looks) == 1 else real(self, rec)

    monkeypatch.setattr(Runtime, "refresh", late_refresh)
    rt.remove(running, force=True)  # was: Conflict "... is not running"
    assert not (ctr.root / "containers" / cid).exists()


def test_rm_f_of_a_container_another_rm_removed_meanwhile(ctr, monkeypatch):
    from pyminidocker.container.runtime import Runtime
    from pyminidocker.errors import NotFound
    from pyminidocker.store import Store

    real = Runtime._unplug

    def racing_unplug(self, rec):  # another rm (a real one) wins the race here
        ctr("rm", "-f", rec.id)
        return real(self, rec)

    monkeypatch.setattr(Runtime, "_unplug", racing_unplug)
    rt = Runtime(Store(ctr.root))
    for force in (True, False):
        cid = ctr("create", "--network", "none", "bb", "true").stdout.strip()
        rec = rt.get(cid)
        if force:
            rt.remove(rec, force=True)  # was: FileNotFoundError naming .../containers/<id>
        else:
            with pytest.raises(NotFound, match=f"No such container: {cid}"):
                rt.remove(rec)
        assert not (ctr.root / "containers" / cid).exists()


def test_rm_f_of_a_container_that_just_stopped(ctr):
    for delay in (0.25, 0.3, 0.35, 0.4):
        cid = ctr("run", "-d", "--network", "none", "bb", "sleep", "0.3").stdout.strip()
        time.sleep(delay)
        res = ctr("rm", "-f", cid, check=False)
        assert res.returncode == 0 and res.stdout.strip() in (cid, cid[:12]), res.stderr


def test_rmi_racing_create_never_leaves_a_container_without_its_image(ctr):
    """`rmi` and `create` of the same image at once: either the container is made and rmi is
    refused (a container uses the image), or the image goes and create says there is no such
    image; never a container whose image is gone, never another error."""
    base = ctr("create", "--network", "none", "bb", "true").stdout.strip()
    outcomes = set()
    try:
        for i in range(8):
            name = f"race:{i}"
            ctr("commit", base, name)
            argv_create = ctr.argv("create", "--pull", "never", "--network", "none", name, "true")
            make = subprocess.Popen(argv_create, env=ctr.env(), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if i % 2:
                time.sleep(0.01 * i)  # let either side start first
            rmi = ctr("rmi", name, check=False)
            out, err = make.communicate(timeout=60)
            if make.returncode == 0:
                cid = out.strip()
                assert rmi.returncode != 0 and "container" in rmi.stderr, rmi.stderr
                image = json.loads(ctr("inspect", cid).stdout)[0]["Image"]
                assert ctr("inspect", "--type", "image", image, check=False).returncode == 0
                ctr("rm", cid)
                ctr("rmi", name)
                outcomes.add("create first")
            else:
                assert rmi.returncode == 0, rmi.stderr
                assert "No such image" in err and "Traceback" not in err, err
                outcomes.add("rmi first")
        assert outcomes  # each round ended in one of the two
    finally:
        ctr("rm", "-f", base, check=False)


def test_system_check_finds_and_repairs_what_crashes_leave(ctr):
    assert ctr("system", "check").stdout == "no problems\n"
    assert ctr("system", "check", "--full").returncode == 0
    ctr("network", "create", "--subnet", free_subnet(), "n-chk")
    kept = ctr("create", "--network", "none", "--name", "kept", "bb", "true").stdout.strip()
    (top,) = [p for p in (ctr.root / "images").iterdir() if not p.name.startswith(".")]
    layer = json.loads((top / "images.json").read_text())["layer"]
    record = ctr.root / "layers" / layer.removeprefix("sha256:") / "layer.json"
    saved = json.loads(record.read_text())
    gone = "9" * 64
    try:
        # what crashes and bad disks leave
        record.write_bytes(b"")  # a layer record lost
        (ctr.root / "layers" / ("a" * 64) / "diff").mkdir(parents=True)  # never registered
        (ctr.root / "containers" / ("b" * 64)).mkdir()  # a create that never finished
        ipam = ctr.root / "networks" / "ipam" / "n-chk.json"
        ipam.write_text(json.dumps({"allocations": {"10.0.0.2": gone}}))  # its rm was killed
        res = ctr("system", "check", check=False)
        assert res.returncode == 1
        problems = res.stdout.splitlines()
        assert problems[-1] == "4 problems left", res.stdout
        for needle in (layer[7:19], "a" * 12, "b" * 12, "10.0.0.2"):
            assert sum(needle in line for line in problems) == 1, (needle, res.stdout)
        res = ctr("system", "check", "--repair", check=False)
        assert res.returncode == 0, res.stdout
        lines = res.stdout.splitlines()
        assert len([x for x in lines if x.startswith("repaired: ")]) == 4, res.stdout
        assert lines[-1] == "no problems"
        assert ctr("system", "check").stdout == "no problems\n"
        assert json.loads(record.read_text())["diff_id"] == saved["diff_id"]  # rebuilt
        assert not (ctr.root / "layers" / ("a" * 64)).exists()
        assert not (ctr.root / "containers" / ("b" * 64)).exists()
        assert json.loads(ipam.read_text())["allocations"] == {}
        # and what was fine still is
        assert ctr("start", "-a", kept).returncode == 0
        assert ctr("run", "--rm", "--network", "n-chk", "bb", "echo", "ok").stdout == "ok\n"
    finally:  # as pulled: a record rebuilt from its image lacks the tree digest
        record.write_text(json.dumps(saved))
        ctr("rm", "-f", kept, check=False)
        ctr("network", "rm", "-f", "n-chk", check=False)


def test_a_frozen_registry_fails_the_pull_in_bounded_time_naming_it(ctr):
    import socket

    with socket.socket() as frozen:  # takes connections (the kernel's backlog), says nothing
        frozen.bind(("127.0.0.1", 0))
        frozen.listen(16)
        host = f"127.0.0.1:{frozen.getsockname()[1]}"
        t0 = time.monotonic()
        res = ctr("pull", f"{host}/frozen/image:v1", check=False,
                  env={"PYMINIDOCKER_REGISTRY_TIMEOUT": "2"}, timeout=60)
        took = time.monotonic() - t0
    assert res.returncode == 1, res.stderr
    assert f"registry {host} did not answer within 2 s" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert took < 10, took  # one wait (was: 5 tries of 60 s, over HTTPS then HTTP)


def test_the_exit_code_survives_a_killed_monitor(ctr):
    import os
    import signal

    cid = ctr("run", "-d", "--network", "none", "bb", "sh", "-c",
              "sleep 2; exit 3").stdout.strip()
    try:
        st = json.loads((ctr.root / "containers" / cid / "state.json").read_text())
        os.kill(st["monitor_pid"], signal.SIGKILL)
        time.sleep(0.2)
        assert cid[:12] in ctr("ps", "-q").stdout.split()  # running, and now watched
        assert ctr("wait", cid, timeout=30).stdout == "3\n"  # was: 137
        assert "Exited (3)" in ctr("ps", "-a").stdout
        # written into the room the monitor took (a full disk could not refuse it)
        d = ctr.root / "containers" / cid
        assert (d / "exit").stat().st_size == 256 and not (d / "exit.slot").exists()
    finally:
        ctr("rm", "-f", cid)


def test_system_check_full_finds_a_changed_layer_file(ctr):
    # the quick check trusts the layers' files; --full rehashes them against the tree digest
    # recorded when the pull extracted the layer (its diff-id verified then)
    (top,) = [p for p in (ctr.root / "images").iterdir() if not p.name.startswith(".")]
    layer = json.loads((top / "images.json").read_text())["layer"].removeprefix("sha256:")
    record = json.loads((ctr.root / "layers" / layer / "layer.json").read_text())
    assert record["tree_digest"].startswith("sha256:")
    diff = ctr.root / "layers" / layer / "diff"
    victim = max((p for p in diff.rglob("*") if p.is_file() and not p.is_symlink()),
                 key=lambda p: p.stat().st_size)
    st = victim.stat()
    data = victim.read_bytes()
    try:
        with open(victim, "r+b") as f:  # one byte, in place: same size, same times
            f.seek(len(data) // 2)
            f.write(bytes([data[len(data) // 2] ^ 0xFF]))
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert ctr("system", "check").stdout == "no problems\n"
        res = ctr("system", "check", "--full", check=False)
        assert res.returncode == 1
        assert f"layer {layer[:12]}: its files are not those extracted" in res.stdout, res.stdout
    finally:
        victim.write_bytes(data)
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ctr("system", "check", "--full").stdout == "no problems\n"
