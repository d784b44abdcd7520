"""restart, pause/unpause, top, diff, stats, update, as root, on real containers: what a user
of Docker would check (the processes' state in the kernel, ps and inspect, the cgroup files,
the container's view).

One store per module with busybox as `bb`; the module ends with no container or cgroup left.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.conftest import module_ctr

ctr = module_ctr("verbs")


def state_of(pid: int) -> str:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return data[data.rindex(b")") + 2:].split()[0].decode()


def inspect(ctr, cid: str) -> dict:
    return json.loads(ctr("inspect", cid).stdout)[0]


@pytest.fixture
def sleeper(ctr):
    cid = ctr("run", "-d", "bb", "sh", "-c", "while :; do sleep 0.1; done").stdout.strip()
    yield cid
    ctr("rm", "-f", cid, check=False)


def test_pause_freezes_and_unpause_thaws(ctr, sleeper):
    pid = inspect(ctr, sleeper)["State"]["Pid"]
    assert ctr("pause", sleeper).stdout == f"{sleeper}\n"
    st = inspect(ctr, sleeper)["State"]
    assert st["Status"] == "paused" and st["Paused"] is True and st["Running"] is True
    assert "(Paused)" in ctr("ps").stdout
    freezer = Path("/sys/fs/cgroup/freezer/pyminidocker") / sleeper / "freezer.state"
    assert freezer.read_text().strip() == "FROZEN"
    time.sleep(0.3)
    assert state_of(pid) in ("D", "S")  # frozen tasks sleep in the freezer
    res = ctr("pause", sleeper, check=False)
    assert res.returncode == 1 and "is already paused" in res.stderr
    ctr("unpause", sleeper)
    assert freezer.read_text().strip() == "THAWED"
    assert inspect(ctr, sleeper)["State"]["Status"] == "running"
    res = ctr("unpause", sleeper, check=False)
    assert res.returncode == 1 and "is not paused" in res.stderr


def test_a_paused_container_can_be_stopped_and_removed(ctr, sleeper):
    ctr("pause", sleeper)
    t = time.monotonic()
    ctr("stop", "-t", "1", sleeper)
    assert time.monotonic() - t < 8
    assert inspect(ctr, sleeper)["State"]["Status"] == "exited"
    cid = ctr("run", "-d", "bb", "sleep", "30").stdout.strip()
    ctr("pause", cid)
    ctr("rm", "-f", cid)
    assert cid[:12] not in ctr("ps", "-a", "-q").stdout


def test_restart_gives_a_new_process(ctr, sleeper):
    before = inspect(ctr, sleeper)["State"]
    assert ctr("restart", "-t", "1", sleeper).stdout == f"{sleeper}\n"
    after = inspect(ctr, sleeper)["State"]
    assert after["Status"] == "running" and after["Pid"] != before["Pid"]
    assert after["StartedAt"] > before["StartedAt"]
    # an exited container is started by restart too
    cid = ctr("run", "-d", "bb", "sh", "-c", "echo ran").stdout.strip()
    ctr("wait", cid)
    ctr("restart", cid)
    ctr("wait", cid)
    assert ctr("logs", cid).stdout == "ran\nran\n"
    ctr("rm", cid)


def test_top_lists_the_container_s_processes(ctr, sleeper):
    out = ctr("top", sleeper).stdout.splitlines()
    assert out[0].split()[:3] == ["UID", "PID", "PPID"]
    pid = str(inspect(ctr, sleeper)["State"]["Pid"])
    assert any(line.split()[1] == pid for line in out[1:])
    assert all("while :" in line or "sleep" in line for line in out[1:])
    out = ctr("top", sleeper, "-o", "pid,comm").stdout.splitlines()
    assert out[0].split() == ["PID", "COMMAND"] and out[1].split()[0] == pid
    res = ctr("top", sleeper, "-o", "comm", check=False)
    assert res.returncode == 1 and "Couldn't find PID field in ps output" in res.stderr


def test_diff_shows_added_changed_deleted(ctr):
    cid = ctr("run", "-d", "bb", "sh", "-c",
              "mkdir -p /new/sub && echo x > /new/sub/f && echo y >> /etc/passwd && "
              "rm /bin/vi && sleep 30").stdout.strip()
    try:
        deadline = time.monotonic() + 10
        out = ""
        while "/bin/vi" not in out and time.monotonic() < deadline:
            out = ctr("diff", cid).stdout
            time.sleep(0.1)
        lines = out.splitlines()
        assert "A /new" in lines and "A /new/sub" in lines and "A /new/sub/f" in lines
        assert "C /etc" in lines and "C /etc/passwd" in lines
        assert "C /bin" in lines and "D /bin/vi" in lines
        assert not any(line.endswith(("/etc/hosts", "/proc", "/dev", "/sys")) for line in lines)
    finally:
        ctr("rm", "-f", cid)


def test_stats_no_stream(ctr):
    cid = ctr("run", "-d", "--name", "busy", "-m", "64m", "bb", "sh", "-c",
              "while :; do :; done").stdout.strip()
    try:
        out = ctr("stats", "--no-stream", "busy").stdout.splitlines()
        assert out[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
        row = out[1]
        assert row.startswith(cid[:12]) and " busy " in row
        cpu = float(row.split()[2].rstrip("%"))
        assert cpu > 5.0  # a busy loop (on a loaded host it gets what is left)
        assert "/ 64MiB" in row
        assert row.split()[-1] == "1"  # PIDS
        # without names: every running container
        assert cid[:12] in ctr("stats", "--no-stream").stdout
    finally:
        ctr("rm", "-f", cid)
    res = ctr("stats", "--no-stream", "nosuch", check=False)
    assert res.returncode == 1 and "No such container: nosuch" in res.stderr


def test_update_changes_limits_live(ctr, sleeper):
    cg = Path("/sys/fs/cgroup")
    ctr("update", "-m", "100m", "--cpus", "0.5", "--pids-limit", "20", sleeper)
    assert (cg / "memory/pyminidocker" / sleeper / "memory.limit_in_bytes").read_text() \
        == f"{100 << 20}\n"
    assert (cg / "cpu/pyminidocker" / sleeper / "cpu.cfs_quota_us").read_text() == "50000\n"
    assert (cg / "pids/pyminidocker" / sleeper / "pids.max").read_text() == "20\n"
    host = inspect(ctr, sleeper)["HostConfig"]
    assert host["Memory"] == 100 << 20 and host["NanoCpus"] == 500_000_000
    # seen from inside, and kept across a restart
    ctr("restart", "-t", "0", sleeper)
    out = ctr("exec", sleeper, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
    assert out == f"{100 << 20}\n"
    res = ctr("update", sleeper, check=False)
    assert res.returncode == 125 and "you must provide one or more flags" in res.stderr
    res = ctr("update", "--memory-reservation", "200m", sleeper, check=False)
    assert res.returncode == 1 and "Minimum memory limit can not be less than memory " \
                                   "reservation limit" in res.stderr


def test_history_image_prune_system_df_and_prune(ctr, publish):
    from tests.integration import images as I

    # a second image, then made dangling by moving its tag: prune removes it, not bb
    img = I.build_image([I.make_layer([I.Entry("only-here", data=b"x" * 5000)])],
                        config_extra={"Cmd": ["true"]})
    pushed = publish(img, "verbs-prune", "v1")
    ctr("pull", "-q", f"{pushed.host}/{pushed.repo}:{pushed.tag}")
    hist = ctr("history", f"{pushed.host}/{pushed.repo}:{pushed.tag}").stdout.splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"] and len(hist) >= 2
    ctr("rmi", "-f", f"{pushed.host}/{pushed.repo}:{pushed.tag}")
    df = ctr("system", "df").stdout.splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split()[0] for line in df[1:]] == ["Images", "Containers", "Local", "Build"]
    assert df[-1].split() == ["Build", "Cache", "0", "0", "0B", "0B"]  # no share of nothing
    assert ctr("system", "df", "--format", "table").stdout.splitlines()[0] == df[0]
    rows = ctr("system", "df", "--format", "{{.Type}}={{.TotalCount}}").stdout.splitlines()
    assert [r.split("=")[0] for r in rows] == ["Images", "Containers", "Local Volumes",
                                              "Build Cache"] and rows[-1] == "Build Cache=0"
    bad = ctr("system", "df", "--format", "{{.Nope}}", check=False)
    assert bad.returncode != 0 and "can't evaluate field Nope" in bad.stderr
    cid = ctr("create", "-v", "dfvol:/d", "bb", "true").stdout.strip()
    images_row = next(line for line in ctr("system", "df").stdout.splitlines()
                      if line.startswith("Images"))
    assert images_row.split()[1:3] == ["1", "1"]  # bb, used by the container
    out = ctr("image", "prune", "-f").stdout
    assert "Total reclaimed space: 0B" in out  # rmi -f removed it already: nothing dangling
    assert ctr("images", "-q").stdout.strip()  # bb stays: a container uses it
    # system prune: the stopped container, then with --volumes its volume
    out = ctr("system", "prune", "-f", "--volumes").stdout
    assert "Deleted Containers:\n" + cid in out and "Deleted Volumes:\ndfvol" in out
    assert out.rstrip().splitlines()[-1].startswith("Total reclaimed space:")
    assert cid[:12] not in ctr("ps", "-a", "-q").stdout
    assert ctr("volume", "ls", "-q").stdout == ""
    # without -f it asks, and no answer keeps everything
    res = ctr("image", "prune", "-a", input="n\n")
    assert "WARNING! This will remove all images without at least one container" in res.stdout
    assert ctr("images", "-q").stdout.strip()


def test_image_prune_filters_label_and_until(ctr, publish):
    """image prune -a --filter label=/label!=/until= as Docker's: only the unused images the
    filters select go; bb (a container's) and the others stay."""
    from tests.integration import images as I

    refs = {}
    for name, labels in (("old-a", {"tier": "a"}), ("old-b", {"tier": "b"})):
        img = I.build_image([I.make_layer([I.Entry(name, data=name.encode())])],
                            config_extra={"Cmd": ["true"], "Labels": labels})
        pushed = publish(img, f"verbs-{name}", "v1")
        refs[name] = f"{pushed.host}/{pushed.repo}:{pushed.tag}"
        ctr("pull", "-q", refs[name])

    def present() -> set[str]:
        return {n for n, ref in refs.items()
                if ctr("image", "inspect", ref, check=False).returncode == 0}

    holder = ctr("create", "bb", "true").stdout.strip()  # bb in use: no prune takes it
    res = ctr("image", "prune", "-a", "-f", "--filter", "until=2000-01-01T00:00:00Z")
    assert present() == {"old-a", "old-b"}, res.stdout  # both were made after 2000
    out = ctr("image", "prune", "-a", "-f", "--filter", "label=tier=a").stdout
    assert present() == {"old-b"} and "untagged: " + refs["old-a"] in out.lower()
    ctr("image", "prune", "-a", "-f", "--filter", "label!=tier=b")
    assert present() == {"old-b"}
    res = ctr("image", "prune", "-a", "-f", "--filter", "bogus=1", check=False)
    assert res.returncode != 0 and "invalid filter 'bogus'" in res.stderr
    ctr("image", "prune", "-a", "-f", "--filter", "until=2024-01-01T00:00:00Z",
        "--filter", "label=tier=b")  # made 2023-11-14: before the limit, and labelled so
    assert present() == set()
    ctr("rm", holder)
    assert ctr("images", "-q", "bb").stdout.strip()


def test_format_on_stats_history_and_volume_ls(ctr):
    """--format as Docker's on the listings scripts read: stats --no-stream, history, volume ls
    (fields, a table with Docker's titles, and a template error as Docker prints it)."""
    ctr("volume", "create", "--label", "team=a", "fmt-vol")
    cid = ctr("run", "-d", "--name", "fmt-stats", "-v", "fmt-vol:/data", "bb", "sleep",
              "30").stdout.strip()
    try:
        out = ctr("ps", "--filter", "name=fmt-stats", "--format", "{{.LocalVolumes}}").stdout
        assert out == "1\n"
        out = ctr("stats", "--no-stream", "--format", "{{.Name}} {{.ID}} {{.PIDs}}",
                  "fmt-stats").stdout
        assert out == f"fmt-stats {cid[:12]} 1\n"
        out = ctr("stats", "--no-stream", "--format", "table {{.Name}}\t{{.MemUsage}}",
                  "fmt-stats").stdout.splitlines()
        assert out[0].split() == ["NAME", "MEM", "USAGE", "/", "LIMIT"]
        assert out[1].startswith("fmt-stats ") and " / " in out[1]
        image_id = json.loads(ctr("inspect", "--type", "image", "bb").stdout)[0]["Id"]
        out = ctr("history", "--format", "{{.ID}}|{{.Size}}", "bb").stdout.splitlines()
        assert out and out[0].split("|")[0] == image_id.removeprefix("sha256:")[:12]
        out = ctr("history", "--format", "table {{.ID}}\t{{.CreatedBy}}", "bb").stdout
        assert out.splitlines()[0].split() == ["IMAGE", "CREATED", "BY"]
        out = ctr("volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}}")
        assert "fmt-vol local team=a local\n" in out.stdout
        mount = ctr("volume", "ls", "-f", "name=fmt-vol", "--format", "{{.Mountpoint}}").stdout
        assert mount.strip().endswith("/volumes/fmt-vol/_data")
        bad = ctr("volume", "ls", "--format", "{{.Nope", check=False)
        assert bad.returncode != 0 and "template parsing error" in bad.stderr
        assert "Traceback" not in bad.stderr
    finally:
        ctr("rm", "-f", cid)
        ctr("volume", "rm", "fmt-vol")
