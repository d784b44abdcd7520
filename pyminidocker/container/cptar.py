"""Items to and from tar streams through libarchive: cp's and the API's /containers/{id}/archive
side of a copy (container/archive.py walks and extracts the items; see there for the policy)."""
from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from pyminidocker.errors import UsageError

CHUNK = 1 << 20


@dataclass
class Item:
    """One file of a copy: its name relative to the copy's destination ("top/sub/file")."""

    name: str
    mode: int              # st_mode: type and permissions
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    linkname: str = ""     # a symlink's target, or (hardlink) the name of the item it links to
    hardlink: bool = False
    data: Callable[[], Iterable[bytes]] | None = None  # a regular file's content, read once
    rdev: int = 0


class Readable(Protocol):
    def readinto(self, buf: Any) -> int: ...


def _link_setter() -> Callable[[Any, str, str], None]:
    """archive_entry_set_{symlink,hardlink}_utf8: libarchive-c's linkpath setter goes through
    archive_entry_update_link_utf8, which in libarchive 3.6 (Debian 12) stores the target
    without marking it set, so the tar gets an empty link."""
    import ctypes

    from libarchive.ffi import libarchive as lib

    funcs = {}
    for kind in ("symlink", "hardlink"):
        fn = getattr(lib, f"archive_entry_set_{kind}_utf8")
        fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_char_p], None
        funcs[kind] = fn

    def set_link(entry_p: Any, kind: str, target: str) -> None:
        funcs[kind](entry_p, os.fsencode(target))

    return set_link


def write_tar(items: Iterable[Item], write: Callable[[bytes], Any]) -> None:
    """Items as a POSIX (pax) tar, in chunks to write(bytes). What write raises (the reader
    went away) ends the tar and is raised again here."""
    import libarchive
    from libarchive.entry import ArchiveEntry
    from libarchive.exception import ArchiveError
    from libarchive.ffi import write_data, write_finish_entry, write_header

    failed: list[BaseException] = []

    def sink(data: Any) -> int:
        # an exception cannot cross libarchive's C frames (ctypes would print and drop it):
        # kept, and -1 makes libarchive fail the write
        try:
            write(bytes(data))
        except BaseException as e:
            failed.append(e)
            return -1
        return len(data)

    set_link = _link_setter()
    try:
        with libarchive.custom_writer(sink, "pax_restricted", block_size=CHUNK) as w:
            p = w._pointer
            for it in items:
                entry = _entry(ArchiveEntry, set_link, it)  # held: its __del__ frees the C entry
                write_header(p, entry._entry_p)
                if it.data is not None and not it.hardlink:
                    for chunk in it.data():
                        write_data(p, chunk, len(chunk))
                write_finish_entry(p)
    except ArchiveError:
        if failed:
            raise failed[0] from None
        raise


def _entry(make: Any, set_link: Callable[[Any, str, str], None], it: Item) -> Any:
    kind = stat.S_IFMT(it.mode)
    attrs: dict[str, Any] = {"uid": it.uid, "gid": it.gid, "mtime": it.mtime,
                             "perm": stat.S_IMODE(it.mode)}
    if it.hardlink:
        entry = make(pathname=it.name, filetype=stat.S_IFREG, size=0, **attrs)
        set_link(entry._entry_p, "hardlink", it.linkname)
        return entry
    entry = make(pathname=it.name, filetype=kind, size=it.size, **attrs)
    if kind == stat.S_IFLNK:
        set_link(entry._entry_p, "symlink", it.linkname)
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        entry.rdev = it.rdev
    return entry


class _Guarded:
    """stream.readinto for libarchive's read callback: an exception (a client gone, a body
    too slow) is kept for read_tar to raise, and libarchive sees a read error."""

    def __init__(self, stream: Readable):
        self.stream = stream
        self.failed: BaseException | None = None

    def readinto(self, buf: Any) -> int:
        try:
            return self.stream.readinto(buf)
        except BaseException as e:
            self.failed = e
            return -1

    def seekable(self) -> bool:
        return False


def read_tar(stream: Readable) -> Iterator[Item]:
    """The items of a tar (plain or compressed, as Docker's PUT accepts) read from stream;
    each item's data must be consumed before the next is asked for. Raises UsageError for a
    stream that is not a (whole) archive, or what reading the stream raised."""
    import libarchive
    from libarchive.exception import ArchiveError

    guarded = _Guarded(stream)

    def failure(e: ArchiveError) -> BaseException:
        if guarded.failed is not None:
            return guarded.failed
        return UsageError(f"invalid tar archive: {getattr(e, 'msg', e)}")

    def blocks(entry: Any) -> Callable[[], Iterator[bytes]]:
        def read() -> Iterator[bytes]:
            try:
                yield from entry.get_blocks(CHUNK)
            except ArchiveError as e:
                raise failure(e) from None
        return read

    try:
        # big reads: libarchive's default (a page) costs a Python call per 4 KiB
        with libarchive.stream_reader(guarded, format_name="tar", block_size=CHUNK) as archive:
            for entry in archive:
                mode = entry.mode
                if entry.islnk:  # a hard link: no type of its own in the entry
                    mode = stat.S_IFREG | stat.S_IMODE(mode)
                yield Item(entry.pathname, mode, entry.uid, entry.gid, int(entry.mtime or 0),
                           entry.size or 0, entry.linkpath or "", bool(entry.islnk),
                           blocks(entry) if entry.isreg and not entry.islnk else None)
    except ArchiveError as e:
        raise failure(e) from None
