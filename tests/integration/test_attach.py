"""`attach`, as root on real containers: a detached container's output as it comes, its stdin
when it was started with `run -d -i`, the detach keys, --no-stdin, --sig-proxy, and the
container's exit code as attach's.

One store per module with busybox as `bb`; the module ends with no container or cgroup left.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import module_ctr

ctr = module_ctr("attach")


def attach(ctr, *args: str) -> subprocess.Popen:
    """`attach ARGS` with pipes for stdin, stdout and stderr (binary)."""
    return subprocess.Popen(ctr.argv("attach", *args), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctr.env(),
                            cwd=REPO_ROOT, start_new_session=True)


def status(ctr, name: str) -> str:
    return ctr("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


@pytest.fixture
def cleanup(ctr):
    names: list[str] = []
    yield names
    for name in names:
        ctr("rm", "-f", name, check=False)


def settle() -> None:
    time.sleep(1.0)  # attach has started following the log (it shows only what comes next)


def test_stdin_of_run_d_i_and_the_exit_code(ctr, cleanup):
    cleanup.append("at1")
    ctr("run", "-d", "-i", "--name", "at1", "bb", "sh", "-c",
        "echo before; read a; echo got:$a; read b; echo got:$b >&2; exit 5")
    time.sleep(0.5)
    p = attach(ctr, "at1")
    settle()
    out, err = p.communicate(b"one\ntwo\n", timeout=30)
    assert p.returncode == 5, err
    assert out == b"got:one\n"  # what it wrote before the attach is in its logs, not here
    assert err == b"got:two\n"
    assert ctr("logs", "at1").stdout == "before\ngot:one\n"


def test_detach_keys_leave_it_running_and_stdin_stays_open(ctr, cleanup):
    cleanup.append("at2")
    ctr("run", "-d", "-i", "--name", "at2", "bb", "cat")
    p = attach(ctr, "at2")
    settle()
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(b"hello\n")
    p.stdin.flush()
    assert p.stdout.readline() == b"hello\n"
    p.stdin.write(b"\x10\x11")  # ctrl-p ctrl-q
    p.stdin.flush()
    _, err = p.communicate(timeout=15)
    assert p.returncode == 0 and b"read escape sequence" in err
    assert status(ctr, "at2") == "running"
    # again, with other keys; a key that only begins the sequence is passed on
    p = attach(ctr, "--detach-keys", "ctrl-a,x", "at2")
    settle()
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(b"a\x01b\n")
    p.stdin.flush()
    assert p.stdout.readline() == b"a\x01b\n"
    _, err = p.communicate(b"\x01x", timeout=15)
    assert p.returncode == 0, err
    assert status(ctr, "at2") == "running"
    assert ctr("logs", "at2").stdout == "hello\na\x01b\n"


def test_no_stdin_and_output_only_containers(ctr, cleanup):
    cleanup += ["at3", "at4"]
    ctr("run", "-d", "-i", "--name", "at3", "bb", "sh", "-c",
        "sleep 1.5; echo out; echo err >&2; exit 3")
    p = attach(ctr, "--no-stdin", "at3")
    out, err = p.communicate(b"ignored\n", timeout=30)
    assert (p.returncode, out, err) == (3, b"out\n", b"err\n")
    # without -i there is no stdin to join: output only
    ctr("run", "-d", "--name", "at4", "bb", "sh", "-c", "sleep 1.5; echo done; exit 4")
    p = attach(ctr, "at4")
    out, err = p.communicate(b"ignored\n", timeout=30)
    assert (p.returncode, out) == (4, b"done\n"), err


def test_the_exit_code_of_a_container_removed_at_its_exit(ctr):
    ctr("run", "-d", "--rm", "--name", "at9", "bb", "sh", "-c", "sleep 1.5; echo bye; exit 4")
    p = attach(ctr, "at9")
    out, err = p.communicate(timeout=30)
    assert (p.returncode, out) == (4, b"bye\n"), err
    deadline = time.monotonic() + 10
    while "at9" in ctr("ps", "-a", "--format", "{{.Names}}").stdout:
        assert time.monotonic() < deadline, "run -d --rm left its container"
        time.sleep(0.1)


def test_sig_proxy(ctr, cleanup):
    cleanup += ["at5", "at6"]
    script = "trap 'echo caught; exit 9' TERM; while :; do sleep 0.1; done"
    ctr("run", "-d", "--name", "at5", "bb", "sh", "-c", script)
    p = attach(ctr, "at5")
    settle()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert (p.returncode, out) == (9, b"caught\n"), err
    # --sig-proxy=false: the signal ends attach, not the container
    ctr("run", "-d", "--name", "at6", "bb", "sh", "-c", script)
    p = attach(ctr, "--sig-proxy=false", "at6")
    settle()
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    assert p.returncode == 130
    assert status(ctr, "at6") == "running"


def test_bad_input(ctr, cleanup):
    cleanup.append("at7")
    ctr("create", "--name", "at7", "bb", "true")
    for args, code, message in (
            (["at7"], 1, "You cannot attach to a stopped container, start it first"),
            (["no-such"], 1, "No such container: no-such"),
            (["--detach-keys", "ctrl-pp", "at7"], 125, "Invalid detach keys (ctrl-pp)")):
        res = ctr("attach", *args, check=False)
        assert res.returncode == code and message in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_stdin_fifo_goes_with_the_container(ctr):
    cid = ctr("run", "-d", "-i", "bb", "cat").stdout.strip()
    fifo = ctr.root / "containers" / cid / "stdin"
    assert fifo.is_fifo() and oct(fifo.stat().st_mode & 0o777) == "0o600"
    ctr("rm", "-f", cid)
    assert not fifo.exists()
    assert os.path.isdir(ctr.root / "containers")


def attach_on_pty(ctr, name: str, last: bytes) -> tuple[str, int]:
    """`attach name` on a terminal: once it runs, type an echo, then `last` once the echo's
    output is back; (what the terminal showed, attach's exit code)."""
    import pty

    from tests.integration.conftest import drain_pty

    master, slave = pty.openpty()
    typed: list[int] = []
    started = time.monotonic()

    def type_(out: bytes) -> None:
        if not typed and time.monotonic() - started > 1.0:
            os.write(master, b"echo hi-$((6*7))\r")
            typed.append(1)
        elif len(typed) == 1 and b"hi-42" in out:
            os.write(master, last)
            typed.append(2)

    try:
        p = subprocess.Popen(ctr.argv("attach", name), stdin=slave, stdout=slave, stderr=slave,
                             env=ctr.env(), cwd=REPO_ROOT, start_new_session=True)
        os.close(slave)
        out = drain_pty(master, p, type_)
    finally:
        os.close(master)
    return out, p.returncode


def test_a_tty_containers_console_takes_what_attach_types(ctr, cleanup):
    """run -dit: the monitor passes what attach reads from our terminal (raw) to the
    container's console, whose output (the echo too, as a terminal's) comes back through
    its log; ctrl-p ctrl-q detach; a pipe is no terminal (Docker's error)."""
    cleanup.append("at8")
    ctr("run", "-dit", "--name", "at8", "bb", "sh")
    res = ctr("attach", "at8", check=False, input="exit 1\n")
    assert (res.returncode, res.stderr) == (1, "Error: the input device is not a TTY\n")
    out, code = attach_on_pty(ctr, "at8", b"\x10\x11")
    assert "hi-42" in out and code == 0, out
    assert status(ctr, "at8") == "running"
    out, code = attach_on_pty(ctr, "at8", b"exit 3\r")
    assert "hi-42" in out and code == 3, out
    assert status(ctr, "at8") == "exited"
