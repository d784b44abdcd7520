"""The on-disk store: one root directory, one lock, atomic metadata writes, crash recovery.

Layout (see ../shared/ARCHITECTURE.md):
    <root>/lock                      fcntl lock taken for every metadata change
    <root>/images/<image-id>/        images.json + big-data files      (store.images)
    <root>/layers/<chain-id>/        diff/ work/ merged/ layer.json    (store.layers)
    <root>/staging/<name>/           half-done work; flagged by its name, removed by cleanup()
    <root>/locks/<name>.lock         per-layer locks held while a layer is being fetched
    <root>/volumes/<name>/           volume.json + _data/                (store.volumes)
    <root>/events.jsonl[.1]          the event log: log_event() appends, store.events reads
A directory under images/ or layers/ appears only by rename(2) from staging/, complete; it
disappears by rename(2) into staging/ before it is deleted. So a crash at any point leaves only
whole records plus debris under staging/, which the next command removes.
"""
from __future__ import annotations

import os
import time

from pyminidocker import record
from pyminidocker.config import check_root
from pyminidocker.errors import store_error
from pyminidocker.store.files import FileLock, iso_ns, remove_tree

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pyminidocker.store.volumes import VolumeStore

EVENT_LOG = "events.jsonl"
EVENT_LOG_MAX = 4 << 20  # bytes; then it becomes events.jsonl.1 (see log_event)


class Store:
    """The root of the store. Creates its directories on first use (needs write access)."""

    def __init__(self, root: str | os.PathLike[str], root_checked: bool = False):
        """root_checked: config.check_root(root) was done (Config.load does it): ensure()
        need not walk the path again."""
        self.root = os.fspath(root)
        self._root_checked = root_checked
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

    @property
    def volumes(self) -> VolumeStore:
        """Imported on first use: most commands never touch a volume."""
        from pyminidocker.store.volumes import VolumeStore

        vs: VolumeStore | None = self.__dict__.get("_volumes")
        if vs is None:
            vs = self.__dict__["_volumes"] = VolumeStore(self)
        return vs

    def ensure(self) -> None:
        """Create the directories and remove debris of interrupted commands. Raises StoreError."""
        if self._ready:
            return
        if not self._root_checked:
            check_root(self.root)
        dirs = (self.root, self.images_dir, self.layers_dir, self.staging_dir, self.locks_dir)
        if not os.path.isdir(dirs[-1]):  # made last: if it is there, all are
            try:
                for d in dirs:
                    os.makedirs(d, mode=0o700, exist_ok=True)
            except OSError as e:
                raise store_error(e, f"cannot create the store at {self.root}") from None
        # a root made beforehand keeps its mode: with 0777 anyone could write the engine's
        # config.json or swap its folders
        try:
            if os.stat(self.root).st_mode & 0o077:
                os.chmod(self.root, 0o700)
        except OSError as e:
            raise store_error(e, f"cannot secure the store at {self.root}") from None
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
            raise store_error(e, "cannot create a staging directory") from None
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


def log_event(root: str, type_: str, action: str, actor: str,
              attrs: Mapping[str, str] | None = None, at: str | None = None) -> None:
    """Append one event to the store's event log, Docker's event message as one JSON line (see
    store/events.py; at: when it happened, RFC 3339 UTC as the records keep times;
    default now). Never raises: an engine operation that worked is not made to fail by its
    log line (a full disk, a read-only store)."""
    now = (iso_ns(at) if at else None) or time.time_ns()
    ev: dict[str, Any] = {"Type": type_, "Action": action,
                          "Actor": {"ID": actor, "Attributes": dict(attrs or {})},
                          "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
    if type_ in ("container", "image"):  # the fields of API < 1.22, which old clients read
        ev["status"] = action
        ev["id"] = actor
        if type_ == "container" and attrs and "image" in attrs:
            ev["from"] = attrs["image"]
    path = os.path.join(root, EVENT_LOG)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.write(fd, (record.dumps(ev) + "\n").encode())
        size = os.fstat(fd).st_size
    except OSError:
        return
    finally:
        os.close(fd)
    if size > EVENT_LOG_MAX:
        _rotate_log(path)


def _rotate_log(path: str) -> None:
    """events.jsonl -> events.jsonl.1, by one writer: the others find the lock taken, or the
    file small again once they hold it."""
    import fcntl

    try:
        fd = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_size > EVENT_LOG_MAX:
            os.rename(path, path + ".1")
    except OSError:
        pass
    finally:
        os.close(fd)  # releases the flock
