"""Tar streams written through libarchive: a tree (a layer in overlay form, or a container's
merged filesystem) as a tar, sorted, with numeric owners and whole-second times, so that the
same tree gives the same bytes (image/archive.py's save, commit and export use it)."""
from __future__ import annotations

import ctypes
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import libarchive
from libarchive import ffi as _arc
from libarchive.entry import ArchiveEntry

from pyminidocker.errors import suppress

# libarchive-c sets a link's target only as a hard link (archive_entry_update_link_utf8 picks
# the symlink field only once one was set): the two setters of libarchive itself are declared.
_arc.ffi("entry_copy_symlink", [_arc.c_archive_entry_p, ctypes.c_char_p], None)
_arc.ffi("entry_copy_hardlink", [_arc.c_archive_entry_p, ctypes.c_char_p], None)
_arc.ffi("entry_xattr_add_entry",
         [_arc.c_archive_entry_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t], None)

CHUNK = 1 << 20
REG, DIR, LNK = 0o100000, 0o040000, 0o120000

Sink = Callable[[bytes], object]

class TarWriter:
    """A tar stream (POSIX pax, ustar headers unless a name needs more) written to `sink`;
    `digest` is the sha256 of what was written so far (hashed only if `hashed`: an image
    archive's own digest is of no use, and hashing it costs as much as its layers'). Use in a
    `with`."""

    def __init__(self, sink: Sink, hashed: bool = True):
        self._sink = sink
        self._hash = hashlib.sha256() if hashed else None
        self.size = 0
        self._cm: Any = None
        self._p: Any = None

    def _write(self, data: Any) -> int:
        chunk = bytes(data)
        if self._hash is not None:
            self._hash.update(chunk)
        self._sink(chunk)
        self.size += len(chunk)
        return len(chunk)

    def __enter__(self) -> TarWriter:
        # 1 MiB blocks: libarchive calls back once per block, and each call crosses ctypes
        self._cm = libarchive.custom_writer(self._write, "pax_restricted", block_size=1 << 20)
        self._p = self._cm.__enter__()._pointer
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)

    @property
    def digest(self) -> str:
        assert self._hash is not None, "a TarWriter made with hashed=False"
        return "sha256:" + self._hash.hexdigest()

    def add(self, name: str, kind: int, mode: int, *, uid: int = 0, gid: int = 0,
            mtime: int = 0, size: int = 0, link: str | None = None, hardlink: bool = False,
            rdev: int = 0, data: Iterable[bytes] = (),
            xattrs: Iterable[tuple[str, bytes]] = ()) -> None:
        """One entry; data is read up to `size` bytes (a file that shrank meanwhile is padded
        with zeros by libarchive); xattrs go in pax records (SCHILY.xattr.NAME)."""
        e = ArchiveEntry(pathname=name, filetype=kind, perm=mode & 0o7777, uid=uid, gid=gid,
                         mtime=mtime, size=size if kind == REG and not hardlink else 0)
        if rdev:
            e.rdevmajor, e.rdevminor = os.major(rdev), os.minor(rdev)
        if link is not None:
            setter = _arc.entry_copy_hardlink if hardlink else _arc.entry_copy_symlink
            setter(e._entry_p, os.fsencode(link))
        for name, value in xattrs:
            _arc.entry_xattr_add_entry(e._entry_p, name.encode(), value, len(value))
        _arc.write_header(self._p, e._entry_p)
        left = size
        for chunk in data:
            if left <= 0:
                break
            chunk = chunk[:left]
            _arc.write_data(self._p, chunk, len(chunk))
            left -= len(chunk)
        _arc.write_finish_entry(self._p)

    def add_bytes(self, name: str, content: bytes, mtime: int = 0) -> None:
        self.add(name, REG, 0o644, mtime=mtime, size=len(content), data=(content,))

    def add_file(self, name: str, path: str, mtime: int = 0) -> None:
        self.add(name, REG, 0o644, mtime=mtime, size=os.path.getsize(path),
                 data=_read_chunks(path))


def _read_chunks(path: str, dir_fd: int | None = None) -> Iterator[bytes]:
    # O_NONBLOCK: should the name have become a fifo since it was looked at, never block on it
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                 dir_fd=dir_fd)
    try:
        while chunk := os.read(fd, CHUNK):
            yield chunk
    finally:
        os.close(fd)


def _xattrs(path: str) -> list[tuple[str, bytes]]:
    """A file's extended attributes (file capabilities, ACLs, user.*), sorted; overlayfs's
    own (opaque, redirect, origin...) are its bookkeeping, not the file's."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []  # a filesystem without xattrs
    out = []
    for name in sorted(names):
        if name.startswith(("trusted.overlay.", "user.overlay.")):
            continue
        with suppress(OSError):
            out.append((name, os.getxattr(path, name, follow_symlinks=False)))
    return out


def _is_opaque(path: str) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        with suppress(OSError):
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
    return False


def write_tree(tar: TarWriter, root: str, *, layer: bool,
               skip: frozenset[str] | set[str] = frozenset()) -> None:
    """Every file under root into tar, sorted by name so that the same tree gives the same
    bytes. layer: root is an overlay layer (a container's upper dir, a layer's diff): its
    whiteouts (0:0 character devices) become `.wh.NAME` files and its opaque directories get
    a `.wh..wh..opq`, as image layers say them (OCI image-spec layer.md). skip: "/path"s to
    leave out (the mount points the engine makes). Sockets are left out, as tar has no type
    for them. Raises OSError."""
    seen: dict[tuple[int, int], str] = {}

    def walk(dirpath: str, rel: str) -> None:
        for name in sorted(os.listdir(dirpath)):
            r = rel + name
            if "/" + r in skip:
                continue
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            mode, kind = st.st_mode, stat.S_IFMT(st.st_mode)
            uid, gid, mtime = st.st_uid, st.st_gid, int(st.st_mtime)
            xattrs = _xattrs(p) if kind != stat.S_IFCHR or st.st_rdev else []
            if layer and kind == stat.S_IFCHR and st.st_rdev == 0:
                tar.add(f"{rel}.wh.{name}", REG, 0o644, mtime=mtime)
            elif kind == stat.S_IFDIR:
                tar.add(r + "/", DIR, mode, uid=uid, gid=gid, mtime=mtime, xattrs=xattrs)
                if layer and _is_opaque(p):
                    tar.add(f"{r}/.wh..wh..opq", REG, 0o644, mtime=mtime)
                walk(p, r + "/")
            elif kind == stat.S_IFREG:
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    tar.add(r, REG, mode, link=seen[key], hardlink=True, uid=uid, gid=gid,
                            mtime=mtime)
                    continue
                seen[key] = r
                tar.add(r, REG, mode, size=st.st_size, data=_read_chunks(p), uid=uid, gid=gid,
                        mtime=mtime, xattrs=xattrs)
            elif kind == stat.S_IFLNK:
                tar.add(r, LNK, mode, link=os.readlink(p), uid=uid, gid=gid, mtime=mtime)
            elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
                tar.add(r, kind, mode, rdev=st.st_rdev, uid=uid, gid=gid, mtime=mtime)

    walk(root, "")


def _to_file(path: str) -> tuple[Sink, Callable[[], None]]:
    f = open(path, "xb")  # closed by the returned function
    return f.write, f.close


def tar_layer(root: str, dest: str, skip: frozenset[str] | set[str] = frozenset()) -> str:
    """Write the layer at root (overlay form) as a layer tar to the new file dest; returns its
    digest (the layer's diff-id). Raises OSError."""
    write, close = _to_file(dest)
    try:
        with TarWriter(write) as tar:
            write_tree(tar, root, layer=True, skip=skip)
        return tar.digest
    finally:
        close()


def export_tree(root: str, sink: Sink) -> None:
    """A container's whole filesystem (mounted, merged, at root) as a tar to sink. Raises
    OSError."""
    with TarWriter(sink, hashed=False) as tar:
        write_tree(tar, root, layer=False)
