"""Layer records: layers/<chain-id hex>/{diff,work,merged,layer.json}.

A layer is identified by its chain-id (OCI image-spec config.md): the bottom layer's chain-id is
its diff-id, every other is sha256("<parent chain-id> <diff-id>"). So one directory serves every
image that shares the same stack of layers below and including it.
"""
from __future__ import annotations

import os
import time

from pyminidocker.errors import StoreError
from pyminidocker.record import asdict, dataclass
from pyminidocker.store.files import fsync_dir, read_json, store_error, write_json

TYPE_CHECKING = False  # typing is not imported at run time: the start path

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pyminidocker.store import Store


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain-id of each layer of an image, bottom first (OCI image-spec config.md)."""
    import hashlib

    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


@dataclass
class LayerRecord:
    id: str                 # chain-id, "sha256:<hex>"
    parent: str | None      # parent chain-id
    diff_id: str
    compressed_digest: str
    compressed_size: int
    uncompressed_size: int
    media_type: str
    created: str


def _hex(chain_id: str) -> str:
    return chain_id.removeprefix("sha256:")


class LayerStore:
    def __init__(self, store: Store):
        self.store = store

    def path(self, chain_id: str) -> str:
        return os.path.join(self.store.layers_dir, _hex(chain_id))

    def diff_path(self, chain_id: str) -> str:
        return os.path.join(self.path(chain_id), "diff")

    def init_path(self, chain_id: str) -> str:
        """The init layer of the images whose top layer this is: the mount points their
        containers need that the image lacks (made by the runtime, once; goes with the layer)."""
        return os.path.join(self.path(chain_id), "init")

    def exists(self, chain_id: str) -> bool:
        return os.path.exists(os.path.join(self.path(chain_id), "layer.json"))

    def get(self, chain_id: str) -> LayerRecord:
        """Raises FileNotFoundError if the layer is not in the store, StoreError if corrupt."""
        data = read_json(os.path.join(self.path(chain_id), "layer.json"))
        try:
            return LayerRecord(**data)
        except TypeError as e:
            raise StoreError(f"corrupt layer record {chain_id}: {e}") from None

    def all_ids(self) -> list[str]:
        try:
            return sorted("sha256:" + n for n in os.listdir(self.store.layers_dir)
                          if not n.startswith("."))
        except FileNotFoundError:
            return []

    def chain(self, top: str) -> Iterator[LayerRecord]:
        """The layer `top` and its parents, top first. Raises StoreError if one is missing."""
        cur: str | None = top
        while cur:
            try:
                rec = self.get(cur)
            except FileNotFoundError:
                raise StoreError(f"layer {cur} is missing from the store") from None
            yield rec
            cur = rec.parent

    def prepare(self, chain_id: str) -> str:
        """A staging directory with an empty diff/ to extract the layer into.
        Caller holds store.layer_lock(chain_id)."""
        staging = self.store.new_staging(_hex(chain_id))
        try:
            diff = os.path.join(staging, "diff")
            os.mkdir(diff, 0o755)
            os.chmod(diff, 0o755)
        except OSError as e:
            self.store.discard(staging)
            raise store_error(e, "cannot prepare a layer directory") from None
        return staging

    def commit(self, staging: str, record: LayerRecord) -> bool:
        """Move an extracted staging directory into the store as layer record.id.

        Returns False (and discards staging) if the layer appeared meanwhile. The parent must
        already be in the store. Caller holds the store lock and store.layer_lock(record.id).
        Raises StoreError.
        """
        if self.exists(record.id):
            self.store.discard(staging)
            return False
        if record.parent and not self.exists(record.parent):
            raise StoreError(f"parent layer {record.parent} of {record.id} is not in the store")
        try:
            for sub in ("work", "merged"):
                os.makedirs(os.path.join(staging, sub), mode=0o700, exist_ok=True)
            write_json(os.path.join(staging, "layer.json"), asdict(record))
            fsync_dir(staging)
            os.rename(staging, self.path(record.id))
            fsync_dir(self.store.layers_dir)
        except OSError as e:
            raise store_error(e, f"cannot register layer {record.id}") from None
        return True

    def retire(self, chain_id: str) -> str:
        """Take the layer out of the store; returns the path to discard() after the lock.
        Caller holds the store lock."""
        return self.store.retire(self.path(chain_id))


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
