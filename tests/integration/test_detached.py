"""Detached containers and their C monitor (pmd-monitor), from the CLI, as root.

One store per module with the busybox image `bb`, as in test_containers. Each test removes its
containers; the module checks at the end that no container, mount, cgroup, monitor or file is
left. The monitor's memory is measured and bounded here: what a lone monitor holds for itself
(its private pages, freed when it leaves) and what each of ten costs (PSS: its private pages
and its share of the pages they and everything else share). A lone monitor's PSS depends on
how many other processes map its libc (on a fresh root, few), so it is printed, not bounded.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pyminidocker import native as n
from pyminidocker.native import monitor
from tests.integration.conftest import cgroups_left, remove_leftovers, store_with_bb

MONITOR = monitor.MONITOR_PATH
PSS_LIMIT_KIB = 400
PRIVATE_LIMIT_KIB = 300
CREATED: set[str] = set()  # ids of the containers this module made


def _monitors() -> list[int]:
    """Live pmd-monitor processes (a zombie has no exe link: it does not count)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if os.readlink(p / "exe") == MONITOR:
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def _mounted(under: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(under))]


def _alive(pid: int) -> bool:
    """Running (not a zombie: an orphan may never be reaped here if pid 1 does not reap)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:].split()[0] not in (b"Z", b"X")


def _smaps_kib(pid: int, *keys: str) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return sum(int(line.split()[1]) for line in f if line.split(":")[0] in keys)


def _pss_kib(pid: int) -> int:
    return _smaps_kib(pid, "Pss")


@pytest.fixture(scope="module")
def dk(request, tmp_path_factory, publish, pmd_factory):
    """A runner bound to a module store holding the busybox image as `bb`."""
    run = store_with_bb("detached-busybox", request, tmp_path_factory, publish, pmd_factory)
    monitors_before = set(_monitors())
    yield run
    assert remove_leftovers(run) == [], "containers left behind by the tests"
    # Only our containers' cgroups: other stores on this machine may have theirs.
    assert [c for c in cgroups_left() if c.rsplit("/", 1)[1] in CREATED] == [], \
        "cgroups left behind"
    assert _mounted(run.root) == [], "mounts left behind"
    assert set(_monitors()) <= monitors_before, "monitors left behind"


@pytest.fixture(autouse=True)
def no_containers_left(request):
    yield
    if "dk" in request.fixturenames:
        dk = request.getfixturevalue("dk")
        assert dk("ps", "-a", "-q").stdout == "", "the test left a container behind"


def state(dk, cid: str) -> dict:
    return json.loads((dk.root / "containers" / cid / "state.json").read_text())


def run_d(dk, *args: str) -> str:
    res = dk("run", "-d", *args)
    cid = res.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), res.stdout
    CREATED.add(cid)
    return cid


def wait_for_log(dk, cid: str, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in dk("logs", cid).stdout:
            return
        time.sleep(0.05)
    pytest.fail(f"{text!r} never appeared in the logs of {cid[:12]}")


def assert_gone(dk, cid: str, pids: list[int]) -> None:
    """After rm: no directory, mount, cgroup or process of the container is left."""
    assert not (dk.root / "containers" / cid).exists()
    assert _mounted(dk.root / "containers" / cid) == []
    assert [p for p in Path("/sys/fs/cgroup").glob(f"*/pyminidocker/{cid}")] == []
    assert [p for p in pids if _alive(p)] == []


# ---- the lifecycle ---------------------------------------------------------------------------

def test_run_detached_logs_wait_and_exit_code(dk):
    t0 = time.monotonic()
    cid = run_d(dk, "bb", "sh", "-c", "echo out; echo err >&2; sleep 1; exit 3")
    assert time.monotonic() - t0 < 1.0, "run -d must return at once"
    assert cid[:12] in dk("ps", "-q").stdout.split()
    st = state(dk, cid)
    assert st["status"] == "running" and st["pid"] > 0 and st["monitor_pid"] > 0
    assert dk("wait", cid).stdout == "3\n"
    assert cid[:12] not in dk("ps", "-q").stdout.split()
    line = next(ln for ln in dk("ps", "-a").stdout.splitlines() if ln.startswith(cid[:12]))
    assert "Exited (3)" in line
    assert json.loads(dk("inspect", cid).stdout)[0]["State"]["ExitCode"] == 3

    res = dk("logs", cid)
    assert res.stdout == "out\n" and res.stderr == "err\n"
    res = dk("logs", "-t", cid)
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
    assert re.fullmatch(ts + r" out\n", res.stdout), res.stdout
    assert re.fullmatch(ts + r" err\n", res.stderr), res.stderr
    res = dk("logs", "--tail", "1", cid)
    assert res.stdout == "" and res.stderr == "err\n"
    assert dk("logs", "--tail", "0", cid).stdout == ""

    log = dk.root / "containers" / cid / f"{cid}-json.log"
    recs = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert [(r["log"], r["stream"]) for r in recs] == [("out\n", "stdout"), ("err\n", "stderr")]
    assert set(recs[0]) == {"log", "stream", "time"}
    dk("rm", cid)
    assert_gone(dk, cid, [st["pid"], st["monitor_pid"]])


def test_log_lines_are_json_escaped_split_and_flushed(dk):
    script = ("printf 'tab\\there \"q\" back\\\\slash \\001 caf\\303\\251 bad\\377\\n'; "
              "head -c 20000 /dev/zero | tr '\\0' x; echo; printf 'no newline'")
    cid = run_d(dk, "bb", "sh", "-c", script)
    dk("wait", cid)
    log = dk.root / "containers" / cid / f"{cid}-json.log"
    recs = [json.loads(ln) for ln in log.read_text(encoding="utf-8").splitlines()]
    logs = [r["log"] for r in recs]
    assert logs[0] == 'tab\there "q" back\\slash \x01 café bad\ufffd\n'
    assert logs[1] == "x" * 16384  # a line is logged in 16 KiB pieces
    assert logs[2] == "x" * (20000 - 16384) + "\n"
    assert logs[3] == "no newline"  # the partial line at EOF
    dk("rm", cid)


def test_logs_follow_returns_when_the_container_ends(dk):
    cid = run_d(dk, "bb", "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done; exit 5")
    t0 = time.monotonic()
    res = dk("logs", "-f", cid, timeout=20)
    assert res.stdout == "1\n2\n3\n"
    assert time.monotonic() - t0 < 10
    assert state(dk, cid)["status"] == "exited" and state(dk, cid)["exit_code"] == 5
    dk("rm", cid)


def test_stop_kills_a_pid1_that_ignores_sigterm(dk):
    cid = run_d(dk, "bb", "sleep", "100")
    pids = [state(dk, cid)["pid"], state(dk, cid)["monitor_pid"]]
    t0 = time.monotonic()
    dk("stop", "-t", "1", cid)
    took = time.monotonic() - t0
    assert took < 6, f"stop took {took:.1f}s"
    assert dk("wait", cid).stdout.strip() in ("137", "143")
    assert "Exited (137)" in dk("ps", "-a").stdout
    dk("rm", cid)
    assert_gone(dk, cid, pids)


def test_kill_term_reaches_a_trapping_shell(dk):
    cid = run_d(dk, "bb", "sh", "-c",
                'trap "echo got TERM; exit 42" TERM; echo ready; '
                "while true; do sleep 0.1; done")
    wait_for_log(dk, cid, "ready")
    dk("kill", "-s", "TERM", cid)
    assert dk("wait", cid).stdout == "42\n"
    assert "got TERM" in dk("logs", cid).stdout
    dk("rm", cid)


def test_sigterm_to_the_monitor_is_forwarded(dk):
    cid = run_d(dk, "bb", "sh", "-c",
                'trap "echo bye; exit 7" TERM; echo ready; while true; do sleep 0.1; done')
    wait_for_log(dk, cid, "ready")
    os.kill(state(dk, cid)["monitor_pid"], signal.SIGTERM)
    assert dk("wait", cid).stdout == "7\n"  # the monitor lived to record it
    dk("rm", cid)


def test_start_again_appends_to_the_log(dk):
    cid = run_d(dk, "bb", "sh", "-c", "echo run; exit 1")
    assert dk("wait", cid).stdout == "1\n"
    assert dk("start", cid).stdout.strip() == cid
    assert dk("wait", cid).stdout == "1\n"
    assert dk("logs", cid).stdout == "run\nrun\n"
    dk("rm", cid)


def test_attached_start_after_a_detached_run_ignores_the_old_exit_record(dk):
    cid = run_d(dk, "bb", "sh", "-c", "[ -f /ran ] && exit 4; touch /ran; exit 1")
    assert dk("wait", cid).stdout == "1\n"
    res = dk("start", "-a", cid, check=False)
    assert res.returncode == 4
    assert not (dk.root / "containers" / cid / "exit").exists()
    st = state(dk, cid)
    assert (st["status"], st["exit_code"], st["monitor_pid"]) == ("exited", 4, 0)
    assert "Exited (4)" in dk("ps", "-a").stdout
    dk("rm", cid)


def test_run_detached_rm_removes_the_container_when_it_exits(dk):
    cid = run_d(dk, "--rm", "bb", "sh", "-c", "echo bye; exit 2")
    deadline = time.monotonic() + 20
    while (dk.root / "containers" / cid).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (dk.root / "containers" / cid).exists(), "run -d --rm left the container"
    assert cid[:12] not in dk("ps", "-a", "-q").stdout.split()
    assert_gone(dk, cid, [])


def test_tty_output_is_logged_as_stdout(dk):
    cid = run_d(dk, "-t", "bb", "sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo tty; echo hi >&2")
    assert dk("wait", cid).stdout == "0\n"
    res = dk("logs", cid)
    assert res.stdout.replace("\r", "") == "tty\nhi\n" and res.stderr == ""
    dk("rm", cid)


# ---- the monitor -----------------------------------------------------------------------------

def test_monitor_is_a_small_separate_process(dk):
    cid = run_d(dk, "bb", "sleep", "100")
    st = state(dk, cid)
    mpid = st["monitor_pid"]
    try:
        assert os.readlink(f"/proc/{mpid}/exe") == MONITOR  # not python
        with open(f"/proc/{st['pid']}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == mpid  # the container's parent
        with open(f"/proc/{mpid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        assert int(fields[1]) != os.getpid()  # reparented: not the CLI's, not ours
        assert int(fields[3]) == mpid  # session leader (setsid)
        # stdio on /dev/null, the exit record's slot, the log, two pipes, the signalfd: nothing
        # inherited from the CLI
        assert len(os.listdir(f"/proc/{mpid}/fd")) == 8
        assert os.readlink(f"/proc/{mpid}/fd/0") == "/dev/null"
        private = _smaps_kib(mpid, "Private_Clean", "Private_Dirty")
        dirty = _smaps_kib(mpid, "Private_Dirty")
        print(f"\npmd-monitor alone: private {private} KiB (dirty {dirty} KiB), "
              f"PSS {_pss_kib(mpid)} KiB")
        assert private <= PRIVATE_LIMIT_KIB, f"monitor private {private} KiB > {PRIVATE_LIMIT_KIB}"
    finally:
        dk("rm", "-f", cid)
    assert_gone(dk, cid, [st["pid"], mpid])


def test_killed_monitor_leaves_a_running_orphan_that_rm_cleans(dk):
    cid = run_d(dk, "bb", "sleep", "100")
    st = state(dk, cid)
    os.kill(st["monitor_pid"], signal.SIGKILL)
    time.sleep(0.1)
    # Still running: found alive by pid and start time, whoever its parent is now.
    assert cid[:12] in dk("ps", "-q").stdout.split()
    assert _alive(st["pid"])
    dk("rm", "-f", cid)
    assert_gone(dk, cid, [st["pid"], st["monitor_pid"]])


def test_container_gone_without_exit_record_is_shown_exited(dk):
    cid = run_d(dk, "bb", "sleep", "100")
    st = state(dk, cid)
    os.kill(st["monitor_pid"], signal.SIGKILL)
    os.kill(st["pid"], signal.SIGKILL)
    time.sleep(0.1)
    assert cid[:12] not in dk("ps", "-q").stdout.split()
    assert "Exited (137)" in dk("ps", "-a").stdout
    assert state(dk, cid)["status"] == "exited"
    assert _mounted(dk.root / "containers" / cid) == []  # the next command tore down
    dk("rm", cid)
    assert_gone(dk, cid, [st["pid"]])


def test_command_not_found_detached_is_127(dk):
    before = set(_monitors())
    res = dk("run", "-d", "--name", "nf", "bb", "nosuchcmd", check=False)
    assert res.returncode == 127
    assert "nosuchcmd" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr
    assert set(_monitors()) <= before
    assert dk("ps", "-q").stdout == ""
    cid = json.loads(dk("inspect", "nf").stdout)[0]["Id"]
    CREATED.add(cid)
    assert _mounted(dk.root / "containers" / cid) == []
    dk("rm", "nf")


def test_rm_force_of_a_running_container_leaves_nothing(dk):
    cid = run_d(dk, "--memory", "64m", "bb", "sh", "-c", "echo x; sleep 100")
    st = state(dk, cid)
    assert _mounted(dk.root / "containers" / cid) != []
    assert list(Path("/sys/fs/cgroup").glob(f"*/pyminidocker/{cid}")) != []
    dk("rm", "-f", cid)
    assert_gone(dk, cid, [st["pid"], st["monitor_pid"]])


def test_concurrent_detached_containers(dk):
    """Ten `run -d` at once: each gets its own monitor, exit code and log; rm leaves nothing."""
    procs = [dk.popen("run", "-d", "bb", "sh", "-c", f"echo n{i}; sleep 1; exit {i}")
             for i in range(10)]
    cids = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        cids.append(out.strip())
    CREATED.update(cids)
    states = [state(dk, c) for c in cids]
    monitors = {s["monitor_pid"] for s in states}
    assert len(monitors) == 10
    pss = [_pss_kib(m) for m in monitors if _alive(m)]
    print(f"\npmd-monitor PSS with 10 running: {sorted(pss)} KiB")
    assert all(p <= PSS_LIMIT_KIB for p in pss)
    for i, cid in enumerate(cids):
        assert dk("wait", cid).stdout == f"{i}\n"
        assert dk("logs", cid).stdout == f"n{i}\n"
    dk("rm", *cids)
    for cid, st in zip(cids, states):
        assert_gone(dk, cid, [st["pid"], st["monitor_pid"]])


# ---- the serialized spec (C) -----------------------------------------------------------------

def _blob(tmp_path: Path) -> bytes:
    spec = n.SpawnSpec(argv=["sh", "-c", "echo hi"], env=["PATH=/bin"], rootfs="/nonexistent",
                       namespaces=n.CLONE_NEWNS, hostname=None, groups=[1, 2],
                       rlimits={7: (1024, 2048)},
                       mounts=[n.Mount("/proc", "proc", "proc", 0, mkdir=True)],
                       masked_paths=["/proc/kcore"], cgroup_procs=["/x/cgroup.procs"])
    fd = os.memfd_create("spec")
    try:
        monitor.spec_write(fd, spec, "/tmp/log", "/tmp/exit", ["/m"], ["/d1", "/d2"],
                     exit_argv=["/bin/true", "x"], exit_env=["A=1"])
        return os.pread(fd, 1 << 20, 0)
    finally:
        os.close(fd)


def _check(blob: bytes) -> subprocess.CompletedProcess:
    fd = os.memfd_create("spec")
    try:
        os.write(fd, blob)
        return subprocess.run([MONITOR, "--check", str(fd)], pass_fds=[fd],
                              capture_output=True, text=True, errors="replace", timeout=10,
                              check=False)
    finally:
        os.close(fd)


def test_serialized_spec_round_trips(tmp_path):
    res = _check(_blob(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ("ok: argv[0]=sh mounts=1 log=/tmp/log exit=/tmp/exit "
                          "exit_argv[0]=/bin/true\n")


def test_corrupt_spec_is_rejected_with_a_clear_error(tmp_path):
    blob = _blob(tmp_path)
    for cut in (0, 10, 100, len(blob) // 2, len(blob) - 1):
        res = _check(blob[:cut])
        assert res.returncode == 1, (cut, res)
        assert "corrupt spec: truncated" in res.stderr, res.stderr
    res = _check(b"\x00" * len(blob))
    assert res.returncode == 1 and "bad magic" in res.stderr
    for at in range(24, len(blob), 7):  # a flipped byte anywhere after the header
        bad = bytearray(blob)
        bad[at] ^= 0x5A
        res = _check(bytes(bad))
        assert res.returncode == 1 and "checksum mismatch" in res.stderr, (at, res)
    bad = bytearray(blob)
    bad[4] = 99  # version
    res = _check(bytes(bad))
    assert res.returncode == 1 and "different builds" in res.stderr


def _fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def test_corrupt_spec_with_a_valid_checksum_never_crashes_the_reader(tmp_path):
    """The bounds checks stand on their own: damage the body, fix the checksum, and the reader
    must accept or reject (exit 0 or 1), never die of a signal."""
    import random

    blob = _blob(tmp_path)
    rng = random.Random(1234)
    outcomes = {0: 0, 1: 0}
    for _ in range(300):
        bad = bytearray(blob)
        for _ in range(rng.choice((1, 2, 4))):
            at = rng.randrange(24, len(bad))
            bad[at] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        bad[16:24] = _fnv1a(bytes(bad[24:])).to_bytes(8, "little")
        res = _check(bytes(bad))
        assert res.returncode in (0, 1), (res.returncode, res.stderr)
        if res.returncode == 1:
            assert res.stderr.startswith("pmd-monitor: rejected: read spec: "), res.stderr
        outcomes[res.returncode] += 1
    assert outcomes[1] > 0


def test_monitor_reports_a_corrupt_spec_on_its_status_pipe():
    """Run mode: the error reaches pmd_monitor_start's pipe and stderr; nothing is forked."""
    fd = os.memfd_create("spec")
    rd, wr = os.pipe()
    try:
        os.write(fd, b"PMDS" + b"\xff" * 100)
        res = subprocess.run([MONITOR, str(fd), str(wr)], pass_fds=[fd, wr],
                             capture_output=True, text=True, timeout=10, check=False)
        os.close(wr)
        wr = -1
        msg = os.read(rd, 4096)
    finally:
        os.close(fd)
        os.close(rd)
        if wr >= 0:
            os.close(wr)
    assert res.returncode == 1
    assert res.stderr.startswith("pmd-monitor: cannot start the container: read spec: ")
    assert "corrupt spec" in res.stderr
    kind, pid, _mpid, err = int.from_bytes(msg[:4], "little"), int.from_bytes(
        msg[4:8], "little"), msg[8:12], int.from_bytes(msg[12:16], "little")
    assert (kind, pid, err) == (2, 0, 22)  # PMD_MON_ERROR, EINVAL


def test_spec_write_to_a_bad_fd_is_ebadf():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as ei:
        monitor.spec_write(w, n.SpawnSpec(argv=["true"]))
    assert ei.value.errno == 9 and ei.value.op == "write spec"  # EBADF


def test_pmd_monitor_start_refuses_stdio_fds_with_einval(tmp_path):
    """C level: the monitor provides stdio, so a spec that brings its own is EINVAL."""
    keep: list = []
    s = n._c_spec(n.SpawnSpec(argv=["true"], stdout=1), keep)
    m = monitor._c_monitor_spec(keep, tmp_path / "log", tmp_path / "exit", None, None, None, None)
    info = n.ffi.new("struct pmd_monitor_info *")
    err = n.ffi.new("struct pmd_error *")
    assert n.lib.pmd_monitor_start(monitor.MONITOR_PATH.encode(), s, m, info, err) == -1
    assert err.err == 22 and n.ffi.string(err.op) == b"monitor start"  # EINVAL
    assert info.pid == -1 and not (tmp_path / "log").exists()


def test_monitor_start_errors_are_oserrors(tmp_path):
    spec = n.SpawnSpec(argv=["true"])
    with pytest.raises(FileNotFoundError) as ei:
        monitor.monitor_start(spec, tmp_path / "log", tmp_path / "exit",
                        monitor_path=tmp_path / "no-monitor")
    assert ei.value.op == "spawn monitor"
    with pytest.raises(ValueError):
        monitor.monitor_start(n.SpawnSpec(argv=["true"], stdout=1), tmp_path / "log",
                        tmp_path / "exit")
    with pytest.raises(FileNotFoundError) as ei:
        monitor.monitor_start(n.SpawnSpec(argv=["no-such-command-x"], setsid=True),
                        tmp_path / "log", tmp_path / "exit")
    assert ei.value.op == "exec" and ei.value.filename == "no-such-command-x"
    assert not (tmp_path / "exit").exists()


def test_monitor_start_from_python_without_the_cli(tmp_path):
    """The library path: a host process (no namespaces) under the monitor."""
    (tmp_path / "cleanme").mkdir()
    info = monitor.monitor_start(n.SpawnSpec(argv=["sh", "-c", "echo hello; exit 4"], setsid=True,
                                       env=["PATH=/usr/bin:/bin"]),
                           tmp_path / "log", tmp_path / "exit",
                           cleanup_dirs=[tmp_path / "cleanme"],
                           exit_argv=["/bin/sh", "-c", 'cat "$D/exit" > "$D/hook"'],
                           exit_env=[f"D={tmp_path}"])
    assert info.pid > 0 and info.monitor_pid > 0
    deadline = time.monotonic() + 10
    while not (tmp_path / "exit").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    rec = json.loads((tmp_path / "exit").read_text())
    assert rec["exit_code"] == 4 and rec["oom_killed"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", rec["finished_at"])
    assert json.loads((tmp_path / "log").read_text())["log"] == "hello\n"
    assert not (tmp_path / "exit.tmp").exists()
    assert not (tmp_path / "cleanme").exists()  # cleanup_dirs removed before the record
    while not (tmp_path / "hook").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    # the exit hook ran after the record was complete
    assert json.loads((tmp_path / "hook").read_text())["exit_code"] == 4
