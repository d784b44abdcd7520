"""The push pipeline: image record → layer tars (gzip) → blobs the registry lacks → config →
manifest (Docker's schema 2, as `docker push` writes) under the tag.

Layers are kept extracted, so each is tarred again (archive.image_tars, the same tars `save`
writes) and gzipped with a zero mtime, so that the same layer gives the same blob; a blob the
registry has (HEAD) is not sent again. Library code: reports through `on_event` only.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from typing import Any

from pyminidocker.config import Config
from pyminidocker.errors import PmdError, UsageError, suppress
from pyminidocker.image.archive import image_tars
from pyminidocker.image.pull import Progress
from pyminidocker.image.registry import RegistryClient
from pyminidocker.record import dataclass
from pyminidocker.reference import Reference, parse_reference
from pyminidocker.store import Store
from pyminidocker.store.images import ImageRecord

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass(frozen=True)
class PushResult:
    tag: str
    digest: str
    size: int


def _gzip(src: str, dest: str) -> tuple[str, int]:
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dest, "xb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
            shutil.copyfileobj(fin, gz, 1 << 20)
    with open(dest, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest(), os.path.getsize(dest)


def _mount_sources(rec: ImageRecord, ref: Reference) -> list[str]:
    """Other repositories of the same registry the image is named in, the latest named
    first (a push adds its name last), which may lend its blobs (a cross-repository mount).
    At most three: each costs a HEAD per blob the target lacks."""
    out: list[str] = []
    for name in reversed(rec.names):
        with suppress(PmdError):
            other = parse_reference(name)
            if other.registry == ref.registry and other.repository != ref.repository \
                    and other.repository not in out:
                out.append(other.repository)
    return out[:3]


def push(store: Store, config: Config, rec: ImageRecord, ref: Reference,
         on_event: Callable[[Progress], None] | None = None,
         client: RegistryClient | None = None) -> PushResult:
    """Push the image rec as ref (a tag). Raises UsageError (a digest reference), AuthError,
    RegistryError, StoreError."""
    if ref.digest:
        raise UsageError("cannot push a digest reference")
    tag = ref.tag or "latest"
    emit = on_event or (lambda ev: None)
    client = client or RegistryClient(config, ref.registry)
    repo = ref.repository
    sources = _mount_sources(rec, ref)
    name = "push-" + os.urandom(6).hex()
    with store.layer_lock(name):
        staging = store.new_staging(name)
        try:
            config_bytes, tars = image_tars(store, rec, staging, {})
            layers: list[dict[str, Any]] = []
            for i, (path, _, _) in enumerate(tars):
                digest, size = _gzip(path, os.path.join(staging, f"blob{i}"))
                short = digest.removeprefix("sha256:")[:12]
                layers.append({"mediaType": LAYER_GZIP, "size": size, "digest": digest})
                emit(Progress(short, "Preparing"))
                if client.blob_exists(repo, digest):
                    emit(Progress(short, "Layer already exists"))
                    continue
                emit(Progress(short, "Pushing", 0, size))
                blob = os.path.join(staging, f"blob{i}")
                files: list[Any] = []

                def body(blob: str = blob, files: list[Any] = files) -> Any:
                    for f in files:
                        f.close()
                    files.append(open(blob, "rb"))  # closed on the next try and below
                    return files[-1]

                source = next((r for r in sources if client.blob_exists(r, digest)), None)
                try:
                    mounted = client.upload_blob(repo, digest, size, body, source)
                finally:
                    for f in files:
                        f.close()
                emit(Progress(short, f"Mounted from {source}" if mounted else "Pushed",
                              size, size))
            config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
            if not client.blob_exists(repo, config_digest):
                client.upload_blob(repo, config_digest, len(config_bytes),
                                   lambda: config_bytes)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": MANIFEST_V2,
                "config": {"mediaType": CONFIG_V1, "size": len(config_bytes),
                           "digest": config_digest},
                "layers": layers,
            }, indent=3).encode()
            digest = client.put_manifest(repo, tag, MANIFEST_V2, manifest)
        finally:
            store.discard(staging)
    return PushResult(tag, digest, len(manifest))
