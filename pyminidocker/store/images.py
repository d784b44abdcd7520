"""Image records: images/<image-id>/images.json plus big-data files.

The image id is the hex of the config digest. Big data (the config under the key
"sha256:<config hex>", the manifest under "manifest") lives in files named after the key, or
"=" + base64(key) when the key has characters outside [.0-9a-z] (as containers-storage does).
A name ("repo:tag" or "repo@sha256:...") belongs to at most one image: assigning it to one takes
it from any other, as Docker moves tags.
"""
from __future__ import annotations

import os
import time

from pyminidocker import record
from pyminidocker.errors import Conflict, CorruptRecord, NotFound, StoreError, store_error
from pyminidocker.record import atomic_write, dataclass, field, fsync_dir, write_json
from pyminidocker.reference import familiar
from pyminidocker.store.files import read_bytes, read_json

TYPE_CHECKING = False  # typing is not imported at run time: the start path

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyminidocker.store import Store

# Sets, not re: re is not imported on the start path (it costs milliseconds).
_PLAIN_KEY = frozenset(".0123456789abcdefghijklmnopqrstuvwxyz")
_HEX = frozenset("0123456789abcdef")


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(data: bytes) -> str:
    """Standard base64 (RFC 4648, padded): binascii would be one more extension module to
    load on the start path, which names a config's file with it (a key of ~71 bytes)."""
    out = []
    for i in range(0, len(data), 3):
        chunk = data[i:i + 3]
        n = int.from_bytes(chunk + b"\0" * (3 - len(chunk)), "big")
        quad = "".join(_B64[(n >> shift) & 63] for shift in (18, 12, 6, 0))
        out.append(quad[:len(chunk) + 1] + "=" * (3 - len(chunk)))
    return "".join(out)


def big_data_name(key: str) -> str:
    """The file name for a big-data key (see module docstring)."""
    if key and _PLAIN_KEY.issuperset(key):
        return key
    name = "=" + _b64(key.encode())
    # Standard base64 may produce '/', which cannot be in a file name: never for our keys
    # (digests and plain words), but an arbitrary key must not escape the directory.
    return name.replace("/", "_")


@dataclass
class ImageRecord:
    id: str                              # config digest hex
    digest: str                          # manifest (or index) digest, "sha256:..."
    names: list[str]
    layer: str | None                    # top layer chain-id, None for an image without layers
    big_data_names: list[str] = field(default_factory=list)
    big_data_sizes: dict[str, int] = field(default_factory=dict)
    big_data_digests: dict[str, str] = field(default_factory=dict)
    created: str = ""
    loaded: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "digest": self.digest, "names": self.names, "layer": self.layer,
            "big-data-names": self.big_data_names, "big-data-sizes": self.big_data_sizes,
            "big-data-digests": self.big_data_digests, "created": self.created,
            "loaded": self.loaded,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ImageRecord:
        try:
            return cls(
                id=d["id"], digest=d.get("digest", ""), names=list(d.get("names", [])),
                layer=d.get("layer"), big_data_names=list(d.get("big-data-names", [])),
                big_data_sizes=dict(d.get("big-data-sizes", {})),
                big_data_digests=dict(d.get("big-data-digests", {})),
                created=d.get("created", ""), loaded=d.get("loaded", ""),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise StoreError(f"corrupt image record: {e}") from None

    @property
    def config_key(self) -> str:
        return "sha256:" + self.id


# The class has a method named `list`: inside it, annotations need the builtin by another name.
List = list


class ImageStore:
    def __init__(self, store: Store):
        self.store = store
        self.corrupt: dict[str, str] = {}  # id -> message, as the last list() found
        # The container store registers a function returning the ids of images that
        # containers use, so that rmi refuses to remove them (see ImageStore.users).
        self.users: Callable[[], set[str]] = set

    def path(self, image_id: str) -> str:
        return os.path.join(self.store.images_dir, image_id)

    def get(self, image_id: str) -> ImageRecord:
        """Raises NotFound if there is no such image, StoreError if its record is corrupt."""
        try:
            return ImageRecord.from_json(read_json(os.path.join(self.path(image_id),
                                                                "images.json")))
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None
        except StoreError as e:
            raise CorruptRecord(f"image {image_id[:12]} has a corrupt record ({e}); "
                                "rmi -f removes it", image_id) from None

    def list(self) -> list[ImageRecord]:
        """The readable records; the unreadable ones are in self.corrupt (id -> message)."""
        out = []
        self.corrupt = {}
        try:
            ids = [n for n in os.listdir(self.store.images_dir) if not n.startswith(".")]
        except FileNotFoundError:
            return []
        for image_id in ids:
            try:
                out.append(self.get(image_id))
            except NotFound:
                continue  # removed concurrently
            except CorruptRecord as e:
                self.corrupt[image_id] = str(e)
        return out

    def remove_corrupt(self, image_id: str) -> str:
        """Take an image whose record cannot be read out of the store (its layers are then
        unused, unless a readable image shares them). Caller holds the store lock; returns the
        path to discard."""
        return self.store.retire(self.path(image_id))

    def big_data(self, rec: ImageRecord, key: str) -> bytes:
        try:
            return read_bytes(os.path.join(self.path(rec.id), big_data_name(key)))
        except FileNotFoundError:
            raise StoreError(f"image {rec.id[:12]} has no {key!r} data") from None

    def config(self, rec: ImageRecord) -> dict[str, Any]:
        try:
            return record.loads(self.big_data(rec, rec.config_key))
        except ValueError as e:
            raise StoreError(f"corrupt config of image {rec.id[:12]}: {e}") from None

    def lookup(self, ref: str) -> ImageRecord:
        """Find an image by name (normalised like Docker's), by id, or by a unique id prefix.

        Raises NotFound("No such image: ref"), or InvalidReference for malformed names that are
        not id prefixes either.
        """
        from pyminidocker.errors import InvalidReference
        from pyminidocker.reference import parse_reference

        images = self.list()
        # What the user typed is most often a stored name in its short form ("busybox",
        # "bb:latest"), which needs no parsing: matched as parse_reference would match it.
        for rec in images:
            for name in rec.names:
                short = familiar(name)
                if ref in (name, short) or ref + ":latest" in (name, short):
                    return rec
        name_error: InvalidReference | None = None
        try:
            r = parse_reference(ref)
        except InvalidReference as e:
            name_error = e
        else:
            wanted = str(r)
            for rec in images:
                if wanted in rec.names:
                    return rec
        prefix = ref.removeprefix("sha256:")
        m = 0 < len(prefix) <= 64 and _HEX.issuperset(prefix)
        if m:
            hits = [rec for rec in images if rec.id.startswith(prefix)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise Conflict(f"ambiguous image id prefix {ref!r}: {len(hits)} images match")
        if m:
            broken = [i for i in self.corrupt if i.startswith(prefix)]
            if len(broken) == 1:
                raise CorruptRecord(self.corrupt[broken[0]], broken[0])
        if name_error is not None and not m:
            raise name_error
        raise NotFound(f"No such image: {ref}")

    def add(self, rec: ImageRecord, big_data: dict[str, bytes]) -> None:
        """Create or replace the image rec.id with its big data, atomically; its names are
        taken from any other image. Caller holds the store lock. Raises StoreError."""
        rec.big_data_names = list(big_data)
        rec.big_data_sizes = {k: len(v) for k, v in big_data.items()}
        import hashlib

        rec.big_data_digests = {k: "sha256:" + hashlib.sha256(v).hexdigest()
                                for k, v in big_data.items()}
        rec.loaded = rec.loaded or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._take_names(rec.names, keep=rec.id)
        staging = self.store.new_staging("locked")
        try:
            for key, data in big_data.items():
                atomic_write(os.path.join(staging, big_data_name(key)), data)
            write_json(os.path.join(staging, "images.json"), rec.to_json())
            fsync_dir(staging)
            old = self.path(rec.id)
            dead = self.store.retire(old) if os.path.exists(old) else None
            os.rename(staging, old)
            fsync_dir(self.store.images_dir)
        except OSError as e:
            self.store.discard(staging)
            raise store_error(e, f"cannot register image {rec.id[:12]}") from None
        if dead:
            self.store.discard(dead)

    def set_names(self, rec: ImageRecord, names: List[str]) -> None:
        """Give rec exactly these names (taking them from other images). Caller holds the lock."""
        self._take_names(names, keep=rec.id)
        rec.names = list(dict.fromkeys(names))
        write_json(os.path.join(self.path(rec.id), "images.json"), rec.to_json())

    def _take_names(self, names: List[str], keep: str) -> None:
        # Removing a name from its old image before giving it to the new one means a crash in
        # between loses the tag (a re-pull or re-tag restores it) but never leaves it on two.
        wanted: set[str] = set(names)
        for other in self.list():
            if other.id != keep and wanted & set(other.names):
                other.names = [n for n in other.names if n not in wanted]
                write_json(os.path.join(self.path(other.id), "images.json"), other.to_json())

    def remove(self, rec: ImageRecord) -> str:
        """Take the image out of the store; returns the path to discard() after the lock.
        Caller holds the store lock."""
        return self.store.retire(self.path(rec.id))

    def used_layers(self) -> set[str]:
        """Chain-ids of every layer some image needs (its top layer and all parents)."""
        used: set[str] = set()
        for rec in self.list():
            if rec.layer:
                for layer in self.store.layers.chain(rec.layer):
                    if layer.id in used:
                        break
                    used.add(layer.id)
        return used

    def unused_layers(self) -> List[str]:
        used = self.used_layers()
        return [c for c in self.store.layers.all_ids() if c not in used]
