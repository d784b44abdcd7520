"""Container records: containers/<id>/{config.json,state.json,...}.

config.json is written once at create (and at rename); state.json changes over the container's
life. The directory also holds the container's own layer (upper/, work/), the mount point of its
root (rootfs/), the files the engine manages for it (hostname, hosts, resolv.conf), its log
(<id>-json.log, Docker's json-file format) and, for a detached container, the exit record the
monitor writes (exit). Names are unique across containers; they are checked under the store lock.
"""
from __future__ import annotations

import os

from pyminidocker.errors import (
    Conflict,
    CorruptRecord,
    NotFound,
    StoreError,
    UsageError,
    store_error,
)
from pyminidocker.record import asdict, dataclass, field, fsync_dir, write_json
from pyminidocker.store.files import read_json, valid_name

TYPE_CHECKING = False  # typing is not imported at run time: the start path

if TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping
    from typing import Any

    from pyminidocker.store import Store

    _Mapping = MutableMapping[str, Any]
else:  # _collections_abc is already loaded by os; collections.abc would load collections
    from _collections_abc import MutableMapping as _Mapping

# An empty file in a --rm container's directory. Its config is not fsynced (start latency), so
# a power cut right after a `run --rm` can leave that config empty; the marker (a directory
# entry: metadata, journaled with the directory's rename, no fsync) says the record was of a
# container removed either way, which get() then drops instead of reporting it corrupt.
AUTOREMOVE = "autoremove"

_ADJECTIVES = ("admiring", "brave", "calm", "eager", "fervent", "gifted", "happy", "jolly",
               "keen", "lucid", "modest", "nifty", "optimistic", "quirky", "relaxed", "serene",
               "tender", "upbeat", "vibrant", "witty", "zealous")
_SURNAMES = ("babbage", "curie", "darwin", "einstein", "feynman", "galileo", "hopper", "johnson",
             "kepler", "lovelace", "meitner", "newton", "noether", "pasteur", "ritchie",
             "shannon", "thompson", "turing", "wozniak", "yalow")


@dataclass
class State:
    status: str = "created"        # created | running | exited
    pid: int = 0
    pid_start: str = ""            # /proc/<pid>/stat start time, to detect pid reuse
    monitor_pid: int = 0           # detached: the pmd-monitor process that is its parent
    monitor_start: str = ""        # its start time, as pid_start
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_at: str = ""
    finished_at: str = ""
    paused: bool = False           # its cgroup is frozen (pause)
    restart_count: int = 0         # restarts by its monitor (--restart) since the last start
    restarting: bool = False       # between two runs (the monitor's back-off)
    ip: str = ""                   # the container's address on its network
    ports: list[str] = field(default_factory=list)  # published: "80/tcp -> 0.0.0.0:8080"
    # networks joined with `network connect`: name -> {"ip", "ifname", "host_ifname"}
    extra_networks: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class HostConfig(_Mapping):
    """A container's host configuration (Docker's HostConfig, our names): what create decided
    and every start applies. On disk, the "host" object of config.json, keyed by these names;
    the options that have no field yet (--restart, --ulimit, ...) are kept in `extra` and
    written back, so a record survives a round trip whole. It is also a mapping of those keys
    (fields first, then extra), for the code written when it was a dict: new code reads the
    attributes."""
    network: str = "bridge"         # bridge | host | none | a network's name
    networks: list[str] = field(default_factory=list)  # joined later by `network connect`
    # a network's name -> the container's aliases there (--network-alias for its network,
    # `network connect --alias` for the others), as Docker's Networks.<net>.Aliases
    network_aliases: dict[str, list[str]] = field(default_factory=dict)
    # a network joined by `network connect --ip` -> the address asked for there
    network_ips: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)     # -p specs as given
    binds: list[str] = field(default_factory=list)     # -v HOST:PATH[:ro]
    tmpfs: list[str] = field(default_factory=list)     # --tmpfs PATH[:OPTIONS]
    read_only: bool = False
    memory: int | None = None       # bytes
    cpus: float | None = None
    pids_limit: int | None = None
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    no_new_privs: bool = False
    seccomp: str | None = None      # a profile's JSON text, "unconfined", or None: the default
    security_opt: list[str] = field(default_factory=list)  # as given, for inspect
    auto_remove: bool = False       # --rm
    image_env: list[str] = field(default_factory=list)     # the image's Env at create
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HostConfig:
        """Raises TypeError for what is not an object."""
        if not isinstance(d, dict):
            raise TypeError(f"host config: expected an object, not {type(d).__name__}")
        known = {k: v for k, v in d.items() if k in _HOST_FIELDS}
        host = cls(**known, extra={k: v for k, v in d.items()
                                   if k not in _HOST_FIELDS and k != "aliases"})
        # "aliases": one list for the container's own network, as records written before
        # aliases were per network have it, and as create is given --network-alias
        if isinstance(d.get("aliases"), list) and d["aliases"]:
            host.network_aliases = {**host.network_aliases,
                                    host.network: [str(a) for a in d["aliases"]]}
        return host

    def aliases(self, network: str) -> list[str]:
        """The container's aliases on that network (its name)."""
        return list(self.network_aliases.get(network, []))

    def to_json(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _HOST_FIELDS}
        for key in ("network_aliases", "network_ips"):  # unset: written as before they were
            if not d[key]:
                del d[key]
        d.update(self.extra)
        return d

    def get(self, key: str, default: Any = None) -> Any:
        if key in _HOST_FIELDS:
            return getattr(self, key)
        return self.extra.get(key, default)

    def __getitem__(self, key: str) -> Any:
        if key in _HOST_FIELDS:
            return getattr(self, key)
        return self.extra[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _HOST_FIELDS:
            setattr(self, key, value)
        else:
            self.extra[key] = value

    def __delitem__(self, key: str) -> None:
        if key in _HOST_FIELDS:
            raise KeyError(f"{key} is a field of the host config: set it, do not delete it")
        del self.extra[key]

    def __contains__(self, key: object) -> bool:
        return key in _HOST_FIELDS or key in self.extra

    def __iter__(self) -> Iterator[str]:
        yield from _HOST_FIELDS
        yield from self.extra

    def __len__(self) -> int:
        return len(_HOST_FIELDS) + len(self.extra)


_HOST_FIELDS = ("network", "networks", "network_aliases", "network_ips",
                "ports", "binds", "tmpfs",
                "read_only", "memory", "cpus", "pids_limit", "privileged", "cap_add", "cap_drop",
                "no_new_privs", "seccomp", "security_opt", "auto_remove", "image_env")


@dataclass
class ContainerRecord:
    id: str
    name: str
    image: str                      # image id (config digest hex)
    image_name: str                 # what the user asked for
    created: str
    argv: list[str]
    env: list[str]
    cwd: str
    user: str
    hostname: str
    tty: bool = False
    open_stdin: bool = False
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    host: HostConfig = field(default_factory=HostConfig)
    labels: dict[str, str] = field(default_factory=dict)
    state: State = field(default_factory=State)

    def __post_init__(self) -> None:
        if not isinstance(self.host, HostConfig):  # as read from config.json
            self.host = HostConfig.from_json(self.host)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def config_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("state")
        d["host"] = self.host.to_json()
        return d


def random_name(taken: set[str]) -> str:
    """Docker-style "adjective_surname", unique among taken (a number appended if need be)."""
    def pick(seq: tuple[str, ...]) -> str:
        return seq[int.from_bytes(os.urandom(2), "big") % len(seq)]

    for _ in range(100):
        name = f"{pick(_ADJECTIVES)}_{pick(_SURNAMES)}"
        if name not in taken:
            return name
    return f"{name}{int.from_bytes(os.urandom(3), 'big')}"


def check_name(name: str) -> str:
    """Docker's rule for container names. Raises UsageError."""
    n = name.removeprefix("/")
    if not valid_name(n):
        raise UsageError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                         "are allowed")
    return n


class ContainerStore:
    def __init__(self, store: Store):
        self.store = store
        self.corrupt: dict[str, str] = {}  # id -> message, as the last list() found
        self.dir = os.path.join(store.root, "containers")

    def path(self, cid: str) -> str:
        return os.path.join(self.dir, cid)

    def ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.dir) if len(n) == 64]
        except FileNotFoundError:
            return []

    def get(self, cid: str) -> ContainerRecord:
        """Raises NotFound, or CorruptRecord for a config that cannot be read. A state that
        cannot be read (only a machine crash can make one: it is not fsynced) is taken as
        "exited, code unknown": nothing of a container outlives the machine."""
        d = self.path(cid)
        try:
            cfg = read_json(os.path.join(d, "config.json"))
            rec = ContainerRecord(**cfg)
        except FileNotFoundError:
            raise NotFound(f"No such container: {cid}") from None
        except (StoreError, TypeError) as e:
            if self._drop_lost_autoremove(d):
                raise NotFound(f"No such container: {cid}") from None
            raise CorruptRecord(f"container {cid[:12]} has a corrupt record ({e}); "
                                "rm -f removes it", cid) from None
        try:
            rec.state = State(**read_json(os.path.join(d, "state.json")))
        except FileNotFoundError:
            pass
        except (StoreError, TypeError):
            rec.state = State(status="exited", exit_code=-1,
                              error="the state record was lost (exit code unknown)")
        return rec

    def _drop_lost_autoremove(self, d: str) -> bool:
        """Remove the directory d of a --rm container whose unreadable config a machine crash
        left (AUTOREMOVE), unless its root is still mounted (then it is not a crash's
        leftover: reported as corrupt, for rm -f). True if it is gone."""
        if not os.path.exists(os.path.join(d, AUTOREMOVE)) or \
                os.path.ismount(os.path.join(d, "rootfs")):
            return False
        import shutil

        lost = os.path.join(self.dir, f".lost-{os.path.basename(d)}")  # not an id: unlisted
        try:
            os.rename(d, lost)
        except FileNotFoundError:
            return True  # another command dropped it
        except OSError:
            return False
        shutil.rmtree(lost, ignore_errors=True)
        return True

    def list(self) -> list[ContainerRecord]:
        """The readable records; the unreadable ones are in self.corrupt (id -> message)."""
        out = []
        self.corrupt = {}
        for cid in self.ids():
            try:
                out.append(self.get(cid))
            except NotFound:
                continue  # removed meanwhile
            except CorruptRecord as e:
                self.corrupt[cid] = str(e)
        return out

    def lookup(self, ref: str) -> ContainerRecord:
        """By full id, name, or unique id prefix (Docker's order). Raises NotFound/Conflict,
        or CorruptRecord for an id (prefix) whose record cannot be read."""
        if not ref:
            raise NotFound("No such container: ")
        records = self.list()
        for rec in records:
            if rec.id == ref or rec.name == ref.removeprefix("/"):
                return rec
        hits = [r for r in records if r.id.startswith(ref)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise Conflict(f"multiple containers match id prefix {ref!r}")
        broken = [cid for cid in self.corrupt if cid.startswith(ref)]
        if len(broken) == 1:
            raise CorruptRecord(self.corrupt[broken[0]], broken[0])
        raise NotFound(f"No such container: {ref}")

    def stub(self, cid: str) -> ContainerRecord:
        """What removing a container whose record is corrupt needs: its id."""
        return ContainerRecord(id=cid, name="", image="", image_name="", created="", argv=[],
                               env=[], cwd="/", user="", hostname="",
                               state=State(status="exited"))

    def names(self) -> dict[str, str]:
        return {r.name: r.id for r in self.list()}

    def create(self, rec: ContainerRecord, files: dict[str, bytes] | None = None) -> str:
        """Write a new container's directory, with `files` (name -> content) in it. Caller
        holds the store lock (names)."""
        taken = self.names()
        if rec.name in taken:
            raise Conflict(f'Conflict. The container name "/{rec.name}" is already in use by '
                           f'container "{taken[rec.name]}". You have to remove (or rename) that '
                           "container to be able to reuse that name.")
        d = self.path(rec.id)
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            staging = self.store.new_staging("locked")  # made and renamed under the store lock
            for sub in ("upper", "work", "rootfs"):
                os.mkdir(os.path.join(staging, sub), 0o755)
            # a container that outlives this command must outlive a power cut too: its config
            # is fsynced before it is visible (a --rm one is gone either way)
            durable = not rec.host.auto_remove
            write_json(os.path.join(staging, "config.json"), rec.config_json(), durable=durable)
            write_json(os.path.join(staging, "state.json"), asdict(rec.state), durable=False)
            if not durable:
                with open(os.path.join(staging, AUTOREMOVE), "xb"):
                    pass
            for name, data in (files or {}).items():  # staging is ours alone: written in place
                with open(os.path.join(staging, name), "xb") as f:
                    f.write(data)
            os.rename(staging, d)
            if durable:
                fsync_dir(self.dir)
        except OSError as e:
            raise store_error(e, "cannot create the container") from None
        return d

    # The state is not fsynced: a machine crash stops the container anyway, and an unreadable
    # state is read as exited (get). The config is: a rename must not lose the container.
    def save_state(self, rec: ContainerRecord) -> None:
        write_json(os.path.join(self.path(rec.id), "state.json"), asdict(rec.state),
                   durable=False)

    def save_config(self, rec: ContainerRecord) -> None:
        write_json(os.path.join(self.path(rec.id), "config.json"), rec.config_json())

    def image_users(self) -> set[str]:
        return {r.image for r in self.list()}
