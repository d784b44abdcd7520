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

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from pyminidocker.errors import StoreError

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from typing import Any


def _store_error(e: OSError, what: str) -> StoreError:
    detail = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        detail = "no space left on device"
    return StoreError(f"{what}: {detail}" + (f": {e.filename}" if e.filename else ""))


def atomic_write(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write data to path so that readers see the old or the new content, never a mix.

    Temp file in the same directory, fsync, rename. Raises StoreError. durable=False skips the
    fsync: the rename alone is atomic against a crash of the process (kill -9, Ctrl-C); only a
    crash of the machine could then leave an empty file. For files rewritten at every start
    and stop of a container, where an fsync costs more than the rest of the start.
    """
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
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
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _store_error(e, f"cannot write {path.name}") from None


def write_json(path: Path, obj: Any, durable: bool = True) -> None:
    atomic_write(path, json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n",
                 durable=durable)


def read_json(path: Path) -> Any:
    """Read a JSON metadata file. Raises FileNotFoundError, or StoreError if corrupt."""
    try:
        return json.loads(path.read_bytes())
    except ValueError as e:
        raise StoreError(f"corrupt metadata file {path}: {e}") from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileLock:
    """An fcntl (flock) lock on a file; exclusive unless shared=True. Usable across threads of
    one process only through separate FileLock objects (each opens its own file description)."""

    def __init__(self, path: Path):
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

    def __init__(self, root: Path):
        self.root = Path(root)
        self.images_dir = self.root / "images"
        self.layers_dir = self.root / "layers"
        self.staging_dir = self.root / "staging"
        self.locks_dir = self.root / "locks"
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
        try:
            for d in (self.root, self.images_dir, self.layers_dir, self.staging_dir,
                      self.locks_dir):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise _store_error(e, f"cannot create the store at {self.root}") from None
        self._ready = True
        self.cleanup()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store lock: every change of images/ or layers/ is made under it."""
        self.ensure()
        with FileLock(self.root / "lock"):
            yield

    def layer_lock(self, chain_id: str) -> FileLock:
        return FileLock(self.locks_dir / f"{chain_id.removeprefix('sha256:')}.lock")

    def new_staging(self, tag: str) -> Path:
        """A fresh directory for half-done work. Its name starts with `tag`; while its owner
        lives, the owner holds layer_lock(tag) (or the store lock), which cleanup() respects."""
        self.ensure()
        path = self.staging_dir / f"{tag}.{os.urandom(6).hex()}"
        try:
            path.mkdir(mode=0o700)
        except OSError as e:
            raise _store_error(e, "cannot create a staging directory") from None
        return path

    def discard(self, path: Path) -> None:
        """Delete a directory tree that is not (or no longer) part of the store."""
        import shutil  # not on the start path unless something is deleted

        shutil.rmtree(path, ignore_errors=True)

    def retire(self, path: Path) -> Path:
        """Take a record's directory out of the store by renaming it into staging/; the caller
        deletes the returned path with discard() after releasing the lock (a crash before that
        leaves debris that cleanup() removes). Caller holds the store lock."""
        dead = self.staging_dir / f"dead-{path.name}.{os.urandom(6).hex()}"
        os.rename(path, dead)
        return dead

    def cleanup(self) -> None:
        """Remove staging debris whose owner is gone (its layer lock or the store lock is free)."""
        try:
            entries = list(self.staging_dir.iterdir())
        except OSError:
            return
        if not entries:
            return
        with FileLock(self.root / "lock"):
            for entry in entries:
                tag = entry.name.split(".", 1)[0]
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
