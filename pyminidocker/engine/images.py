"""The images' part of the engine API: pull, push, list, inspect, tag, remove, save/load,
import, commit, login. A part of
the Engine (pyminidocker/engine/__init__.py).
"""
from __future__ import annotations

import os

from pyminidocker.engine import EngineCore, _is_image_id
from pyminidocker.errors import NotFound, PmdError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from pyminidocker.engine import Engine
    from pyminidocker.image.pull import Progress, PullResult
    from pyminidocker.image.push import PushResult
    from pyminidocker.reference import Reference
    from pyminidocker.store.containers import ContainerRecord
    from pyminidocker.store.images import ImageRecord


class Images(EngineCore):
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

    def commit(self: Engine, rec: ContainerRecord, ref: str | None = None, message: str = "",  # type: ignore[misc]
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


def _shell(argv: list[str]) -> str:
    """How Docker's history shows the command a committed container ran."""
    return "/bin/sh -c " + " ".join(argv) if argv else ""


def registry_server(server: str | None) -> str:
    """The registry a login is kept for, as Docker names it: docker.io for Docker Hub's
    aliases, and host[:port] of a URL."""
    if not server:
        return "docker.io"
    s = server.removeprefix("https://").removeprefix("http://").rstrip("/")
    s = s.split("/", 1)[0]
    return "docker.io" if s in ("index.docker.io", "registry-1.docker.io") else s
