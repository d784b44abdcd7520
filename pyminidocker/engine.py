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

The start path (`run`) goes through here: this module imports nothing at load time but the
errors; each method imports what it needs, so a command pays only for its own modules.
"""
from __future__ import annotations

import os

from pyminidocker.errors import NotFound, PmdError, UsageError

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from pyminidocker.config import Config
    from pyminidocker.container.attach import StdinWriter
    from pyminidocker.container.runtime import CreateOptions, Runtime
    from pyminidocker.image.pull import Progress, PullResult
    from pyminidocker.image.push import PushResult
    from pyminidocker.network.ports import parse_publish
    from pyminidocker.reference import Reference, familiar, parse_reference, split_name
    from pyminidocker.store import Store
    from pyminidocker.store.containers import ContainerRecord
    from pyminidocker.store.events import EVENT_FILTERS
    from pyminidocker.store.events import Reader as EventReader
    from pyminidocker.store.images import ImageRecord
    from pyminidocker.store.networks import Network
    from pyminidocker.store.volumes import Volume

__all__ = ["EVENT_FILTERS", "ContainerRecord", "CreateOptions", "Engine", "ImageRecord",
           "Network", "Progress", "PullResult", "Reference", "Volume", "familiar", "parse_cpus",
           "parse_env_file", "parse_memory", "parse_publish", "parse_reference", "parse_restart",
           "parse_signal", "registry_server", "split_name"]

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
}


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


def parse_cpus(text: str) -> float:
    """--cpus "1.5". Raises UsageError."""
    from pyminidocker.container.spec import parse_cpus as parse

    return parse(text)


def parse_env_file(path: str) -> list[str]:
    """The NAME=VALUE lines of an --env-file. Raises UsageError."""
    from pyminidocker.container.spec import parse_env_file as parse

    return parse(path)


def parse_detach_keys(keys: str) -> bytes:
    """Docker's detach keys ("ctrl-p,ctrl-q") as the bytes a terminal sends. Raises
    UsageError."""
    from pyminidocker.container.attach import parse_detach_keys as parse

    return parse(keys)


def parse_signal(name: str) -> int:
    """A signal's number from "KILL", "SIGKILL" or "9". Raises UsageError."""
    from pyminidocker.container.spec import parse_signal as parse

    return parse(name)


def parse_restart(spec: str) -> dict[str, Any]:
    """A restart policy, "no", "always", "unless-stopped", "on-failure[:N]", as the host
    config keeps it ({"name", "max"}). Raises UsageError."""
    from pyminidocker.container.spec import parse_restart as parse

    return parse(spec)


def registry_server(server: str | None) -> str:
    """The registry a login is kept for, as Docker names it: docker.io for Docker Hub's
    aliases, and host[:port] of a URL."""
    if not server:
        return "docker.io"
    s = server.removeprefix("https://").removeprefix("http://").rstrip("/")
    s = s.split("/", 1)[0]
    return "docker.io" if s in ("index.docker.io", "registry-1.docker.io") else s


def _is_image_id(name: str) -> bool:
    hexid = name.removeprefix("sha256:")
    return len(hexid) == 64 and all(c in "0123456789abcdef" for c in hexid)


class Engine:
    """The engine over one store. Cheap to make: the store is opened (and its debris of
    interrupted commands removed) on first use."""

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

    # ---- images ---------------------------------------------------------------------------

    def pull(self, ref: str | Reference, platform: str | None = None,
             progress: Callable[[Progress], None] | None = None) -> PullResult:
        """Pull an image (index or manifest, its config and layers) into the store; `progress`
        gets each layer's events. Raises InvalidReference, RegistryError, AuthError,
        VerificationError, LayerError, StoreError."""
        from pyminidocker.image.pull import Puller
        from pyminidocker.reference import parse_reference

        r = parse_reference(ref) if isinstance(ref, str) else ref
        plat = None
        if platform:
            from pyminidocker.image.platforms import parse_platform

            plat = parse_platform(platform)
        result = Puller(self.store, self.config, r, plat, progress).pull()
        self._event("image", "pull", r.familiar, name=r.familiar_name)
        return result

    def _event(self, type_: str, action: str, actor: str, **attrs: str) -> None:
        """Log an event (store.log_event) of what an operation just did."""
        from pyminidocker.store import log_event

        log_event(self.store.root, type_, action, actor, attrs)

    def push(self, name: str, progress: Callable[[Progress], None] | None = None
             ) -> list[tuple[Reference, PushResult]]:
        """Push the image named `name` (every tag of its repository if it has none) to its
        registry; the image gains the repository@digest names. Raises NotFound ("An image
        does not exist locally with the tag"), InvalidReference, AuthError, RegistryError."""
        from pyminidocker.image.push import push
        from pyminidocker.reference import parse_reference

        ref = parse_reference(name)
        if ref.digest:
            raise UsageError("cannot push a digest reference")
        names = [f"{ref.name}:{ref.tag}"] if ref.tag else sorted(
            n for rec in self.images() for n in rec.names
            if n.rpartition(":")[0] == ref.name and "@" not in n)
        if not names:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        out = []
        for full in names:
            r = parse_reference(full)
            try:
                rec = self.store.images.lookup(full)
            except NotFound:
                raise NotFound(f"An image does not exist locally with the tag: "
                               f"{r.familiar}") from None
            res = push(self.store, self.config, rec, r, progress)
            with self.store.lock():
                rec = self.store.images.get(rec.id)
                digest_name = f"{r.name}@{res.digest}"
                if digest_name not in rec.names:
                    self.store.images.set_names(rec, [*rec.names, digest_name])
            out.append((r, res))
        return out

    def tags(self, ref: str | Reference) -> list[Reference]:
        """The references of every tag of ref's repository, sorted (pull --all-tags)."""
        from pyminidocker.image.registry import RegistryClient
        from pyminidocker.reference import parse_reference

        r = parse_reference(ref) if isinstance(ref, str) else ref
        client = RegistryClient(self.config, r.registry)
        return [r.with_tag(t) for t in sorted(client.list_tags(r.repository))]

    def images(self) -> list[ImageRecord]:
        """Every readable image; the unreadable ones are in corrupt_images()."""
        return self.store.images.list()

    def corrupt_images(self) -> list[str]:
        """One message for each image whose record cannot be read (after images())."""
        return list(self.store.images.corrupt.values())

    def corrupt_layers(self) -> list[str]:
        """A line for each layer record found corrupt so far (image_size() reads them); each
        was rebuilt from an image that has the layer, so nothing failed."""
        return list(self.store.layers.corrupt.values())

    def image(self, name: str) -> ImageRecord:
        """The image a name, digest or (short) id stands for. Raises NotFound, CorruptRecord."""
        return self.store.images.lookup(name)

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

    def image_size(self, rec: ImageRecord) -> int:
        """Bytes of the image's layers, uncompressed."""
        return sum(layer.uncompressed_size for layer in self.store.layers.chain(rec.layer)) \
            if rec.layer else 0

    def _layer_sizes(self) -> dict[str, int]:
        out = {}
        for lid in self.store.layers.all_ids():
            try:
                out[lid] = self.store.layers.get(lid).uncompressed_size
            except PmdError:
                continue
        return out

    def prune_images(self, all: bool = False,
                     keep: Callable[[list[ImageRecord]], list[ImageRecord]] | None = None
                     ) -> tuple[list[tuple[str, str]], int]:
        """`image prune`: the dangling images (with all: every image) no container uses (of
        those, the ones `keep` returns: Docker's prune filters). Returns what remove_image
        did for each, and the bytes of the layers that went."""
        before = self._layer_sizes()
        used = self.store.images.users()
        done: list[tuple[str, str]] = []
        unused = [r for r in self.images() if r.id not in used and (all or not r.names)]
        for rec in keep(unused) if keep is not None else unused:
            try:
                done += self.remove_image(rec.id, force=True)
            except PmdError:
                continue
        after = self._layer_sizes()
        return done, sum(size for lid, size in before.items() if lid not in after)

    def history(self, rec: ImageRecord) -> list[dict[str, Any]]:
        """`history`: the image config's history, newest first, each with the size of the
        layer it made (0 for an empty_layer step): {"created", "created_by", "size",
        "comment", "empty_layer"}."""
        cfg = self.image_config(rec)
        layers = list(self.store.layers.chain(rec.layer)) if rec.layer else []
        layers.reverse()  # bottom first, as the history lists its steps
        out, i = [], 0
        for h in cfg.get("history") or []:
            size = 0
            if not h.get("empty_layer"):
                size = layers[i].uncompressed_size if i < len(layers) else 0
                i += 1
            out.append({**h, "size": size})
        return out[::-1]

    def disk_usage(self) -> dict[str, Any]:
        """`system df`: images, containers and volumes: how many, how many in use, their
        bytes and what a prune would reclaim."""
        used_images = self.store.images.users()
        images = self.images()
        sizes = self._layer_sizes()
        used_layers = {layer.id for rec in images if rec.id in used_images and rec.layer
                       for layer in self.store.layers.chain(rec.layer)}
        from pyminidocker.store.files import tree_size

        recs = self.containers()
        running = {r.id for r in recs if r.state.status == "running"}
        ctr_sizes = {r.id: tree_size(os.path.join(self.store.containers.path(r.id), "upper"))
                     for r in recs}
        vol_users = self.volume_users()
        vols = self.volumes()
        vol_sizes = {v.name: self.store.volumes.size(v.name) for v in vols}
        return {
            "images": (len(images), sum(1 for r in images if r.id in used_images),
                       sum(sizes.values()),
                       sum(s for lid, s in sizes.items() if lid not in used_layers)),
            "containers": (len(recs), len(running), sum(ctr_sizes.values()),
                           sum(s for cid, s in ctr_sizes.items() if cid not in running)),
            "volumes": (len(vols), sum(1 for v in vols if vol_users.get(v.name)),
                        sum(vol_sizes.values()),
                        sum(s for n, s in vol_sizes.items() if not vol_users.get(n))),
        }

    def inspect_image(self, rec: ImageRecord) -> dict[str, Any]:
        """Docker's `image inspect` object of the image (every key Docker 20.10 has)."""
        from pyminidocker import dockerjson
        from pyminidocker.reference import split_name

        tags: list[str] = []
        digests: list[str] = []
        for n in rec.names:
            repo, tag, digest = split_name(n)
            (digests if digest else tags).append(f"{repo}@{digest}" if digest else f"{repo}:{tag}")
        if rec.digest and not digests:
            digests = [f"{t.rpartition(':')[0]}@{rec.digest}" for t in tags[:1]]
        store = self.store
        chain = list(store.layers.chain(rec.layer)) if rec.layer else []
        paths = [str(store.layers.diff_path(layer.id)) for layer in chain]
        graph = {"LowerDir": ":".join(paths[1:]), "MergedDir": "",
                 "UpperDir": paths[0] if paths else "", "WorkDir": ""}
        return dockerjson.image(rec, self.image_config(rec),
                                sum(layer.uncompressed_size for layer in chain), tags, digests,
                                graph)

    def tag(self, source: str, target: str) -> None:
        """Give the image `source` names the name `target` (":latest" if it has no tag).
        Raises UsageError for a digest target, NotFound."""
        from pyminidocker.reference import familiar, parse_reference

        dst = parse_reference(target)
        if dst.digest:
            raise UsageError("refusing to create a tag with a digest reference")
        store = self.store
        with store.lock():
            rec = store.images.lookup(source)
            name = f"{dst.name}:{dst.tag or 'latest'}"
            if name not in rec.names:
                store.images.set_names(rec, [*rec.names, name])
        self._event("image", "tag", f"sha256:{rec.id}", name=familiar(name))

    def remove_image(self, want: str, force: bool = False) -> list[tuple[str, str]]:
        """See _remove_image; logs Docker's untag and delete events of what was done."""
        try:
            image = f"sha256:{self.store.images.lookup(want).id}"
        except PmdError:
            image = ""  # not there (_remove_image says so) or corrupt: deleted by its id
        done = self._remove_image(want, force)
        for action, what in done:
            if action == "Untagged":
                self._event("image", "untag", image or want, name=what)
            elif what == image or not image:
                self._event("image", "delete", what, name=what)
                image = image or what
        return done

    def _remove_image(self, want: str, force: bool = False) -> list[tuple[str, str]]:
        """Docker's rules: a name is removed while other tags remain; the last one takes the
        image (and the layers no other image uses) with it, unless a container uses the image:
        then it is refused, or with force the names go and the data stays (a dangling image).
        Returns what was done, in order: ("Untagged", familiar name) and ("Deleted", id).
        Raises NotFound, Conflict (as PmdError), CorruptRecord without force."""
        from pyminidocker.errors import CorruptRecord
        from pyminidocker.reference import parse_reference

        store = self.store
        done: list[tuple[str, str]] = []
        doomed: list[str] = []
        running: dict[str, str] = {}
        if force:  # read before taking the store lock, which the runtime takes too
            running = {r.image: r.short_id for r in self.runtime.list()
                       if r.state.status == "running"}
        try:
            with store.lock():
                try:
                    rec = store.images.lookup(want)
                except CorruptRecord as e:
                    if not force:
                        raise
                    doomed.append(store.images.remove_corrupt(e.object_id))
                    done.append(("Deleted", f"sha256:{e.object_id}"))
                    self._retire_unused_layers(doomed, done)
                    return done
                in_use = rec.id in store.images.users()
                name = None
                try:
                    name = str(parse_reference(want))
                except PmdError:
                    pass
                tags = [n for n in rec.names if "@" not in n]
                if name is not None and name in rec.names and len(tags) > 1:
                    rec.names.remove(name)
                    store.images.set_names(rec, rec.names)
                    done.append(("Untagged", parse_reference(name).familiar))
                    return done
                if name not in rec.names and rec.id in running:
                    # by id, force would take the image from under a running container:
                    # Docker refuses even then (a tag alone may go: the image stays)
                    raise PmdError(f"conflict: unable to delete {rec.id[:12]} (cannot be "
                                   "forced) - image is being used by running container "
                                   f"{running[rec.id]}")
                if name not in rec.names and len(tags) > 1 and not force:
                    raise PmdError(f"conflict: unable to delete {rec.id[:12]} (must be forced) "
                                   "- image is referenced in multiple repositories")
                if in_use and not force:
                    raise PmdError(f"conflict: unable to remove {want} (must force) - image "
                                   f"{rec.id[:12]} is being used by a container")
                done.extend(("Untagged", parse_reference(n).familiar) for n in rec.names)
                if in_use:
                    store.images.set_names(rec, [])
                    return done
                rec.names = []
                doomed.append(store.images.remove(rec))
                done.append(("Deleted", f"sha256:{rec.id}"))
                self._retire_unused_layers(doomed, done)
                return done
        finally:
            for path in doomed:
                store.discard(path)

    def _retire_unused_layers(self, doomed: list[str], done: list[tuple[str, str]]) -> None:
        """The layers no image uses any more go with the image that used them last. Caller
        holds the store lock and discards `doomed` after releasing it."""
        store = self.store
        for chain_id in store.images.unused_layers():
            doomed.append(store.layers.retire(chain_id))
            done.append(("Deleted", chain_id))

    def login(self, server: str | None, username: str, password: str) -> None:
        """Check the credentials with the registry and keep them (Docker's config.json).
        Raises AuthError, RegistryError."""
        from pyminidocker.image.registry import RegistryClient

        RegistryClient(self.config, registry_server(server)).login(username, password)

    def logout(self, server: str | None) -> None:
        from pyminidocker.image.registry import RegistryClient

        RegistryClient(self.config, registry_server(server)).logout()

    # ---- images in and out of archives (image/archive.py) -----------------------------------

    def save(self, names: list[str], sink: Callable[[bytes], object]) -> None:
        """Write the images as one tar (docker-archive and OCI layout) to sink. A name keeps
        its tag in the archive, a repository name brings every tag of it, an id gives the
        image without names (as Docker). Raises NotFound, StoreError."""
        from pyminidocker.image.archive import save
        from pyminidocker.reference import familiar, parse_reference

        wanted: dict[str, tuple[ImageRecord, list[str]]] = {}
        for name in names:
            tagged: list[tuple[ImageRecord, str | None]] = []
            if not _is_image_id(name) and "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
                # a repository: every tag of it, as Docker
                repo = parse_reference(name).name
                tagged = [(r, n) for r in self.images() for n in r.names
                          if "@" not in n and n.rpartition(":")[0] == repo]
            if not tagged:
                rec = self.image(name)
                if rec.id.startswith(name.removeprefix("sha256:")):
                    tagged = [(rec, None)]
                else:
                    ref = parse_reference(name)
                    tagged = [(rec, f"{ref.name}:{ref.tag}" if ref.tag else None)]
            for r, full in tagged:
                entry = wanted.setdefault(r.id, (r, []))
                if full and full not in entry[1]:
                    entry[1].append(full)
        save(self.store, list(wanted.values()), sink)
        for rec, kept in wanted.values():
            self._event("image", "save", f"sha256:{rec.id}",
                        name=familiar(kept[0]) if kept else f"sha256:{rec.id}")

    def load(self, fd: int) -> list[tuple[str, list[str]]]:
        """Load the image tar read from fd (docker-archive or OCI layout, compressed or not);
        returns (image id, names) of each image. All or nothing. Raises LayerError (a bad or
        hostile archive), VerificationError, UnsupportedMedia, StoreError."""
        from pyminidocker.image.archive import load
        from pyminidocker.reference import familiar

        images = load(self.store, fd).images
        for image_id, names in images:
            self._event("image", "load", f"sha256:{image_id.removeprefix('sha256:')}",
                        name=familiar(names[0]) if names else image_id)
        return images

    def import_image(self, fd: int, ref: str | None = None, message: str = "",
                     changes: list[str] | None = None) -> str:
        """A one-layer image from the filesystem tar (plain, gzip or zstd) read from fd,
        named ref; changes: Dockerfile instructions (CMD, ENV, ...). Returns its id. Raises
        UsageError, InvalidReference, LayerError, StoreError."""
        from pyminidocker.image import archive

        names = [self._target_name(ref)] if ref else []
        config = archive.new_config(None, "", "", message)
        archive.apply_changes(config, changes or [])
        with self._staging("import") as staging:
            path = os.path.join(staging, "layer")
            with open(path, "xb") as f:
                while chunk := os.read(fd, 1 << 20):
                    f.write(chunk)
            return archive.image_from_layer(self.store, path, None, config, names)

    def export(self, rec: ContainerRecord, sink: Callable[[bytes], object]) -> None:
        """The container's filesystem (its image and its changes) as a tar to sink."""
        from pyminidocker.image.archive import export_layers

        lowers = [os.path.join(self.store.containers.path(rec.id), "upper"),
                  *self._image_layers(rec.image)]
        export_layers(self.store, lowers, sink)
        self.runtime.log(rec, "export")

    def commit(self, rec: ContainerRecord, ref: str | None = None, message: str = "",
               author: str = "", changes: list[str] | None = None,
               pause: bool = True) -> str:
        """A new image: the container's image plus its changes as one more layer (deletions
        as whiteouts), with the container's command, environment, working directory and
        user, then `changes`. A running container is frozen meanwhile if pause. Returns the
        image id. Raises UsageError, NotFound, Conflict, LayerError, StoreError."""
        from pyminidocker.container.specconv import INIT_DIRS, INIT_FILES
        from pyminidocker.image import archive

        names = [self._target_name(ref)] if ref else []
        base = self.store.images.get(rec.image)
        config = archive.new_config(self.image_config(base), "", _shell(rec.argv), message,
                                    author)
        c = config["config"]
        if rec.entrypoint is not None:
            c["Entrypoint"] = rec.entrypoint or None
        if rec.cmd is not None:
            c["Cmd"] = rec.cmd or None
        c["Env"] = [e for e in rec.env if not e.startswith("HOSTNAME=")]
        c["WorkingDir"], c["User"] = rec.cwd, rec.user
        if rec.labels:
            c["Labels"] = {**(c.get("Labels") or {}), **rec.labels}
        archive.apply_changes(config, changes or [])
        config["container"] = rec.id
        # the mount points the engine makes are no change of the container's (Docker: its
        # init layer, which a commit leaves out)
        skip = {f"/{n}" for n in INIT_DIRS} | {f"/etc/{n}" for n in INIT_FILES}
        upper = os.path.join(self.store.containers.path(rec.id), "upper")
        frozen = False
        if pause and self.runtime.refresh(rec).state.status == "running":
            self.pause(rec)
            frozen = True
        try:
            with self._staging("commit") as staging:
                path = os.path.join(staging, "layer")
                try:
                    archive.tar_layer(upper, path, skip)
                finally:
                    if frozen:
                        self.unpause(rec)
                        frozen = False
                return archive.image_from_layer(self.store, path, base, config, names)
        finally:
            if frozen:
                self.unpause(rec)

    def _target_name(self, ref: str) -> str:
        from pyminidocker.reference import parse_reference

        r = parse_reference(ref)
        if r.digest:
            raise UsageError("refusing to create a tag with a digest reference")
        return f"{r.name}:{r.tag or 'latest'}"

    def _image_layers(self, image_id: str) -> list[str]:
        """The diff directories of the image's layers, top first."""
        image = self.store.images.get(image_id)
        if not image.layer:
            return []
        return [self.store.layers.diff_path(layer.id)
                for layer in self.store.layers.chain(image.layer)]

    def _staging(self, tag: str) -> Any:
        """A staging directory (removed afterwards) for work that needs a scratch file."""
        from contextlib import contextmanager

        @contextmanager
        def scratch() -> Iterator[str]:
            name = f"{tag}-{os.urandom(6).hex()}"
            with self.store.layer_lock(name):
                path = self.store.new_staging(name)
                try:
                    yield path
                finally:
                    self.store.discard(path)

        return scratch()

    # ---- containers -----------------------------------------------------------------------

    def prepare_start(self) -> None:
        """Call before create when a start follows at once (run): it overlaps a kernel wait
        with create (see cgroups.prime_migration)."""
        from pyminidocker.container.cgroups import prime_migration

        prime_migration()

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

    def resize(self, rec: ContainerRecord, rows: int, cols: int) -> None:
        """The console of the running container takes this size, as a resized terminal's
        (its processes get SIGWINCH); nothing to do for one without a tty (as dockerd). Raises
        Conflict if it is not running."""
        from pyminidocker.container.console import set_size
        from pyminidocker.errors import Conflict

        rec = self.runtime.refresh(rec)
        not_running = Conflict(f"container {rec.id} is not running")  # dockerd's words
        if rec.state.status != "running" or not rec.state.pid:
            raise not_running
        try:
            set_size(rec.state.pid, rows, cols)
        except FileNotFoundError:  # it has just exited
            raise not_running from None
        self.runtime.log(rec, "resize", height=str(rows), width=str(cols))

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

    def pause(self, rec: ContainerRecord) -> None:
        """Freeze its processes (the freezer cgroup). Raises Conflict."""
        self.runtime.pause(rec)

    def unpause(self, rec: ContainerRecord) -> None:
        """Raises Conflict for a container that is not paused."""
        self.runtime.unpause(rec)

    def restart(self, rec: ContainerRecord, timeout: int | None = None) -> None:
        """stop (see stop for timeout), then start detached."""
        self.runtime.restart(rec, timeout)

    def update(self, rec: ContainerRecord, changes: dict[str, Any]) -> None:
        """New resource limits (memory, memory_swap, memory_reservation, cpus, cpu_shares,
        cpu_period, cpu_quota, cpuset_cpus, cpuset_mems, pids_limit), live for a running
        container. Raises UsageError, PmdError."""
        self.runtime.update(rec, changes)

    def top(self, rec: ContainerRecord, ps_args: list[str] | None = None
            ) -> tuple[list[str], list[list[str]]]:
        """ps (ps_args, default -ef) of the container's processes: (titles, rows)."""
        return self.runtime.top(rec, list(ps_args or []))

    def changes(self, rec: ContainerRecord) -> list[tuple[str, str]]:
        """("A"|"C"|"D", path) of what the container changed in its image's files."""
        return self.runtime.changes(rec)

    # ---- copying files: cp and the API's archive endpoint (container.archive) ----------------

    def copy_from(self, rec: ContainerRecord, src: str, dst: str, archive: bool = False,
                  follow: bool = False) -> int:
        """`cp CONTAINER:SRC DST`, Docker's semantics (a directory's "/." copies its contents,
        an existing directory receives the source by name): the files are the caller's, or
        with archive keep the container's ids; follow: a symlink at SRC's end is followed.
        Returns the number of files written. Raises NotFound, UsageError, PmdError, OSError."""
        from pyminidocker.container import archive as ar

        def missing(path: str) -> PmdError:
            if path is src:
                return NotFound(f"No such container:path: {rec.name}:{src}")
            return NotFound(f"lstat {path}: no such file or directory")

        owner = ar.Owner(archive, os.getuid(), os.getgid())
        with ar.container_root(self.runtime, rec) as root, ar.Root("/") as host:
            return ar.copy(root, src, host, os.path.abspath(dst) + ("/" if dst.endswith("/")
                                                                    else ""),
                           owner, follow, missing)

    def copy_to(self, rec: ContainerRecord, src: str, dst: str, archive: bool = False,
                follow: bool = False) -> int:
        """`cp SRC CONTAINER:DST`: the files are root's in the container, or with archive keep
        their ids on the host. Raises as copy_from, and container.archive.ReadOnly."""
        from pyminidocker.container import archive as ar

        def missing(path: str) -> PmdError:
            if path is dst:
                return NotFound(f"No such container:path: {rec.name}:{dst}")
            return NotFound(f"lstat {path}: no such file or directory")

        self._writable(rec)
        owner = ar.Owner(archive, 0, 0)
        srcpath = os.path.abspath(src) + ("/." if src.endswith("/.") else
                                          "/" if src.endswith("/") else "")
        with ar.container_root(self.runtime, rec) as root, ar.Root("/") as host:
            return ar.copy(host, srcpath, root, dst, owner, follow, missing)

    def _writable(self, rec: ContainerRecord) -> None:
        from pyminidocker.container.archive import ReadOnly

        # a running one's root refuses writes itself (EROFS), its writable volumes accept them
        rec = self.runtime.refresh(rec)
        if rec.host.get("read_only") and rec.state.status != "running":
            raise ReadOnly("container rootfs is marked read-only")

    def path_stat(self, rec: ContainerRecord, path: str) -> Any:
        """What is at path in the container (container.archive.Stat, its last component not
        followed). Raises NotFound."""
        from pyminidocker.container import archive as ar

        with ar.container_root(self.runtime, rec) as root:
            return self._stat_in(rec, root, path)

    def _stat_in(self, rec: ContainerRecord, root: Any, path: str) -> Any:
        from pyminidocker.container import archive as ar

        try:
            return ar.stat_path(root, path)
        except (NotFound, FileNotFoundError):
            raise NotFound(f"Could not find the file {path} in container {rec.name}") from None

    def archive_get(self, rec: ContainerRecord, path: str, write: Callable[[bytes], Any],
                    on_stat: Callable[[Any], None] | None = None, follow: bool = False) -> Any:
        """The tar of path in the container (named by its last element, as Docker's GET
        /containers/{id}/archive), in chunks to write; on_stat gets its Stat first. Returns
        the Stat. Raises NotFound."""
        from pyminidocker.container import archive as ar

        with ar.container_root(self.runtime, rec) as root:
            st = self._stat_in(rec, root, path)
            if on_stat is not None:
                on_stat(st)
            ar.write_tar(ar.walk(root, path, st.name, follow), write)
            return st

    def archive_put(self, rec: ContainerRecord, path: str, stream: Any,
                    copy_ids: bool = False, no_overwrite_dir_nondir: bool = False) -> int:
        """Extract the tar read from stream (readinto) into the directory path of the
        container (Docker's PUT /containers/{id}/archive). As dockerd, the files are owned as
        the tar says; with copy_ids (`docker cp -a`), by the container's user if it has one.
        Hostile entries are refused (container.archive). Raises NotFound, UsageError (not a
        directory, not a tar, a user the container does not know), container.archive.Refused,
        ReadOnly."""
        from pyminidocker.container import archive as ar

        self._writable(rec)
        with ar.container_root(self.runtime, rec) as root:
            owner = ar.Owner()
            if copy_ids and rec.user:
                from pyminidocker.container.spec import resolve_user

                user = resolve_user(root.path, rec.user)
                owner = ar.Owner(False, user.uid, user.gid)
            try:
                return ar.extract(root, path, ar.read_tar(stream), owner,
                                  no_overwrite_dir_nondir)
            except (NotFound, FileNotFoundError):
                raise NotFound(f"Could not find the file {path} in container "
                               f"{rec.name}") from None

    def stats(self, rec: ContainerRecord) -> dict[str, Any]:
        """One reading of its counters (cpu, memory, network, block I/O, pids); CPU % comes
        from two (container.observe.cpu_percent). Raises Conflict if it is not running."""
        return self.runtime.stats(rec)

    def health(self, rec: ContainerRecord) -> dict[str, Any] | None:
        """Docker's State.Health of the container (None without a healthcheck)."""
        return self.runtime.health(rec)

    def start_all_restart(self) -> list[str]:
        """At boot: start the stopped containers whose restart policy asks for it (see
        Runtime.start_all_restart); their ids."""
        return self.runtime.start_all_restart()

    def rename(self, rec: ContainerRecord, new_name: str) -> None:
        """Raises UsageError for a bad name, Conflict for a taken one."""
        self.runtime.rename(rec, new_name)

    def exec(self, rec: ContainerRecord, argv: list[str], env: list[str] | None = None,
             user: str | None = None, workdir: str | None = None, tty: bool = False,
             stdio: tuple[int, int, int] = (-1, -1, -1),
             on_started: Callable[[Any], None] | None = None) -> int:
        """Run argv in the running container; its exit code. Raises Conflict if it is not
        running, StartError (125/126/127) if argv cannot start."""
        if not argv:
            raise UsageError("exec requires at least 1 command argument")
        return self.runtime.exec(rec, argv, list(env or []), user, workdir, tty, stdio,
                                 on_started=on_started)

    def open_stdin(self, rec: ContainerRecord, detach_keys: str | None = None
                   ) -> StdinWriter | None:
        """A writer (its write() says when the detach keys were typed; the caller closes it)
        to the stdin of a running container started detached with -i (its monitor keeps it
        open, and passes it to a tty's console: container/attach.py); None for any other
        container, whose stdin nobody can join (an attached run's is its caller's).
        detach_keys: Docker's form (default the container's --detach-keys, else
        ctrl-p,ctrl-q). Raises UsageError for bad keys."""
        from pyminidocker.container import attach

        keys = attach.parse_detach_keys(detach_keys or rec.host.get("detach_keys")
                                        or attach.DEFAULT_DETACH_KEYS)
        if not rec.open_stdin or rec.state.status != "running":
            return None
        return attach.open_stdin(os.path.join(self.store.containers.path(rec.id), "stdin"),
                                 keys)

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

    def containers(self, all: bool = True) -> list[ContainerRecord]:
        """The containers (only the running ones unless all), newest first; the unreadable
        ones are in corrupt_containers()."""
        recs = sorted(self.runtime.list(), key=lambda r: r.created, reverse=True)
        return recs if all else [r for r in recs if r.state.status == "running"]

    def container_views(self) -> list[ContainerRecord]:
        """containers(all=True) for a long-lived front end that lists often (the API server's
        `ps`): a stopped container whose record files are unchanged since the last call is
        the record read then, not read and parsed again. The records are for reading only:
        change one and the next call may return it as changed."""
        from pyminidocker.errors import CorruptRecord

        store = self.store.containers
        store.corrupt = {}
        views: dict[str, tuple[tuple[int, ...], ContainerRecord]] = {}
        for cid in store.ids():
            stamp = _stamp(store.path(cid))
            seen = self._views.get(cid)
            if seen is not None and stamp and seen[0] == stamp:
                views[cid] = seen
                continue
            try:
                rec = self.runtime.refresh(store.get(cid))
            except NotFound:
                continue  # removed meanwhile
            except CorruptRecord as e:
                store.corrupt[cid] = str(e)
                continue
            # a running one is reconciled on every call (its exit is in no record file yet)
            keep = rec.state.status not in ("running", "restarting") and stamp == \
                _stamp(store.path(cid))
            views[cid] = (stamp if keep else (), rec)
        self._views = views
        return sorted((rec for _, rec in views.values()), key=lambda r: r.created,
                      reverse=True)

    def corrupt_containers(self) -> list[str]:
        """One message for each container whose record cannot be read (after containers())."""
        return list(self.store.containers.corrupt.values())

    def prune_containers(self, keep: Callable[[list[ContainerRecord]], list[ContainerRecord]]
                         | None = None) -> list[str]:
        """Remove every container that is not running (of those, the ones `keep` returns:
        Docker's prune filters); their ids."""
        stopped = [r for r in self.runtime.list() if r.state.status != "running"]
        removed = []
        for rec in keep(stopped) if keep is not None else stopped:
            self.runtime.remove(rec)
            removed.append(rec.id)
        return removed

    def log_path(self, rec: ContainerRecord) -> str:
        """The container's json-file log (written by its monitor, or by the relay of an
        attached start)."""
        return os.path.join(self.store.containers.path(rec.id), f"{rec.id}-json.log")

    def logs(self, rec: ContainerRecord, tail: int | None = None,
             follow: bool = False) -> Iterator[dict[str, str]]:
        """The container's log records ({"log", "stream", "time"}), the last `tail` of them;
        with follow, then what it writes until it has exited and everything it wrote was
        read. Nothing for a container that never started."""
        import time

        if (rec.host.get("log") or {}).get("driver") == "none":
            raise PmdError("configured logging driver does not support reading")
        path = self.log_path(rec)
        older = b""  # what --log-opt max-file kept of it (path.N is the oldest), then path
        for n in range(int((rec.host.get("log") or {}).get("max_file") or 1) - 1, 0, -1):
            try:
                with open(f"{path}.{n}", "rb") as old:
                    older += old.read()
            except FileNotFoundError:
                continue
        f = self._open_log(rec, path, follow)  # held open while following
        if f is None:
            return
        with f:
            records, rest = _log_records(older + f.read())
            if tail is not None:
                records = records[max(0, len(records) - tail):] if tail > 0 else []
            yield from records
            if not follow:
                return
            while True:
                # Look at the state before reading, so that what the container wrote before
                # it exited is read after we saw it exit: nothing is missed at the end.
                running = self.runtime.running(rec)
                chunk = f.read()
                if chunk:
                    records, rest = _log_records(rest + chunk)
                    yield from records
                elif not running:
                    return
                else:
                    time.sleep(0.1)

    def _open_log(self, rec: ContainerRecord, path: str, follow: bool) -> Any:
        """The log file, None if there is none; with follow, that of a container started a
        moment ago too, once its monitor has made it (a client's start then logs?follow)."""
        import time

        while True:
            running = follow and self.runtime.running(rec)
            try:
                return open(path, "rb")
            except FileNotFoundError:
                if not running:
                    return None
            time.sleep(0.02)

    def inspect_container(self, rec: ContainerRecord) -> dict[str, Any]:
        """Docker's `container inspect` object of the container (every key Docker 20.10
        has: State, Config with the image's Env, HostConfig, NetworkSettings, Mounts...)."""
        from pyminidocker import dockerjson
        from pyminidocker.store.networks import NetworkStore

        try:
            cfg = self.image_config(self.store.images.lookup(rec.image)).get("config") or {}
        except PmdError:  # its image was removed (rmi -f): Docker shows the container's own
            cfg = {}
        ns = NetworkStore(self.store)
        nets = {}
        for name in {rec.host.network, *rec.host.networks, *rec.state.extra_networks}:
            try:
                nets[name] = ns.get(name)
            except PmdError:
                continue
        doc = dockerjson.container(rec, self.store.containers.path(rec.id), cfg, nets,
                                   self.store.volumes.data_path)
        health = self.runtime.health(rec)  # as Docker: State.Health only with a healthcheck
        if health is not None:
            doc["State"]["Health"] = health
        return doc

    # ---- volumes --------------------------------------------------------------------------

    def create_volume(self, name: str | None = None, labels: dict[str, str] | None = None,
                      options: dict[str, str] | None = None, driver: str = "local") -> Volume:
        """A new volume (anonymous when name is None), or the one of that name. Raises
        UsageError (name, driver, options), StoreError."""
        from pyminidocker.store.volumes import create_volume

        vol = create_volume(self.store, name, labels, options, driver)
        self._event("volume", "create", vol.name, driver=vol.driver)
        return vol

    def volumes(self) -> list[Volume]:
        return self.store.volumes.all()

    def volume(self, name: str) -> Volume:
        """Raises NotFound."""
        return self.store.volumes.get(name)

    def volume_users(self) -> dict[str, list[str]]:
        """volume name -> the ids of the containers that mount it."""
        return self.store.volumes.users()

    def inspect_volume(self, vol: Volume) -> dict[str, Any]:
        """Docker's `volume inspect` object."""
        from pyminidocker.store.volumes import inspect_volume

        return inspect_volume(self.store, vol)

    def remove_volumes(self, names: list[str], force: bool = False) -> dict[str, Exception]:
        """Remove each; name -> error (NotFound, Conflict when in use) for those that failed."""
        from pyminidocker.store.volumes import remove_volumes

        failed = remove_volumes(self.store, names, force)
        for name in names:
            if name not in failed:
                self._event("volume", "destroy", name, driver="local")
        return failed

    def prune_volumes(self, labels: list[str] | None = None) -> tuple[list[str], int]:
        """Remove every volume no container uses (with these label filters): (names, bytes)."""
        from pyminidocker.store.volumes import prune_volumes

        names, size = prune_volumes(self.store, labels)
        for name in names:
            self._event("volume", "destroy", name, driver="local")
        return names, size

    # ---- networks -------------------------------------------------------------------------

    def create_network(self, name: str, subnet: str | None = None, gateway: str | None = None,
                       internal: bool = False,
                       labels: dict[str, str] | None = None) -> Network:
        """A user-defined bridge network (its bridge is made when a container joins).
        Raises UsageError, Conflict."""
        from pyminidocker.network import networks

        net = networks.create_network(self.store, name, subnet=subnet, gateway=gateway,
                                      internal=internal, labels=labels or {})
        self._event("network", "create", net.id, name=net.name, type=net.driver)
        return net

    def networks(self, warnings: list[str] | None = None) -> list[Network]:
        """The readable networks; a line naming each corrupt one is appended to warnings."""
        from pyminidocker.network import networks

        return networks.list_networks(self.store, warnings)

    def inspect_network(self, name: str) -> dict[str, Any]:
        """Docker's `network inspect` object. Raises NotFound."""
        from pyminidocker import dockerjson
        from pyminidocker.network import networks
        from pyminidocker.store.networks import NetworkStore

        if name == "bridge":  # there from the start, as Docker's, though recorded on first use
            self.default_network()
        raw = networks.inspect_network(self.store, name)
        members = {cid: {"Name": "", "IPv4Address": m["IPv4Address"]}
                   for cid, m in raw["Containers"].items()}
        doc = dockerjson.network(NetworkStore(self.store).get(raw["Name"]), members)
        doc["Options"].update(raw.get("Options") or {})
        return doc

    def default_network(self) -> Network:
        """The "bridge" network's record, made on first use. Raises PmdError (no free pool
        subnet), StoreError."""
        from pyminidocker.network import networks

        return networks.default_network(self.store, self.config)

    def remove_network(self, name: str, force: bool = False) -> Network | None:
        """Raises NotFound, Conflict (in use, or a predefined network), CorruptRecord (a
        corrupt record, without force; with force it is removed: None)."""
        from pyminidocker.network import networks

        net = networks.remove_network(self.store, name, force=force)
        if net is not None:
            self._event("network", "destroy", net.id, name=net.name, type=net.driver)
        return net

    def prune_networks(self) -> list[str]:
        """Remove the user-defined networks no container uses; their names."""
        from pyminidocker.network import networks

        ids = {n.name: n.id for n in networks.list_networks(self.store)}
        removed = networks.prune_networks(self.store)
        for name in removed:
            self._event("network", "destroy", ids.get(name, name), name=name, type="bridge")
        return removed

    def connect(self, container: str, network: str, aliases: list[str] | None = None) -> str:
        """Connect a container to a network (with its aliases there); its address there ("" if
        it is not running: it joins at its next start)."""
        rt = self.runtime
        rec = rt.get(container)
        address = rt.connect(rec, network, aliases)
        self._network_event("connect", rec.id, network)
        return address

    def disconnect(self, container: str, network: str) -> None:
        rt = self.runtime
        rec = rt.get(container)
        rt.disconnect(rec, network)
        self._network_event("disconnect", rec.id, network)

    def _network_event(self, action: str, container: str, network: str) -> None:
        from pyminidocker.store.networks import NetworkStore

        try:
            net = NetworkStore(self.store).get(network)
            actor, name, kind = net.id, net.name, net.driver
        except PmdError:
            actor, name, kind = network, network, "bridge"
        self._event("network", action, actor, container=container, name=name, type=kind)

    # ---- events ---------------------------------------------------------------------------

    def events(self, since: float | None = None,
               filters: dict[str, list[str]] | None = None) -> EventReader:
        """A reader of the event log (store/events.py) from `since` (seconds since the epoch;
        None: what comes from now on) with Docker's event filters; its read() returns what
        was logged since its last call and never waits. Raises PmdError (a filter key events
        do not take)."""
        from pyminidocker.store import events

        for key in filters or {}:
            if key not in events.EVENT_FILTERS:
                raise PmdError(f"invalid filter '{key}'")
        return events.Reader(self.store.root, since, filters)

    def notice_exits(self) -> None:
        """Record the exit of each container that has ended (its `die` event). No daemon sees
        an exit as it happens: a follower of the events calls this now and then."""
        self.runtime.list()

    # ---- system ---------------------------------------------------------------------------

    def version(self) -> dict[str, str]:
        """The engine's version data (Docker's /version subset)."""
        import platform

        from pyminidocker import __version__

        return {"Version": __version__, "ApiVersion": "1.43", "Os": "linux",
                "Arch": platform.machine(), "KernelVersion": platform.release(),
                "GoVersion": "", "PythonVersion": platform.python_version()}

    def info(self) -> dict[str, Any]:
        """The engine's state (Docker's /info subset): counts, store root, drivers."""
        recs = self.runtime.list()
        running = sum(r.state.status == "running" for r in recs)
        return {"Containers": len(recs), "ContainersRunning": running,
                "ContainersStopped": len(recs) - running, "Images": len(self.images()),
                "Driver": "overlay2", "DockerRootDir": os.fspath(self.config.root),
                "CgroupVersion": "1", "OperatingSystem": "linux", **self.version()}

    def check(self, repair: bool = False, full: bool = False) -> list[tuple[str, str | None]]:
        """`system check`: each problem found (container/check.py), with what its repair did
        (None: not repaired, because repair was not asked for, or not possible)."""
        from pyminidocker.container import check

        problems = check.check(self.store, full=full)
        if not repair:
            return [(p.what, None) for p in problems]
        return [(p.what, done) for p, done in check.repair(self.store, problems)]

    def reset(self) -> list[str]:
        """Remove every container of this store, then everything the engine added to the host
        for networking (bridges, PMD-* rules) whichever store added it, and the engine's parent
        cgroups once empty (other stores' containers are kept). The removed containers' ids."""
        from pathlib import Path

        from pyminidocker.container import cgroups
        from pyminidocker.network import bridge

        rt = self.runtime
        removed = []
        for rec in rt.list():
            rt.remove(rec, force=True)
            removed.append(rec.id)
        bridge.reset_host(self.store)
        live = {p.name for p in Path("/sys/fs/cgroup").glob("*/pyminidocker/*") if p.is_dir()}
        live |= {p.name for p in Path("/sys/fs/cgroup").glob("pyminidocker/*") if p.is_dir()}
        cgroups.cleanup_stale(live, remove_parent=True)
        return removed


def _shell(argv: list[str]) -> str:
    """How Docker's history shows the command a committed container ran."""
    return "/bin/sh -c " + " ".join(argv) if argv else ""


def _stamp(d: str) -> tuple[int, ...]:
    """What changes when a container's record files are rewritten (atomic_write: a new inode,
    a new mtime); () if one is missing."""
    out: list[int] = []
    for name in ("config.json", "state.json"):
        try:
            st = os.stat(os.path.join(d, name))
        except OSError:
            return ()
        out += (st.st_ino, st.st_mtime_ns, st.st_size)
    return tuple(out)


def _log_records(data: bytes) -> tuple[list[dict[str, str]], bytes]:
    """The json-file records in data, and the incomplete last line (a record being written)."""
    import json

    lines = data.split(b"\n")
    records = []
    for line in lines[:-1]:
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # not ours; Docker's reader skips what it cannot decode too
        if isinstance(rec, dict) and isinstance(rec.get("log"), str):
            records.append(rec)
    return records, lines[-1]
