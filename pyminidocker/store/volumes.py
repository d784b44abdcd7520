"""Volume records: volumes/<name>/{volume.json,_data/}, the layout of Docker's local driver.

    <root>/volumes/<name>/_data         the volume's content, bind-mounted into containers
    <root>/volumes/<name>/volume.json   name, driver, created, labels, options, anonymous

A volume directory appears by rename(2) from staging/ with its record written and fsynced, and
disappears by rename(2) into staging/ (Store.retire), so a crash leaves a whole volume or none.
Which containers use a volume is read from their records (users()), never kept twice.
"""
from __future__ import annotations

import os

from pyminidocker.errors import Conflict, NotFound, StoreError, UsageError, store_error
from pyminidocker.record import asdict, dataclass, field, fsync_dir, write_json
from pyminidocker.store.files import now_iso, read_json, valid_name

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pyminidocker.store import Store


@dataclass
class Volume:
    name: str
    created: str                    # RFC 3339, UTC
    driver: str = "local"
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False         # made for one container (-v /path, an image's VOLUME)


def check_volume_name(name: str) -> str:
    """Docker's rule for local volume names. Raises UsageError (its words)."""
    if len(name) < 2 or not valid_name(name):
        raise UsageError(f'create {name}: "{name}" includes invalid characters for a local '
                         'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                         "intended to pass a host directory, use absolute path")
    return name


def check_options(options: dict[str, str]) -> dict[str, str]:
    """The local driver's options (as mount(8)'s): type, device, o. Raises UsageError."""
    for key in options:
        if key not in ("type", "device", "o"):
            raise UsageError(f'invalid option key: "{key}"')
    if options and "device" not in options:
        raise UsageError("missing required option: \"device\"")
    if options.get("o", "").split(",").count("bind") and \
            not options.get("device", "").startswith("/"):
        raise UsageError(f"invalid device for a bind volume: {options.get('device')!r} (an "
                         "absolute host path is needed)")
    return options


class VolumeStore:
    """Reads and writes volume records. Writers hold the store lock."""

    def __init__(self, store: Store):
        self.store = store
        self.dir = os.path.join(store.root, "volumes")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def data_path(self, name: str) -> str:
        """The Mountpoint: what a container mounts."""
        return os.path.join(self.dir, name, "_data")

    def names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.dir) if valid_name(n))
        except FileNotFoundError:
            return []

    def all(self) -> list[Volume]:
        out = []
        for n in self.names():
            try:
                out.append(self.get(n))
            except NotFound:  # removed since names() listed it
                continue
        return out

    def get(self, name: str) -> Volume:
        """Raises NotFound, or StoreError for a corrupt record."""
        p = os.path.join(self.path(name), "volume.json")
        if not valid_name(name):
            raise NotFound(f"No such volume: {name}")
        try:
            data = read_json(p)
            return Volume(**data)
        except FileNotFoundError:
            raise NotFound(f"No such volume: {name}") from None
        except TypeError as e:
            raise StoreError(f"corrupt volume record {p}: {e}") from None

    def create(self, name: str | None, created: str, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, driver: str = "local") -> Volume:
        """A new volume, or the existing one of that name (as Docker: create is idempotent).
        name None makes an anonymous volume (64 hex). Caller holds the store lock. Raises
        UsageError (name, driver), StoreError."""
        if driver != "local":
            raise UsageError(f"error looking up volume plugin {driver}: plugin \"{driver}\" "
                             "not found")
        check_options(options or {})
        anonymous = name is None
        name = os.urandom(32).hex() if name is None else check_volume_name(name)
        try:
            return self.get(name)
        except NotFound:
            pass
        vol = Volume(name=name, created=created, labels=dict(labels or {}),
                     options=dict(options or {}), anonymous=anonymous)
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            staging = self.store.new_staging("locked")  # made and renamed under the store lock
            os.mkdir(os.path.join(staging, "_data"), 0o755)
            write_json(os.path.join(staging, "volume.json"), asdict(vol))
            os.rename(staging, self.path(name))
            fsync_dir(self.dir)
        except OSError as e:
            raise store_error(e, f"cannot create the volume {name}") from None
        return vol

    def remove(self, name: str, users: dict[str, list[str]], force: bool = False) -> str:
        """Take the volume out of the store; returns the retired path for Store.discard (after
        the lock is released). users is users()'s answer. Caller holds the store lock. Raises
        NotFound (unless force: then returns ""), Conflict when a container uses it."""
        try:
            self.get(name)
        except NotFound:
            if force:
                return ""
            raise
        except StoreError:
            if not force:
                raise
        if users.get(name):
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users[name])}]")
        try:
            return self.store.retire(self.path(name))
        except OSError as e:
            raise store_error(e, f"cannot remove the volume {name}") from None

    def users(self) -> dict[str, list[str]]:
        """volume name -> ids of the containers whose records mount it (any state)."""
        out: dict[str, list[str]] = {}
        for rec in self.store.containers.list():
            for m in volume_mounts(rec.host):
                out.setdefault(m["Name"], []).append(rec.id)
        # a container whose record cannot be read may still use any volume: keep them all
        for cid in self.store.containers.corrupt:
            for n in self.names():
                out.setdefault(n, []).append(cid)
        return out

    def size(self, name: str) -> int:
        """Bytes of the files in the volume (st_blocks, as du; Docker's system df)."""
        from pyminidocker.store.files import tree_size

        return tree_size(self.data_path(name))


def volume_mounts(host: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The volume mounts of a container's host config (see container.mounts)."""
    return [m for m in host.get("mounts") or [] if m.get("Type") == "volume"]


# ---- the operations the front ends call (the engine API wraps them) ----------------------

def create_volume(store: Store, name: str | None, labels: dict[str, str] | None = None,
                  options: dict[str, str] | None = None, driver: str = "local") -> Volume:
    """`volume create`. Raises UsageError, StoreError."""
    with store.lock():
        return store.volumes.create(name, now_iso(), labels, options, driver)


def inspect_volume(store: Store, vol: Volume) -> dict[str, Any]:
    """Docker's volume inspect object."""
    return {"CreatedAt": vol.created, "Driver": vol.driver, "Labels": vol.labels or None,
            "Mountpoint": store.volumes.data_path(vol.name), "Name": vol.name,
            "Options": vol.options or None, "Scope": "local"}


def remove_volumes(store: Store, names: list[str], force: bool = False) -> dict[str, Exception]:
    """`volume rm`: each name in turn; returns name -> error (NotFound, Conflict, StoreError)
    for those that failed, the others being removed all the same."""
    errors: dict[str, Exception] = {}
    for name in names:
        with store.lock():
            try:
                dead = store.volumes.remove(name, store.volumes.users(), force)
            except (NotFound, Conflict, StoreError) as e:
                errors[name] = e
                continue
        if dead:
            store.discard(dead)
    return errors


def prune_volumes(store: Store, labels: list[str] | None = None) -> tuple[list[str], int]:
    """`volume prune`: every volume no container uses (Docker 20.10: named ones too), those
    with all the given label filters ("key" or "key=value"). Returns (names, bytes freed)."""
    removed, freed, doomed = [], 0, []
    with store.lock():
        users = store.volumes.users()
        for vol in store.volumes.all():
            if users.get(vol.name) or not matches_labels(vol.labels, labels or []):
                continue
            size = store.volumes.size(vol.name)
            try:
                doomed.append(store.volumes.remove(vol.name, users))
            except (NotFound, Conflict, StoreError):
                continue
            removed.append(vol.name)
            freed += size
    for dead in doomed:
        store.discard(dead)
    return removed, freed


def matches_labels(have: dict[str, str], wanted: list[str]) -> bool:
    """Docker's label filters: "key" (present) or "key=value" (equal), all must hold."""
    for w in wanted:
        key, eq, value = w.partition("=")
        if key not in have or (eq and have[key] != value):
            return False
    return True
