"""The engine API: the one typed facade every front end calls (the CLI, the Docker Engine API
server, the OCI runtime), as Podman's front ends call libpod.

An `Engine` is a store root and its settings. Its methods take names, ids and typed options,
return the store's typed records (ContainerRecord, ImageRecord, Network, PullResult...), raise
the typed errors of pyminidocker.errors, and never print or exit: a front end parses, calls and
formats. Progress is reported through callbacks the front end passes in (pull's `progress`).

    from pyminidocker.engine import CreateOptions, Engine

    eng = Engine("/var/lib/docker-mini")
    eng.pull("busybox:latest")
    rec = eng.create(CreateOptions(image="busybox", cmd=["echo", "hi"], network="none"))
    code = eng.start(rec, attach=True)     # its output goes to ours and to its log
    eng.remove(rec)

The start path (`run`) goes through here, and it loads only this module of the engine: the
class holds what `create`, `start`, `stop`, `kill`, `wait` and `rm` need, and every other
operation lives in a part of its own (images, containers, files, volumes, networks, system),
whose methods are put on the class the first time one of them is asked for (a part's
method that calls another part's has `self: Engine`: mypy wants a mixin's self type to be one
of its bases, so that line says `type: ignore[misc]`). Each method
imports what it needs, so a command pays only for its own modules: on every container start,
each kilobyte of compiled code loaded costs about 15 microseconds.
"""
from __future__ import annotations

import os

from pyminidocker.errors import NotFound, UsageError

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyminidocker.config import Config
    from pyminidocker.container.attach import parse_detach_keys
    from pyminidocker.container.cgroups import device_program, parse_bytes
    from pyminidocker.container.mounts import mounts_of
    from pyminidocker.container.observe import cpu_percent
    from pyminidocker.container.runtime import CreateOptions, Runtime
    from pyminidocker.container.spec import (
        ULIMITS,
        check_cpus,
        parse_cpus,
        parse_env_file,
        parse_restart,
        parse_signal,
        sysctl_namespace,
    )
    from pyminidocker.dockerjson import StringMap
    from pyminidocker.engine.containers import Containers
    from pyminidocker.engine.files import Files
    from pyminidocker.engine.images import Images, registry_server
    from pyminidocker.engine.networks import Networks
    from pyminidocker.engine.system import System
    from pyminidocker.engine.volumes import Volumes
    from pyminidocker.image.platforms import parse_platform
    from pyminidocker.image.pull import Progress, PullResult
    from pyminidocker.network.ports import parse_publish
    from pyminidocker.reference import Reference, familiar, parse_reference, split_name
    from pyminidocker.store import Store
    from pyminidocker.store.containers import ContainerRecord
    from pyminidocker.store.events import EVENT_FILTERS
    from pyminidocker.store.images import ImageRecord
    from pyminidocker.store.networks import Network
    from pyminidocker.store.volumes import Volume, matches_labels

__all__ = [
    "EVENT_FILTERS",
    "ULIMITS",
    "ContainerRecord",
    "CreateOptions",
    "Engine",
    "ImageRecord",
    "Network",
    "Progress",
    "PullResult",
    "Reference",
    "StringMap",
    "Volume",
    "check_cpus",
    "cpu_percent",
    "device_program",
    "familiar",
    "matches_labels",
    "mounts_of",
    "parse_bytes",
    "parse_cpus",
    "parse_detach_keys",
    "parse_env_file",
    "parse_memory",
    "parse_platform",
    "parse_publish",
    "parse_reference",
    "parse_restart",
    "parse_signal",
    "registry_server",
    "split_name",
    "sysctl_namespace",
]

# The types a front end constructs or annotates with, importable from here without loading
# their modules until first use (PEP 562): `images` need not load the container runtime.
_LAZY = {
    "CreateOptions": "pyminidocker.container.runtime",
    "ContainerRecord": "pyminidocker.store.containers",
    "ImageRecord": "pyminidocker.store.images",
    "Network": "pyminidocker.store.networks",
    "Volume": "pyminidocker.store.volumes",
    "Progress": "pyminidocker.image.pull",
    "PullResult": "pyminidocker.image.pull",
    "Reference": "pyminidocker.reference",
    "familiar": "pyminidocker.reference",
    "parse_publish": "pyminidocker.network.ports",
    "parse_reference": "pyminidocker.reference",
    "split_name": "pyminidocker.reference",
    "EVENT_FILTERS": "pyminidocker.store.events",
    "registry_server": "pyminidocker.engine.images",
    # what the CLI's flags and formats read beside the engine's own operations
    "parse_cpus": "pyminidocker.container.spec",
    "check_cpus": "pyminidocker.container.spec",
    "parse_env_file": "pyminidocker.container.spec",
    "parse_signal": "pyminidocker.container.spec",
    "parse_restart": "pyminidocker.container.spec",
    "parse_detach_keys": "pyminidocker.container.attach",
    "StringMap": "pyminidocker.dockerjson",
    "ULIMITS": "pyminidocker.container.spec",
    "cpu_percent": "pyminidocker.container.observe",
    "device_program": "pyminidocker.container.cgroups",
    "matches_labels": "pyminidocker.store.volumes",
    "mounts_of": "pyminidocker.container.mounts",
    "parse_bytes": "pyminidocker.container.cgroups",
    "parse_platform": "pyminidocker.image.platforms",
    "sysctl_namespace": "pyminidocker.container.spec",
}
# The parts of the Engine beside this module's core, in the order their methods are put on it.
_PARTS = ("images", "containers", "files", "volumes", "networks", "system")


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # __import__, not importlib: importlib is three more modules on the start path
    return getattr(__import__(module, fromlist=[name]), name)


# ---- parsing of option values that every front end shares ----------------------------------

def parse_memory(text: str) -> int:
    """Bytes of a memory limit ("64m", "1g", "1048576"). Raises UsageError, also below Docker's
    minimum of 6MB."""
    from pyminidocker.container.cgroups import parse_bytes

    memory = parse_bytes(text)
    if memory < 6 * 1024 * 1024:
        raise UsageError("Minimum memory limit allowed is 6MB")
    return memory


def _is_image_id(name: str) -> bool:
    hexid = name.removeprefix("sha256:")
    return len(hexid) == 64 and all(c in "0123456789abcdef" for c in hexid)


class EngineCore:
    """The engine over one store (`Engine`). Cheap to make: the store is opened (and its
    debris of interrupted commands removed) on first use."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *,
                 config: Config | None = None, trace: bool = False):
        """root: the store (default $PYMINIDOCKER_ROOT or /var/lib/docker-mini), whose
        config.json is read unless `config` is given; trace: time the phases of what it does
        (tracer.report() prints them). Raises UsageError for a root another user could have
        prepared or a bad config.json."""
        from pyminidocker.trace import Tracer

        if config is None:
            from pyminidocker.config import Config

            config = Config.load(root)  # it checks the root's ownership
            self._root_checked = True
        else:
            self._root_checked = False
        self.config = config
        self.tracer = Tracer(trace)
        self._store: Store | None = None
        self._runtime: Runtime | None = None
        # container id -> (its record files' stamp, its record): see container_views
        self._views: dict[str, tuple[tuple[int, ...], ContainerRecord]] = {}

    @property
    def store(self) -> Store:
        """The store, made ready: every command first removes what interrupted ones left."""
        if self._store is None:
            from pyminidocker.store import Store

            store = Store(self.config.root, root_checked=self._root_checked)
            store.ensure()
            self._store = store
        return self._store

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from pyminidocker.container.runtime import Runtime

            self._runtime = Runtime(self.store, self.tracer)
        return self._runtime

    def _event(self, type_: str, action: str, actor: str, **attrs: str) -> None:
        """Log an event (store.log_event) of what an operation just did."""
        from pyminidocker.store import log_event

        log_event(self.store.root, type_, action, actor, attrs)

    def find_image(self, name: str) -> ImageRecord | None:
        """The image, or None when it is not here and pulling `name` could bring it. Raises
        NotFound for an image id (never pulled: Docker reads sha256:<64 hex> as an id, not as
        Docker Hub's image "sha256")."""
        try:
            return self.store.images.lookup(name)
        except NotFound:
            if _is_image_id(name):
                raise
            return None

    def image_config(self, rec: ImageRecord) -> dict[str, Any]:
        """The image's OCI config (the JSON blob), as a dict."""
        return self.store.images.config(rec)

    def prepare_start(self) -> None:
        """Call before create when a start follows at once (run): it overlaps a kernel wait
        with create (see cgroups.prime_migration)."""
        from pyminidocker.container.cgroups import prime_migration

        prime_migration()

    def check_create(self, opts: CreateOptions) -> None:
        """The syntax of create's options, checked before anything is looked up (call it
        before pulling a missing image). Raises UsageError."""
        self.runtime.check_options(opts)

    def create(self, opts: CreateOptions) -> ContainerRecord:
        """A new container of an image that is here (see find_image and pull). Raises
        NotFound, Conflict (name taken), UsageError (a bad option), StoreError."""
        return self.runtime.create(opts)

    def start(self, rec: ContainerRecord, attach: bool,
              stdio: tuple[int, int, int] = (-1, -1, -1),
              on_started: Callable[[Any], None] | None = None) -> int | None:
        """Start a created or exited container: attached, wait and return its exit code
        (StartError, exit code 125/126/127, when it cannot start); detached, return None once
        it runs. See Runtime.start for stdio and on_started (a tty's console)."""
        return self.runtime.start(rec, attach=attach, stdio=stdio, on_started=on_started)

    def stop(self, rec: ContainerRecord, timeout: int | None = None) -> None:
        """Its stop signal (SIGTERM unless --stop-signal), then SIGKILL after timeout seconds
        (None: its --stop-timeout, else 10); returns once it has exited."""
        self.runtime.stop(rec, timeout)

    def kill(self, rec: ContainerRecord, sig: int = 9) -> None:
        """Raises Conflict if the container is not running."""
        self.runtime.kill(rec, sig)

    def wait(self, rec: ContainerRecord) -> int:
        """Its exit code, once it has stopped."""
        return self.runtime.wait(rec)

    def remove(self, rec: ContainerRecord, force: bool = False, volumes: bool = False) -> None:
        """Remove a container and what it holds on the host; with volumes, its anonymous
        volumes too (rm -v). Raises Conflict for a running one unless force (then it is
        killed)."""
        self.runtime.remove(rec, force, volumes)

    def warnings(self) -> list[str]:
        """Docker's warnings of the last create or start (a limit this host cannot apply)."""
        return list(self.runtime.warnings)

    def container(self, ref: str, corrupt_ok: bool = False) -> ContainerRecord:
        """The container a name or (short) id stands for, its state reconciled with the
        kernel's. With corrupt_ok, a container whose record cannot be read comes as a stub
        (its id only: enough to remove it). Raises NotFound, CorruptRecord."""
        from pyminidocker.errors import CorruptRecord

        try:
            return self.runtime.get(ref)
        except CorruptRecord as e:
            if not corrupt_ok:
                raise
            return self.store.containers.stub(e.object_id)

    def reload(self, rec: ContainerRecord) -> ContainerRecord:
        """The container's record as stored now (not reconciled). Raises NotFound."""
        return self.store.containers.get(rec.id)

    def refresh(self, rec: ContainerRecord) -> ContainerRecord:
        """The container's record as it is now. Raises NotFound once it was removed."""
        rt = self.runtime
        return rt.refresh(rt.containers.get(rec.id))

    if not TYPE_CHECKING:  # for the type checker, Engine has every part as a base
        def __getattr__(self, name: str) -> Any:
            """A method of a part, asked for the first time: every part's methods go onto
            the class (later calls find them there), then the lookup is done again."""
            if name.startswith("__") or EngineCore.parts_loaded:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            for part in _PARTS:
                cls = getattr(__import__(f"pyminidocker.engine.{part}", fromlist=["_"]),
                              part.capitalize())
                for key, value in vars(cls).items():
                    if not key.startswith("__"):
                        setattr(EngineCore, key, value)
            EngineCore.parts_loaded = True
            return getattr(self, name)

    parts_loaded = False


if TYPE_CHECKING:
    class Engine(Images, Containers, Files, Volumes, Networks, System):
        """The engine over one store: the core and all its parts."""
else:
    Engine = EngineCore
