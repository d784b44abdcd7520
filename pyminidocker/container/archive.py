"""Copying files in and out of a container's root: `cp` and the API's /containers/{id}/archive.

Everything here works on file descriptors under a `Root`, a directory taken as "/": paths are
resolved one component at a time with openat(O_NOFOLLOW), a symlink's target is resolved again
from that root (an absolute target restarts at the root, ".." stops there), as securejoin and
openat2(RESOLVE_IN_ROOT) do. So a symlink inside the container (or inside an uploaded tar)
never takes a copy out of it, in either direction, and a link swapped in during the copy makes
the open fail rather than be followed.

A copy is a stream of `Item`s: `walk` makes them from a tree, `read_tar` from a tar stream;
`extract` writes them under a root, `write_tar` into a tar (libarchive; the tar side is
container/cptar.py). `cp` between a container and the host joins walk to extract directly; the
API joins them through tars.

The extraction policy is the layer extractor's (csrc/extract.c), applied to an existing tree
rather than an empty directory: entry names with ".." that leave the destination are refused,
absolute names are taken under it, links (symbolic and hard) are resolved within the root,
device nodes are refused (a container gets its devices from the engine, not from a copy).
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyminidocker.container.cptar import CHUNK, Item
from pyminidocker.container.cptar import (  # engine.py's cp and archive use them from here
    read_tar as read_tar,
)
from pyminidocker.container.cptar import write_tar as write_tar
from pyminidocker.errors import NotFound, PmdError, UsageError

_PATH = os.O_PATH | os.O_CLOEXEC
_DIR = _PATH | os.O_DIRECTORY | os.O_NOFOLLOW
_MAX_LINKS = 40  # as the kernel's path walk (ELOOP)


class Refused(PmdError, PermissionError):
    """A tar entry (or a copy) that would leave the destination, or that is not allowed in it."""


class ReadOnly(PmdError, PermissionError):
    """The destination is on a read-only filesystem (the API answers 403)."""


class ExtractError(PmdError, ValueError):
    """An entry that cannot be written where it names (a missing or non-directory parent)."""


class NotADir(UsageError):
    """The destination or a source that must be a directory is not one. Printed bare, as the
    docker CLI prints moby's archive errors ("cannot copy directory")."""

    exit_code = 1
    bare = True


@dataclass
class Stat:
    """What Docker's X-Docker-Container-Path-Stat header says of a path."""

    name: str
    size: int
    mode: int              # st_mode
    mtime: float
    link_target: str = ""  # for a symlink: the path it resolves to inside the root

    def docker(self) -> dict[str, Any]:
        """The header's JSON object: Go's os.FileMode bits, an RFC 3339 mtime."""
        import datetime

        t = datetime.datetime.fromtimestamp(self.mtime, datetime.UTC)
        return {"name": self.name, "size": self.size, "mode": go_file_mode(self.mode),
                "mtime": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z"),
                "linkTarget": self.link_target}


def go_file_mode(mode: int) -> int:
    """st_mode as Go's os.FileMode, which the docker CLI decodes (IsDir, symlink bit)."""
    bits = mode & 0o777
    kind = stat.S_IFMT(mode)
    bits |= {stat.S_IFDIR: 1 << 31, stat.S_IFLNK: 1 << 27, stat.S_IFBLK: 1 << 26,
             stat.S_IFCHR: (1 << 26) | (1 << 21), stat.S_IFIFO: 1 << 25,
             stat.S_IFSOCK: 1 << 24}.get(kind, 0)
    if mode & stat.S_ISUID:
        bits |= 1 << 23
    if mode & stat.S_ISGID:
        bits |= 1 << 22
    if mode & stat.S_ISVTX:
        bits |= 1 << 20
    return bits


@dataclass
class Found:
    """A resolved path: `name` in the directory `parent` (an O_PATH fd the caller closes),
    `st` its lstat (None: it does not exist), `inside` its clean path within the root."""

    parent: int
    name: str
    st: os.stat_result | None
    inside: str

    def close(self) -> None:
        os.close(self.parent)


class Root:
    """A directory taken as "/" for every path resolved through it."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, _PATH | os.O_DIRECTORY)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def resolve(self, path: str, follow: bool = False) -> Found:
        """path resolved within the root: every symlink on the way is followed as if the root
        were "/", the last one too with follow. The parent must exist (FileNotFoundError, or
        NotADirectoryError when a component is not a directory); the last component need not.
        """
        parts = [p for p in path.split("/") if p not in ("", ".")]
        stack: list[tuple[int, str]] = [(self.fd, "")]
        links = 0
        try:
            while parts:
                part = parts.pop(0)
                if part == "..":
                    if len(stack) > 1:
                        os.close(stack.pop()[0])
                    continue
                cur = stack[-1][0]
                try:
                    st = os.stat(part, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    if parts:
                        raise
                    return self._found(stack, part, None)
                if stat.S_ISLNK(st.st_mode) and (parts or follow):
                    links += 1
                    if links > _MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    target = os.readlink(part, dir_fd=cur)
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop()[0])
                    parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                    continue
                if not parts:
                    return self._found(stack, part, st)
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                # O_NOFOLLOW: a directory swapped for a symlink since the stat fails (ELOOP)
                stack.append((os.open(part, _DIR, dir_fd=cur), part))
            # the path names a directory already open (the root, "a/..")
            return self._found(stack, ".", os.stat(stack[-1][0]))
        finally:
            for fd, _ in stack[1:]:
                os.close(fd)

    def _found(self, stack: list[tuple[int, str]], name: str,
               st: os.stat_result | None) -> Found:
        names = [n for _, n in stack[1:]] + ([name] if name != "." else [])
        return Found(os.dup(stack[-1][0]), name, st, "/" + "/".join(names))


# ---- reading a tree ------------------------------------------------------------------------

def stat_path(root: Root, path: str) -> Stat:
    """The stat Docker reports of path (the last component not followed). Raises NotFound,
    NotADirectoryError."""
    found = _existing(root, path)
    try:
        assert found.st is not None
        st = found.st
        target = ""
        if stat.S_ISLNK(st.st_mode):
            target = _link_target(root, found.inside)
        return Stat(_base(path), st.st_size, st.st_mode, st.st_mtime, target)
    finally:
        found.close()


def _link_target(root: Root, inside: str) -> str:
    try:
        f = root.resolve(inside, follow=True)
    except OSError:
        return ""
    f.close()
    return f.inside


def _existing(root: Root, path: str, follow: bool = False) -> Found:
    try:
        found = root.resolve(path, follow)
    except FileNotFoundError:
        raise NotFound(f"no such file or directory: {path}") from None
    if found.st is None:
        found.close()
        raise NotFound(f"no such file or directory: {path}")
    if path.endswith("/") and not stat.S_ISDIR(found.st.st_mode):
        found.close()
        raise NotADir("not a directory")
    return found


def _base(path: str) -> str:
    """Docker's name of what path names: its last element, "." for "dir/.", "/" for "/"."""
    trimmed = path.rstrip("/")
    if not trimmed:
        return "/"
    return trimmed.rsplit("/", 1)[-1]


def walk(root: Root, path: str, top: str, follow: bool = False) -> Iterator[Item]:
    """The items of the tree at path (a symlink at its end followed with `follow`, the
    symlinks inside it never), named top, top/child...; top "." gives "./child" (the
    contents). Raises NotFound, NotADirectoryError (before the first item)."""
    found = _existing(root, path, follow)
    try:
        assert found.st is not None
        st = found.st
        seen: dict[tuple[int, int], str] = {}
        yield from _items(found.parent, found.name, st, top, seen)
    finally:
        found.close()


def _items(dir_fd: int, name: str, st: os.stat_result, arcname: str,
           seen: dict[tuple[int, int], str]) -> Iterator[Item]:
    mode = st.st_mode
    item = Item(arcname, mode, st.st_uid, st.st_gid, int(st.st_mtime))
    if stat.S_ISDIR(mode):
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dir_fd)
        try:
            yield item
            for child in sorted(os.listdir(fd)):
                try:
                    cst = os.stat(child, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed meanwhile
                yield from _items(fd, child, cst, f"{arcname}/{child}", seen)
        finally:
            os.close(fd)
        return
    if stat.S_ISSOCK(mode):
        return  # a tar cannot hold one (Docker skips them too)
    if stat.S_ISLNK(mode):
        item.linkname = os.readlink(name, dir_fd=dir_fd)
    elif stat.S_ISREG(mode):
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                item.hardlink, item.linkname = True, seen[key]
                yield item
                return
            seen[key] = arcname
        item.size = st.st_size
        item.data = lambda: _content(dir_fd, name, st.st_size)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        item.rdev = st.st_rdev
    yield item


def _content(dir_fd: int, name: str, size: int) -> Iterator[bytes]:
    """size bytes of a regular file, padded with zeros if it shrank meanwhile (a tar entry's
    size is written first)."""
    # O_NONBLOCK: should a fifo have been swapped in, the open must not hang
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(f"{name} changed while it was copied")
        left = size
        while left > 0:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
        while left > 0:
            pad = min(CHUNK, left)
            left -= pad
            yield bytes(pad)
    finally:
        os.close(fd)


# ---- writing a tree ------------------------------------------------------------------------

@dataclass
class Owner:
    """Whose files an extraction makes: the items' own ids (keep), or uid:gid."""

    keep: bool = True
    uid: int = 0
    gid: int = 0


@dataclass
class _Extraction:
    root: Root
    into: str                       # the destination directory, resolved, within the root
    owner: Owner
    no_overwrite_dir_nondir: bool
    dirs: list[tuple[str, int]] = field(default_factory=list)
    # the directory the last file went into, (its path as the tar names it, an O_PATH fd):
    # a tar's files come directory by directory, each resolved once rather than per file
    last_dir: tuple[str, int] | None = None

    def forget_dir(self) -> None:
        if self.last_dir is not None:
            os.close(self.last_dir[1])
            self.last_dir = None


def extract(root: Root, into: str, items: Iterable[Item], owner: Owner | None = None,
            no_overwrite_dir_nondir: bool = False) -> int:
    """Write items under the existing directory `into` (resolved within root); returns how
    many were written. Raises NotFound (into), NotADir, Refused (a hostile entry, a device
    node, a directory replaced by a file with no_overwrite_dir_nondir), ReadOnly, OSError."""
    found = _existing(root, into, follow=True)
    try:
        assert found.st is not None
        if not stat.S_ISDIR(found.st.st_mode):
            raise NotADir("extraction point is not a directory")
        job = _Extraction(root, found.inside, owner or Owner(), no_overwrite_dir_nondir)
    finally:
        found.close()
    n = 0
    try:
        for item in items:
            _write(job, item)
            n += 1
        job.forget_dir()
        # a directory's times last: writing its children changed them
        for inside, mtime in reversed(job.dirs):
            f = root.resolve(inside)
            try:
                os.utime(f.name, (mtime, mtime), dir_fd=f.parent, follow_symlinks=False)
            finally:
                f.close()
    except OSError as e:
        if e.errno == errno.EROFS:
            raise ReadOnly("container rootfs is marked read-only") from None
        raise
    finally:
        job.forget_dir()
    return n


def _clean(name: str) -> list[str] | None:
    """An entry's path below the destination as components ([] for the destination itself),
    or None when its ".." climb out of it."""
    out: list[str] = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not out:
                return None
            out.pop()
        else:
            out.append(p)
    return out


def _write(job: _Extraction, item: Item) -> None:
    parts = _clean(item.name)
    if parts is None:
        raise Refused(f"refusing to extract {item.name!r}: it is outside of the destination")
    kind = stat.S_IFMT(item.mode)
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        raise Refused(f"refusing to extract {item.name!r}: device nodes are not copied")
    inside = job.into.rstrip("/") + "/" + "/".join(parts)
    if not parts:  # the destination itself (a "./" entry): only its metadata
        if kind == stat.S_IFDIR:
            f = job.root.resolve(job.into, follow=True)
            try:
                _meta(job, f.parent, f.name, item)
            finally:
                f.close()
            job.dirs.append((f.inside, item.mtime))
        return
    parent = inside.rsplit("/", 1)[0]
    plain = kind == stat.S_IFREG and not item.hardlink
    if not plain:  # it may replace a directory, or make a link, on the way to later entries
        job.forget_dir()
    try:
        if job.last_dir is not None and job.last_dir[0] == parent:
            name = parts[-1]
            try:
                st: os.stat_result | None = os.stat(name, dir_fd=job.last_dir[1],
                                                    follow_symlinks=False)
            except FileNotFoundError:
                st = None
            f = Found(os.dup(job.last_dir[1]), name, st, "")
        else:
            try:
                f = job.root.resolve(inside)
            except FileNotFoundError:  # a tar need not hold its directories: made, as Docker
                _parents(job, parts)
                f = job.root.resolve(inside)
            if plain and f.name != ".":
                job.forget_dir()
                job.last_dir = (parent, os.dup(f.parent))
    except OSError as e:
        raise ExtractError(f"cannot extract {item.name!r}: {e.strerror}") from None
    try:
        _replace(job, f, item)
        if kind == stat.S_IFDIR:
            job.dirs.append((f.inside, item.mtime))
    except OSError as e:
        if e.errno == errno.EROFS or isinstance(e, PmdError):
            raise
        raise ExtractError(f"cannot extract {item.name!r}: {e.strerror}") from None
    finally:
        f.close()


def _parents(job: _Extraction, parts: list[str]) -> None:
    base = job.into.rstrip("/")
    for i in range(1, len(parts)):
        f = job.root.resolve(base + "/" + "/".join(parts[:i]))
        try:
            if f.st is None:
                os.mkdir(f.name, 0o755, dir_fd=f.parent)
                uid, gid = (job.owner.uid, job.owner.gid) if not job.owner.keep else (0, 0)
                os.chown(f.name, uid, gid, dir_fd=f.parent, follow_symlinks=False)
        finally:
            f.close()


def _replace(job: _Extraction, f: Found, item: Item) -> None:
    kind = stat.S_IFMT(item.mode)
    dfd, name, old = f.parent, f.name, f.st
    if name == ".":
        raise Refused(f"refusing to extract {item.name!r}: it names the root")
    if old is not None:
        old_dir = stat.S_ISDIR(old.st_mode)
        if kind == stat.S_IFDIR and old_dir:
            _meta(job, dfd, name, item)
            return
        if job.no_overwrite_dir_nondir and old_dir != (kind == stat.S_IFDIR):
            if old_dir:
                raise Refused(f"cannot overwrite directory {f.inside!r} with non-directory "
                              f"{item.name!r}")
            raise Refused(f"cannot overwrite non-directory {f.inside!r} with directory "
                          f"{item.name!r}")
        if old_dir:
            from pyminidocker.store.files import remove_tree

            remove_tree(f"/proc/self/fd/{dfd}/{name}")  # our fd: the very directory resolved
        else:
            os.unlink(name, dir_fd=dfd)
    if kind == stat.S_IFDIR:
        os.mkdir(name, 0o700, dir_fd=dfd)
    elif kind == stat.S_IFREG and not item.hardlink:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            for chunk in (item.data() if item.data else ()):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            uid, gid = _owner(job, item)
            os.fchown(fd, uid, gid)
            os.fchmod(fd, stat.S_IMODE(item.mode))  # after chown, which clears set-id bits
            os.utime(fd, (item.mtime, item.mtime))
        finally:
            os.close(fd)
        return
    elif item.hardlink:
        _hardlink(job, f, item)
        return  # the link shares its target's metadata
    elif kind == stat.S_IFLNK:
        os.symlink(item.linkname, name, dir_fd=dfd)
    elif kind == stat.S_IFIFO:
        os.mkfifo(name, 0o600, dir_fd=dfd)
    else:
        raise Refused(f"refusing to extract {item.name!r}: unsupported file type")
    _meta(job, dfd, name, item)


def _hardlink(job: _Extraction, f: Found, item: Item) -> None:
    parts = _clean(item.linkname)
    if not parts:
        raise Refused(f"refusing to extract {item.name!r}: its link target "
                      f"{item.linkname!r} is outside of the destination")
    # the target is an earlier entry, named from the same destination; resolved in the root,
    # its last component not followed (a hard link to a symlink links the symlink)
    t = job.root.resolve(job.into.rstrip("/") + "/" + "/".join(parts))
    try:
        if t.st is None:
            raise Refused(f"refusing to extract {item.name!r}: its link target "
                          f"{item.linkname!r} does not exist")
        if stat.S_ISDIR(t.st.st_mode):
            raise Refused(f"refusing to extract {item.name!r}: a hard link to a directory")
        os.link(t.name, f.name, src_dir_fd=t.parent, dst_dir_fd=f.parent,
                follow_symlinks=False)
    finally:
        t.close()


def _owner(job: _Extraction, item: Item) -> tuple[int, int]:
    return (item.uid, item.gid) if job.owner.keep else (job.owner.uid, job.owner.gid)


def _meta(job: _Extraction, dfd: int, name: str, item: Item) -> None:
    """Owner, then permissions (chown clears set-id bits), then times, never through a link."""
    uid, gid = _owner(job, item)
    os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
    if not stat.S_ISLNK(item.mode):
        # no lchmod on Linux: the entry was just made by us, or is a directory we checked
        fd = os.open(name, _PATH | os.O_NOFOLLOW, dir_fd=dfd)
        try:
            os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(item.mode))
        finally:
            os.close(fd)
    os.utime(name, (item.mtime, item.mtime), dir_fd=dfd, follow_symlinks=False)


# ---- a container's root, and cp's plans ----------------------------------------------------

@contextmanager
def container_root(runtime: Any, rec: Any) -> Iterator[Root]:
    """The container's filesystem as it sees it: a running one's through /proc/PID/root (its
    own mounts, volumes included), a stopped one's overlay mounted for the time of the copy
    (its volumes are not: their mount points show the image's content)."""
    from pyminidocker import native as _native

    rec = runtime.refresh(rec)
    if rec.state.status == "running" and rec.state.pid:
        with Root(f"/proc/{rec.state.pid}/root") as root:
            yield root
        return
    d = runtime.containers.path(rec.id)
    rootfs = os.path.join(d, "rootfs")
    runtime._mount_root(rec, d)
    try:
        with Root(rootfs) as root:
            yield root
    finally:
        _native.umount(rootfs, _native.MNT_DETACH)


@dataclass
class Plan:
    """Where a copy goes: the items of the source, named from `top`, extracted into the
    directory `into` of the destination."""

    into: str
    top: str


def plan(src: str, src_st: os.stat_result, dst: str, dst_found: Found) -> Plan:
    """Docker's cp semantics (moby's pkg/archive PrepareArchiveCopy): a source directory
    ending in "/." gives its contents; an existing destination directory receives the source
    by its name; otherwise the destination is the new name. Raises NotADir, NotFound."""
    src_dir = stat.S_ISDIR(src_st.st_mode)
    contents = src_dir and (src.endswith("/.") or src == ".")
    st = dst_found.st
    if st is not None and stat.S_ISDIR(st.st_mode):
        return Plan(dst_found.inside, "." if contents else _base(src))
    if st is not None:
        if src_dir:
            raise NotADir("cannot copy directory")
        if dst.endswith("/"):
            raise NotADir("not a directory")
        return Plan(_dirname(dst_found.inside), dst_found.name)
    if dst.endswith("/") and not src_dir:
        raise NotADir("no such directory")
    return Plan(_dirname(dst_found.inside), dst_found.name)


def _dirname(inside: str) -> str:
    return inside.rsplit("/", 1)[0] or "/"


def copy(src_root: Root, src: str, dst_root: Root, dst: str, owner: Owner,
         follow: bool = False, not_found: Callable[[str], PmdError] | None = None) -> int:
    """cp from src (resolved in src_root) to dst (in dst_root) with Docker's semantics;
    not_found(path) makes the error for a missing source or destination parent. Returns the
    number of items written."""
    def missing(path: str) -> PmdError:
        return not_found(path) if not_found else NotFound(f"no such file or directory: {path}")

    try:
        s = _existing(src_root, src, follow)
    except NotFound:
        raise missing(src) from None
    st = s.st
    s.close()
    assert st is not None
    try:
        d = dst_root.resolve(dst, follow=True)
    except FileNotFoundError:
        raise missing(dst) from None
    try:
        p = plan(src, st, dst, d)
    finally:
        d.close()
    return extract(dst_root, p.into, walk(src_root, src, p.top, follow), owner)
