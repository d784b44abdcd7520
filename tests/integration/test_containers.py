"""Containers from the CLI, checked from inside the container as a user would check them.

One store per module, with a busybox image (every applet) pulled once from the test registry;
each test runs its containers with --rm or removes them, and the module checks at the end that
no container, mount or cgroup is left.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.integration.conftest import drain_pty, module_ctr

CAPS_DEFAULT = 0x00000000A80425FB


ctr = module_ctr("ctr-busybox")


@pytest.fixture(autouse=True)
def no_containers_left(request):
    yield
    if "ctr" in request.fixturenames:
        ctr = request.getfixturevalue("ctr")
        assert ctr("ps", "-a", "-q").stdout == "", "the test left a container behind"


def sh(ctr, script: str, *opts: str, check: bool = True):
    return ctr("run", "--rm", *opts, "bb", "sh", "-c", script, check=check)


def test_run_echo_and_exit_code(ctr):
    res = ctr("run", "--rm", "bb", "echo", "hello", "world")
    assert res.stdout == "hello world\n"
    assert sh(ctr, "exit 7", check=False).returncode == 7
    assert ctr("run", "--rm", "bb").stdout == "default\n"  # the image's Cmd


def test_command_not_found_is_127_and_not_executable_is_126(ctr):
    res = ctr("run", "--rm", "bb", "no-such-command", check=False)
    assert res.returncode == 127
    assert "no-such-command" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = ctr("run", "--rm", "bb", "/etc/passwd", check=False)
    assert res.returncode == 126
    assert "permission denied" in res.stderr


def test_unknown_image_and_bad_options_are_125(ctr):
    res = ctr("run", "--rm", "127.0.0.1:1/nope:latest", "true", check=False)
    assert res.returncode == 125 and "Traceback" not in res.stderr
    res = ctr("run", "--rm", "--memory", "lots", "bb", "true", check=False)
    assert res.returncode == 125 and "lots" in res.stderr
    res = ctr("run", "--rm", "--cpus", "-1", "bb", "true", check=False)
    assert res.returncode == 125
    assert ctr("ps", "-a", "-q").stdout == ""


def test_environment_merge_and_env_file(ctr, tmp_path):
    envf = tmp_path / "env"
    envf.write_text("# comment\nFROM_FILE=1\nOVERRIDE=file\n")
    out = sh(ctr, "env", "-e", "OVERRIDE=cli", "-e", "NEW=x", "--env-file", str(envf)).stdout
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert env["FROM_IMAGE"] == "yes" and env["FROM_FILE"] == "1" and env["NEW"] == "x"
    assert env["OVERRIDE"] == "cli"
    assert env["PATH"].startswith("/usr/local/sbin")
    assert env["HOME"] == "/root" and len(env["HOSTNAME"]) == 12


def test_workdir_is_created(ctr):
    assert sh(ctr, "pwd", "-w", "/new/work/dir").stdout == "/new/work/dir\n"


def test_user_by_id_and_by_name(ctr):
    assert sh(ctr, "id -u; id -g", "-u", "1000:1000").stdout.split() == ["1000", "1000"]
    assert sh(ctr, "id -un; echo $HOME", "-u", "user").stdout.split() == ["user", "/home/user"]
    res = sh(ctr, "true", "-u", "nosuchuser", check=False)
    assert res.returncode != 0 and "nosuchuser" in res.stderr


def test_hostname_and_etc_files(ctr):
    out = sh(ctr, "hostname; cat /etc/hostname; grep -c localhost /etc/hosts").stdout.split()
    assert re.fullmatch(r"[0-9a-f]{12}", out[0]) and out[1] == out[0] and int(out[2]) >= 1
    assert sh(ctr, "hostname", "-h", "myhost").stdout == "myhost\n"


def test_read_only_root(ctr):
    res = sh(ctr, "touch /x", "--read-only", check=False)
    assert res.returncode != 0 and "Read-only file system" in res.stderr
    assert sh(ctr, "touch /dev/shm/ok && echo ok", "--read-only").stdout == "ok\n"


def test_bind_volumes_rw_and_ro(ctr, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "in").write_text("from host\n")
    out = sh(ctr, "cat /data/in; echo from ctr > /data/out", "-v", f"{data}:/data").stdout
    assert out == "from host\n"
    assert (data / "out").read_text() == "from ctr\n"
    res = sh(ctr, "echo x > /data/nope", "-v", f"{data}:/data:ro", check=False)
    assert res.returncode != 0 and not (data / "nope").exists()


def test_tmpfs(ctr):
    out = sh(ctr, "grep ' /scratch ' /proc/mounts", "--tmpfs", "/scratch").stdout
    assert out.split()[2] == "tmpfs"


def test_default_capabilities_and_confinement(ctr):
    status = sh(ctr, "cat /proc/self/status").stdout
    caps = {k: int(v, 16) for k, v in re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", status, re.M)}
    assert caps["CapBnd"] == caps["CapEff"] == caps["CapPrm"] == CAPS_DEFAULT
    assert caps["CapAmb"] == 0
    assert re.search(r"^Seccomp:\s+2$", status, re.M)
    assert re.search(r"^NoNewPrivs:\s+0$", status, re.M)
    status = sh(ctr, "cat /proc/self/status", "--security-opt", "no-new-privileges").stdout
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)


def test_cap_add_and_drop_and_privileged(ctr):
    status = sh(ctr, "cat /proc/self/status", "--cap-add", "NET_ADMIN", "--cap-drop",
                "chown").stdout
    eff = int(re.search(r"^CapEff:\s+([0-9a-f]+)$", status, re.M).group(1), 16)
    assert eff == (CAPS_DEFAULT | 1 << 12) & ~1
    status = sh(ctr, "cat /proc/self/status", "--privileged").stdout
    assert re.search(r"^Seccomp:\s+0$", status, re.M)
    assert int(re.search(r"^CapEff:\s+([0-9a-f]+)$", status, re.M).group(1), 16) >= 0x1fffffffff
    # every device, as Docker's --privileged: a loop device opens (an unused one reads empty;
    # ENXIO where the host has no loop driver), where the default rules refuse it
    loop = "mknod /tmp/loop b 7 0 && head -c1 /tmp/loop > /dev/null; echo done"
    res = sh(ctr, loop, "--privileged")
    assert res.stdout == "done\n" and "not permitted" not in res.stderr.lower(), res.stderr
    assert "not permitted" in sh(ctr, loop).stderr.lower()


@pytest.mark.parametrize("script,refusal", [
    ("mount -t tmpfs x /mnt", "permission denied"),
    ("mkdir -p /tmp/new && pivot_root /tmp /tmp/new", "not permitted"),
    ("insmod /bin/busybox", "not permitted"),
    ("umount /proc", "not permitted"),
    ("mknod /tmp/sda b 8 0 && head -c1 /tmp/sda", "not permitted"),
])
def test_escape_attempts_fail(ctr, script, refusal):
    """Each is refused by the confinement itself (seccomp, capabilities, device cgroup), not by
    some unrelated error: the message says so."""
    res = sh(ctr, script, check=False)
    assert res.returncode != 0
    assert refusal in res.stderr.lower(), res.stderr


def test_sysrq_trigger_is_not_writable(ctr):
    if not os.path.exists("/proc/sysrq-trigger"):
        pytest.skip("this kernel has no /proc/sysrq-trigger")
    res = sh(ctr, "echo h > /proc/sysrq-trigger", check=False)
    assert res.returncode != 0 and "read-only" in res.stderr.lower()


def test_no_host_pids_and_no_host_root(ctr):
    out = sh(ctr, "echo $$; ls /proc | grep -c '^[0-9]'").stdout.split()
    assert out[0] == "1" and int(out[1]) <= 3
    res = sh(ctr, "ls /proc/1/root/ | grep -c pyminidocker-host-marker", check=False)
    assert res.stdout.strip() in ("0", "")
    assert sh(ctr, "cat /proc/1/root/etc/hostname").stdout.strip() != os.uname().nodename


def test_masked_and_readonly_paths(ctr):
    assert sh(ctr, "cat /proc/kcore | wc -c").stdout.strip() == "0"
    assert sh(ctr, "ls /sys/firmware | wc -l").stdout.strip() == "0"
    res = sh(ctr, "echo 1 > /proc/sys/kernel/panic", check=False)
    assert res.returncode != 0
    res = sh(ctr, "touch /sys/kernel/x", check=False)
    assert res.returncode != 0


def test_dev_has_only_standard_devices(ctr):
    names = set(sh(ctr, "ls /dev").stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
            "mqueue"} <= names
    assert not names & {"sda", "vda", "kmsg", "mem", "port"}
    assert sh(ctr, "grep ' /dev/shm ' /proc/mounts").stdout.split()[3].count("size=65536k")


# a container sees its limits where its host's cgroup version puts them
PURE_V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def test_memory_and_pids_limits_visible_and_enforced(ctr):
    files = "memory.max pids.max" if PURE_V2 else "memory/memory.limit_in_bytes pids/pids.max"
    out = sh(ctr, "cd /sys/fs/cgroup && cat " + files,
             "--memory", "32m", "--pids-limit", "20").stdout
    assert out.split() == [str(32 * 1024 * 1024), "20"]
    # more memory than allowed: the kernel's OOM killer ends it (tail keeps the one endless
    # line of /dev/zero in memory)
    res = ctr("run", "--rm", "--memory", "16m", "bb", "tail", "/dev/zero", check=False)
    assert res.returncode == 137
    # a fork bomb stops at the pids limit and the container still exits
    res = sh(ctr, "for i in $(seq 40); do sleep 5 & done; wait", "--pids-limit", "10",
             check=False)
    assert "fork" in res.stderr.lower() or "resource" in res.stderr.lower()


def test_cpus_limit(ctr):
    files = "cpu.max" if PURE_V2 else "cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us"
    out = sh(ctr, "cd /sys/fs/cgroup && cat " + files, "--cpus", "0.5").stdout.split()
    assert out == ["50000", "100000"]


def test_create_start_ps_inspect_rm(ctr):
    cid = ctr("create", "--name", "lifecycle", "bb", "sh", "-c", "echo started; exit 3"
              ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    ps = [json.loads(x) for x in ctr("ps", "-a", "--format", "json").stdout.splitlines()]
    assert any(p["Names"] == "lifecycle" and p["State"] == "created" for p in ps)
    res = ctr("start", "-a", "lifecycle", check=False)
    assert res.returncode == 3 and res.stdout == "started\n"
    info = json.loads(ctr("inspect", "lifecycle").stdout)[0]
    assert info["Id"] == cid and info["State"]["Status"] == "exited"
    assert info["State"]["ExitCode"] == 3 and info["Name"] == "/lifecycle"
    assert info["Config"]["Cmd"] == ["sh", "-c", "echo started; exit 3"]
    res = ctr("create", "--name", "lifecycle", "bb", check=False)
    assert res.returncode == 1 and "already in use" in res.stderr  # create: 1, run: 125
    res = ctr("run", "--name", "lifecycle", "bb", check=False)
    assert res.returncode == 125 and "already in use" in res.stderr
    ctr("rename", "lifecycle", "renamed")
    assert "renamed" in ctr("ps", "-a").stdout
    ctr("rm", "renamed")
    assert ctr("ps", "-a", "-q").stdout == ""
    assert not any(cid in line for line in Path("/proc/self/mountinfo").read_text().splitlines())
    res = ctr("rm", "renamed", check=False)
    assert res.returncode == 1 and "No such container" in res.stderr


def test_rmi_refuses_an_image_in_use(ctr):
    info = json.loads(ctr("inspect", "--type", "image", "bb").stdout)[0]
    image_id = info["Id"]
    for name in info["RepoTags"]:
        if name != "bb:latest":
            ctr("rmi", name)  # other tags remain: only untagged
    cid = ctr("create", "bb", "true").stdout.strip()
    try:
        res = ctr("rmi", "bb", check=False)
        assert res.returncode == 1 and "used by a container" in res.stderr
        assert ctr("images", "-q").stdout.split() == [image_id[7:19]]
        # -f untags, but the data stays while a container needs it (Docker's dangling image)
        res = ctr("rmi", "-f", "bb")
        assert "Untagged: bb:latest" in res.stdout and "Deleted" not in res.stdout
        assert ctr("images", "-q").stdout.split() == [image_id[7:19]]
        assert ctr("start", "-a", cid).returncode == 0
    finally:
        ctr("rm", cid)
        ctr("tag", image_id, "bb")


def _running(ctr, name: str, *cmd: str):
    """Start `run --rm --name NAME bb CMD` attached in the background; wait until it runs."""
    import time

    proc = ctr.popen("run", "--rm", "--name", name, "bb", *cmd)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if name in ctr("ps", "--format", "json").stdout:
            return proc
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the container did not start")


def test_exec_joins_the_running_container(ctr):
    proc = _running(ctr, "execme", "sleep", "60")
    try:
        out = ctr("exec", "execme", "sh", "-c",
                  "echo $$; hostname; ps -o pid,comm | grep -c sleep; "
                  "grep CapEff /proc/self/status; grep Seccomp: /proc/self/status").stdout.split()
        assert out[0] != "1" and int(out[0]) < 100, "a pid of the container's namespace"
        info = json.loads(ctr("inspect", "execme").stdout)[0]
        assert out[1] == info["Config"]["Hostname"]
        assert out[2] == "1", "sees the container's init"
        assert int(out[4], 16) == CAPS_DEFAULT and out[6] == "2"
        out = ctr("exec", "-u", "1000", "-w", "/tmp", "-e", "X=y", "execme", "sh", "-c",
                  "id -u; pwd; echo $X").stdout.split()
        assert out == ["1000", "/tmp", "y"]
        assert ctr("exec", "execme", "sh", "-c", "exit 5", check=False).returncode == 5
        # Docker's quirk: exec of a missing command is 126 (run's is 127)
        assert ctr("exec", "execme", "nosuch", check=False).returncode == 126
    finally:
        ctr("kill", "execme")
        proc.communicate(timeout=30)
    assert proc.returncode == 137
    res = ctr("exec", "execme", "true", check=False)
    assert res.returncode != 0 and "No such container" in res.stderr


def test_stop_and_kill_an_attached_container(ctr):
    proc = _running(ctr, "stopme", "sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done")
    ctr("stop", "-t", "5", "stopme")
    proc.communicate(timeout=30)
    assert proc.returncode == 42
    proc = _running(ctr, "stubborn", "sleep", "60")
    ctr("stop", "-t", "1", "stubborn")  # pid 1 ignores SIGTERM: SIGKILL after 1 s
    proc.communicate(timeout=30)
    assert proc.returncode == 137


def test_run_it_gives_a_usable_shell_on_a_pty(ctr):
    """`run -it bb sh` driven through a real pty, as a terminal would: the container's stdin
    is a tty with our window size, what we type reaches the shell, its exit code comes back."""
    import fcntl
    import struct
    import subprocess
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = subprocess.Popen(ctr.argv("run", "-it", "--rm", "bb", "sh"), stdin=slave,
                            stdout=slave, stderr=slave, env=ctr.env(), cwd=ctr_cwd(),
                            start_new_session=True)
    os.close(slave)
    sent = False

    def type_at_the_prompt(out: bytes) -> None:
        nonlocal sent
        if not sent and b"# " in out:  # as a user would
            os.write(master, b"tty; stty size; echo typed-$((6*7)); exit 3\n")
            sent = True

    try:
        text = drain_pty(master, proc, type_at_the_prompt)
    finally:
        os.close(master)
    assert proc.returncode == 3, text
    assert "/dev/pts/0" in text and "33 101" in text and "typed-42" in text


def ctr_cwd() -> str:
    return str(Path(__file__).resolve().parent.parent.parent)


def _on_pty(ctr, *args: str, timeout: float = 30) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pty, as from a terminal; (exit code,
    what the terminal showed, without \r: a container's pty and ours each add one)."""
    import select
    import subprocess
    import time

    master, slave = os.openpty()
    proc = subprocess.Popen(ctr.argv(*args), stdin=slave, stdout=slave, stderr=slave,
                            env=ctr.env(), cwd=ctr_cwd(), start_new_session=True)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if not r:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the CLI has exited, and nothing else holds the pty
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=timeout)
    finally:
        os.close(master)
    return proc.returncode, out.decode(errors="replace").replace("\r", "")


def _log(ctr, name: str) -> list[dict]:
    """The records of the container's json-file log."""
    cid = json.loads(ctr("inspect", name).stdout)[0]["Id"]
    path = ctr.root / "containers" / cid / f"{cid}-json.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_attached_run_is_logged_as_a_detached_one_is(ctr):
    res = ctr("run", "--name", "logged", "bb", "sh", "-c", "echo out; echo err >&2; exit 3",
              check=False)
    try:
        assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
        recs = _log(ctr, "logged")
        assert [(r["log"], r["stream"]) for r in recs] == [("out\n", "stdout"),
                                                           ("err\n", "stderr")]
        assert set(recs[0]) == {"log", "stream", "time"}
        res = ctr("logs", "logged")
        assert (res.stdout, res.stderr) == ("out\n", "err\n")  # each on its own stream
        res = ctr("logs", "-t", "--tail", "1", "logged")
        assert res.stdout == "" and re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z err\n", res.stderr), res.stderr
        # started again, attached: appended to, as a detached container's log is
        assert ctr("start", "-a", "logged", check=False).stdout == "out\n"
        assert ctr("logs", "-f", "logged").stdout == "out\nout\n"  # exited: -f returns
    finally:
        ctr("rm", "logged")


def test_without_t_the_output_is_a_pipe_even_from_a_terminal(ctr):
    """As Docker's: without -t the container's stdout and stderr are pipes, whatever ours is."""
    rc, out = _on_pty(ctr, "run", "--rm", "bb", "sh", "-c",
                      "[ -t 1 ] && echo tty-1 || echo pipe-1; [ -t 2 ] && echo tty-2 >&2 || "
                      "echo pipe-2 >&2; ls -l /proc/self/fd/1 | grep -o 'pipe:'")
    assert rc == 0, out
    assert "pipe-1\n" in out and "pipe-2\n" in out and "pipe:\n" in out, out


def test_a_tty_run_is_logged_as_stdout(ctr):
    rc, out = _on_pty(ctr, "run", "-t", "--name", "ttylog", "bb", "sh", "-c",
                      "[ -t 1 ] && echo tty-out; echo tty-err >&2")
    try:
        assert rc == 0 and "tty-out\n" in out and "tty-err\n" in out, out
        res = ctr("logs", "ttylog")
        assert res.stdout.replace("\r", "") == "tty-out\ntty-err\n" and res.stderr == ""
        assert {r["stream"] for r in _log(ctr, "ttylog")} == {"stdout"}
    finally:
        ctr("rm", "ttylog")


def test_a_megabyte_of_output_arrives_whole_and_in_order(ctr):
    want = "".join(f"{i}\n" for i in range(1, 200001))  # 1.2 MiB
    res = ctr("run", "--name", "big", "bb", "sh", "-c", "seq 1 200000; echo end >&2")
    try:
        assert res.stdout == want and res.stderr == "end\n"
        recs = _log(ctr, "big")
        assert "".join(r["log"] for r in recs if r["stream"] == "stdout") == want
        assert [r["log"] for r in recs if r["stream"] == "stderr"] == ["end\n"]
        assert ctr("logs", "big").stdout == want
    finally:
        ctr("rm", "big")


def test_signals_reach_a_container_whose_output_nobody_reads(ctr):
    """Our stdout is full (nobody reads it), so the relay is blocked writing to it: a signal
    still interrupts it and is forwarded, and what the container wrote arrives once read."""
    import signal
    import time

    proc = _running(ctr, "flood", "sh", "-c",
                    "trap 'echo got-term >&2; exit 9' TERM; while :; do echo 0123456789; done")
    time.sleep(0.5)  # the pipes fill up: ours, the container's, and the relay's buffer
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 9 and "got-term" in err, err
    assert len(out) > 64 * 1024 and set(out.splitlines()[:-1]) == {"0123456789"}


def test_signals_reach_a_container_that_floods_its_output(ctr):
    """While output pours through the relay, it is mostly busy in its own code, not waiting in
    a system call a signal could interrupt: a ^C must still be forwarded (and soon)."""
    import signal
    import threading
    import time

    proc = _running(ctr, "chatty", "sh", "-c",
                    "trap 'exit 7' INT; while :; do echo 0123456789; done")
    got = []
    reader = threading.Thread(target=lambda: got.append(len(proc.stdout.read())))
    reader.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=20) == 7
    finally:
        if proc.poll() is None:
            ctr("kill", "chatty")
        reader.join(timeout=30)
        proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 5 and got and got[0] > 0


def test_exec_t_relays_its_pty_unlogged(ctr):
    proc = _running(ctr, "execpty", "sh", "-c", "echo init-out; exec sleep 60")
    try:
        rc, out = _on_pty(ctr, "exec", "-t", "execpty", "sh", "-c", "tty; echo exec-out")
        assert rc == 0 and "/dev/pts/" in out and "exec-out\n" in out, out
        assert [r["log"] for r in _log(ctr, "execpty")] == ["init-out\n"]  # Docker's rule
    finally:
        ctr("kill", "execpty")
        proc.communicate(timeout=30)


def test_network_default_none_and_host(ctr):
    links = sh(ctr, "ls /sys/class/net").stdout.split()
    assert links == ["eth0", "lo"], "the default: the bridge network"
    links = sh(ctr, "ls /sys/class/net", "--network", "none").stdout.split()
    assert links == ["lo"], "--network none: loopback only"
    out = sh(ctr, "cat /sys/class/net/lo/operstate", "--network", "none").stdout.strip()
    assert out in ("unknown", "up")
    host_links = sorted(os.listdir("/sys/class/net"))
    out = sh(ctr, "ls /sys/class/net", "--network", "host").stdout.split()
    assert sorted(out) == host_links, "--network host: the host's interfaces"


def test_network_host_sees_its_own_cgroup(ctr):
    # /sys is the host's there, bound without what is mounted below it: the container's own
    # cgroup filesystem goes at /sys/fs/cgroup on v1 and pure v2 alike (v2 refused it: EBUSY)
    before = set(os.listdir("/sys/class/net"))
    limit = sh(ctr, "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes "
               "2>/dev/null; ls /sys/class/net", "--network", "host", "--memory", "64m",
               check=False)
    after = set(os.listdir("/sys/class/net"))  # other tests' links come and go meanwhile
    assert limit.stdout.split()[0] == str(64 << 20), limit.stdout + limit.stderr
    assert before & after <= set(limit.stdout.split()[1:]) <= before | after


def test_entrypoint_and_cmd_combine_as_docker_does(ctr):
    assert ctr("run", "--rm", "--entrypoint", "echo", "bb", "a", "b").stdout == "a b\n"
    # --entrypoint without a command drops the image's Cmd (Docker's rule)
    assert ctr("run", "--rm", "--entrypoint", "pwd", "bb").stdout == "/\n"


def test_signals_to_an_attached_run_reach_the_container(ctr):
    import signal
    import time

    proc = _running(ctr, "sigproxy", "sh", "-c",
                    "trap 'echo got-term; exit 9' TERM; while :; do sleep 0.1; done")
    time.sleep(0.3)  # the trap is set once the shell runs its first line
    proc.send_signal(signal.SIGTERM)  # to the CLI, not the container
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 9 and "got-term" in out


def test_container_prune_removes_stopped_containers_only(ctr):
    stopped = ctr("create", "bb", "true").stdout.strip()
    ctr("start", "-a", stopped)
    proc = _running(ctr, "keepme", "sleep", "60")
    try:
        out = ctr("container", "prune", "-f").stdout
        assert stopped in out
        ids = ctr("ps", "-a", "-q", check=True).stdout.split()
        assert stopped[:12] not in ids and len(ids) == 1
    finally:
        ctr("kill", "keepme")
        proc.communicate(timeout=30)


def test_rm_containers_have_a_volatile_writable_layer(ctr):
    """--rm: the overlay's upper layer is never synced (it is deleted with the container); a
    container that is kept is synced as usual."""
    root = sh(ctr, "grep ' / ' /proc/mounts").stdout
    assert root.startswith("overlay / overlay ") and "volatile" in root
    cid = ctr("run", "-d", "bb", "sh", "-c", "grep ' / ' /proc/mounts").stdout.strip()
    try:
        assert ctr("wait", cid).stdout.strip() == "0"
        kept = ctr("logs", cid).stdout
        assert kept.startswith("overlay / overlay ") and "volatile" not in kept
    finally:
        ctr("rm", cid)


def test_rm_container_left_by_a_killed_cli_starts_again(ctr):
    """The CLI of a `run --rm` killed with -9 cannot remove its container; once stopped it can
    be started again, though its last (volatile) mount left a marker the kernel refuses."""
    import signal

    proc = _running(ctr, "orphan", "sh", "-c",
                    "if [ -e /ran ]; then exit 3; fi; touch /ran; sleep 60")
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        ctr("kill", "orphan")
        proc.communicate(timeout=30)  # the container held our end of its output pipes
        assert "Exited (137)" in ctr("ps", "-a").stdout
        # its writable layer is still there (/ran), and it is removed once it has run
        assert ctr("start", "-a", "orphan", check=False).returncode == 3
        assert ctr("ps", "-a", "-q").stdout == ""
    finally:
        ctr("rm", "-f", "orphan", check=False)


# Standard modules a container's start must not import: each costs milliseconds, through the
# enum/functools/collections chain or on its own (README, "The start path").
HEAVY_MODULES = {"argparse", "collections", "contextlib", "dataclasses", "enum", "functools",
                 "inspect", "ipaddress", "json", "pathlib", "re", "shutil", "signal", "socket",
                 "subprocess", "threading", "typing"}


@pytest.mark.parametrize("network", ["none", "bridge"])
def test_the_start_path_imports_nothing_heavy(ctr, network):
    import site
    import subprocess
    import sys

    ctr("run", "--rm", "--network", network, "bb", "true")  # the bridge exists from here on
    code = ("import sys; from pyminidocker.cli.main import main; code = main(sys.argv[1:]); "
            "print(' '.join(sorted(sys.modules))); sys.exit(code)")
    env = ctr.env()
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], *site.getsitepackages()])
    res = subprocess.run([sys.executable, "-S", "-c", code, "--root", str(ctr.root), "run",
                          "--rm", "--network", network, "bb", "true"], env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    loaded = set(res.stdout.split())
    assert "pyminidocker.container.runtime" in loaded  # it did start a container
    assert loaded & HEAVY_MODULES == set()
    if network == "none":  # nothing that only a network, a volume or another verb needs:
        assert not {"pyminidocker.network", "pyminidocker.container.mounts",
                    "pyminidocker.container.seccomp", "pyminidocker.cli.verbs",
                    "pyminidocker.container.plugging", "pyminidocker.cli.runflags"} & loaded
        # of the engine API, its core only (pyminidocker/engine/__init__.py)
        assert [m for m in loaded if m.startswith("pyminidocker.engine.")] == []
        # 38 beyond the interpreter's own start-up modules (each Python version has its own
        # set: 23 on 3.11), as at 9edd807, before the engine API and the run flags
        bare = subprocess.run([sys.executable, "-S", "-c",
                               "import sys; print(' '.join(sys.modules))"],
                              capture_output=True, text=True, check=True).stdout.split()
        assert len(loaded - set(bare)) <= 38, sorted(loaded - set(bare))


def test_mount_points_come_from_the_images_init_layer(ctr):
    """The mount points the image lacks (this busybox has no /proc, /sys, /dev, /etc/hosts...)
    are made once, in its init layer: a container's own layer gets none of them."""
    cid = ctr("create", "bb", "sh", "-c", "ls -d /proc /sys /dev /etc/hosts").stdout.strip()
    try:
        assert ctr("start", "-a", cid).returncode == 0  # the first container may make it
        cid2 = ctr("create", "bb", "true").stdout.strip()
        try:
            assert ctr("start", "-a", cid2).returncode == 0
            assert os.listdir(ctr.root / "containers" / cid2 / "upper") == []
        finally:
            ctr("rm", cid2)
        inits = list((ctr.root / "layers").glob("*/init"))
        assert len(inits) == 1
        assert {p.name for p in inits[0].iterdir()} == {"proc", "sys", "dev", "etc"}
    finally:
        ctr("rm", cid)
