"""`events`, as root on real containers: the log the engine keeps of what it did, read with
Docker's --since/--until/--filter/--format, and followed while containers come and go.

One store per module with busybox as `bb`; the module ends with no container or cgroup left.
"""
from __future__ import annotations

import json
import re
import signal
import time

from tests.integration.conftest import module_ctr

ctr = module_ctr("events")

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) (\S+) (\S+) (\S+)"
                  r"( \((.*)\))?$")


def events(ctr, *args: str) -> list[dict]:
    out = ctr("events", "--format", "{{json .}}", *args).stdout
    return [json.loads(x) for x in out.splitlines()]


def test_a_containers_life_in_the_default_format(ctr):
    t0 = time.time()
    ctr("run", "--name", "ev1", "--label", "team=a", "bb", "sh", "-c", "exit 3", check=False)
    ctr("rename", "ev1", "ev1b")
    ctr("rm", "ev1b")
    out = ctr("events", "--since", str(t0), "--until", str(time.time() + 0.01),
              "--filter", "type=container").stdout
    lines = [LINE.match(x) for x in out.splitlines()]
    assert all(lines), out
    assert [(m[2], m[3]) for m in lines] == [("container", a) for a in
                                             ("create", "start", "die", "rename", "destroy")]
    cid = lines[0][4]
    assert len(cid) == 64 and all(m[4] == cid for m in lines)
    assert lines[0][6] == "image=bb, name=ev1, team=a"  # sorted by key, Docker's way
    assert "exitCode=3" in lines[2][6]
    assert "oldName=/ev1" in lines[3][6] and "name=ev1b" in lines[3][6]


def test_filters_and_format(ctr):
    t0 = time.time()
    cid = ctr("create", "--name", "ev2", "--label", "k=v", "bb", "true").stdout.strip()
    ctr("create", "--name", "ev3", "bb", "true")
    ctr("volume", "create", "evvol")
    ctr("volume", "rm", "evvol")
    ctr("rm", "ev2", "ev3")
    until = str(time.time() + 0.01)

    def fmt(*args: str) -> list[str]:
        return ctr("events", "--since", str(t0), "--until", until, "--format",
                   "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}", *args).stdout.splitlines()

    assert fmt("--filter", "container=ev2") == ["container create ev2", "container destroy ev2"]
    assert fmt("--filter", f"container={cid[:12]}") == fmt("--filter", "container=ev2")
    assert fmt("--filter", "label=k=v") == fmt("--filter", "container=ev2")
    assert fmt("--filter", "event=create", "--filter", "event=destroy",
               "--filter", "container=ev3") == ["container create ev3", "container destroy ev3"]
    assert fmt("--filter", "type=volume") == ["volume create <no value>",
                                              "volume destroy <no value>"]
    vol = events(ctr, "--since", str(t0), "--until", until, "--filter", "volume=evvol")
    assert [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in vol] \
        == [("volume", a, "evvol", {"driver": "local"}) for a in ("create", "destroy")]
    assert fmt("--filter", "image=bb", "--filter", "event=create") == [
        "container create ev2", "container create ev3"]
    # {{json .}} is the API's message: old clients' fields too
    ev = events(ctr, "--since", str(t0), "--until", until, "--filter", "container=ev2")[0]
    assert ev["status"] == "create" and ev["id"] == cid and ev["from"] == "bb"
    assert ev["scope"] == "local" and ev["time"] == ev["timeNano"] // 10**9
    assert ev["time"] >= int(t0)


def test_since_and_until_bound_the_replay(ctr):
    ctr("create", "--name", "ev4", "bb", "true")
    time.sleep(1.1)
    middle = time.time()
    time.sleep(0.1)
    ctr("rm", "ev4")
    # a Go duration counts back from now; --until alone shows everything up to it
    assert [e["Action"] for e in events(ctr, "--since", "30s", "--until", str(middle),
                                        "--filter", "container=ev4")] == ["create"]
    assert [e["Action"] for e in events(ctr, "--until", str(middle),
                                        "--filter", "container=ev4")] == ["create"]
    after = events(ctr, "--since", str(middle), "--until", "0s", "--filter", "container=ev4")
    assert [e["Action"] for e in after] == ["destroy"]


def test_follow_sees_a_detached_containers_exit_and_stops_on_interrupt(ctr):
    follower = ctr.popen("events", "--filter", "container=ev5", "--format",
                         "{{.Action}} {{.Actor.Attributes.exitCode}}")
    try:
        time.sleep(1)
        ctr("run", "-d", "--name", "ev5", "bb", "sh", "-c", "sleep 0.5; exit 7")
        deadline = time.monotonic() + 15
        # nothing but the follower looks at the container: it notices the exit itself
        while time.monotonic() < deadline:
            if ctr("ps", "-a", "-q", "--filter", "name=ev5", "--filter",
                   "status=exited").stdout.strip():
                break
            time.sleep(0.2)
        time.sleep(1)
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=10)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 130, err
    assert out.splitlines() == ["create <no value>", "start <no value>", "die 7"]
    ctr("rm", "ev5")
    # die is logged once, whoever noticed the exit
    assert [e["Action"] for e in events(ctr, "--since", "1m", "--until", "0s",
                                        "--filter", "container=ev5")] == [
        "create", "start", "die", "destroy"]


def test_stop_kill_pause_restart_and_network_events(ctr):
    t0 = time.time()
    cid = ctr("run", "-d", "--name", "ev6", "bb", "sleep", "60").stdout.strip()
    ctr("pause", cid)
    ctr("unpause", cid)
    ctr("restart", "-t", "0", cid)
    ctr("kill", cid)
    ctr("wait", cid)
    ctr("network", "create", "evnet")
    ctr("network", "rm", "evnet")
    ctr("rm", cid)
    until = str(time.time() + 0.01)
    acts = [(e["Action"], e["Actor"]["Attributes"].get("signal"))
            for e in events(ctr, "--since", str(t0), "--until", until,
                            "--filter", "container=ev6")]
    # sleep as PID 1 ignores SIGTERM: with -t 0 the SIGKILL follows at once, as Docker's
    assert acts == [("create", None), ("start", None), ("pause", None), ("unpause", None),
                    ("kill", "15"), ("kill", "9"), ("die", None), ("stop", None), ("start", None),
                    ("restart", None), ("kill", "9"), ("die", None), ("destroy", None)]
    nets = events(ctr, "--since", str(t0), "--until", until, "--filter", "type=network")
    assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in nets] == [
        ("create", "evnet"), ("destroy", "evnet")]
    assert len(nets[0]["Actor"]["ID"]) == 64


def test_image_events(ctr):
    t0 = time.time()
    ctr("tag", "bb", "evtag:1")
    ctr("rmi", "evtag:1")
    evs = events(ctr, "--since", str(t0), "--until", str(time.time() + 0.01),
                 "--filter", "type=image")
    assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in evs] == [
        ("tag", "evtag:1"), ("untag", "evtag:1")]
    assert evs[0]["Actor"]["ID"] == evs[1]["Actor"]["ID"]
    assert evs[0]["Actor"]["ID"].startswith("sha256:")


def test_bad_input_is_one_line_and_exit_125(ctr):
    for args, message in ((["--filter", "nope=1"], "invalid filter 'nope'"),
                          (["--filter", "container"], "bad format of filter"),
                          (["--since", "yesterday"], "failed to parse value as time"),
                          (["--format", "{{.Nope"], "template parsing error")):
        res = ctr("events", "--until", "0s", *args, check=False)
        assert res.returncode != 0 and message in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_save_load_and_export_events(ctr, tmp_path):
    t0 = time.time()
    archive = tmp_path / "bb.tar"
    ctr("save", "-o", str(archive), "bb")
    ctr("load", "-i", str(archive))
    cid = ctr("create", "--name", "ev7", "bb", "true").stdout.strip()
    ctr("export", "-o", str(tmp_path / "fs.tar"), "ev7")
    ctr("rm", "ev7")
    until = str(time.time() + 0.01)
    images = events(ctr, "--since", str(t0), "--until", until, "--filter", "type=image")
    assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in images] == [
        ("save", "bb:latest"), ("load", "bb:latest")]
    loaded = ctr("images", "-q", "--no-trunc", "bb").stdout.strip()
    assert images[1]["Actor"]["ID"] == loaded
    acts = events(ctr, "--since", str(t0), "--until", until, "--filter", "event=export")
    assert [(e["Type"], e["Actor"]["ID"]) for e in acts] == [("container", cid)]
