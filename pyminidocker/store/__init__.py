"""The on-disk store: one root directory, one lock, atomic metadata writes, crash recovery.

Layout (see ../shared/ARCHITECTURE.md):
    <root>/lock                      fcntl lock taken for every metadata change
    <root>/images/<image-id>/        images.json + big-data files      (store.images)
    <root>/layers/<chain-id>/        diff/ work/ merged/ layer.json    (store.layers)
    <root>/staging/<name>/           half-done work; flagged by its name, removed by cleanup()
    <root>/locks/<name>.lock         per-layer locks held while a layer is being fetched
A directory under images/ or layers/ appears only by rename(2) from staging/, complete; it
disappears by rename(2) into staging/ before it is deleted. So a crash at any point leaves only
whole records plus debris under staging/, which the next command removes.
"""
from __future__ import annotations

import errno
import fcntl
import os

from pyminidocker import jsonio
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


def _store_error(e: OSError, what: str) -> StoreError:
    detail = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        detail = "no space left on device"
    return StoreError(f"{what}: {detail}" + (f": {e.filename}" if e.filename else ""))


def atomic_write(path: str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write data to path so that readers see the old or the new content, never a mix.

    Temp file in the same directory, fsync, rename. Raises StoreError. durable=False skips the
    fsync: the rename alone is atomic against a crash of the process (kill -9, Ctrl-C); only a
    crash of the machine could then leave an empty file. For files rewritten at every start
    and stop of a container, where an fsync costs more than the rest of the start.
    """
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _store_error(e, f"cannot write {name}") from None


def write_json(path: str, obj: Any, durable: bool = True) -> None:
    atomic_write(path, jsonio.dumps(obj).encode() + b"\n", durable=durable)


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_json(path: str) -> Any:
    """Read a JSON metadata file. Raises FileNotFoundError, or StoreError if corrupt."""
    try:
        return jsonio.loads(read_bytes(path))
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


def _quietly(op: Any, name: str, dir_fd: int) -> None:
    try:
        op(name, dir_fd=dir_fd)
    except OSError:
        pass


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


class Store:
    """The root of the store. Creates its directories on first use (needs write access)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = os.fspath(root)
        self.images_dir = os.path.join(self.root, "images")
        self.layers_dir = os.path.join(self.root, "layers")
        self.staging_dir = os.path.join(self.root, "staging")
        self.locks_dir = os.path.join(self.root, "locks")
        self._ready = False
        from pyminidocker.store.containers import ContainerStore
        from pyminidocker.store.images import ImageStore
        from pyminidocker.store.layers import LayerStore

        self.layers = LayerStore(self)
        self.images = ImageStore(self)
        self.containers = ContainerStore(self)
        # rmi must not take an image from under a container
        self.images.users = self.containers.image_users

    def ensure(self) -> None:
        """Create the directories and remove debris of interrupted commands. Raises StoreError."""
        if self._ready:
            return
        dirs = (self.root, self.images_dir, self.layers_dir, self.staging_dir, self.locks_dir)
        if not os.path.isdir(dirs[-1]):  # made last: if it is there, all are
            try:
                for d in dirs:
                    os.makedirs(d, mode=0o700, exist_ok=True)
            except OSError as e:
                raise _store_error(e, f"cannot create the store at {self.root}") from None
        self._ready = True
        self.cleanup()

    def lock(self) -> FileLock:
        """The store lock, to hold in a `with`: every change of images/ or layers/ is made
        under it."""
        self.ensure()
        return FileLock(os.path.join(self.root, "lock"))

    def layer_lock(self, chain_id: str) -> FileLock:
        return FileLock(os.path.join(self.locks_dir, f"{chain_id.removeprefix('sha256:')}.lock"))

    def new_staging(self, tag: str) -> str:
        """A fresh directory for half-done work. Its name starts with `tag`; while its owner
        lives, the owner holds layer_lock(tag) (or the store lock), which cleanup() respects."""
        self.ensure()
        path = os.path.join(self.staging_dir, f"{tag}.{os.urandom(6).hex()}")
        try:
            os.mkdir(path, 0o700)
        except OSError as e:
            raise _store_error(e, "cannot create a staging directory") from None
        return path

    def discard(self, path: str) -> None:
        """Delete a directory tree that is not (or no longer) part of the store."""
        remove_tree(path)

    def retire(self, path: str) -> str:
        """Take a record's directory out of the store by renaming it into staging/; the caller
        deletes the returned path with discard() after releasing the lock (a crash before that
        leaves debris that cleanup() removes). Caller holds the store lock."""
        dead = os.path.join(self.staging_dir,
                            f"dead-{os.path.basename(path)}.{os.urandom(6).hex()}")
        os.rename(path, dead)
        return dead

    def cleanup(self) -> None:
        """Remove staging debris whose owner is gone (its layer lock or the store lock is free)."""
        try:
            entries = os.listdir(self.staging_dir)
        except OSError:
            return
        if not entries:
            return
        with FileLock(os.path.join(self.root, "lock")):
            for name in entries:
                entry = os.path.join(self.staging_dir, name)
                tag = name.split(".", 1)[0]
                if tag.startswith("dead-") or tag == "locked":
                    # only ever renamed/created under the store lock, which we hold
                    self.discard(entry)
                    continue
                lk = self.layer_lock(tag)
                if lk.acquire(blocking=False):
                    try:
                        self.discard(entry)
                    finally:
                        lk.release()
