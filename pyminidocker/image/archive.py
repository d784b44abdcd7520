"""Images in and out of tar files: `save`, `load`, `import`, `export`, `commit`.

Every tar that Python reads or writes goes through libarchive (libarchive-c); a layer's own tar
is extracted by the C extractor, as a pull's layers are, and registered the way a pull
registers them: verified in a staging directory under a lock, flushed, committed under the
store lock (store.layers.commit), the image record last (pull.register_image), and on any
failure the layers already committed are dropped again (pull.rollback_layers).

An archive given to `load` is hostile: its entries are copied out one by one as plain files
(no entry name is ever used as a path: no `..`, no absolute names, no symlink leaving the
archive, no device or fifo), metadata files are bounded in size, every blob named by its
digest is checked against it, and every layer's diff-id against the image config.

Layers are kept extracted, not as the tars they came in, so `save` writes each layer anew
(sorted, numeric owners, whole-second times). The tar of a layer this engine made (import,
commit, load of its own save) is the same again and the image keeps its id; a pulled layer's
tar was made by another tool, so its new tar has another diff-id and the saved config lists
the new ones: the saved image has a new id (its content, history and config are the same).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from typing import Any

import libarchive
from libarchive.exception import ArchiveError

from pyminidocker import native as _native
from pyminidocker.errors import (
    LayerError,
    NotFound,
    PmdError,
    UnsupportedMedia,
    VerificationError,
    suppress,
)
from pyminidocker.image.changes import (  # engine.py's import and commit use them from here
    apply_changes as apply_changes,
)
from pyminidocker.image.changes import new_config as new_config
from pyminidocker.image.manifest import is_index, layer_compression
from pyminidocker.image.platforms import host_platform, select_manifest
from pyminidocker.image.pull import layer_error, parse_config, register_image, rollback_layers
from pyminidocker.image.tarwrite import CHUNK, DIR, Sink, TarWriter, export_tree, tar_layer
from pyminidocker.native.extract import COMPRESS_GZIP, COMPRESS_NONE, COMPRESS_ZSTD, layer_extract
from pyminidocker.reference import parse_reference
from pyminidocker.store import Store
from pyminidocker.store.images import ImageRecord
from pyminidocker.store.layers import LayerRecord, chain_id, chain_ids, now_iso, tree_digest

_META_MAX = 16 << 20       # manifest.json, index.json, a config or a manifest: far above real ones
_ENTRIES_MAX = 100_000     # entries of an image archive (a layer is one entry)
_LAYERS_MAX = 125          # Docker's layer store refuses deeper images (its maxDepth)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _bad(message: str) -> LayerError:
    return LayerError(f"invalid image archive: {message}")


# ---- reading a hostile archive --------------------------------------------------------------

def _clean(name: str) -> str:
    """An archive member's name, normalised; refuses absolute names and `..`."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise _bad(f"entry {name!r} points outside the archive")
    return "/".join(parts)


def unpack(fd: int, dest: str) -> dict[str, str]:
    """Copy the regular files of the tar read from fd (compressed or not) into dest, as
    numbered files; returns member name -> file. A symlink or hard link to a member (old
    `docker save` links identical layers) maps to that member's file. Raises LayerError."""
    files: dict[str, str] = {}
    links: dict[str, str] = {}
    try:
        with libarchive.fd_reader(fd, format_name="tar") as arc:
            for n, entry in enumerate(arc):
                if n >= _ENTRIES_MAX:
                    raise _bad(f"more than {_ENTRIES_MAX} entries")
                name = _clean(entry.pathname)
                if entry.isdir:
                    continue
                if entry.issym:
                    target = entry.linkpath or ""
                    base = name.rsplit("/", 1)[0] if "/" in name else ""
                    if target.startswith("/"):
                        raise _bad(f"symlink {name} -> {target} points outside the archive")
                    links[name] = _clean_link(f"{base}/{target}" if base else target, name)
                    continue
                if entry.islnk:
                    links[name] = _clean(entry.linkpath or "")
                    continue
                if not entry.isreg:
                    raise _bad(f"{name} is not a regular file")
                out = os.path.join(dest, str(len(files)))
                with open(out, "xb") as f:
                    for block in entry.get_blocks(CHUNK):
                        f.write(block)
                files[name] = out
    except ArchiveError as e:
        raise _bad(_archive_message(e)) from None
    except OSError as e:
        raise layer_error(e, "archive") from None
    for name in links:
        target, hops = name, 0
        while target in links:
            target, hops = links[target], hops + 1
            if hops > 16:
                raise _bad(f"link loop at {name}")
        if target not in files:
            raise _bad(f"link {name} points to {target}, which is not in the archive")
        files[name] = files[target]
    if not files:
        raise _bad("it holds no files")
    return files


def _clean_link(joined: str, name: str) -> str:
    parts: list[str] = []
    for p in joined.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                raise _bad(f"symlink {name} points outside the archive")
            parts.pop()
        else:
            parts.append(p)
    return "/".join(parts)


def _archive_message(e: ArchiveError) -> str:
    msg = str(getattr(e, "msg", "") or e).strip()
    if "truncated" in msg.lower() or "premature" in msg.lower():
        return "it is truncated"
    if "unrecognized archive format" in msg.lower():
        return "not a tar archive"
    return msg.split(" (errno=")[0] or "unreadable"


def _read_meta(files: dict[str, str], name: str) -> bytes:
    path = files.get(name)
    if path is None:
        raise _bad(f"{name} is missing")
    if os.path.getsize(path) > _META_MAX:
        raise _bad(f"{name} is larger than {_META_MAX >> 20} MiB")
    with open(path, "rb") as f:
        return f.read()


def _json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise _bad(f"{name} is not valid JSON: {e}") from None


def _named_digest(name: str) -> str | None:
    """The digest a member's name claims: blobs/sha256/HEX, or HEX.json (a config in the
    older docker-archive form)."""
    parts = name.split("/")
    hexpart = None
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256":
        hexpart = parts[2]
    elif len(parts) == 1 and parts[0].endswith(".json"):
        hexpart = parts[0][:-5]
    if hexpart and len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart):
        return "sha256:" + hexpart
    return None


# ---- registering layers and images ----------------------------------------------------------

class Ingest:
    """Layers from tar files into the store, as a pull registers them; rollback() drops what
    it committed when the whole operation fails."""

    def __init__(self, store: Store):
        self.store = store
        self.committed: list[str] = []

    def layer(self, path: str, parent: str | None, diff_id: str | None = None,
              digest: str | None = None, size: int | None = None,
              media_type: str = "") -> tuple[str, str]:
        """Register the layer tar at path (plain, gzip or zstd) over the layer parent; returns
        (diff-id, chain-id). diff_id, digest, size: what it must be (VerificationError if
        not). Raises LayerError for a hostile or corrupt tar, StoreError."""
        if diff_id is not None:
            chain = chain_id(parent, diff_id)
            if self.store.layers.exists(chain):
                return diff_id, chain
        with open(path, "rb") as f:
            magic = f.read(4)
        comp = (COMPRESS_GZIP if magic[:2] == b"\x1f\x8b" else
                COMPRESS_ZSTD if magic == b"\x28\xb5\x2f\xfd" else COMPRESS_NONE)
        tag = "ingest-" + os.urandom(6).hex()
        lock = self.store.layer_lock(tag)
        lock.acquire()
        try:
            staging = self.store.layers.prepare(tag)
            try:
                return self._extract(path, staging, comp, parent, diff_id, digest, size,
                                     media_type)
            finally:
                if os.path.exists(staging):
                    self.store.discard(staging)
        finally:
            lock.release()

    def _extract(self, path: str, staging: str, comp: int, parent: str | None,
                 diff_id: str | None, digest: str | None, size: int | None,
                 media_type: str) -> tuple[str, str]:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            res = layer_extract(fd, os.path.join(staging, "diff"), comp)
        except OSError as e:
            raise layer_error(e, digest or diff_id or "of the archive") from None
        finally:
            os.close(fd)
        if digest is not None and res.compressed_digest != digest:
            raise VerificationError(f"layer {digest} is corrupt: its content has digest "
                                    f"{res.compressed_digest}")
        if size is not None and res.compressed_size != size:
            raise VerificationError(f"layer {digest} has {res.compressed_size} bytes, its "
                                    f"descriptor says {size}")
        if diff_id is not None and res.diff_id != diff_id:
            raise VerificationError(f"layer {digest or ''} uncompresses to {res.diff_id}, "
                                    f"but the image config says {diff_id}".replace("  ", " "))
        chain = chain_id(parent, res.diff_id)
        try:  # for `system check --full`, as a pull records it
            tree = tree_digest(os.path.join(staging, "diff"))
        except OSError as e:
            raise layer_error(e, digest or diff_id or "of the archive") from None
        self.store.layers.flush(staging)
        record = LayerRecord(
            id=chain, parent=parent, diff_id=res.diff_id,
            compressed_digest=res.compressed_digest, compressed_size=res.compressed_size,
            uncompressed_size=res.uncompressed_size,
            media_type=media_type or OCI_LAYER, created=now_iso(), tree_digest=tree)
        with self.store.layer_lock(chain), self.store.lock():
            if self.store.layers.commit(staging, record):
                self.committed.append(chain)
        return res.diff_id, chain

    def image(self, config_bytes: bytes, layers: list[tuple[str, str | None, int | None, str]],
              names: list[str]) -> str:
        """Register an image from its config and its layer files ((path, digest, size,
        media type) bottom first, digest/size None when unknown); returns the image id."""
        image_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        config = _config(config_bytes, image_digest)
        diff_ids = [str(d) for d in config["rootfs"]["diff_ids"]]
        if len(diff_ids) > _LAYERS_MAX:
            raise _bad(f"image {image_digest} has {len(diff_ids)} layers: max depth exceeded "
                       f"({_LAYERS_MAX}, as Docker's)")
        if len(diff_ids) != len(layers):
            raise VerificationError(f"image {image_digest} lists {len(diff_ids)} diff-ids for "
                                    f"{len(layers)} layers")
        parent = None
        for (path, digest, size, media_type), diff_id in zip(layers, diff_ids):
            _, parent = self.layer(path, parent, diff_id, digest, size, media_type)
        chains = chain_ids(diff_ids)
        image_id = image_digest.removeprefix("sha256:")
        with self.store.lock():
            missing = [c for c in chains if not self.store.layers.exists(c)]
            if missing:
                raise NotFound(f"layer {missing[0]} was removed while the image was loaded; "
                               "try again")
            register_image(self.store, image_id, "", names, chains, config,
                           {image_digest: config_bytes})
        return image_id

    def rollback(self) -> None:
        rollback_layers(self.store, self.committed)


def _config(data: bytes, digest: str) -> dict[str, Any]:
    try:
        return parse_config(data, digest)
    except UnsupportedMedia as e:
        raise _bad(str(e)) from None


def _tag_name(tag: str) -> str:
    """A RepoTags entry ("busybox:latest") as the store names it."""
    try:
        ref = parse_reference(tag)
    except PmdError:
        raise _bad(f"invalid tag {tag!r}") from None
    if ref.digest:
        raise _bad(f"invalid tag {tag!r}: a digest")
    return f"{ref.name}:{ref.tag or 'latest'}"


# ---- load -----------------------------------------------------------------------------------

class Loaded:
    """What `load` registered: (image id, names given) for each image of the archive."""

    def __init__(self) -> None:
        self.images: list[tuple[str, list[str]]] = []


def load(store: Store, fd: int) -> Loaded:
    """Load a docker-archive (`docker save`, `skopeo copy docker-archive:`) or OCI-layout tar
    read from fd. All or nothing: a bad archive leaves the store as it was. Raises LayerError
    (a malformed or hostile archive), VerificationError, UnsupportedMedia, StoreError."""
    store.ensure()
    tag = "load-" + os.urandom(6).hex()
    lock = store.layer_lock(tag)
    lock.acquire()
    ingest = Ingest(store)
    loaded = Loaded()
    staging = store.new_staging(tag)
    try:
        files = unpack(fd, staging)
        if "manifest.json" in files:
            plans = _docker_plans(files)
        elif "index.json" in files:
            plans = _oci_plans(files)
        else:
            raise _bad("it has neither manifest.json nor index.json")
        for config_bytes, layers, names in plans:
            image_id = ingest.image(config_bytes, layers, names)
            loaded.images.append((image_id, names))
    except BaseException:
        ingest.rollback()
        raise
    finally:
        store.discard(staging)
        lock.release()
    return loaded


Plan = tuple[bytes, list[tuple[str, str | None, int | None, str]], list[str]]


def _docker_plans(files: dict[str, str]) -> list[Plan]:
    manifest = _json(_read_meta(files, "manifest.json"), "manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise _bad("manifest.json lists no image")
    plans: list[Plan] = []
    for item in manifest:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str) \
                or not isinstance(item.get("Layers"), list):
            raise _bad("manifest.json: an entry without Config or Layers")
        if item.get("LayerSources"):
            raise _bad("foreign layers (LayerSources) are not supported")
        cfg_name = _clean(item["Config"])
        config_bytes = _read_meta(files, cfg_name)
        claimed = _named_digest(cfg_name)
        actual = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        if claimed and claimed != actual:
            raise VerificationError(f"config {cfg_name} is corrupt: its content has digest "
                                    f"{actual}")
        layers: list[tuple[str, str | None, int | None, str]] = []
        for name in item["Layers"]:
            if not isinstance(name, str):
                raise _bad("manifest.json: a layer name is not a string")
            clean = _clean(name)
            if clean not in files:
                raise _bad(f"layer {name} is missing")
            layers.append((files[clean], _named_digest(clean), None, ""))
        tags = item.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _bad("manifest.json: RepoTags is not a list of names")
        plans.append((config_bytes, layers, [_tag_name(t) for t in tags]))
    return plans


def _blob(files: dict[str, str], desc: Any, meta: bool = True) -> tuple[str, bytes]:
    """The member of an OCI layout a descriptor names, checked; (path, content if meta)."""
    if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
        raise _bad("a descriptor without a digest")
    digest = desc["digest"]
    alg, _, hexpart = digest.partition(":")
    if alg != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef"
                                                        for c in hexpart):
        raise _bad(f"unsupported digest {digest!r}")
    name = f"blobs/sha256/{hexpart}"
    if name not in files:
        raise _bad(f"blob {digest} is missing")
    if not meta:
        return files[name], b""
    data = _read_meta(files, name)
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise VerificationError(f"blob {digest} is corrupt: its content has digest {actual}")
    if isinstance(desc.get("size"), int) and desc["size"] != len(data):
        raise VerificationError(f"blob {digest} has {len(data)} bytes, its descriptor says "
                                f"{desc['size']}")
    return files[name], data


def _oci_plans(files: dict[str, str]) -> list[Plan]:
    index = _json(_read_meta(files, "index.json"), "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise _bad("index.json has no manifests")
    plans: list[Plan] = []
    for desc in index["manifests"]:
        names = _oci_names(desc)
        _, data = _blob(files, desc)
        doc = _json(data, desc["digest"])
        depth = 0
        while is_index(str(doc.get("mediaType") or desc.get("mediaType") or "")) or \
                ("manifests" in doc and "layers" not in doc):
            depth += 1
            if depth > 4:
                raise _bad("index nesting is too deep")
            desc = select_manifest(doc.get("manifests") or [], host_platform())
            _, data = _blob(files, desc)
            doc = _json(data, desc["digest"])
        if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers"), list):
            raise _bad(f"manifest {desc['digest']} has no config or layers")
        _, config_bytes = _blob(files, doc["config"])
        layers: list[tuple[str, str | None, int | None, str]] = []
        for ld in doc["layers"]:
            path, _ = _blob(files, ld, meta=False)
            media_type = str(ld.get("mediaType", ""))
            layer_compression(media_type)  # refuses what is not a layer type
            size = ld.get("size") if isinstance(ld.get("size"), int) else None
            layers.append((path, ld["digest"], size, media_type))
        plans.append((config_bytes, layers, names))
    return plans


def _oci_names(desc: Any) -> list[str]:
    ann = desc.get("annotations") if isinstance(desc, dict) else None
    if not isinstance(ann, dict):
        return []
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = ann.get(key)
        if isinstance(value, str) and value:
            with suppress(PmdError):
                ref = parse_reference(value)
                # a bare tag ("latest") names no repository: skopeo's oci: layouts use it
                if ref.tag and ("/" in value or ":" in value):
                    return [f"{ref.name}:{ref.tag}"]
    return []


# ---- save -----------------------------------------------------------------------------------

class _SavedImage:
    def __init__(self, config: bytes, layers: list[tuple[str, int]], names: list[str]):
        self.config = config
        self.config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        self.layers = layers  # (digest, size)
        self.names = names


def save(store: Store, images: list[tuple[ImageRecord, list[str]]], sink: Sink) -> None:
    """Write the images (each with the names to give it) as one archive to sink, in Docker
    25's form: a docker-archive (manifest.json, repositories) that is also an OCI layout
    (index.json, oci-layout, blobs/sha256/*). Raises StoreError, NotFound."""
    tag = "save-" + os.urandom(6).hex()
    lock = store.layer_lock(tag)
    lock.acquire()
    staging = store.new_staging(tag)
    try:
        blobs: dict[str, str] = {}      # digest -> file
        tarred: dict[str, tuple[str, str, int]] = {}  # chain-id -> (file, digest, size)
        saved: list[_SavedImage] = []
        for rec, names in images:
            config_bytes, layers = image_tars(store, rec, staging, tarred)
            for path, digest, _ in layers:
                blobs.setdefault(digest, path)
            saved.append(_SavedImage(config_bytes, [(d, n) for _, d, n in layers], names))
        _write_archive(saved, blobs, sink)
    finally:
        store.discard(staging)
        lock.release()


def image_tars(store: Store, rec: ImageRecord, staging: str,
               tarred: dict[str, tuple[str, str, int]]) -> tuple[bytes, list[tuple[str, str, int]]]:
    """The image's layers as tars in staging ((file, digest, size) bottom first; `tarred`
    keeps those made already, by chain-id) and its config, whose diff-ids are those of the
    tars (see the module docstring). Raises StoreError, LayerError."""
    config = store.images.config(rec)
    layers: list[tuple[str, str, int]] = []
    if rec.layer:
        for layer in reversed(list(store.layers.chain(rec.layer))):
            if layer.id not in tarred:
                path = os.path.join(staging, f"layer{len(tarred)}")
                try:
                    digest = tar_layer(store.layers.diff_path(layer.id), path)
                except OSError as e:
                    raise layer_error(e, layer.id) from None
                tarred[layer.id] = (path, digest, os.path.getsize(path))
            layers.append(tarred[layer.id])
    config_bytes = store.images.big_data(rec, rec.config_key)
    new_ids = [d for _, d, _ in layers]
    if list(config.get("rootfs", {}).get("diff_ids", [])) != new_ids:
        config = copy.deepcopy(config)
        config["rootfs"]["diff_ids"] = new_ids
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
    return config_bytes, layers


def _write_archive(saved: list[_SavedImage], blobs: dict[str, str], sink: Sink) -> None:
    with TarWriter(sink, hashed=False) as tar:
        tar.add("blobs/", DIR, 0o755)
        tar.add("blobs/sha256/", DIR, 0o755)
        written: set[str] = set()

        def blob(digest: str, content: bytes | None = None) -> None:
            if digest in written:
                return
            written.add(digest)
            name = "blobs/sha256/" + digest.removeprefix("sha256:")
            if content is None:
                tar.add_file(name, blobs[digest])
            else:
                tar.add_bytes(name, content)

        index: list[dict[str, Any]] = []
        docker_manifest: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        for img in saved:
            for digest, _ in img.layers:
                blob(digest)
            blob(img.config_digest, img.config)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": img.config_digest,
                           "size": len(img.config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s}
                           for d, s in img.layers],
            }, separators=(",", ":")).encode()
            mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            blob(mdigest, manifest)
            desc = {"mediaType": OCI_MANIFEST, "digest": mdigest, "size": len(manifest)}
            tags = []
            for name in img.names:
                ref = parse_reference(name)
                tags.append(ref.familiar)
                index.append({**desc, "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": ref.tag or "latest"}})
                if img.layers:
                    top = img.layers[-1][0].removeprefix("sha256:")
                    repositories.setdefault(ref.familiar_name, {})[ref.tag or "latest"] = top
            if not img.names:
                index.append(desc)
            docker_manifest.append({
                "Config": "blobs/sha256/" + img.config_digest.removeprefix("sha256:"),
                "RepoTags": tags or None,
                "Layers": ["blobs/sha256/" + d.removeprefix("sha256:") for d, _ in img.layers],
            })
        tar.add_bytes("index.json", json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}).encode())
        tar.add_bytes("manifest.json", json.dumps(docker_manifest).encode())
        tar.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if repositories:
            tar.add_bytes("repositories", json.dumps(repositories).encode())


# ---- import, export, commit -----------------------------------------------------------------

def image_from_layer(store: Store, layer_tar: str, base: ImageRecord | None,
                     config: dict[str, Any], names: list[str]) -> str:
    """Register the layer tar at layer_tar over base's layers and an image with `config`
    (whose last diff-id is filled in here); returns the image id. All or nothing."""
    ingest = Ingest(store)
    try:
        diff_id, chain = ingest.layer(layer_tar, base.layer if base else None)
        config["rootfs"]["diff_ids"][-1] = diff_id
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        image_id = hashlib.sha256(config_bytes).hexdigest()
        chains = [*(c.id for c in reversed(list(store.layers.chain(base.layer))))] \
            if base and base.layer else []
        chains.append(chain)
        with store.lock():
            register_image(store, image_id, "", names, chains, config,
                           {"sha256:" + image_id: config_bytes})
        return image_id
    except BaseException:
        ingest.rollback()
        raise


def export_layers(store: Store, lowers: list[str], sink: Sink) -> None:
    """The filesystem the layers `lowers` (top first) make, merged by a read-only overlay
    mounted for the purpose, as a tar to sink. Raises OSError, StoreError."""
    tag = "export-" + os.urandom(6).hex()
    with store.layer_lock(tag):
        staging = store.new_staging(tag)
        mnt = os.path.join(staging, "merged")
        os.mkdir(mnt, 0o700)
        try:
            if len(lowers) == 1:  # overlayfs wants two layers without an upper one
                empty = os.path.join(staging, "empty")
                os.mkdir(empty, 0o755)
                lowers = [*lowers, empty]
            _native.overlay_mount(lowers, mnt, readonly=True)
            try:
                export_tree(mnt, sink)
            finally:
                _native.umount(mnt, _native.MNT_DETACH)
        finally:
            store.discard(staging)
