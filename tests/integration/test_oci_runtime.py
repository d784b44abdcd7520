"""pyminidocker-runc, the OCI runtime, driven as containerd and Podman drive runc: real
containers from a busybox bundle, each test with its own --root, and a check that nothing is
left (state directory, cgroup, mount, process)."""
from __future__ import annotations

import array
import json
import os
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration import images as I

REPO = Path(__file__).resolve().parents[2]
CGROUP_PARENT = "pyminidocker-runc"
TOOLS = ("sh", "echo", "cat", "ls", "sleep", "true", "id", "hostname", "readlink", "stat",
         "grep", "env", "pwd", "mount", "head", "touch", "mkdir", "chmod")


def write_launcher(path: Path) -> Path:
    """An executable pyminidocker-runc for this checkout (what `make install` writes): the C
    front at path, the Python runtime's launcher it execs at path.py."""
    script = path.with_name(path.name + ".py")
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                      "from pyminidocker.oci.main import command\ncommand()\n")
    script.chmod(0o755)
    shutil.copy(REPO / "pyminidocker" / "pmd-runc", path)
    return path


def make_bundle(d: Path, args: list[str], **changes) -> Path:
    """A bundle: busybox rootfs and runc's default config (from `spec`), args, no terminal."""
    rootfs = d / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    shutil.copy(I.BUSYBOX, rootfs / "bin" / "busybox")
    for tool in TOOLS:
        (rootfs / "bin" / tool).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    subprocess.run([sys.executable, "-m", "pyminidocker.oci.main", "spec", "-b", str(d)],
                   check=True, cwd=REPO)
    cfg = json.loads((d / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["root"]["readonly"] = False
    for key, value in changes.items():
        cfg[key] = value
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def edit(bundle: Path, fn) -> None:
    cfg = json.loads((bundle / "config.json").read_text())
    fn(cfg)
    (bundle / "config.json").write_text(json.dumps(cfg))


class Runc:
    def __init__(self, binary: Path, root: Path):
        self.binary, self.root = binary, root

    def __call__(self, *args: str, check: bool = True, timeout: float = 30,
                 **kw) -> subprocess.CompletedProcess:
        # Files, not pipes: a container started by create or run -d keeps the runtime's
        # stdio as its own, as runc's does, so a pipe would not see EOF before it exits.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run([str(self.binary), "--root", str(self.root), *args],
                               stdout=out, stderr=err, text=True, timeout=timeout,
                               check=False, **kw)
            out.seek(0)
            err.seek(0)
            r = subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())
        if check and r.returncode != 0:
            raise AssertionError(f"{args}: rc {r.returncode}: {r.stderr}")
        return r

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid).stdout)


def cgroup_dirs(cid: str) -> list[str]:
    base = Path("/sys/fs/cgroup")
    return [str(p) for p in base.glob(f"*/{CGROUP_PARENT}/{cid}") if p.is_dir()]


def empty_default_parents() -> list[str]:
    """The runtime's default parent cgroups left without a container in them: each must go
    with its last container (one holding another test's container is still in use)."""
    return [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}")
            if p.is_dir() and not p.is_symlink() and not any(c.is_dir() for c in p.iterdir())]


def mounts_of(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(str(path))]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.fixture
def runc(tmp_path):
    yield from runc_checked(tmp_path, cgroup_dirs, empty_default_parents)


def runc_checked(tmp_path: Path, cgroup_dirs, empty_default_parents):
    """A Runc on its own root, and after the test, the check that it left nothing; with the
    caller's way of finding cgroups (the v1 one here, test_oci_cgroups' for v1 and v2)."""
    binary = write_launcher(tmp_path / "pyminidocker-runc")
    r = Runc(binary, tmp_path / "state")
    r.pids: list[int] = []  # type: ignore[misc]
    r.ids: list[str] = []  # type: ignore[misc]
    yield r
    for cid in os.listdir(r.root) if r.root.exists() else []:
        r("delete", "--force", cid, check=False)
    left = [cid for cid in r.ids if cgroup_dirs(cid)]
    stray = [p for p in r.pids if alive(p)]
    for p in stray:
        os.kill(p, signal.SIGKILL)
    assert not left, f"cgroups left: {left}"
    assert not empty_default_parents(), "empty pyminidocker-runc parent cgroups left"
    assert not stray, f"processes left: {stray}"
    assert not (r.root.exists() and os.listdir(r.root)), "state left"
    assert not mounts_of(tmp_path), "mounts left"


# ---- run ---------------------------------------------------------------------------------------

def test_run_gives_the_containers_output_and_exit_code(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c", "echo out; echo err >&2; hostname; exit 7"])
    runc.ids.append("r1")
    r = runc("run", "--bundle", str(b), "r1", check=False)
    assert r.returncode == 7, r.stderr
    assert r.stdout == "out\nrunc\n"
    assert r.stderr == "err\n"
    assert not cgroup_dirs("r1")


def test_run_applies_the_process_and_linux_config(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c",
                                     "id; pwd; cat /proc/self/oom_score_adj; "
                                     "cat /sys/fs/cgroup/pids/pids.max; cat /proc/sys/kernel/domainname; "
                                     "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
                                     "cat /proc/sys/net/ipv4/ip_forward"])

    def change(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 6]}
        cfg["process"]["cwd"] = "/work/dir"
        cfg["process"]["oomScoreAdj"] = 123
        cfg["domainname"] = "example.org"
        cfg["linux"]["resources"]["pids"] = {"limit": 42}
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        cfg["process"]["capabilities"]["effective"] = []
    edit(b, change)
    r = runc("run", "--bundle", str(b), "r2")
    lines = r.stdout.splitlines()
    assert lines[0] == "uid=1000 gid=1000 groups=5,6"
    assert lines[1:5] == ["/work/dir", "123", "42", "example.org"]
    assert "CapEff:\t0000000000000000" in lines
    assert "NoNewPrivs:\t1" in lines
    assert lines[-1] == "1"


# ---- the lifecycle ----------------------------------------------------------------------------

def test_create_holds_the_container_until_start_and_state_tells_the_truth(runc, tmp_path):
    marker = tmp_path / "b" / "rootfs" / "started"
    b = make_bundle(tmp_path / "b", ["sh", "-c", "touch /started; exec sleep 60"])
    runc.ids.append("c1")
    pid_file = tmp_path / "pid"
    runc("create", "--bundle", str(b), "--pid-file", str(pid_file), "c1")
    pid = int(pid_file.read_text())
    runc.pids.append(pid)
    s = runc.state("c1")
    assert (s["id"], s["status"], s["pid"], s["bundle"]) == ("c1", "created", pid, str(b))
    time.sleep(0.2)
    assert not marker.exists(), "the process ran before start"
    assert len(cgroup_dirs("c1")) >= 5
    listed = runc("list", "--format", "json").stdout
    assert [c["id"] for c in json.loads(listed)] == ["c1"]
    runc("start", "c1")
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists()
    assert runc.state("c1")["status"] == "running"
    assert json.loads(runc("ps", "--format", "json", "c1").stdout) == [pid]
    r = runc("start", "c1", check=False)
    assert r.returncode == 1 and "already running" in r.stderr
    r = runc("delete", "c1", check=False)
    assert r.returncode == 1 and "not stopped: running" in r.stderr
    runc("pause", "c1")
    assert runc.state("c1")["status"] == "paused"
    runc("resume", "c1")
    assert runc.state("c1")["status"] == "running"
    # A crash: the init dies without the runtime's knowledge.
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while runc.state("c1")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.01)
    s = runc.state("c1")
    assert (s["status"], s["pid"]) == ("stopped", 0)
    r = runc("kill", "c1", "KILL", check=False)
    assert r.returncode == 1 and "not running" in r.stderr
    runc("delete", "c1")
    assert not cgroup_dirs("c1")
    r = runc("state", "c1", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "container does not exist")


def test_a_plain_start_is_answered_by_the_c_front_alone(runc, tmp_path):
    # containerd's start of a container without hooks: the front asks the holder itself
    marker = tmp_path / "b" / "rootfs" / "started"
    b = make_bundle(tmp_path / "b", ["sh", "-c", "touch /started; exec sleep 60"])
    runc.ids.append("p1")
    runc("create", "--bundle", str(b), "p1")
    runc.pids.append(runc.state("p1")["pid"])
    assert (runc.root / "p1" / "ctl-plain.sock").exists()
    python = runc.binary.with_name(runc.binary.name + ".py")
    python.rename(python.with_suffix(".away"))  # no Python runtime to defer to
    try:
        r = runc("start", "p1", check=False)
    finally:
        python.with_suffix(".away").rename(python)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists() and runc.state("p1")["status"] == "running"
    r = runc("start", "p1", check=False)  # the socket is gone: Python words it
    assert r.returncode == 1 and "already running" in r.stderr
    runc("kill", "p1", "KILL")


def test_a_start_the_holder_refuses_is_worded_alike_through_the_front(runc, tmp_path):
    # the process is found only in a bind mount, so create leaves it to the start (as runc),
    # whose exec fails: the same words, code and log record through the front and without it
    b = make_bundle(tmp_path / "b", ["/opt/tools/nosuch"])
    edit(b, lambda cfg: cfg["mounts"].append({"destination": "/opt/tools", "type": "bind",
                                              "source": str(b / "rootfs" / "bin"),
                                              "options": ["rbind", "ro"]}))
    python = runc.binary.with_name(runc.binary.name + ".py")
    seen = []
    for cid, binary in (("f1", runc.binary), ("f2", python)):
        runc.ids.append(cid)
        runc("create", "--bundle", str(b), cid)
        log = tmp_path / f"{cid}.log"
        r = subprocess.run([str(binary), "--root", str(runc.root), "--log", str(log),
                            "--log-format", "json", "start", cid], capture_output=True,
                           text=True, timeout=30, check=False)
        logged = [json.loads(line)["msg"] for line in log.read_text().splitlines()]
        seen.append((r.returncode, r.stdout, r.stderr, logged, runc.state(cid)["status"]))
        runc("delete", cid)
    assert seen[0] == seen[1]
    assert seen[0][0] == 1 and "/opt/tools/nosuch" in seen[0][2] and seen[0][4] == "stopped"
    # and it was the front that asked: without the Python runtime, the start was still made
    runc.ids.append("f3")
    runc("create", "--bundle", str(b), "f3")
    python.rename(python.with_suffix(".away"))
    try:
        r = runc("start", "f3", check=False)
    finally:
        python.with_suffix(".away").rename(python)
    assert r.returncode == 255 and runc.state("f3")["status"] == "stopped"
    runc("delete", "f3")


def test_kill_and_delete_force(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["sleep", "60"])
    runc.ids += ["k1", "k2"]
    runc("run", "-d", "--bundle", str(b), "k1")
    pid = runc.state("k1")["pid"]
    runc.pids.append(pid)
    runc("kill", "k1", "SIGKILL")
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runc.state("k1")["status"] == "stopped"
    runc("delete", "k1")
    runc("run", "-d", "--bundle", str(b), "k2")
    runc.pids.append(runc.state("k2")["pid"])
    runc("delete", "--force", "k2")
    assert not alive(runc.pids[-1])
    assert runc("delete", "--force", "never-was").returncode == 0
    r = runc("kill", "nope", "KILL", check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_events_stats_samples_the_containers_cgroup(runc, tmp_path):
    """`events --stats` (containerd's metrics) reads the container's own cgroup: its one process,
    its memory limit; a stopped container has none to read."""
    limit = 64 << 20
    b = make_bundle(tmp_path / "b", ["sleep", "60"])
    edit(b, lambda cfg: cfg["linux"].setdefault("resources", {}).update(
        memory={"limit": limit}))
    runc.ids.append("st1")
    runc("run", "-d", "--bundle", str(b), "st1")
    pid = runc.state("st1")["pid"]
    runc.pids.append(pid)
    doc = json.loads(runc("events", "--stats", "st1").stdout)
    assert (doc["type"], doc["id"]) == ("stats", "st1")
    assert doc["data"]["pids"] == {"current": 1}
    assert doc["data"]["memory"]["usage"]["limit"] == limit
    assert 0 < doc["data"]["memory"]["usage"]["usage"] < limit
    runc("kill", "st1", "KILL")
    deadline = time.monotonic() + 5
    while runc.state("st1")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.01)
    r = runc("events", "--stats", "st1", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "container not running")
    runc("delete", "st1")


def test_delete_force_of_a_created_container_ends_it_unrun(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["touch", "/ran"])
    runc.ids.append("d1")
    runc("create", "--bundle", str(b), "d1")
    pid = runc.state("d1")["pid"]
    runc.pids.append(pid)
    r = runc("delete", "d1", check=False)
    assert r.returncode == 1 and "not stopped: created" in r.stderr
    runc("delete", "--force", "d1")
    assert not alive(pid)
    assert not (b / "rootfs" / "ran").exists()


def test_exec_inline_and_process_file(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["sleep", "60"], hostname="exechost")
    runc.ids.append("e1")
    runc("run", "-d", "--bundle", str(b), "e1")
    runc.pids.append(runc.state("e1")["pid"])
    r = runc("exec", "e1", "sh", "-c", "hostname; echo $FOO; exit 3", check=False,
             env={"FOO": "host"})
    assert (r.returncode, r.stdout) == (3, "exechost\n\n")
    r = runc("exec", "-e", "FOO=bar", "--cwd", "/etc", "e1", "sh", "-c", "echo $FOO; pwd")
    assert r.stdout == "bar\n/etc\n"
    proc = {"args": ["sh", "-c", "id -u; echo $X"], "env": ["X=from-file"], "cwd": "/",
            "user": {"uid": 99, "gid": 99}}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    r = runc("exec", "--process", str(tmp_path / "p.json"), "e1")
    assert r.stdout == "99\nfrom-file\n"
    pid_file = tmp_path / "exec.pid"
    runc("exec", "-d", "--pid-file", str(pid_file), "e1", "sleep", "30")
    exec_pid = int(pid_file.read_text())
    runc.pids.append(exec_pid)
    assert exec_pid in json.loads(runc("ps", "-f", "json", "e1").stdout)
    r = runc("exec", "e1", "nosuch", check=False)
    assert r.returncode == 255 and 'exec: "nosuch": executable file not found' in r.stderr
    runc("delete", "-f", "e1")
    assert not alive(exec_pid)


def test_console_socket_gets_the_pty_master(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c",
                                     "[ -t 0 ] && [ -t 1 ] && echo hello-tty; sleep 0.2"])
    edit(b, lambda cfg: cfg["process"].update(terminal=True,
                                               consoleSize={"height": 30, "width": 100}))
    runc.ids.append("t1")
    sock_path = tmp_path / "console.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(1)
    r = runc("create", "--bundle", str(b), "--console-socket", str(sock_path), "t1")
    assert r.returncode == 0
    conn, _ = srv.accept()
    fds = array.array("i")
    _, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
    fds.frombytes(anc[0][2][:fds.itemsize])
    master = fds[0]
    conn.close()
    srv.close()
    runc.pids.append(runc.state("t1")["pid"])
    runc("start", "t1")
    out = b""
    deadline = time.monotonic() + 5
    while b"hello-tty" not in out and time.monotonic() < deadline:
        try:
            out += os.read(master, 4096)
        except OSError:
            break
    os.close(master)
    assert b"hello-tty\r\n" in out  # \r: a terminal's output processing
    runc("delete", "-f", "t1")


def test_hooks_get_the_state_on_stdin(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["true"])
    out = tmp_path / "hooks"
    out.mkdir()

    def hook(stage):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{stage}"]}

    stages = ["prestart", "createRuntime", "poststart", "poststop"]
    edit(b, lambda cfg: cfg.update(hooks={s: [hook(s)] for s in stages}))
    runc.ids.append("h1")
    runc("run", "--bundle", str(b), "h1")
    for stage in stages:
        state = json.loads((out / stage).read_text())
        assert state["id"] == "h1" and state["bundle"] == str(b), stage
    assert json.loads((out / "createRuntime").read_text())["status"] == "creating"  # runc's
    assert json.loads((out / "poststop").read_text())["status"] == "stopped"


def test_a_failing_hook_fails_the_start_and_leaves_nothing(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["touch", "/ran"])
    edit(b, lambda cfg: cfg.update(hooks={"prestart": [{"path": "/bin/false"}]}))
    runc.ids.append("h2")
    r = runc("run", "--bundle", str(b), "h2", check=False)
    assert r.returncode == 1 and "prestart hook #0" in r.stderr
    assert not (b / "rootfs" / "ran").exists()
    edit(b, lambda cfg: cfg.update(hooks={"createRuntime": [{"path": "/bin/sleep",
                                                             "args": ["sleep", "5"],
                                                             "timeout": 1}]}))
    r = runc("create", "--bundle", str(b), "h2", check=False)
    assert r.returncode == 1 and "timeout" in r.stderr
    # prestart runs when start is called (the runtime spec), and its failure ends the container
    edit(b, lambda cfg: cfg.update(hooks={"prestart": [{"path": "/bin/false"}]}))
    runc("create", "--bundle", str(b), "h2")
    runc.pids.append(runc.state("h2")["pid"])
    r = runc("start", "h2", check=False)
    assert r.returncode == 1 and "prestart hook #0" in r.stderr
    # stopped and deleted, as the runtime spec's lifecycle goes on after a failed prestart
    assert runc("state", "h2", check=False).returncode == 1
    assert not (b / "rootfs" / "ran").exists()


def test_start_container_hooks_run_in_the_container_before_its_process(runc, tmp_path):
    # The hook's path and files are the container's (its mount namespace), it runs after start
    # and before the process, with the state on stdin; the process sees what the hook wrote.
    b = make_bundle(tmp_path / "b", ["sh", "-c", "cat /hook-saw; echo process"])
    edit(b, lambda cfg: cfg.update(hooks={"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "cat > /hook-state; "
                                     "echo hook in $(hostname) > /hook-saw"], "timeout": 5}]}))
    runc.ids.append("sc1")
    r = runc("run", "--bundle", str(b), "sc1")
    assert r.stdout == "hook in runc\nprocess\n", r.stderr
    state = json.loads((b / "rootfs" / "hook-state").read_text())
    assert (state["id"], state["status"], state["bundle"]) == ("sc1", "created", str(b))
    # create + start: the hook runs at start, not before; its pid is the container's
    (b / "rootfs" / "hook-state").unlink()
    edit(b, lambda cfg: cfg["process"].update(args=["sleep", "30"]))
    runc("create", "--bundle", str(b), "sc1")
    pid = runc.state("sc1")["pid"]
    runc.pids.append(pid)
    time.sleep(0.2)
    assert not (b / "rootfs" / "hook-state").exists()
    runc("start", "sc1")
    assert json.loads((b / "rootfs" / "hook-state").read_text())["pid"] == pid
    runc("delete", "-f", "sc1")


def test_a_failing_or_slow_start_container_hook_stops_the_container(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["touch", "/ran"])
    edit(b, lambda cfg: cfg.update(hooks={"startContainer": [
        {"path": "/bin/true"},
        {"path": "/bin/sh", "args": ["sh", "-c", "echo said; echo and; echo why >&2; exit 3"]}]}))
    runc.ids.append("sc2")
    r = runc("run", "--bundle", str(b), "sc2", check=False)
    assert r.returncode == 1, r.stderr
    # its output is in the error, as runc's, not in the container's stdout
    assert r.stderr.strip() == ("error running startContainer hook #1: exit status 3, "
                                "stdout: said and, stderr: why")
    assert r.stdout == ""
    edit(b, lambda cfg: cfg.update(hooks={"startContainer": [
        {"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}]}))
    runc("create", "--bundle", str(b), "sc2")
    runc.pids.append(runc.state("sc2")["pid"])
    t0 = time.monotonic()
    r = runc("start", "sc2", check=False)
    assert r.returncode == 1 and "startContainer hook #0: timeout" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 5
    assert runc.state("sc2")["status"] == "stopped"
    # a path that exists on the host only is not found in the container
    runc("delete", "sc2")
    edit(b, lambda cfg: cfg.update(hooks={"startContainer": [{"path": str(runc.binary)}]}))
    r = runc("run", "--bundle", str(b), "sc2", check=False)
    assert r.returncode == 1 and "startContainer hook #0: exit status 127" in r.stderr
    assert not (b / "rootfs" / "ran").exists()


def _create_container_hook(tmp_path: Path, rootfs: Path, out: Path, code: int = 0) -> str:
    """A hook script on the host (not in the rootfs) that records what it sees in out/."""
    out.mkdir(exist_ok=True)
    script = tmp_path / "create-hook.sh"
    script.write_text(f"""#!/bin/sh
cat > {out}/state
readlink /proc/self/ns/mnt > {out}/mnt
grep -c " {rootfs}/hooktmp " /proc/self/mountinfo > {out}/mounts
touch {rootfs}/hooktmp/from-hook
echo said; echo why >&2
exit {code}
""")
    script.chmod(0o755)
    return str(script)


def _with_hook_tmpfs(cfg: dict, hooks: list[dict]) -> None:
    cfg["mounts"].append({"destination": "/hooktmp", "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev", "size=64k"]})
    cfg["hooks"] = {"createContainer": hooks}


def test_create_container_hooks_run_in_the_container_before_pivot_root(runc, tmp_path):
    # The hook's path and output files are the host's (it runs before pivot_root), in the
    # container's mount namespace with the config's mounts made (its file lands in the
    # container's tmpfs, not in the host's directory under it), during create, with the state.
    b = make_bundle(tmp_path / "b", ["sh", "-c", "ls /hooktmp > /seen"])
    rootfs, out = b / "rootfs", tmp_path / "out"
    hook = _create_container_hook(tmp_path, rootfs, out)
    edit(b, lambda cfg: _with_hook_tmpfs(cfg, [{"path": "/bin/true"}, {"path": hook}]))
    runc.ids.append("cc1")
    runc("create", "--bundle", str(b), "cc1")
    pid = runc.state("cc1")["pid"]
    runc.pids.append(pid)
    state = json.loads((out / "state").read_text())
    assert (state["id"], state["status"], state["pid"], state["bundle"]) == (
        "cc1", "creating", pid, str(b))
    mnt = (out / "mnt").read_text().strip()
    assert mnt == os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert (out / "mounts").read_text().strip() == "1"
    assert not any((rootfs / "hooktmp").iterdir())  # the host's directory stays empty
    assert runc.state("cc1")["status"] == "created"
    runc("start", "cc1")
    deadline = time.monotonic() + 10
    while runc.state("cc1")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (rootfs / "seen").read_text() == "from-hook\n"
    runc("delete", "cc1")
    # run: the same hook, run by the init between its mounts and pivot_root
    (rootfs / "seen").unlink()
    edit(b, lambda cfg: cfg["process"].update(args=["ls", "/hooktmp"]))
    r = runc("run", "--bundle", str(b), "cc1")
    assert r.stdout == "from-hook\n", r.stderr
    state = json.loads((out / "state").read_text())
    assert state["status"] == "creating" and state["pid"] > 0


def test_a_failing_create_container_hook_fails_create_and_leaves_nothing(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["touch", "/ran"])
    rootfs, out = b / "rootfs", tmp_path / "out"
    hook = _create_container_hook(tmp_path, rootfs, out, code=3)
    edit(b, lambda cfg: _with_hook_tmpfs(cfg, [{"path": "/bin/true"}, {"path": hook}]))
    runc.ids.append("cc2")
    for cmd in ("create", "run"):
        r = runc(cmd, "--bundle", str(b), "cc2", check=False)
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip() == ("error running createContainer hook #1: exit status 3, "
                                    "stdout: said, stderr: why"), r.stderr
        pid = json.loads((out / "state").read_text())["pid"]
        runc.pids.append(pid)
        assert not alive(pid), cmd  # the init that ran the hook is gone
        assert runc("state", "cc2", check=False).returncode == 1, cmd
        assert not cgroup_dirs("cc2") and not mounts_of(tmp_path), cmd
    assert not (rootfs / "ran").exists()
    # a hook that outlives its timeout fails create the same way
    edit(b, lambda cfg: cfg["hooks"].update(createContainer=[
        {"path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1}]))
    t0 = time.monotonic()
    r = runc("create", "--bundle", str(b), "cc2", check=False)
    assert r.returncode == 1 and r.stderr.strip() == "error running createContainer hook #0: " \
        "timeout", r.stderr
    assert time.monotonic() - t0 < 5


def _user_ns(cfg: dict, host_id: int, size: int) -> None:
    cfg["linux"]["namespaces"].append({"type": "user"})
    for key in ("uidMappings", "gidMappings"):
        cfg["linux"][key] = [{"containerID": 0, "hostID": host_id, "size": size}]


def test_a_user_namespace_with_an_identity_map(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c", "cat /proc/self/uid_map; id -u; "
                                     "readlink /proc/self/ns/user"])
    edit(b, lambda cfg: _user_ns(cfg, 0, 4294967295))
    runc.ids.append("un1")
    r = runc("run", "--bundle", str(b), "un1")
    uid_map, uid, ns = r.stdout.splitlines()
    assert uid_map.split() == ["0", "0", "4294967295"] and uid == "0", r.stdout
    assert ns != os.readlink("/proc/self/ns/user")


@pytest.fixture
def reachable_tmp():
    top = Path(tempfile.mkdtemp(prefix="pmd-userns-"))
    top.chmod(0o711)
    yield top
    shutil.rmtree(top)


def test_a_user_namespace_maps_root_to_the_rootfs_owner(runc, reachable_tmp):
    # rootfs ownership is the caller's job (as with runc): chown it into the mapped range, in
    # a directory its root can reach (pytest's tmp_path is in a 0700 directory)
    b = make_bundle(reachable_tmp / "b", ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; "
                                     "id -u; id -g; touch /made; sleep 30"])
    edit(b, lambda cfg: _user_ns(cfg, 200000, 65536))
    subprocess.run(["chown", "-R", "-h", "200000:200000", str(b / "rootfs")], check=True)
    runc.ids.append("un2")
    runc("run", "-d", "--bundle", str(b), "un2")
    pid = runc.state("un2")["pid"]
    runc.pids.append(pid)
    with open(f"/proc/{pid}/status") as f:  # the host sees the mapped ids
        assert next(ln for ln in f if ln.startswith("Uid:")).split()[1] == "200000"
    out = runc("exec", "un2", "sh", "-c", "cat /proc/self/uid_map; id -u").stdout
    assert out.split() == ["0", "200000", "65536", "0"]  # exec joins the user namespace
    deadline = time.monotonic() + 5
    while not (b / "rootfs" / "made").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    st = (b / "rootfs" / "made").stat()
    assert (st.st_uid, st.st_gid) == (200000, 200000)
    runc("delete", "-f", "un2")


@pytest.fixture
def holder():
    """Processes holding namespaces for a config to join by path (unshare's), killed after."""
    procs: list[subprocess.Popen] = []

    def start(kind: str, *flags: str) -> int:
        p = subprocess.Popen(["unshare", *flags, "sleep", "60"])
        procs.append(p)
        deadline = time.monotonic() + 5
        while _ns_inode(p.pid, kind) == _ns_inode("self", kind):  # until unshare made it
            assert time.monotonic() < deadline, f"unshare {flags} made no {kind} namespace"
            time.sleep(0.01)
        return p.pid

    yield start
    for p in procs:
        p.kill()
        p.wait()


def _ns_inode(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_a_user_namespace_joined_by_path(runc, reachable_tmp, holder):
    # as runc: the init enters it, and the namespaces it makes are that namespace's own
    pid = holder("user", "-U")
    Path(f"/proc/{pid}/uid_map").write_text("0 300000 65536\n")
    Path(f"/proc/{pid}/gid_map").write_text("0 300000 65536\n")
    b = make_bundle(reachable_tmp / "b", ["sh", "-c", "cat /proc/self/uid_map > /made.tmp; "
                                          "id -u >> /made.tmp; mv /made.tmp /made; sleep 30"])
    edit(b, lambda cfg: cfg["linux"]["namespaces"].append(
        {"type": "user", "path": f"/proc/{pid}/ns/user"}))
    subprocess.run(["chown", "-R", "-h", "300000:300000", str(b / "rootfs")], check=True)
    runc.ids.append("uj")
    runc("run", "-d", "--bundle", str(b), "uj")
    cpid = runc.state("uj")["pid"]
    runc.pids.append(cpid)
    assert _ns_inode(cpid, "user") == _ns_inode(pid, "user")
    assert _ns_inode(cpid, "pid") != _ns_inode("self", "pid")
    deadline = time.monotonic() + 5
    while not (b / "rootfs" / "made").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (b / "rootfs" / "made").read_text().split() == ["0", "300000", "65536", "0"]
    assert (b / "rootfs" / "made").stat().st_uid == 300000
    out = runc("exec", "uj", "sh", "-c", "readlink /proc/self/ns/user; id -u").stdout
    assert out.split() == [_ns_inode(pid, "user"), "0"]  # exec joins it too
    runc("delete", "-f", "uj")


def test_a_mount_namespace_joined_by_path_is_set_up_in_place(runc, tmp_path, holder):
    pid = holder("mnt", "-m", "--propagation", "private")
    b = make_bundle(tmp_path / "b", ["sleep", "30"])
    edit(b, lambda cfg: cfg["linux"].update(namespaces=[
        n if n["type"] != "mount" else {"type": "mount", "path": f"/proc/{pid}/ns/mnt"}
        for n in cfg["linux"]["namespaces"]]))
    runc.ids.append("mj")
    runc("create", "--bundle", str(b), "mj")
    cpid = runc.state("mj")["pid"]
    runc.pids.append(cpid)
    assert _ns_inode(cpid, "mnt") == _ns_inode(pid, "mnt")
    runc("start", "mj")
    assert Path(f"/proc/{cpid}/root/etc/passwd").read_text().startswith("root:x:0:0")
    assert not mounts_of(b)  # the container's mounts are in the joined namespace, not ours
    runc("delete", "-f", "mj")


def test_without_a_mount_namespace_the_root_is_entered_by_chroot(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["cat", "/etc/passwd"])
    # a createContainer hook runs before the chroot: its output file is a host path
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {tmp_path}/hook-state"]}
    edit(b, lambda cfg: cfg.update(hooks={"createContainer": [hook]}))
    edit(b, lambda cfg: cfg["linux"].update(namespaces=[
        n for n in cfg["linux"]["namespaces"] if n["type"] != "mount"]))
    runc.ids.append("nomnt")
    r = runc("run", "--bundle", str(b), "nomnt")
    assert r.stdout == "root:x:0:0:root:/root:/bin/sh\n"  # the bundle's, not the host's
    assert r.stderr.startswith("warning: no mount namespace in linux.namespaces: mounts, ")
    assert json.loads((tmp_path / "hook-state").read_text())["status"] == "creating"
    edit(b, lambda cfg: cfg["process"].update(args=["sleep", "30"]))
    runc("create", "--bundle", str(b), "nomnt")
    cpid = runc.state("nomnt")["pid"]
    runc.pids.append(cpid)
    assert _ns_inode(cpid, "mnt") == _ns_inode("self", "mnt")
    assert not mounts_of(b)  # nothing mounted in ours
    runc("delete", "-f", "nomnt")


@pytest.mark.parametrize("propagation, tag", [("rshared", "shared:"), ("unbindable", "unbindable"),
                                              ("rslave", None), ("private", None)])
def test_rootfs_propagation(runc, tmp_path, propagation, tag):
    b = make_bundle(tmp_path / "b", ["cat", "/proc/self/mountinfo"])
    edit(b, lambda cfg: cfg["linux"].update(rootfsPropagation=propagation))
    runc.ids.append("prop")
    out = runc("run", "--bundle", str(b), "prop").stdout
    root = next(ln for ln in out.splitlines() if ln.split()[4] == "/")
    # the optional fields of the root's mountinfo line: its propagation (private: none)
    fields = root.split(" - ")[0].split()[6:]
    assert fields == ([] if tag is None else [f for f in fields if f.startswith(tag)]), fields
    assert tag is None or fields


def test_the_verbs_containerd_calls_import_nothing_heavy(runc, tmp_path):
    # containerd's shim runs create, start, state, kill and delete for every container: each
    # pays CPython's start, so none may add the modules the engine's start path avoids
    from tests.integration.test_containers import HEAVY_MODULES

    b = make_bundle(tmp_path / "b", ["sleep", "30"])
    runc.ids.append("light")
    out = tmp_path / "modules"
    code = (f"import sys; from pyminidocker.oci.main import main; code = main(sys.argv[1:]); "
            f"open({str(out)!r}, 'w').write(' '.join(sys.modules)); sys.exit(code)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *site.getsitepackages()]))
    # the last: containerd's delete --force of the container its delete removed
    for verb in (["create", "--bundle", str(b), "light"], ["start", "light"],
                 ["state", "light"], ["kill", "light", "KILL"], ["delete", "-f", "light"],
                 ["delete", "--force", "light"]):
        with tempfile.TemporaryFile() as stdio:  # the container keeps create's stdio
            subprocess.run([sys.executable, "-S", "-c", code, "--root", str(runc.root), *verb],
                           env=env, stdout=stdio, stderr=stdio, timeout=60, check=True)
        if verb[0] == "create":
            runc.pids.append(runc.state("light")["pid"])
        loaded = set(out.read_text().split())
        assert loaded & HEAVY_MODULES == set(), verb
        # nor the engine's store (its package reads the engine's config: 2 ms of a create)
        assert "pyminidocker.store" not in loaded, verb
        if verb[0] in ("start", "state", "kill"):  # nor what only create uses
            assert not {"pyminidocker.native", "pyminidocker.shim",
                        "pyminidocker.container.namespaces",
                        "pyminidocker.container.cgroups"} & loaded, verb
        if verb[1] == "--force":  # nothing to do: not even the runtime module
            assert "pyminidocker.oci.runtime" not in loaded
        if verb[0] in ("start", "state", "delete"):  # read without the command-line parser
            assert "pyminidocker.cli.args" not in loaded, verb


# ---- bad input ------------------------------------------------------------------------------

BAD = {
    "unknown namespace": (lambda c: c["linux"]["namespaces"].append({"type": "foo"}),
                          "namespace type 'foo' is not supported"),
    "symlink escaping the root": (
        lambda c: c["mounts"].append({"destination": "/evil/x", "type": "tmpfs",
                                      "source": "tmpfs"}),
        "outside the container's root"),
    "device outside /dev": (
        lambda c: c["linux"].update(devices=[{"path": "/etc/null", "type": "c", "major": 1,
                                              "minor": 3}]),
        "is not in /dev"),
    "root outside the bundle": (lambda c: c["root"].update(path="../.."),
                                "must stay inside the bundle"),
    "id mappings without a user namespace": (lambda c: c["linux"].update(uidMappings=[
        {"containerID": 0, "hostID": 1000, "size": 1}]), "need a user namespace"),
    "user namespace without mappings": (
        lambda c: c["linux"]["namespaces"].append({"type": "user"}),
        "user namespaces enabled, but no uid mappings found"),
    "unified on v1": (lambda c: c["linux"]["resources"].update(unified={"memory.max": "1"}),
                      "needs cgroup v2"),
    "relative mount destination": (
        lambda c: c["mounts"].append({"destination": "tmp", "type": "tmpfs"}),
        "is not absolute"),
    "ociVersion 2": (lambda c: c.update(ociVersion="2.0.0"), "unsupported spec version"),
    "sysctl that is not a dotted name": (
        lambda c: c["linux"].update(sysctl={"net.ipv4/../../kernel/printk_ratelimit": "7"}),
        "is not in a separate kernel namespace"),
    "unknown capability": (
        lambda c: c["process"]["capabilities"]["bounding"].append("CAP_TEST"),
        "unknown capability 'CAP_TEST'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_config_is_refused_and_leaves_nothing(runc, tmp_path, case):
    change, message = BAD[case]
    b = make_bundle(tmp_path / "b", ["touch", "/ran"])
    # a relative link that climbs out of the root to a host directory
    (b / "rootfs" / "evil").symlink_to("../" * 20 + str(tmp_path / "host").lstrip("/"))
    edit(b, change)
    runc.ids.append("bad")
    log = tmp_path / "log.json"
    for verb in ("run", "create"):
        r = subprocess.run([str(runc.binary), "--root", str(runc.root), "--log", str(log),
                            "--log-format", "json", verb, "--bundle", str(b), "bad"],
                           capture_output=True, text=True, timeout=30, check=False)
        assert r.returncode == 1, (verb, r.stderr)
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (runc.root / "bad").exists() and not cgroup_dirs("bad")
    assert not (b / "rootfs" / "ran").exists() and not (tmp_path / "host").exists()
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["level"] == "error" and message in last["msg"]


def test_a_command_the_root_lacks_fails_create_as_runc(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["nosuch", "arg"])
    runc.ids.append("n1")
    r = runc("create", "--bundle", str(b), "n1", check=False)
    assert r.returncode == 1
    assert r.stderr == 'exec: "nosuch": executable file not found in $PATH\n'
    assert not (runc.root / "n1").exists() and not cgroup_dirs("n1")
    # one that a bind mount provides is left to the container to find
    edit(b, lambda cfg: cfg["mounts"].append({"destination": "/opt/tools", "type": "bind",
                                              "source": str(b / "rootfs" / "bin"),
                                              "options": ["rbind", "ro"]}))
    edit(b, lambda cfg: cfg["process"].update(args=["/opt/tools/true"]))
    assert runc("run", "--bundle", str(b), "n1").returncode == 0


def test_seccomp_profile_with_errno_and_argument_conditions(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["sh", "-c", "mkdir /tmp/d; echo mkdir=$?; "
                                     "touch /f; chmod 644 /f; echo chmod644=$?; "
                                     "chmod 755 /f; echo chmod755=$?"])
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            # chmod(path, 0755) refused, any other mode allowed
            {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 0o755, "op": "SCMP_CMP_EQ"}]},
        ],
    }
    edit(b, lambda cfg: cfg["linux"].update(seccomp=profile))
    runc.ids.append("s1")
    r = runc("run", "--bundle", str(b), "s1")
    assert "mkdir=1" in r.stdout and "Function not implemented" in r.stderr
    assert "chmod644=0" in r.stdout and "chmod755=1" in r.stdout
    profile["syscalls"][0]["action"] = "SCMP_ACT_NOPE"
    edit(b, lambda cfg: cfg["linux"].update(seccomp=profile))
    r = runc("run", "--bundle", str(b), "s1", check=False)
    assert r.returncode == 1 and r.stderr.startswith("linux.seccomp: ")


def test_a_newer_minor_oci_version_is_read(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["echo", "ok"], ociVersion="1.9.9")
    runc.ids.append("v1")
    assert runc("run", "--bundle", str(b), "v1").stdout == "ok\n"


def test_fds_the_shim_cannot_pass_are_a_clear_error(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["true"])
    runc.ids.append("f1")
    r = runc("run", "--preserve-fds", "2", "--bundle", str(b), "f1", check=False)
    assert r.returncode == 1 and "--preserve-fds and LISTEN_FDS are not supported" in r.stderr
    assert not (runc.root / "f1").exists() and not cgroup_dirs("f1")
    # LISTEN_FDS meant for another process (LISTEN_PID) is not ours to pass on
    env = {**os.environ, "LISTEN_FDS": "1", "LISTEN_PID": "1"}
    assert runc("run", "--bundle", str(b), "f1", env=env).returncode == 0


def test_systemd_cgroup_is_a_clear_error(runc, tmp_path):
    r = runc("--systemd-cgroup", "list", check=False)
    assert r.returncode == 1 and "--systemd-cgroup is not supported" in r.stderr


def test_go_style_single_dash_flags_and_features(runc, tmp_path):
    r = subprocess.run([str(runc.binary), "-root", str(runc.root), "list", "-q"],
                       capture_output=True, text=True, check=True)
    assert r.stdout == ""
    feats = json.loads(runc("features").stdout)
    assert "mount" in feats["linux"]["namespaces"] and feats["ociVersionMin"] == "1.0.0"
