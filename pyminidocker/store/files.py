"""The store's file primitives: reading JSON records, names, times, locks, removal.

Records are written whole by pyminidocker.record's atomic_write and write_json, below the
store so that the OCI runtime writes its state.json with them without importing the store.
"""
from __future__ import annotations

import fcntl
import os
import time

from pyminidocker import record
from pyminidocker.errors import StoreError

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from typing import Any


# Docker's rule for the names of containers and networks, [a-zA-Z0-9][a-zA-Z0-9_.-]*, as
# sets: re is not imported on the start path (with enum, it costs milliseconds).
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _ALNUM | frozenset("_.-")


def valid_name(name: str) -> bool:
    return bool(name) and name[0] in _ALNUM and _NAME_CHARS.issuperset(name)


def now_iso() -> str:
    """The time now as the records keep it: RFC 3339, UTC, nanoseconds (Go's format)."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def iso_ns(stamp: str) -> int | None:
    """Nanoseconds since the epoch of "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (the store's times),
    None if it is not that. By hand: datetime and strptime cost milliseconds of imports,
    and a container's exit is recorded on the start path of an attached `run`."""
    try:
        date, clock = stamp.rstrip("Z").split("T")
        y, mo, d = (int(x) for x in date.split("-"))
        hms, _, frac = clock.partition(".")
        h, mi, s = (int(x) for x in hms.split(":"))
        nanos = int((frac + "000000000")[:9])
    except ValueError:
        return None
    # days from the civil date (Howard Hinnant's algorithm: March-based years)
    y -= mo <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return ((days * 86400 + h * 3600 + mi * 60 + s) * 1_000_000_000) + nanos


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_json(path: str) -> Any:
    """Read a JSON metadata file. Raises FileNotFoundError, or StoreError if corrupt."""
    try:
        return record.loads(read_bytes(path))
    except ValueError as e:
        raise StoreError(f"corrupt metadata file {path}: {e}") from None


def remove_tree(path: str) -> None:
    """rm -rf, never following a symlink out of the tree, ignoring errors (shutil.rmtree with
    ignore_errors, which is not used because importing shutil costs milliseconds on every
    `run --rm`: it imports fnmatch, re, bz2 and lzma)."""
    try:
        for _, dirs, files, dfd in os.fwalk(path, topdown=False):
            for name in files:
                _quietly(os.unlink, name, dfd)
            for name in dirs:  # symlinks to directories are listed here, and not entered
                try:
                    os.rmdir(name, dir_fd=dfd)
                except NotADirectoryError:
                    _quietly(os.unlink, name, dfd)
                except OSError:
                    pass
        os.rmdir(path)
    except OSError:
        pass


def tree_size(path: str) -> int:
    """Bytes of the files under path, as du counts them (st_blocks; links not followed)."""
    total = 0
    for _top, _dirs, files, dfd in os.fwalk(path):
        for f in files:
            try:
                total += os.stat(f, dir_fd=dfd, follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total


def _quietly(op: Any, name: str, dir_fd: int) -> None:
    try:
        op(name, dir_fd=dir_fd)
    except OSError:
        pass


class FileLock:
    """An fcntl (flock) lock on a file; exclusive unless shared=True. Usable across threads of
    one process only through separate FileLock objects (each opens its own file description)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = -1

    def acquire(self, shared: bool = False, blocking: bool = True) -> bool:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(self.fd, flags)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = -1
            return False
        return True

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = -1

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

