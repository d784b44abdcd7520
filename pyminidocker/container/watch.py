"""The stand-in for a killed monitor: it keeps the container's exit code.

A detached container's monitor is its parent: it waits for it and writes the exit record. A
monitor killed with -9 takes that with it: the orphan is adopted by init (or a subreaper),
which reaps it and drops its status. So once an engine command finds a running container
whose monitor is gone (Runtime.refresh), it starts this watcher, which attaches to the
container's init with ptrace (PTRACE_SEIZE, PTRACE_O_TRACEEXIT: a tracer is told a tracee's
exit status even when it is not its parent) and writes the exit record, durably, as the
monitor would have.

What cannot be kept (documented in README): the exit code of a container that ends before any
command ran after its monitor was killed (nobody is attached then; it shows as 137, killed);
its output after the kill (the only reader of its pipes was the monitor: a write there
gets SIGPIPE, and that is then the exit status recorded); its OOM flag (read by the monitor
from the cgroup). A watcher killed in turn is replaced by the next command, as the monitor.

Usage (started by the engine, detached): python -m pyminidocker.container.watch DIR PID START
"""
from __future__ import annotations

import ctypes
import os
import sys
import time

from pyminidocker import proc, record
from pyminidocker.record import write_json

PTRACE_CONT = 7
PTRACE_GETEVENTMSG = 0x4201
PTRACE_SEIZE = 0x4206
PTRACE_LISTEN = 0x4208
PTRACE_O_TRACEEXIT = 0x40
PTRACE_EVENT_EXIT = 6
PTRACE_EVENT_STOP = 128
WALL = 0x40000000


def _code(status: int) -> int:
    """Docker's exit code of a wait status: the exit status, or 128 + the signal."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return 137


def watch(d: str, pid: int, start: str) -> int | None:
    """Attach to pid (if it is still the process that started at start) and return its exit
    code once it exits; None if it could not be attached or vanished unseen."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    if not proc.alive(pid, start):
        return None
    if libc.ptrace(PTRACE_SEIZE, pid, None, ctypes.c_void_p(PTRACE_O_TRACEEXIT)) != 0:
        return None
    msg = ctypes.c_ulong(0)
    while True:
        try:
            _, status = os.waitpid(pid, WALL)
        except ChildProcessError:
            return None
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            return _code(status)
        if not os.WIFSTOPPED(status):
            continue
        event, sig = status >> 16, os.WSTOPSIG(status)
        if event == PTRACE_EVENT_EXIT:
            libc.ptrace(PTRACE_GETEVENTMSG, pid, None, ctypes.byref(msg))
            libc.ptrace(PTRACE_CONT, pid, None, None)
            return _code(int(msg.value))
        if event == PTRACE_EVENT_STOP:
            libc.ptrace(PTRACE_LISTEN, pid, None, None)  # a group stop: stay stopped
        else:  # a signal on its way to the container: deliver it
            libc.ptrace(PTRACE_CONT, pid, None, ctypes.c_void_p(sig))


def main(argv: list[str]) -> int:
    d, pid, start = argv[0], int(argv[1]), argv[2]
    code = watch(d, pid, start)
    if code is None:
        return 1
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if os.path.isdir(d) and not os.path.exists(os.path.join(d, "exit")):
        exit_record = {"exit_code": code, "finished_at": now, "oom_killed": False}
        if not _fill_slot(os.path.join(d, "exit"), record.dumps(exit_record).encode() + b"\n"):
            write_json(os.path.join(d, "exit"), exit_record)
    return 0


def _fill_slot(path: str, data: bytes) -> bool:
    """Write the exit record into the room the monitor took for it (<exit>.slot, see
    reserve_exit in csrc/monitor_main.c), in place, so that a full disk cannot refuse it;
    False where there is no such room."""
    try:
        fd = os.open(path + ".slot", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        size = os.fstat(fd).st_size
        if len(data) > size:
            return False
        os.pwrite(fd, data.ljust(size), 0)  # padded with spaces: JSON's whitespace
        os.fsync(fd)
        os.rename(path + ".slot", path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
