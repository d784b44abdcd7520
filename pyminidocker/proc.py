"""A process named by its pid and its start time, so that a recycled pid is never mistaken
for the process it once was."""
from __future__ import annotations

import os


def start_time(pid: int) -> str:
    """The process's start time (field 22 of /proc/pid/stat): with the pid, it names a
    process uniquely, so a recycled pid is not mistaken for the container. "" for a process
    that is gone, or a zombie: it has exited, only nobody has reaped it (an orphan whose
    init does not reap, or a monitor between the container's exit and its wait)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return ""
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return ""
    return fields[19].decode()


def alive(pid: int, start: str) -> bool:
    return pid > 0 and bool(start) and start_time(pid) == start


def token(pid: int | None = None) -> str:
    """"<pid>:<start time>" of pid (this process by default): a process's name for records
    that outlive it."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{start_time(pid)}"


def token_alive(tok: str) -> bool:
    pid, _, start = tok.partition(":")
    return pid.isdigit() and alive(int(pid), start)


_BOOT_ID: list[str] = []


def boot_id() -> str:
    """The kernel's id of this boot: pids and start times name processes only within it, so
    a record written under another boot names none that runs now."""
    if not _BOOT_ID:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _BOOT_ID.append(f.read().strip())
        except OSError:
            _BOOT_ID.append("")
    return _BOOT_ID[0]
